"""Sync engine logic against the in-memory FakeSharePoint (fast; no HTTP).

The same scenarios run against the emulator through the real client in test_sync_emulator.py.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from sp_sync.errors import RunLockedError
from sp_sync.run.summary import ListSyncResult
from sp_sync.schema import load_schemas
from sp_sync.state import ListState
from sp_sync.state.local import LocalStateStore
from sp_sync.sync.engine import sync_list, sync_site
from tests.sync.fakes import FakeSharePoint

SCHEMAS = load_schemas()
DIALOGER = SCHEMAS["Dialoger"]
FEEDBACK = SCHEMAS["Dialogåterkoppling"]
NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
SITE = "127.0.0.1_sites_x"


def fresh(sp: FakeSharePoint) -> FakeSharePoint:
    """A new client for the next run: its digest (contextinfo) is fetched again."""
    sp._digest = False
    sp._stats = type(sp._stats)()
    return sp


def seed(sp: FakeSharePoint, n: int, title: str = "Dialoger") -> None:
    sp.add_list(title) if title not in sp.lists else None
    for i in range(n):
        sp.add(
            title,
            Title=f"Dialog {i}",
            County="Skåne län",
            Year=2026,
            Phase="Dialog",
            PlannedDate="2026-03-28T23:00:00Z",
            HeldDate=None,
            CountyLeadId=7,
            CountyLead={"Title": "Anna Andersson", "EMail": "anna@example.se"},
        )


def run(sp: FakeSharePoint, store: LocalStateStore, **kw: Any) -> ListSyncResult:
    kw.setdefault("now", NOW)
    return sync_list(
        sp,
        store,
        SITE,
        kw.pop("schema", DIALOGER),
        web=sp.get_web,
        users=sp.get_site_users,
        schema_set=SCHEMAS,
        **kw,
    )


def snapshot(store: LocalStateStore, title: str = "Dialoger") -> ListState:
    st = store.read_list_state(SITE, title)
    assert st is not None
    return st


def assert_matches(sp: FakeSharePoint, store: LocalStateStore, title: str = "Dialoger") -> None:
    st = snapshot(store, title)
    items = sp.lists[title].items
    assert list(st.rows["ID"]) == sorted(items)
    for rec in st.rows.to_dict("records"):
        assert rec["Title"] == items[rec["ID"]]["Title"]
        assert rec["_version"] == int(items[rec["ID"]]["OData__UIVersionString"].split(".")[0])


@pytest.fixture
def store(tmp_path: Path) -> LocalStateStore:
    return LocalStateStore(tmp_path / "state")


@pytest.mark.parametrize("n", [0, 1, pytest.param(12_000, marks=pytest.mark.slow)])
def test_full_then_incremental(store: LocalStateStore, n: int) -> None:
    sp = FakeSharePoint()
    seed(sp, n)
    # The web is read once per site by sync_site; a single list gets it lazily (+1 request).
    result = run(sp, store)
    assert result.mode == "full" and result.rows == n and result.added == n
    assert result.item_count_mismatch is None
    assert result.requests <= -(-n // 5000) + 3 + 1  # +1: the lazily read web
    assert_matches(sp, store)
    st = snapshot(store)
    if n:
        assert st.rows.iloc[0]["PlannedDate"] == date(2026, 3, 29)
        assert st.rows.iloc[0]["CountyLead"] == "Anna Andersson"

    # Nothing changed: contextinfo + getchanges, and the state is not rewritten.
    result = run(fresh(sp), store)
    assert result.mode == "incremental" and result.requests <= 2
    assert (result.added, result.updated, result.deleted, result.unchanged) == (0, 0, 0, n)
    assert snapshot(store).checkpoint.generation == st.checkpoint.generation

    # Adds, updates, deletes.
    new = [
        sp.add("Dialoger", Title=f"ny {k}", County="Uppsala län", Phase="Dialog") for k in range(3)
    ]
    changed = [i for i in sorted(sp.lists["Dialoger"].items) if i not in new][:2]
    for i in changed:
        sp.update("Dialoger", i, Title=f"ändrad {i}")
    deleted = [i for i in sorted(sp.lists["Dialoger"].items) if i not in new][2:4]
    for i in deleted:
        sp.delete("Dialoger", i)
    sp.delete("Dialoger", new[2])  # added and deleted between runs
    result = run(fresh(sp), store)
    k = len(new) + len(changed)
    assert result.mode == "incremental"
    assert (result.added, result.updated, result.deleted) == (2, len(changed), len(deleted))
    assert result.requests <= 3 + -(-k // 5000)
    assert_matches(sp, store)
    assert result.rows == len(sp.lists["Dialoger"].items)


def test_restore_from_recycle_bin(store: LocalStateStore) -> None:
    sp = FakeSharePoint()
    seed(sp, 5)
    run(sp, store)
    sp.delete("Dialoger", 3)
    assert run(fresh(sp), store).deleted == 1
    sp.restore("Dialoger", 3)
    result = run(fresh(sp), store)
    assert result.added == 1
    assert_matches(sp, store)


def test_expired_token_rereads_and_reconciles(store: LocalStateStore) -> None:
    sp = FakeSharePoint()
    seed(sp, 10)
    run(sp, store)
    sp.delete("Dialoger", 2)
    sp.delete("Dialoger", 5)
    sp.update("Dialoger", 7, Title="x")
    sp.add("Dialoger", Title="ny")
    sp.expire_change_log()
    result = run(fresh(sp), store)
    assert result.mode == "reread"
    assert (result.added, result.updated, result.deleted) == (1, 1, 2)
    assert any("change token expired" in n for n in result.notes)
    assert any("ändringstoken" in n for n in result.notes_sv)
    assert "change token expired; full re-read" in result.format_text("en")
    assert_matches(sp, store)
    # And afterwards incremental again from the new token.
    assert run(fresh(sp), store).mode == "incremental"


def test_deadline_stops_half_way_and_next_run_finishes(store: LocalStateStore) -> None:
    sp = FakeSharePoint()
    seed(sp, 30)
    run(sp, store, page_size=10)
    before = snapshot(store)
    for i in range(20):
        sp.add("Dialoger", Title=f"extra {i}")
    # A schema change forces a full read; an already-passed deadline stops it after one page.
    result = run(fresh(sp), store, full=True, deadline=time.monotonic() - 1, page_size=10)
    assert result.continues_next_run and result.rows == 10
    assert "continues next run" in result.format_text("en")
    # The complete snapshot is still what readers see.
    mid = snapshot(store)
    assert mid.checkpoint.generation == before.checkpoint.generation
    assert len(mid.rows) == 30
    # Changes while the read is suspended: behind and ahead of the resume point.
    sp.update("Dialoger", 3, Title="ändrad under pausen")
    sp.delete("Dialoger", 4)
    sp.delete("Dialoger", 45)
    result = run(fresh(sp), store, page_size=10)
    assert result.mode == "resumed" and not result.continues_next_run
    # The changes behind the resume point are replayed by the next incremental run.
    result = run(fresh(sp), store, page_size=10)
    assert result.mode == "incremental"
    assert_matches(sp, store)


def test_schema_version_change_forces_full(store: LocalStateStore, tmp_path: Path) -> None:
    sp = FakeSharePoint()
    seed(sp, 3)
    run(sp, store)
    import dataclasses

    changed = dataclasses.replace(SCHEMAS, version="other")
    result = sync_list(
        fresh(sp),
        store,
        SITE,
        DIALOGER,
        web=sp.get_web,
        users=sp.get_site_users,
        schema_set=changed,
        now=NOW,
    )
    assert result.mode == "full" and result.added == 0 and result.deleted == 0
    assert any("schema" in n for n in result.notes)


def test_lookup_titles_follow_the_target(store: LocalStateStore) -> None:
    sp = FakeSharePoint()
    seed(sp, 2)
    sp.add_list("Länskunskap")
    sp.add_list("Dialogåterkoppling")
    sp.add(
        "Dialogåterkoppling",
        Title="fb",
        County="Skåne län",
        DialogueId=1,
        Dialogue={"Title": "Dialog 0"},
        DialogueDate="2026-03-28T23:00:00Z",
        ReceivingDepartment="Företag",
        Status="Ny",
        LinkedKnowledgeId=[],
    )
    out = sync_site(sp, store, SITE, SCHEMAS, now=NOW)
    assert [r.list for r in out.lists] == list(SCHEMAS.lists)
    assert not out.errors
    rows = snapshot(store, "Dialogåterkoppling").rows
    assert rows.iloc[0]["Dialogue"] == "Dialog 0"
    sp.update("Dialoger", 1, Title="Omdöpt dialog")
    out = sync_site(fresh(sp), store, SITE, SCHEMAS, now=NOW)
    rows = snapshot(store, "Dialogåterkoppling").rows
    assert rows.iloc[0]["Dialogue"] == "Omdöpt dialog"


def test_second_concurrent_run_is_refused(store: LocalStateStore) -> None:
    sp = FakeSharePoint()
    seed(sp, 3)
    sp.add_list("Länskunskap")
    sp.add_list("Dialogåterkoppling")
    with store.lock(f"sync-{SITE}"), pytest.raises(RunLockedError):
        sync_site(sp, store, SITE, SCHEMAS, now=NOW)
    assert store.read_list_state(SITE, "Dialoger") is None


def test_malformed_values_become_quality_records(store: LocalStateStore) -> None:
    sp = FakeSharePoint()
    sp.add_list("Dialoger")
    sp.add("Dialoger", Title="ok", County="Skåne län", Phase="Dialog", Year=2026)
    sp.add(
        "Dialoger",
        Title="bad",
        County="Atlantis",
        Phase="Dialog",
        Year="tjugo",
        PlannedDate="inte ett datum",
    )
    result = run(sp, store)
    assert result.rows == 2
    q = snapshot(store).quality
    bad = q[q["item_id"] == 2]
    assert {"Year", "PlannedDate", "County"} <= set(bad["column"])
    assert result.quality_issues == len(q)


@pytest.mark.slow
def test_many_changes_use_the_modified_filter(store: LocalStateStore) -> None:
    sp = FakeSharePoint()
    seed(sp, 12_000)
    run(sp, store)
    for i in range(1, 12_001, 10):  # 1,200 updates
        sp.update("Dialoger", i, Title=f"ändrad {i}")
    sp.delete("Dialoger", 2)
    sp.restore("Dialoger", 2)  # restore keeps its old Modified: fetched by id
    result = run(fresh(sp), store)
    # contextinfo + 2 getchanges (1,202 records) + 1 page by Modified + 1 $batch for the restore
    assert result.requests == 5
    assert result.updated == 1_200 and result.added == 0 and result.deleted == 0
    assert_matches(sp, store)


def test_site_run_past_its_deadline_starts_nothing(store: LocalStateStore) -> None:
    sp = FakeSharePoint()
    seed(sp, 3)
    sp.add_list("Länskunskap")
    sp.add_list("Dialogåterkoppling")
    out = sync_site(sp, store, SITE, SCHEMAS, now=NOW, deadline=time.monotonic() - 1)
    assert [r.continues_next_run for r in out.lists] == [True, True, True]
    assert store.read_list_state(SITE, "Dialoger") is None
    assert sp.stats.requests == 0


@pytest.mark.slow
def test_more_than_5000_changes_on_a_big_list_read_it_by_pages(store: LocalStateStore) -> None:
    sp = FakeSharePoint()
    seed(sp, 12_000)
    run(sp, store)
    for i in range(1, 6_002):
        sp.update("Dialoger", i, Title=f"ändrad {i}")
    result = run(fresh(sp), store)
    # contextinfo + 7 getchanges (6,001 records, 1,000 per call) + 2 windows of Modified of
    # at most 5,000 changes — not 3 ID pages, nor ceil(6001/50) = 121 $batch sub-requests.
    assert result.requests == 1 + 7 + 2
    assert result.updated == 6_001
    assert_matches(sp, store)


def test_a_site_wide_failure_stops_the_other_lists(store: LocalStateStore) -> None:
    """An unreachable site or state store fails every list the same way: the run stops after
    the first instead of spending each list's retry budget, and says which were not started."""
    from sp_sync.errors import TransientError

    sp = FakeSharePoint()
    seed(sp, 2)
    sp.add_list("Länskunskap")
    sp.add_list("Dialogåterkoppling")
    attempted: list[str] = []

    def unreachable(title: str) -> str:
        attempted.append(title)
        raise TransientError("SharePoint site http://127.0.0.1:1/sites/x is unreachable")

    sp.get_current_change_token = unreachable  # type: ignore[method-assign]
    out = sync_site(sp, store, SITE, SCHEMAS, now=NOW)
    first = next(iter(SCHEMAS.lists))
    assert attempted == [first]
    assert out.lists == ()
    assert [e["list"] for e in out.errors] == list(SCHEMAS.lists)
    assert out.errors[0]["error"] == "TransientError"
    assert all(e["error"] == "NotStarted" for e in out.errors[1:])
    assert "unreachable" in str(out.errors[1]["message"])
