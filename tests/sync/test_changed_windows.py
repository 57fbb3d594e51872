"""More than 5,000 changed items on a list above the list view threshold (issue 14 goal 6, the
1 % night on 1,000,000 items): one `Modified ge a and Modified lt b` GET per window of at most
5,000 changes, cut from the change log's times — not a whole-list read or `$batch`es of ids.

SharePoint refuses a filter on an indexed column when it matches more than 5,000 items on a list
above the threshold, and allows it when it matches fewer (`/work/shared/reference/
sharepoint-rest.md` §3.3; https://github.com/SharePoint/sp-dev-docs/issues/6960): the emulator
enforces both, which the first test checks through the real client.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from sp_emulator import SharePointEmulator
from sp_sync.errors import ThresholdError
from sp_sync.schema import load_schemas
from sp_sync.state.local import LocalStateStore
from sp_sync.sync.engine import _modified_windows, sync_list
from sp_sync.sync.normalize import plan_select
from tests.sync.fakes import FakeSharePoint
from tests.sync.helpers import backend_list, client_for, create_lists, dialog_rows, expected_titles

SCHEMAS = load_schemas()
DIALOGER = SCHEMAS["Dialoger"]
SITE = "emulator_sites_x"
N = 12_000
K = 6_000  # changed: more than one window, and more than a `Modified ≥` filter may match


@pytest.fixture
def emu() -> Iterator[SharePointEmulator]:
    with SharePointEmulator(sites=["x"]) as e:
        create_lists(e, SCHEMAS)
        yield e


def _edit(emu: Any, ids: list[int], per_second: int) -> datetime:
    """Edit `ids`, `per_second` of them per emulator second; returns the time before the first."""
    site, lst = backend_list(emu, "Dialoger")
    # A second past everything written before: the list's other items were added (and its
    # first night read) within the same second often enough that `started`, cut to the whole
    # second, was not after their Modified, and the window's check below matched them too.
    emu.clock.advance(1)
    started = datetime.fromtimestamp(emu.backend.now(), UTC).replace(microsecond=0)
    for n, i in enumerate(ids):
        if n % per_second == 0:
            emu.clock.advance(1)
        emu.backend.update_item(site, lst, lst.items[i], {"Title": f"ändrad {i}"}, if_match=None)
    return started


@pytest.mark.slow
def test_windows_of_changes_cost_one_get_each(emu: Any, tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path / "state")
    emu.backend.bulk_add_items("x", "Dialoger", dialog_rows(N))
    token = emu.issue_token(lifetime=24 * 3600)
    setup = client_for(emu, token)
    web, users = setup.get_web(), setup.get_site_users()

    def night() -> tuple[Any, int]:
        emu.reset_stats()
        result = sync_list(
            client_for(emu, token),
            store,
            SITE,
            DIALOGER,
            web=web,
            users=users,
            now=datetime.now(UTC),
            schema_set=SCHEMAS,
        )
        return result, emu.stats()["requests"]

    assert night()[0].mode == "full"
    ids = sorted(expected_titles(emu, "Dialoger"))
    changed = ids[::2][:K]
    started = _edit(emu, changed, per_second=250)

    # What the emulator allows, as SharePoint does: the whole range is refused, a window of
    # at most 5,000 matches is not.
    plan = plan_select(DIALOGER)
    client = client_for(emu, token)
    kw: dict[str, Any] = {"select": list(plan.select), "expand": list(plan.expand)}
    with pytest.raises(ThresholdError):
        list(client.iter_items_modified_since("Dialoger", started, **kw))
    window = started + timedelta(seconds=1 + 5000 // 250)
    pages = list(client.iter_items_modified_between("Dialoger", started, window, **kw))
    # The emulator's clock also moves with real time while editing: count what it holds.
    _site, lst = backend_list(emu, "Dialoger")
    low, high = started.timestamp(), window.timestamp()
    inside = sum(1 for it in lst.items.values() if low <= it.modified < high)
    assert 2500 < inside <= 5000
    assert sum(len(p.items) for p in pages) == inside and len(pages) == 1

    result, requests = night()
    assert (result.mode, result.updated, result.rows) == ("incremental", K, N)
    # contextinfo + the change log (1,000 records per request, and one more that finds its
    # end) + one GET per 5,000 changes; no `$batch`, no whole-list read.
    routes = emu.stats()["routes"]
    assert routes == {"contextinfo": 1, "changes.list": K // 1000 + 1, "items.list": 2}, routes
    assert requests == 1 + K // 1000 + 1 + math.ceil(K / 5000)
    assert result.requests == requests
    st = store.read_list_state(SITE, "Dialoger")
    assert st is not None
    want = expected_titles(emu, "Dialoger")
    assert dict(zip(st.rows["ID"], st.rows["Title"], strict=True)) == want


def _fake_list(n: int) -> FakeSharePoint:
    sp = FakeSharePoint()
    sp.add_list("Dialoger")
    for i in range(n):
        sp.add("Dialoger", Title=f"Dialog {i}", County="Skåne län", Phase="Förberedelse")
    return sp


def _fresh(sp: FakeSharePoint) -> FakeSharePoint:
    sp._digest = False
    sp._stats = type(sp._stats)()
    return sp


def _run(sp: FakeSharePoint, store: LocalStateStore) -> Any:
    return sync_list(
        sp,
        store,
        SITE,
        DIALOGER,
        web=sp.get_web,
        users=sp.get_site_users,
        now=datetime(2026, 1, 10, tzinfo=UTC),
        schema_set=SCHEMAS,
    )


@pytest.mark.slow
def test_restored_items_are_fetched_by_id_after_the_windows(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path / "state")
    sp = _fake_list(N)
    _run(sp, store)
    ids = sorted(sp.lists["Dialoger"].items)
    for i in ids[:K]:
        sp.update("Dialoger", i, Title=f"ändrad {i}")
    # A restore keeps the item's old Modified: no window returns it.
    sp.delete("Dialoger", ids[-1])
    sp.restore("Dialoger", ids[-1])
    result = _run(_fresh(sp), store)
    assert (result.mode, result.updated, result.rows) == ("incremental", K, N)
    st = store.read_list_state(SITE, "Dialoger")
    assert st is not None
    assert list(st.rows["ID"]) == ids
    assert list(st.rows["Title"][:K]) == [f"ändrad {i}" for i in ids[:K]]
    # get_changes (6 batches) + 2 windows + the restored item by id.
    assert result.requests <= 1 + math.ceil((K + 2) / 1000) + 2 + 1, result.requests


def test_windows_hold_at_most_the_limit_and_cut_between_seconds() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    changes = [
        type("C", (), {"item_id": i, "kind": "update", "time": t0 + timedelta(seconds=i // 3)})()
        for i in range(1, 31)
    ]
    wanted = set(range(1, 31))
    windows = _modified_windows(changes, wanted, 7)
    assert windows is not None
    held = [sum(1 for c in changes if a <= c.time < b) for a, b in windows]
    # Seconds hold 2, 3, 3 … 3, 1 changes: a window never splits one and never holds above 7.
    assert held == [5, 6, 6, 6, 7]
    assert windows[0][0] == t0 and windows[-1][1] == t0 + timedelta(seconds=11)
    assert all(a < b == c for (a, b), (c, _d) in pairwise(windows))
    # A second holding more than the limit cannot be windowed; a change without time either.
    assert _modified_windows(changes, wanted, 2) is None
    untimed = [type("C", (), {"item_id": 1, "kind": "update", "time": None})()]
    assert _modified_windows(untimed, {1}, 7) is None


@pytest.mark.slow
def test_a_refused_window_is_fetched_by_id(tmp_path: Path) -> None:
    """SharePoint may still refuse a window (its Modified and the log's times can differ at a
    second's edge): that window's items come by id, the others by their window."""
    store = LocalStateStore(tmp_path / "state")
    sp = _fake_list(N)
    _run(sp, store)
    ids = sorted(sp.lists["Dialoger"].items)
    for i in ids[:K]:
        sp.update("Dialoger", i, Title=f"ändrad {i}")
    real = sp.iter_items_modified_between
    windows: list[tuple[datetime, datetime]] = []
    by_id: list[int] = []
    real_by_id = sp.get_items_by_ids

    def refusing(title: str, since: datetime, until: datetime, **kw: Any) -> Any:
        windows.append((since, until))
        if len(windows) == 1:
            raise ThresholdError("The attempted operation exceeds the list view threshold.")
        return real(title, since, until, **kw)

    def counting(title: str, wanted: Any, **kw: Any) -> Any:
        by_id.extend(wanted)
        return real_by_id(title, wanted, **kw)

    sp.iter_items_modified_between = refusing  # type: ignore[method-assign]
    sp.get_items_by_ids = counting  # type: ignore[method-assign,assignment]
    result = _run(_fresh(sp), store)
    assert len(windows) == 2 and len(by_id) == 5000  # the first window's 5,000 items
    assert (result.mode, result.updated, result.rows) == ("incremental", K, N)
    st = store.read_list_state(SITE, "Dialoger")
    assert st is not None
    assert list(st.rows["Title"][:K]) == [f"ändrad {i}" for i in ids[:K]]
