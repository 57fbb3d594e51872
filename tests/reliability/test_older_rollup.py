"""Issue 11 item 3 in the Functions path: an older invocation's rollup never lands over a newer
one's. The older invocation stalls between reading its snapshots and uploading, long enough for
its lock's lease to run out (modelled by a store whose lock it no longer holds); a newer run
syncs newer data and publishes. When the older one resumes, the site must keep the newer
workbooks: every rollup records the snapshot generations it published, and a rollup built from
older generations uploads nothing."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

from sp_sync.run import jobs
from sp_sync.run.runtime import Runtime
from sp_sync.settings import Settings
from sp_sync.state import open_state_store
from tests.reliability.helpers import World
from tests.reliability.scenarios import record


class ListQueue:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, text: str) -> None:
        self.sent.append(text)


class _LostLock:
    """A lock that no longer guards anything, and whose holder has not noticed yet."""

    def __init__(self, name: str) -> None:
        self.name = name

    def check(self, **kwargs: Any) -> None:
        pass


class LockLostStore:
    """The older invocation's view of the store: its lease ran out while it stalled, so its
    lock guards nothing any more (a newer run takes the lock); everything else is the store."""

    def __init__(self, inner: Any, on_read: Any) -> None:
        self._inner = inner
        self._on_read = on_read

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextlib.contextmanager
    def lock(self, name: str, **kwargs: Any) -> Iterator[Any]:
        yield _LostLock(name)

    def read_json(self, key: str) -> Any:
        self._on_read(key)
        return self._inner.read_json(key)


def test_an_older_rollup_that_stalled_never_overwrites_the_newer_workbooks(world: World) -> None:
    settings = world.settings()
    site = settings.sites[0]
    assert world.run().status == "ok"  # last night: state and workbooks on the site
    world.change_items(random.Random(1))  # changes the older run will see

    now = [dt.datetime(2026, 6, 2, 1, 0, tzinfo=dt.UTC)]
    queue = ListQueue()
    newer_runtime = Runtime(
        settings=settings, queue_sender_factory=lambda _s: queue, clock=lambda: now[0]
    )
    shown_by_newer: dict[str, bytes] = {}
    stalled: list[str] = []

    def stall_before_upload(key: str) -> None:
        # The older rollup has read its snapshots and now reads the upload record: it stalls
        # here while a newer run, with newer changes, syncs and publishes.
        if key != f"rollups/{site.name}/fingerprints.json" or stalled:
            return
        stalled.append(key)
        world.change_items(random.Random(2))
        now[0] += dt.timedelta(minutes=5)
        newer = jobs.start_run(jobs.plan_run(newer_runtime), trigger="http", runtime=newer_runtime)
        body = queue.sent.pop()
        outcome = jobs.handle_job_message(body, load_runtime=lambda: newer_runtime)
        assert outcome == "synced; site rollup done", outcome
        shown_by_newer.update(world.site_workbooks())
        newer_ids.append(newer.run_id)

    newer_ids: list[str] = []

    def older_store(s: Settings) -> Any:
        return LockLostStore(open_state_store(s), stall_before_upload)

    older_runtime = Runtime(
        settings=settings,
        queue_sender_factory=lambda _s: queue,
        store_factory=older_store,
        clock=lambda: now[0],
    )
    older = jobs.start_run(jobs.plan_run(older_runtime), trigger="timer", runtime=older_runtime)
    body = queue.sent.pop()
    outcome = jobs.handle_job_message(body, load_runtime=lambda: older_runtime)
    assert stalled, "the older rollup never reached its upload"
    assert outcome == "synced; site rollup done", outcome
    # The site shows exactly what the newer run published, byte for byte.
    on_site = world.site_workbooks()
    assert shown_by_newer and on_site == shown_by_newer
    status = jobs.handle_status_request(None, load_runtime=lambda: newer_runtime).body
    [entry] = status["sites"].values()
    assert entry["last_run"]["run_id"] == newer_ids[0] != older.run_id
    # Nothing the newer run committed is lost; the next run publishes as usual.
    assert world.run().status == "ok"
    sizes = world.assert_exact()
    record(
        "older-rollup-stalled",
        tries=2,
        failures=0,
        # Items were added and deleted on the way: compare with what the lists hold now.
        rows_lost=sum(len(world.list_rows(t)) for t in sizes) - sum(sizes.values()),
    )
