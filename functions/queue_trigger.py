"""Queue trigger: runs one job (one site and list), and the site's rollup once all its lists are
synced. Messages that keep failing end up in the poison queue, where they are reported."""

from __future__ import annotations

import logging

import azure.functions as func

from sp_sync.run import jobs
from sp_sync.run.runtime import Runtime
from sp_sync.settings import trigger_settings

bp = func.Blueprint()
log = logging.getLogger("sp_sync.functions.queue")
# SP_SYNC_QUEUE, validated as in every run (an invalid name stops the indexing, naming it).
_QUEUES = trigger_settings()


@bp.queue_trigger(arg_name="msg", queue_name=_QUEUES.queue, connection="AzureWebJobsStorage")
def run_job(msg: func.QueueMessage) -> None:
    outcome = jobs.handle_job_message(
        msg.get_body(), dequeue_count=msg.dequeue_count or 1, load_runtime=Runtime.from_env
    )
    log.info("sp-sync job %s: %s", msg.id, outcome)


@bp.queue_trigger(arg_name="msg", queue_name=_QUEUES.poison_queue, connection="AzureWebJobsStorage")
def report_poison(msg: func.QueueMessage) -> None:
    outcome = jobs.handle_poison_message(msg.get_body(), load_runtime=Runtime.from_env)
    log.error("sp-sync job %s gave up after repeated failures: %s", msg.id, outcome)
