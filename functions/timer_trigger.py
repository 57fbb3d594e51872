"""Nightly timer: enqueues one job per configured site and list (the queue trigger runs them)."""

from __future__ import annotations

import logging

import azure.functions as func

from sp_sync.run import jobs

bp = func.Blueprint()
log = logging.getLogger("sp_sync.functions.timer")


# The schedule is read from SP_SYNC_SCHEDULE when the host indexes the app (6-field NCRONTAB,
# UTC; default 02:00 UTC = 03:00 Stockholm winter time, 04:00 summer time). It is resolved here
# rather than as %SP_SYNC_SCHEDULE% so that a missing setting falls back to the default instead
# of stopping the host, and so that tests can read the effective schedule.
@bp.timer_trigger(
    arg_name="timer",
    schedule=jobs.effective_schedule(),
    run_on_startup=False,
    use_monitor=True,
)
def nightly_sync(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.warning("Nightly sp-sync run is past due (the host missed its schedule); running now")
    result = jobs.enqueue_scheduled_run()
    log.info("Nightly sp-sync run %s enqueued as %d job(s)", result.run_id, len(result.messages))
