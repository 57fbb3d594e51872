"""Nightly timer: enqueues one job per configured site and list (the queue trigger runs them)."""

from __future__ import annotations

import logging

import azure.functions as func

from sp_sync.run import jobs
from sp_sync.run.runtime import Runtime
from sp_sync.settings import trigger_settings

bp = func.Blueprint()
log = logging.getLogger("sp_sync.functions.timer")


# The schedule is SP_SYNC_SCHEDULE, read when the host indexes the app (6-field NCRONTAB, UTC;
# default 02:00 UTC = 03:00 Stockholm winter time, 04:00 summer time) and checked by the same
# code as in every run: an invalid value stops the indexing with a SettingsError naming the
# setting (logged first, since the worker may only report "0 functions found"), rather than
# scheduling a default time at which every run would fail. It is resolved here rather than as
# %SP_SYNC_SCHEDULE% so that an unset setting means the default.
@bp.timer_trigger(
    arg_name="timer",
    schedule=trigger_settings().schedule,
    run_on_startup=False,
    use_monitor=True,
)
def nightly_sync(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.warning("Nightly sp-sync run is past due (the host missed its schedule); running now")
    result = jobs.enqueue_scheduled_run(load_runtime=Runtime.from_env)
    log.info("Nightly sp-sync run %s enqueued as %d job(s)", result.run_id, len(result.messages))
