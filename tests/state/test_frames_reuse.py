"""An incremental commit converts only the rows that changed (`frames.Reuse`, issue 14 goal 4),
and the file it writes is byte for byte the file a full conversion writes — also when the change
moves a column to another stored kind (a JSON column losing its last cell of a second kind, a
text column getting a number, a column that was all empty getting values)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sp_sync.state import frames
from sp_sync.state.frames import Reuse, frame_from_parquet, frame_to_parquet
from sp_sync.sync.engine import _merge

N = 400


def snapshot(n: int = N) -> pd.DataFrame:
    ids = np.arange(1, n + 1, dtype=np.int64)
    day = dt.date(2026, 1, 1)
    return pd.DataFrame(
        {
            "ID": ids,
            "Title": pd.Series([f"Post {i}" for i in ids], dtype=object),
            "County": pd.Series(
                ["Skåne län" if i % 3 else "Uppsala län" for i in ids], dtype=object
            ),
            "Due": pd.Series([day + dt.timedelta(days=int(i % 40)) for i in ids], dtype=object),
            "Done": pd.Series([bool(i % 2) for i in ids], dtype=object),
            "Year": pd.Series([2020 + int(i % 5) for i in ids], dtype=object),
            "Score": pd.Series([float(i) / 4 for i in ids], dtype=object),
            # Empty and filled lists: two kinds, so stored as tagged JSON.
            "Tags": pd.Series([["a", "b"] if i % 4 else [] for i in ids], dtype=object),
            # One kind (list of text): stored as an Arrow list.
            "Names": pd.Series([[f"n{i}", "x"] for i in ids], dtype=object),
            "LinkIds": pd.Series([[int(i), int(i) + 1] for i in ids], dtype=object),
            "Note": pd.Series([None] * n, dtype=object),
            "Mixed": pd.Series([i if i % 2 else f"t{i}" for i in ids], dtype=object),
            "Amount": pd.Series(ids * 1.5, dtype="float64"),
            "Count": pd.array(ids, dtype="Int64"),
            "Modified": pd.to_datetime(ids, unit="h", utc=True),
        }
    )


def delta(ids: list[int], **cells: Callable[[int], Any]) -> pd.DataFrame:
    """Fresh rows for `ids`: the snapshot's own values, with `cells` overriding per column."""
    base = snapshot(max(ids) + 1)
    rows = base[base["ID"].isin(ids)].reset_index(drop=True)
    for name, fn in cells.items():
        rows[name] = pd.Series([fn(i) for i in rows["ID"]], dtype=object)
    return rows


def night(
    fresh: pd.DataFrame, deleted: set[int], *, n: int = N, changed: dict[str, Any] | None = None
) -> tuple[bytes, pd.DataFrame, Reuse]:
    """The previous file, the merged new snapshot and what the commit would know."""
    previous = frame_to_parquet(snapshot(n))
    old = frame_from_parquet(previous)  # as the store hands it to the sync
    touched = set(deleted) | {int(i) for i in fresh["ID"]}
    merged = _merge(old, touched, fresh)
    masks: dict[str, np.ndarray] = {}
    for name, (ids, fn) in (changed or {}).items():
        mask = merged["ID"].isin(ids).to_numpy()
        merged.loc[mask, name] = pd.Series(
            [fn(i) for i in merged.loc[mask, "ID"]], index=merged.index[mask], dtype=object
        )
        masks[name] = mask
    return previous, merged, Reuse(previous, frozenset(touched), masks)


