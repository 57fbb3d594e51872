"""Issue 11 items 3 and 5: the whole run (sync to upload) holds the site's run lock, so an
older, slower run's uploads never land after a newer run's; the time budget bounds the whole
run, so a run that spent it on the sync ends "continues next time" (exit 6) without a rollup,
and the next run completes."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from sp_sync.errors import ExitCode, RunLockedError
from sp_sync.run import jobs
from sp_sync.run.runtime import Runtime
from tests.reliability.helpers import (
    RequestTrigger,
    World,
    is_sync_request,
    is_upload_request,
)
from tests.reliability.scenarios import record


def test_a_second_run_cannot_start_while_the_first_still_uploads(world: World) -> None:
    trigger = RequestTrigger(world.emu)
    second: list[Any] = []

    def newer_run_starts() -> None:
        # A newer run (e.g. an on-demand run) starts while the nightly one is uploading.
        try:
            second.append(world.run())
        except RunLockedError as exc:
            second.append(exc)

    trigger.when(is_upload_request, 1, newer_run_starts, "first upload")
    summary = world.run()
    assert trigger.fired == ["first upload"]
    [outcome] = second
    assert isinstance(outcome, RunLockedError), outcome
    assert outcome.exit_code == ExitCode.LOCKED
    assert summary.status == "ok"
    world.assert_exact()
    world.assert_workbooks_open()
    # The lock is released with the run: the next run starts and finishes.
    assert world.run().status == "ok"
    sizes = world.assert_exact()
    record(
        "newer-run-waits",
        tries=2,
        failures=0,
        rows_lost=sum(world.counts.values()) - sum(sizes.values()),
    )


class ListQueue:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, text: str) -> None:
        self.sent.append(text)


def test_an_older_functions_run_never_becomes_the_last_run(world: World) -> None:
    now = [dt.datetime(2026, 6, 2, 1, 0, tzinfo=dt.UTC)]
    queue = ListQueue()
    runtime = Runtime(
        settings=world.settings(), queue_sender_factory=lambda _s: queue, clock=lambda: now[0]
    )
    older = jobs.start_run(jobs.plan_run(runtime), trigger="timer", runtime=runtime)
    [older_body] = queue.sent
    now[0] += dt.timedelta(minutes=5)
    newer = jobs.start_run(jobs.plan_run(runtime), trigger="http", runtime=runtime)
    newer_body = queue.sent[1]
    # The newer run finishes first; the older one's job was slow and finishes after it.
    assert jobs.handle_job_message(newer_body, load_runtime=lambda: runtime).endswith("done")
    assert jobs.handle_job_message(older_body, load_runtime=lambda: runtime).endswith("done")
    answer = jobs.handle_status_request(None, load_runtime=lambda: runtime)
    [site] = answer.body["sites"].values()
    assert site["last_run"]["run_id"] == newer.run_id != older.run_id
    sizes = world.assert_exact(runtime.store)
    record(
        "older-functions-run",
        tries=2,
        failures=0,
        rows_lost=sum(world.counts.values()) - sum(sizes.values()),
    )


def test_a_run_out_of_time_before_the_rollup_continues_next_time(world: World) -> None:
    trigger = RequestTrigger(world.emu)
    # The first page of the first list takes longer than the whole budget.
    trigger.when(is_sync_request, 1, lambda: time.sleep(2.5), "slow first page")
    started = time.monotonic()
    proc = world.cli_run(SP_SYNC_TIME_BUDGET_SECONDS="2")
    elapsed = time.monotonic() - started
    assert proc.returncode == ExitCode.RETRY_LATER, (proc.returncode, proc.stderr[-2000:])
    assert "unexpected" not in proc.stderr
    assert world.site_workbooks() == {}, "a rollup ran after the time budget was spent"
    assert elapsed < 60
    # The next run, with time enough, completes: every row, every workbook.
    trigger.clear()
    proc = world.cli_run()
    assert proc.returncode == ExitCode.OK, proc.stderr[-2000:]
    sizes = world.assert_exact()
    world.assert_workbooks_open()
    record(
        "time-budget",
        tries=2,
        failures=0,
        rows_lost=sum(world.counts.values()) - sum(sizes.values()),
    )


def test_summary_of_a_run_that_continues_says_so(world: World) -> None:
    trigger = RequestTrigger(world.emu)
    trigger.when(is_sync_request, 1, lambda: time.sleep(2.5), "slow first page")
    summary = world.run(SP_SYNC_TIME_BUDGET_SECONDS="2")
    assert summary.continues is True
    assert summary.status == "partial"
    assert summary.to_dict()["continues"] is True
    assert "nästa körning fortsätter" in summary.format_text("sv")
    assert not summary.workbooks


@pytest.fixture(autouse=True)
def _no_stray_faults(world: World) -> Any:
    yield
    world.emu.faults.clear()
