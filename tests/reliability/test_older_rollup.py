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


def _assert_superseded_and_newer_kept(
    world: World,
    outcome: str,
    *,
    older_runtime: Runtime,
    older_run_id: str,
    newer_runtime: Runtime,
    newer_run_id: str,
    shown_by_newer: dict[str, bytes],
    scenario: str,
) -> None:
    """The older rollup says so ("superseded" in its outcome and run document), the site shows
    exactly what the newer run published, byte for byte, the status names the newer run, and
    nothing the newer run committed is lost: the next run publishes as usual."""
    assert outcome.startswith("rollup superseded"), outcome
    older_doc, _ = older_runtime.store.read_json(f"runs/{older_run_id}.json")
    assert older_doc is not None
    assert [e["rollup"]["status"] for e in older_doc["sites"].values()] == ["superseded"]
    on_site = world.site_workbooks()
    assert shown_by_newer and on_site == shown_by_newer
    status = jobs.handle_status_request(None, load_runtime=lambda: newer_runtime).body
    [entry] = status["sites"].values()
    assert entry["last_run"]["run_id"] == newer_run_id != older_run_id
    assert world.run().status == "ok"
    sizes = world.assert_exact()
    record(
        scenario,
        tries=2,
        failures=0,
        # Items were added and deleted on the way: compare with what the lists hold now.
        rows_lost=sum(len(world.list_rows(t)) for t in sizes) - sum(sizes.values()),
    )


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
    # It says so: the run document's rollup entry is "superseded", not done or failed.
    _assert_superseded_and_newer_kept(
        world,
        outcome,
        older_runtime=older_runtime,
        older_run_id=older.run_id,
        newer_runtime=newer_runtime,
        newer_run_id=newer_ids[0],
        shown_by_newer=shown_by_newer,
        scenario="older-rollup-stalled",
    )


def test_an_older_rollup_stalled_between_two_uploads_uploads_nothing_more(
    world: World, monkeypatch: Any
) -> None:
    """The window after the check: the older rollup passed its generation check and uploaded
    one workbook, then stalls before the next one while a newer run publishes. Each upload is
    preceded by a fresh check, so it uploads nothing after that point, says so ("superseded"),
    and the site keeps the newer run's bytes."""
    from sp_sync.report import publish

    settings = world.settings()
    assert world.run().status == "ok"
    world.change_items(random.Random(3))

    now = [dt.datetime(2026, 6, 2, 1, 0, tzinfo=dt.UTC)]
    queue = ListQueue()
    newer_runtime = Runtime(
        settings=settings, queue_sender_factory=lambda _s: queue, clock=lambda: now[0]
    )
    shown_by_newer: dict[str, bytes] = {}
    older_uploads: list[str] = []
    newer_ids: list[str] = []
    in_older = [True]
    real_upload_one = publish._upload_one

    def upload_one(client: Any, folder_url: str, wb: Any, **kwargs: Any) -> Any:
        answer = real_upload_one(client, folder_url, wb, **kwargs)
        if not in_older[0]:
            return answer
        older_uploads.append(wb.name)
        if len(older_uploads) == 1:
            # Between the older rollup's first and second upload: a newer run, with newer
            # changes, syncs and publishes every workbook.
            in_older[0] = False
            world.change_items(random.Random(4))
            now[0] += dt.timedelta(minutes=5)
            newer = jobs.start_run(
                jobs.plan_run(newer_runtime), trigger="http", runtime=newer_runtime
            )
            body = queue.sent.pop()
            outcome = jobs.handle_job_message(body, load_runtime=lambda: newer_runtime)
            assert outcome == "synced; site rollup done", outcome
            shown_by_newer.update(world.site_workbooks())
            newer_ids.append(newer.run_id)
            in_older[0] = True
        return answer

    monkeypatch.setattr(publish, "_upload_one", upload_one)
    older_rendered: list[str] = []
    real_render = publish._render

    def render(tables: Any, key: Any, inputs: Any) -> Any:
        wb = real_render(tables, key, inputs)
        if in_older[0]:
            older_rendered.append(wb.name)
        return wb

    monkeypatch.setattr(publish, "_render", render)
    older_runtime = Runtime(
        settings=settings,
        queue_sender_factory=lambda _s: queue,
        store_factory=lambda s: LockLostStore(open_state_store(s), lambda key: None),
        clock=lambda: now[0],
    )
    older = jobs.start_run(jobs.plan_run(older_runtime), trigger="timer", runtime=older_runtime)
    body = queue.sent.pop()
    outcome = jobs.handle_job_message(body, load_runtime=lambda: older_runtime)
    assert newer_ids, "the older rollup never uploaded its first workbook"
    # Nothing after the stall: the one workbook it sent before the newer run started.
    assert len(older_uploads) == 1, older_uploads
    # …though it had a second changed workbook ready to send (rendered, then held back).
    assert len(older_rendered) == 2, older_rendered
    _assert_superseded_and_newer_kept(
        world,
        outcome,
        older_runtime=older_runtime,
        older_run_id=older.run_id,
        newer_runtime=newer_runtime,
        newer_run_id=newer_ids[0],
        shown_by_newer=shown_by_newer,
        scenario="older-rollup-between-files",
    )