CASES: dict[str, Callable[[], tuple[pd.DataFrame, set[int]]]] = {
    "edits": lambda: (
        delta([5, 17, 200], Title=lambda i: f"Ändrad {i}", Tags=lambda i: ["c"]),
        set(),
    ),
    "adds and deletes": lambda: (delta([N + 1, N + 2, 3]), {10, 11, 399}),
    "only deletes": lambda: (snapshot(0), {1, 2, 3}),
    "json loses its second kind": lambda: (
        delta(list(range(4, N + 1, 4)), Tags=lambda i: ["a", "b"]),
        set(),
    ),
    "text gets a number": lambda: (delta([8], Title=lambda i: 8), set()),
    "empty column gets values": lambda: (delta([9, 10], Note=lambda i: f"not {i}"), set()),
    "list gets an empty list": lambda: (delta([12], Names=lambda i: []), set()),
    "ints get a float": lambda: (delta([13], LinkIds=lambda i: [1.5]), set()),
    "mixed stays mixed": lambda: (delta([14, 15], Mixed=lambda i: f"ny {i}"), set()),
    "cells become empty": lambda: (
        delta([20, 21], Title=lambda i: None, Due=lambda i: None, Tags=lambda i: None),
        set(),
    ),
    "dates get a timestamp": lambda: (
        delta([22], Due=lambda i: pd.Timestamp("2026-01-01", tz="UTC")),
        set(),
    ),
}


@pytest.fixture(params=[frames.ROW_GROUP_ROWS, 64], ids=["one row group", "row groups of 64"])
def row_groups(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Row groups of 64 rows: the unchanged cells of a row group come from one or two of the
    previous file's row groups, read one range at a time."""
    monkeypatch.setattr(frames, "ROW_GROUP_ROWS", request.param)
    return int(request.param)


@pytest.mark.parametrize("case", list(CASES))
def test_reused_file_is_the_full_conversion(case: str, row_groups: int) -> None:
    fresh, deleted = CASES[case]()
    _previous, merged, reuse = night(fresh, deleted)
    assert frame_to_parquet(merged, reuse=reuse) == frame_to_parquet(merged)
    pd.testing.assert_frame_equal(frame_from_parquet(frame_to_parquet(merged, reuse=reuse)), merged)


def test_titles_changed_on_untouched_rows_are_converted_again(row_groups: int) -> None:
    fresh = delta([30], Title=lambda i: "Ändrad")
    changed = {"Names": ([40, 41, 42], lambda i: ["omdöpt"]), "Tags": ([43], lambda i: ["z"])}
    _previous, merged, reuse = night(fresh, set(), changed=changed)
    assert frame_to_parquet(merged, reuse=reuse) == frame_to_parquet(merged)
    # Without the masks the file would keep the old titles: the masks are what makes it right.
    stale = Reuse(reuse.previous, reuse.fresh_ids)
    assert frame_to_parquet(merged, reuse=stale) != frame_to_parquet(merged)


def test_only_the_fresh_cells_are_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of it: a few changed rows of a JSON column cost a few encodings, and every
    object column is taken from the previous file."""
    fresh = delta([5, 17], Tags=lambda i: ["c"])
    _previous, merged, reuse = night(fresh, {99})
    plans = frames._reused_plans(merged, reuse)
    objects = [c for c in merged.columns if merged[c].dtype == object and c != "Note"]
    assert sorted(plans) == sorted(objects)
    calls: list[Any] = []
    real = frames._json_dumps

    def counting(value: Any) -> str:
        calls.append(value)
        return real(value)

    monkeypatch.setattr(frames, "_json_dumps", counting)
    frame_to_parquet(merged, reuse=reuse)
    assert len(calls) == 4  # the two fresh rows' cells of the two JSON columns (Tags, Mixed)
    calls.clear()
    frame_to_parquet(merged)
    assert len(calls) == 2 * (N - 1)  # every cell of both (one row deleted)


def test_a_previous_file_that_does_not_match_is_not_used() -> None:
    fresh = delta([5], Title=lambda i: "Ändrad")
    _previous, merged, reuse = night(fresh, set())
    # Rows the commit did not name as fresh differ from the previous file: no reuse at all.
    other = frame_to_parquet(snapshot().assign(ID=lambda f: f["ID"] + 1000))
    for bad in (
        Reuse(other, reuse.fresh_ids),
        Reuse(b"not parquet", reuse.fresh_ids),
        Reuse(frame_to_parquet(snapshot().drop(columns=["Tags"])), reuse.fresh_ids),
    ):
        assert frames._reused_plans(merged, bad) == {}
        assert frame_to_parquet(merged, reuse=bad) == frame_to_parquet(merged)
