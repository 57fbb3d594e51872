"""Weekly department digest (issue 16): a timer that fans out one message per site, and the
queue trigger that sends one site's digests and its failure/stale notice. Wiring only: the work
is `sp_sync.notify.entry`.

Registered only when mail is configured (SP_SYNC_MAIL_SENDER) and SP_SYNC_DIGEST_SCHEDULE is not
empty/off; both are read when the host indexes the app, by the same code as every run.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import azure.functions as func

from sp_sync.settings import trigger_settings

bp = func.Blueprint()
log = logging.getLogger("sp_sync.functions.digest")
_TRIGGERS = trigger_settings()

if TYPE_CHECKING:
    from sp_sync.run.runtime import Runtime


def _runtime() -> Runtime:
    from sp_sync.run.runtime import Runtime  # deferred: indexing must stay light

    return Runtime.from_env()


if _TRIGGERS.digest_enabled:

    @bp.timer_trigger(
        arg_name="timer",
        schedule=_TRIGGERS.digest_schedule,
        run_on_startup=False,
        use_monitor=True,
    )
    @bp.queue_output(
        arg_name="jobs", queue_name=_TRIGGERS.digest_queue, connection="AzureWebJobsStorage"
    )
    def weekly_digest(timer: func.TimerRequest, jobs: func.Out[list[str]]) -> None:
        from sp_sync.notify.entry import enqueue_digest_jobs

        if timer.past_due:
            log.warning("The weekly digest is past due (the host missed its schedule); running now")
        messages = enqueue_digest_jobs(load_runtime=_runtime)
        if messages:
            jobs.set(messages)
        log.info("Weekly digest: %d site job(s) enqueued", len(messages))

    @bp.queue_trigger(
        arg_name="msg", queue_name=_TRIGGERS.digest_queue, connection="AzureWebJobsStorage"
    )
    def digest_job(msg: func.QueueMessage) -> None:
        from sp_sync.notify.entry import handle_digest_message

        result = handle_digest_message(msg.get_body(), load_runtime=_runtime)
        log.info("Weekly digest for %s (%s): %s", result.site, result.period, result.to_dict())
