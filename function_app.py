"""Azure Functions entry point (Python v2 programming model).

Registers the blueprints in `functions/` and nothing else: every trigger is wiring around one
`sp_sync` entry point, so the CLI, the demo and the Functions app run the same pipeline.
"""

from __future__ import annotations

import azure.functions as func

from functions.digest_trigger import bp as digest_bp
from functions.http_triggers import bp as http_bp
from functions.queue_trigger import bp as queue_bp
from functions.timer_trigger import bp as timer_bp
from sp_sync.redact import install as install_log_redaction

# In Azure every log line goes to Application Insights: mask tokens and secrets before any
# trigger can log, exactly as the CLI and the demo do.
install_log_redaction()

app = func.FunctionApp()
app.register_functions(timer_bp)
app.register_functions(http_bp)
app.register_functions(queue_bp)
app.register_functions(digest_bp)  # empty unless mail is configured
