"""Issue 11 item 5 in the Functions path: a rollup job has the run's time budget.

`run_rollup_job` had no deadline: its storage and SharePoint calls were bounded only by fixed
timeouts, and it went on uploading however long that took. Now it gets
SP_SYNC_TIME_BUDGET_SECONDS like the sync: every call is capped by the time left, and when less
than one upload's time is left it starts no further upload. The claim is given back (its
attempt counts), the message is redelivered, and the redelivery uploads the rest: every file
on the site is complete at every moment, none is uploaded twice, no row is lost.
Azurite (state, run documents, claims) + the emulator (the site)."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from sp_sync.errors import RetryableError
from sp_sync.run import jobs
from sp_sync.run.pipeline import MIN_UPLOAD_SECONDS
from sp_sync.run.runtime import Runtime
from tests.helpers.azurite import Azurite, unique_container
from tests.reliability.helpers import World
from tests.reliability.scenarios import record
from tests.reliability.test_older_rollup import ListQueue

pytestmark = [pytest.mark.azurite]

BUDGET = 10
#: The first upload of the first delivery takes this long (a slow site): afterwards less than
#: one upload's time (MIN_UPLOAD_SECONDS, or the slowest upload so far) is left.
SLOW_UPLOAD = 5.0
SLACK = 10.0


def test_a_rollup_out_of_time_stops_between_uploads_and_the_redelivery_finishes(
    world: World, azurite: Azurite, monkeypatch: Any
) -> None:
    from sp_sync.report import publish

    world.extra_env.update(
        {
            "SP_SYNC_STATE": "azure",
            "AzureWebJobsStorage": azurite.connection_string,
            "SP_SYNC_STATE_CONTAINER": unique_container("rollbudget"),
        }
    )
    assert world.run().status == "ok"  # last night: state and workbooks on the site
    before = world.site_workbooks()
    world.change_items(random.Random(5), edits=12, adds=6)

    delivery = [1]
    uploads: dict[int, list[str]] = {1: [], 2: []}
    real_upload_one = publish._upload_one

    def upload_one(client: Any, folder_url: str, wb: Any, **kwargs: Any) -> Any:
        uploads[delivery[0]].append(wb.name)
        if delivery[0] == 1 and len(uploads[1]) == 1:
            time.sleep(SLOW_UPLOAD)
        return real_upload_one(client, folder_url, wb, **kwargs)

    monkeypatch.setattr(publish, "_upload_one", upload_one)
    settings = world.settings(SP_SYNC_TIME_BUDGET_SECONDS=str(BUDGET))
    queue = ListQueue()
    runtime = Runtime(settings=settings, queue_sender_factory=lambda _s: queue)
    run = jobs.start_run(jobs.plan_run(runtime), trigger="timer", runtime=runtime)
    body = queue.sent.pop()

    started = time.monotonic()
    with pytest.raises(RetryableError) as raised:  # the host delivers the message again
        jobs.handle_job_message(body, load_runtime=lambda: runtime)
    elapsed = time.monotonic() - started
    assert "time budget" in str(raised.value), raised.value
    assert elapsed < BUDGET + MIN_UPLOAD_SECONDS + SLACK, elapsed
    assert len(uploads[1]) == 1, uploads  # stopped before the second upload
    doc, _ = runtime.store.read_json(f"runs/{run.run_id}.json")
    assert doc is not None
    [entry] = doc["sites"].values()
    assert entry["rollup"]["status"] == "waiting" and entry["rollup"]["attempts"] == 1
    # What is on the site is complete: the one file sent, the others as they were.
    halfway = world.assert_workbooks_open()
    changed = [name for name, data in halfway.items() if before.get(name) != data]
    assert changed == uploads[1], (changed, uploads[1])

    # The redelivery, in an invocation with time to spare (the default budget), sends the rest.
    delivery[0] = 2
    later = Runtime(settings=world.settings(), queue_sender_factory=lambda _s: queue)
    outcome = jobs.handle_job_message(body, dequeue_count=2, load_runtime=lambda: later)
    assert outcome == "synced; site rollup done", outcome
    assert uploads[2] and not set(uploads[1]) & set(uploads[2]), uploads  # none sent twice
    doc, _ = runtime.store.read_json(f"runs/{run.run_id}.json")
    assert doc is not None
    [entry] = doc["sites"].values()
    assert entry["rollup"]["status"] == "done"
    world.assert_workbooks_open()
    # A rollup from the same state now has nothing left to send.
    sizes = world.assert_exact(runtime.store)
    record(
        "rollup-budget",
        tries=2,
        failures=0,
        rows_lost=sum(len(world.list_rows(t)) for t in sizes) - sum(sizes.values()),
    )


def test_a_rollup_after_a_slow_sync_gets_what_is_left_of_the_invocations_budget(
    world: World, azurite: Azurite, monkeypatch: Any
) -> None:
    """The rollup that follows the sync in one invocation had a fresh budget of its own, so the
    invocation could run for two budgets (and meet the host's function timeout). Now it gets
    the invocation's deadline: a sync that leaves less than one upload's time means no upload
    in this invocation, the claim is given back, and the redelivery publishes every file."""
    from sp_sync.report import publish
    from sp_sync.run import pipeline

    world.extra_env.update(
        {
            "SP_SYNC_STATE": "azure",
            "AzureWebJobsStorage": azurite.connection_string,
            "SP_SYNC_STATE_CONTAINER": unique_container("invbudget"),
        }
    )
    assert world.run().status == "ok"
    world.change_items(random.Random(7), edits=8, adds=3)

    real_sync_job = pipeline.run_sync_job

    def slow_sync_job(*args: Any, **kwargs: Any) -> Any:
        result = real_sync_job(*args, **kwargs)
        # The sync finished within its budget but left less than one upload's time of it.
        time.sleep(max(0.0, BUDGET - MIN_UPLOAD_SECONDS + 1.0))
        return result

    uploads: list[str] = []
    real_upload_one = publish._upload_one

    def upload_one(client: Any, folder_url: str, wb: Any, **kwargs: Any) -> Any:
        uploads.append(wb.name)
        return real_upload_one(client, folder_url, wb, **kwargs)

    monkeypatch.setattr(pipeline, "run_sync_job", slow_sync_job)
    monkeypatch.setattr(publish, "_upload_one", upload_one)
    queue = ListQueue()
    runtime = Runtime(
        settings=world.settings(SP_SYNC_TIME_BUDGET_SECONDS=str(BUDGET)),
        queue_sender_factory=lambda _s: queue,
    )
    run = jobs.start_run(jobs.plan_run(runtime), trigger="timer", runtime=runtime)
    body = queue.sent.pop()
    with pytest.raises(RetryableError) as raised:
        jobs.handle_job_message(body, load_runtime=lambda: runtime)
    assert "time budget" in str(raised.value), raised.value
    assert uploads == []  # nothing started with too little of the invocation's budget left
    doc, _ = runtime.store.read_json(f"runs/{run.run_id}.json")
    assert doc is not None
    [entry] = doc["sites"].values()
    assert entry["rollup"]["status"] == "waiting"
    assert {v["status"] for v in entry["lists"].values()} == {"done"}

    later = Runtime(settings=world.settings(), queue_sender_factory=lambda _s: queue)
    outcome = jobs.handle_job_message(body, dequeue_count=2, load_runtime=lambda: later)
    assert outcome == "synced; site rollup done", outcome
    assert uploads and len(uploads) == len(set(uploads))
    world.assert_workbooks_open()
    world.assert_exact(runtime.store)
