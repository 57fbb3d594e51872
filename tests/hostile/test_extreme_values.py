"""Issue 11 item 2: no user value can stop a night. One item with a 20-digit number in År used
to stop every rollup with a bare pandas error. Extreme and mistyped values in every column type
now go through sync and rollup: each unrepresentable value becomes a data-quality record (list,
item, column, value), the row is kept, the cell is left empty, and the workbooks are built."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sp_sync.demo.runner import DEMO_SITE
from sp_sync.schema import load_schemas
from sp_sync.sync.normalize import normalize_page
from tests.reliability.helpers import World, make_world
from tests.reliability.scenarios import record

SCHEMAS = load_schemas()

#: Raw values as a list could hold them after a column's type changed, or at the edges of what
#: JSON, pandas and Excel hold.
EXTREME_RAW: list[Any] = [
    10**20, -(10**30), 2**63, 1e308, -1e308, math.inf, -math.inf, math.nan,
    "Infinity", "NaN", "1e400", "tjugo", "", "  ", "=1+1", "\x00\x1f", "ä" * 5000,
    True, [1, 2], {"a": 1},
]  # fmt: skip
#: Dates set through the emulator (as SharePoint stores them), from its smallest to its largest.
EXTREME_DATES = ["1900-01-01T00:00:00Z", "1899-12-31T23:00:00Z", "8900-12-31T00:00:00Z"]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path, knowledge_per_county=2, feedback_per_county=2)


def _inject(world: World) -> list[tuple[str, int, str, Any]]:
    """Every extreme value into every column of every list (one item per value and column)."""
    backend = world.emu.backend
    site = backend.get_site(DEMO_SITE)
    placed: list[tuple[str, int, str, Any]] = []
    with backend.lock:
        for title, schema in SCHEMAS.lists.items():
            lst = backend.get_list(site, title=title)
            ids = sorted(lst.items)
            for col in schema.columns:
                if col.name in ("Title",) or col.type in ("person", "lookup", "multi_lookup"):
                    continue  # ids pointing elsewhere are covered by the lookup tests
                values = EXTREME_DATES if col.type in ("date", "datetime") else EXTREME_RAW
                for k, value in enumerate(values):
                    item = backend.get_item(lst, ids[k % len(ids)])
                    if col.type in ("date", "datetime"):
                        try:
                            backend.update_item(site, lst, item, {col.name: value}, if_match=None)
                        except Exception:  # the emulator refuses it as SharePoint would
                            continue
                    else:
                        item.values[col.name] = value
                        item.cache = None
                    placed.append((title, int(item.id), col.name, value))
    return placed


def test_extreme_values_in_every_column_never_stop_a_night(world: World) -> None:
    placed = _inject(world)
    assert len(placed) > 100
    summary = world.run()
    assert summary.status == "ok", summary.errors
    assert summary.workbooks
    world.assert_workbooks_open()
    store = world.store()
    for title in SCHEMAS.lists:
        state = store.read_list_state(world.site_url, title)
        assert state is not None
        # Every row is kept.
        assert sorted(state.rows["ID"]) == sorted(world.list_rows(title)), title
    quality = {
        (r["list_title"], int(r["item_id"]), r["column"])
        for title in SCHEMAS.lists
        for r in store.read_list_state(world.site_url, title).quality.to_dict("records")
    }
    for title, item_id, column, value in placed:
        col = (
            SCHEMAS.lists[title].column(column) if hasattr(SCHEMAS.lists[title], "column") else None
        )
        ctype = (
            col.type
            if col is not None
            else next(c.type for c in SCHEMAS.lists[title].columns if c.name == column)
        )
        if ctype == "number" and not _is_plain_number(value):
            # Not a number the reports can hold: recorded, the cell empty.
            assert (title, item_id, column) in quality, (title, item_id, column, value)
            if isinstance(value, bool):
                continue  # recorded as a mistyped value; yes/no reads as 1/0
            state = store.read_list_state(world.site_url, title)
            cell = state.rows.loc[state.rows["ID"] == item_id, column].iloc[0]
            assert cell is None or cell != cell, (column, value, cell)
    lost = sum(
        len(world.list_rows(t)) - len(store.read_list_state(world.site_url, t).rows)
        for t in SCHEMAS.lists
    )
    record("extreme-values", tries=len(placed), failures=0, rows_lost=lost)


def _is_plain_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) < 2**63
    )


NUMBER_SCHEMA = SCHEMAS.lists["Dialoger"]


@given(
    st.one_of(
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=30),
        st.booleans(),
        st.none(),
    )
)
@settings(max_examples=400, deadline=None)
def test_any_number_value_is_kept_or_recorded(value: Any) -> None:
    """Property over the number column: the row is always kept; a value that is not a plain
    representable number is a record naming list, item, column and value, and the cell is empty
    or a finite float below 2**63."""
    item = {"ID": 7, "Title": "x", "Year": value, "OData__UIVersionString": "1.0"}
    import zoneinfo

    frame, issues = normalize_page(
        [item],
        NUMBER_SCHEMA,
        tz=zoneinfo.ZoneInfo("Europe/Stockholm"),
        site_url="https://x/sites/a",
        list_url="Dialoger",
    )
    assert list(frame["ID"]) == [7]
    cell = frame["Year"].iloc[0]
    assert cell != cell or (math.isfinite(cell) and abs(cell) < 2**63)
    if value is not None and (cell != cell or isinstance(value, bool)):
        [issue] = [i for i in issues if i.column == "Year"]
        assert (issue.list_title, issue.item_id) == ("Dialoger", 7)
        assert issue.value is not None
