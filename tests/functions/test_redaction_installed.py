"""Importing the Functions app installs log redaction, as the CLI and the demo do.

In Azure, the Functions host forwards every record that reaches the root logger to Application
Insights. So the check runs in a fresh interpreter (nothing else in the test process may have
installed redaction already), imports `function_app` exactly as the host does, attaches a handler
to the root logger as the host does, and logs a registered secret and a bare bearer token through
an sp_sync logger and a library logger.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = textwrap.dedent(
    """
    import io, json, logging
    from sp_sync import redact

    before = logging.getLogRecordFactory()
    import function_app  # noqa: F401  (what the Functions host imports)

    stream = io.StringIO()
    root = logging.getLogger()
    root.addHandler(logging.StreamHandler(stream))
    root.setLevel(logging.DEBUG)
    redact.register_secret("functions-canary-5e6f7a8b")
    err = RuntimeError("call failed with functions-canary-5e6f7a8b")
    logging.getLogger("sp_sync.run.jobs").error("job failed: %r", err)
    logging.getLogger("azure.core.pipeline").warning("header Bearer abcdefghijklmnop")
    print(json.dumps({
        "filter_on_sp_sync": any(
            isinstance(f, redact.RedactingFilter) for f in logging.getLogger("sp_sync").filters
        ),
        "factory_replaced": logging.getLogRecordFactory() is not before,
        "log": stream.getvalue(),
    }))
    """
)


def _probe() -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SP_SYNC_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_importing_function_app_installs_log_redaction() -> None:
    result = _probe()
    log = str(result["log"])
    # The probe really logged both lines (an empty log would pass the leak checks).
    assert "job failed: RuntimeError(" in log
    assert "header Bearer" in log
    assert "functions-canary-5e6f7a8b" not in log
    assert "abcdefghijklmnop" not in log
    assert result["filter_on_sp_sync"] is True
    assert result["factory_replaced"] is True
