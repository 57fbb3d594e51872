"""The job handlers take their dependencies from a `Runtime` built by the caller: here a local
state store, an in-memory queue and a fixed clock are passed to the constructor. No module
globals, no patching, no Functions host and no Azurite."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest

from sp_sync.errors import SettingsError
from sp_sync.run import jobs
from sp_sync.run.runtime import Runtime
from sp_sync.settings import Settings
from sp_sync.state import LocalStateStore, StateStore

FIXED = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)
SITES = ("https://c.sharepoint.com/sites/alfa", "https://c.sharepoint.com/sites/beta")


class ListQueue:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, text: str) -> None:
        self.sent.append(text)


def _runtime(tmp_path: Path, queue: ListQueue, **extra: str) -> Runtime:
    sites = tmp_path / "sites.json"
    sites.write_text(json.dumps([{"url": u} for u in SITES]), encoding="utf-8")
    settings = Settings.from_env(
        {"SP_SYNC_SITES_FILE": str(sites), "SP_SYNC_STATE_DIR": str(tmp_path / "state"), **extra}
    )
    return Runtime(settings=settings, queue_sender_factory=lambda _s: queue, clock=lambda: FIXED)


def test_run_request_uses_the_injected_store_queue_and_clock(tmp_path: Path) -> None:
    queue = ListQueue()
    runtime = _runtime(tmp_path, queue)
    answer = jobs.handle_run_request(
        b'{"sites": ["beta"], "lists": ["Dialoger"], "mode": "full"}',
        "application/json",
        "https://app.example/api/runs",
        load_runtime=lambda: runtime,
    )
    assert answer.status == 202, answer.body
    run_id = answer.body["run_id"]
    assert run_id.startswith("20260301T020000Z-")
    assert answer.body["status_url"] == f"https://app.example/api/status/runs/{run_id}"
    assert [json.loads(m) for m in queue.sent] == [
        {
            "version": 1,
            "run_id": run_id,
            "site_url": SITES[1],
            "lists": ["Dialoger"],
            "full": True,
            "attempt": 1,
        }
    ]
    # The run document went to the runtime's store, stamped by the runtime's clock.
    doc, _ = LocalStateStore(tmp_path / "state").read_json(f"runs/{run_id}.json")
    assert doc is not None and doc["created_at"] == FIXED.isoformat()
    assert doc["sites"] == {
        SITES[1]: {"lists": {"Dialoger": {"status": "queued"}}, "rollup": {"status": "waiting"}}
    }
    status = jobs.handle_status_request(run_id, load_runtime=lambda: runtime)
    assert status.status == 200 and status.body["run"] == doc


def test_scheduled_run_enqueues_one_job_per_site(tmp_path: Path) -> None:
    queue = ListQueue()
    fan = jobs.enqueue_scheduled_run(load_runtime=lambda: _runtime(tmp_path, queue))
    assert [json.loads(m)["site_url"] for m in queue.sent] == list(SITES)
    assert len(fan.messages) == 2 and fan.run_id.startswith("20260301T020000Z-")


def test_a_settings_error_becomes_the_answer_not_an_exception(tmp_path: Path) -> None:
    def broken() -> Runtime:
        raise SettingsError("SP_SYNC_LANGUAGE", "unknown language 'fi'; use sv or en")

    answer = jobs.handle_run_request(b"", None, "https://a/api/runs", load_runtime=broken)
    assert answer.status == 503 and "SP_SYNC_LANGUAGE" in answer.body["error"]
    status = jobs.handle_status_request(None, load_runtime=broken)
    assert status.body == {
        "configuration": {
            "ok": False,
            "problem": "Setting SP_SYNC_LANGUAGE: unknown language 'fi'; use sv or en",
        }
    }


def test_poison_message_is_recorded_in_the_injected_store(tmp_path: Path) -> None:
    queue = ListQueue()
    runtime = _runtime(tmp_path, queue, SP_SYNC_LISTS="Dialoger,Länskunskap")
    # Another list of the site is still running: the poisoned one is marked failed and the
    # rollup waits (nothing reaches SharePoint, so no client is ever built).
    fan = jobs.start_run(
        jobs.FanOut(
            "r1",
            [
                jobs.JobMessage("r1", SITES[0], ("Dialoger",)),
                jobs.JobMessage("r1", SITES[0], ("Länskunskap",)),
            ],
        ),
        trigger="test",
        runtime=runtime,
    )
    store: StateStore = runtime.store
    jobs.update_json(
        store,
        "runs/r1.json",
        lambda d: d["sites"][SITES[0]]["lists"]["Länskunskap"].update({"status": "running"}),
    )
    outcome = jobs.handle_poison_message(fan.messages[0].to_json(), load_runtime=lambda: runtime)
    assert outcome == "synced; rollup waits for the site's other lists"
    doc, _ = store.read_json("runs/r1.json")
    assert doc is not None
    assert doc["sites"][SITES[0]]["lists"]["Dialoger"]["status"] == "failed"
    assert doc["sites"][SITES[0]]["rollup"] == {"status": "waiting"}
    assert len(queue.sent) == 2  # start_run's two messages; nothing re-enqueued


def test_runtime_builds_store_and_schemas_once_and_only_when_used(tmp_path: Path) -> None:
    opened: list[Settings] = []

    def store_factory(settings: Settings) -> StateStore:
        opened.append(settings)
        return LocalStateStore(tmp_path / "s")

    settings = Settings(site_url=SITES[0])
    runtime = Runtime(settings=settings, store_factory=store_factory)
    assert opened == [] and not (tmp_path / "s").exists()
    assert runtime.store is runtime.store and opened == [settings]
    before = time.monotonic()
    assert before + 1500 <= runtime.deadline() <= time.monotonic() + 1500
    assert "Dialoger" in runtime.schemas.lists and runtime.schemas is runtime.schemas


def test_queue_sender_needs_a_connection(tmp_path: Path) -> None:
    runtime = Runtime(settings=Settings(site_url=SITES[0]))
    with pytest.raises(SettingsError, match="AzureWebJobsStorage"):
        runtime.queue.send("x")


def test_a_pipeline_run_uses_the_injected_client_store_and_clock(tmp_path: Path) -> None:
    """`run_sync` through a runtime whose client factory returns the in-memory SharePoint of
    the sync tests: the rows land in the runtime's store, the run is stamped by its clock."""
    from typing import cast

    from sp_sync.run import pipeline
    from sp_sync.sharepoint import SharePointClient
    from tests.sync.fakes import FakeSharePoint

    fake = FakeSharePoint()
    fake.add_list("Dialoger")
    for i in range(3):
        fake.add("Dialoger", Title=f"Dialog {i}", County="Skåne län", Year=2026, Phase="Dialog")
    deadlines: list[float | None] = []

    def client_factory(site: object, deadline: float | None) -> SharePointClient:
        deadlines.append(deadline)
        return cast(SharePointClient, fake)

    settings = Settings.from_env(
        {"SP_SYNC_SITE_URL": SITES[0], "SP_SYNC_STATE_DIR": str(tmp_path / "state")}
    )
    runtime = Runtime(settings=settings, client_factory=client_factory, clock=lambda: FIXED)
    before = time.monotonic()
    summary = pipeline.run_sync(runtime, settings.sites[0], lists=["Dialoger"])
    assert [(r.list, r.mode, r.rows, r.added) for r in summary.lists] == [
        ("Dialoger", "full", 3, 3)
    ]
    assert summary.started == summary.finished == FIXED
    assert len(deadlines) == 1 and deadlines[0] is not None
    assert before + settings.time_budget_seconds <= deadlines[0] <= time.monotonic() + 1500
    state = LocalStateStore(tmp_path / "state").read_list_state(SITES[0], "Dialoger")
    assert state is not None and sorted(state.rows["Title"]) == ["Dialog 0", "Dialog 1", "Dialog 2"]
