"""Issue 11 item 1: a rollup claim is a lease. When the invocation that claimed a site's rollup
dies, the next delivery takes the claim over once the lease has run out; a rollup that keeps
dying is recorded as failed with its reason, and the status endpoint shows both states."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from sp_sync.errors import RetryableError
from sp_sync.run import jobs, pipeline
from sp_sync.run.runtime import Runtime
from tests.reliability.helpers import World
from tests.reliability.scenarios import record


class HostKilled(BaseException):
    """What the worker sees when the host recycles it mid-rollup: nothing after this runs."""


class ListQueue:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, text: str) -> None:
        self.sent.append(text)


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 6, 2, 1, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def _setup(world: World) -> tuple[Runtime, ListQueue, Clock, str, str]:
    queue, clock = ListQueue(), Clock()
    runtime = Runtime(settings=world.settings(), queue_sender_factory=lambda _s: queue, clock=clock)
    fan = jobs.start_run(jobs.plan_run(runtime), trigger="http", runtime=runtime)
    [body] = queue.sent
    queue.sent.clear()
    return runtime, queue, clock, fan.run_id, body


def _rollup(runtime: Runtime, run_id: str, world: World) -> dict[str, Any]:
    doc, _ = runtime.store.read_json(f"runs/{run_id}.json")
    assert doc is not None
    return dict(doc["sites"][world.site_url]["rollup"])


def _site_status(runtime: Runtime) -> dict[str, Any]:
    answer = jobs.handle_status_request(None, load_runtime=lambda: runtime)
    assert answer.status == 200
    [site] = answer.body["sites"].values()
    return dict(site)


def test_a_dead_rollup_claim_is_taken_over_after_its_lease(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, _queue, clock, run_id, body = _setup(world)
    real_rollup = pipeline.run_rollup_job
    calls: list[str] = []

    def dies_once(*args: Any, **kwargs: Any) -> Any:
        calls.append("rollup")
        if len(calls) == 1:
            raise HostKilled
        return real_rollup(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run_rollup_job", dies_once)

    with pytest.raises(HostKilled):
        jobs.handle_job_message(body, load_runtime=lambda: runtime)
    assert _rollup(runtime, run_id, world)["status"] == "claimed"
    assert _site_status(runtime)["in_progress"] is True
    assert world.site_workbooks() == {}

    # Redelivered while the lease still runs: the sync is not redone, the host is asked to
    # come back later (the claimant may still be alive).
    with pytest.raises(RetryableError):
        jobs.handle_job_message(body, dequeue_count=2, load_runtime=lambda: runtime)
    assert len(calls) == 1

    clock.advance(jobs.ROLLUP_LEASE_SECONDS + 1)
    stalled = _site_status(runtime)
    assert stalled["in_progress"] is False
    assert stalled["stalled_rollup"]["run_id"] == run_id

    outcome = jobs.handle_job_message(body, dequeue_count=3, load_runtime=lambda: runtime)
    assert outcome == "synced; site rollup done"
    assert len(calls) == 2
    rollup = _rollup(runtime, run_id, world)
    assert rollup["status"] == "done"
    world.assert_workbooks_open()
    sizes = world.assert_exact(runtime.store)
    final = _site_status(runtime)
    assert final["last_run"]["run_id"] == run_id
    assert final["last_run"]["status"] == "ok"
    assert final["in_progress"] is False and "stalled_rollup" not in final
    record(
        "rollup-lease",
        tries=3,
        failures=0,
        rows_lost=sum(world.counts.values()) - sum(sizes.values()),
    )


def test_a_rollup_that_keeps_dying_is_marked_failed_with_its_reason(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, _queue, clock, run_id, body = _setup(world)

    def always_dies(*args: Any, **kwargs: Any) -> Any:
        raise HostKilled

    monkeypatch.setattr(pipeline, "run_rollup_job", always_dies)
    for delivery in range(1, jobs.MAX_ROLLUP_ATTEMPTS + 1):
        with pytest.raises(HostKilled):
            jobs.handle_job_message(body, dequeue_count=delivery, load_runtime=lambda: runtime)
        clock.advance(jobs.ROLLUP_LEASE_SECONDS + 1)
    # The host gave up on the message; the poison handler is the last delivery.
    outcome = jobs.handle_poison_message(body, load_runtime=lambda: runtime)
    assert outcome.startswith("rollup failed:")
    rollup = _rollup(runtime, run_id, world)
    assert rollup["status"] == "failed"
    assert rollup["error"]["error"] == "RollupAbandoned"
    assert f"{jobs.MAX_ROLLUP_ATTEMPTS} times" in rollup["error"]["message"]
    site = _site_status(runtime)
    assert site["in_progress"] is False
    assert site["last_run"]["run_id"] == run_id
    assert site["last_run"]["status"] == "failed"
    assert site["last_run"]["error"]["error"] == "RollupAbandoned"
    # Rows committed by the sync are not lost by the failed rollup.
    sizes = world.assert_exact(runtime.store)
    record(
        "rollup-gives-up",
        tries=jobs.MAX_ROLLUP_ATTEMPTS + 1,
        failures=0,
        rows_lost=sum(world.counts.values()) - sum(sizes.values()),
    )


def test_a_rollup_longer_than_its_lease_renews_it_and_is_not_taken_over(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 1/6: the claim is renewed while the rollup works (heartbeat by the runtime's clock),
    so a redelivery long after the first lease would have run out finds the claim alive."""
    import time

    monkeypatch.setattr(jobs, "LEASE_POLL_SECONDS", 0.01)
    runtime, _queue, clock, run_id, body = _setup(world)
    real_rollup = pipeline.run_rollup_job
    seen: list[dict[str, Any]] = []

    def renewed_after(previous: str) -> dict[str, Any]:
        for _ in range(500):  # the keeper polls every 10 ms; allow it 5 s on a loaded machine
            rollup = _rollup(runtime, run_id, world)
            if rollup["lease_until"] != previous:
                return rollup
            time.sleep(0.01)
        raise AssertionError("the lease was not renewed")

    def slow_rollup(*args: Any, **kwargs: Any) -> Any:
        claim = _rollup(runtime, run_id, world)
        lease = claim["lease_until"]
        for _ in range(3):  # three heartbeats: 300 s of rollup against a 120 s lease
            clock.advance(jobs.ROLLUP_LEASE_SECONDS * 5 / 6)
            renewed = renewed_after(lease)
            assert dt.datetime.fromisoformat(renewed["lease_until"]) > clock.now
            lease = renewed["lease_until"]
        # A redelivery now (long past the first lease) must not take the claim over.
        with pytest.raises(RetryableError, match="claimed by another invocation"):
            jobs.handle_job_message(body, dequeue_count=2, load_runtime=lambda: runtime)
        seen.append(_rollup(runtime, run_id, world))
        return real_rollup(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run_rollup_job", slow_rollup)
    outcome = jobs.handle_job_message(body, load_runtime=lambda: runtime)
    assert outcome == "synced; site rollup done"
    [during] = seen
    assert during["status"] == "claimed"
    assert during["attempts"] == 1 and "took_over_from" not in during
    assert _rollup(runtime, run_id, world)["status"] == "done"
    sizes = world.assert_exact(runtime.store)
    record(
        "lease-heartbeat",
        tries=4,
        failures=0,
        rows_lost=sum(world.counts.values()) - sum(sizes.values()),
    )
