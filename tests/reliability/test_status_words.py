"""Issue 11 item 7, status words: a run, a list job and a rollup each have one closed set of
status words. A word outside its set is refused where it is written, so a typo can be neither
stored in a run document nor shown by `--json` or the status endpoint."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest

from sp_sync.run import jobs
from sp_sync.run.runtime import Runtime
from sp_sync.run.status import ListStatus, RollupStatus, RunStatus, checked
from sp_sync.run.summary import RunSummary
from tests.reliability.helpers import World
from tests.reliability.scenarios import record


class ListQueue:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, text: str) -> None:
        self.sent.append(text)


def _statuses(doc: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every ("a/b/status", value) in a JSON document."""
    found: list[tuple[str, Any]] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            where = f"{path}/{key}"
            if key == "status":
                found.append((where, value))
            found.extend(_statuses(value, where))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found.extend(_statuses(value, f"{path}/{i}"))
    return found


#: Where a status sits → the set it must come from. Workbook entries have their own words.
def _allowed(where: str) -> set[str]:
    if "/workbooks/" in where:
        return {"uploaded", "unchanged"}
    if re.search(r"/lists/[^/]+/status$", where):  # a list entry (titles hold no "/")
        return {s.value for s in ListStatus}
    if re.fullmatch(r"/sites/.+/rollup/status", where) and "/last_run/" not in where:
        return {s.value for s in RollupStatus}  # a run document's rollup entry
    return {s.value for s in RunStatus}


def test_a_status_outside_its_set_is_refused() -> None:
    now = dt.datetime(2026, 6, 2, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="RunStatus"):
        RunSummary(run_id="r", site="s", started=now, finished=now, status="okay")
    with pytest.raises(ValueError, match="ListStatus"):
        checked(ListStatus, "don")
    with pytest.raises(ValueError):
        checked(RollupStatus, 429)
    assert RunSummary(run_id="r", site="s", started=now, finished=now).status is RunStatus.OK


def test_a_run_document_with_a_typo_is_never_stored(world: World) -> None:
    queue = ListQueue()
    runtime = Runtime(settings=world.settings(), queue_sender_factory=lambda _s: queue)
    fan = jobs.start_run(jobs.plan_run(runtime), trigger="http", runtime=runtime)
    key = f"runs/{fan.run_id}.json"
    before, _ = runtime.store.read_json(key)

    def typo(doc: dict[str, Any]) -> None:
        doc["sites"][world.site_url]["rollup"]["status"] = "claimd"

    with pytest.raises(ValueError, match="RollupStatus"):
        jobs.update_json(runtime.store, key, typo)
    after, _ = runtime.store.read_json(key)
    assert after == before


def test_every_status_a_functions_run_writes_and_shows_is_from_its_set(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = ListQueue()
    runtime = Runtime(settings=world.settings(), queue_sender_factory=lambda _s: queue)
    store = runtime.store
    written: list[tuple[str, Any]] = []
    real_write = store.write_json

    def recording(key: str, doc: Any, **kwargs: Any) -> Any:
        written.append((key, json.loads(json.dumps(doc))))
        return real_write(key, doc, **kwargs)

    monkeypatch.setattr(store, "write_json", recording)
    fan = jobs.start_run(jobs.plan_run(runtime), trigger="http", runtime=runtime)
    while queue.sent:
        body = queue.sent.pop(0)
        jobs.handle_job_message(body, load_runtime=lambda: runtime)
    shown = [
        jobs.handle_status_request(None, load_runtime=lambda: runtime).body,
        jobs.handle_status_request(fan.run_id, load_runtime=lambda: runtime).body,
    ]
    checked_words = 0
    for key, doc in written + [("status", body) for body in shown]:
        for where, value in _statuses(doc):
            if where.startswith("/run/"):
                where = where[len("/run") :]
            assert value in _allowed(where), (key, where, value)
            checked_words += 1
    run_doc = shown[1]["run"]
    assert run_doc["sites"][world.site_url]["rollup"]["status"] == "done"
    assert checked_words > 10
    record("status-words", tries=checked_words, failures=0, rows_lost=0)
