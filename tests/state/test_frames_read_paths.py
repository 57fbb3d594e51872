"""The faster read paths of a snapshot (issue 14 goal 4) give exactly the frame the simple,
cell-by-cell conversion gives: JSON columns parsed once per distinct cell, mostly distinct text
read plain, dictionary text and dates read whole, frames built from their blocks, the cyclic
collector paused while cells are built. The stored format is unchanged (format 1)."""

from __future__ import annotations

import datetime as dt
import gc
import io
import json
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sp_sync.errors import StateError
from sp_sync.state import frames
from sp_sync.state.base import Changes, Manifest
from sp_sync.state.delta import apply_delta, delta_to_parquet, plan_delta, read_rows, stored_rows
from sp_sync.state.frames import frame_from_parquet, frame_to_parquet
from tests.state.helpers import quality, snapshot


def _reference(data: bytes) -> pd.DataFrame:
    """The file's frame as the plain conversion builds it: every column read as stored (no
    dictionary), every cell converted on its own (`_column_from_arrow`: `to_pylist`, one
    `json.loads` per JSON cell), columns inserted one by one."""
    parquet = pq.ParquetFile(io.BytesIO(data))
    meta = json.loads(parquet.schema_arrow.metadata[b"sp_sync.frame"])
    table = parquet.read()
    frame = pd.DataFrame(index=pd.RangeIndex(meta["num_rows"]))
    for col in meta["columns"]:
        frame[col["name"]] = frames._column_from_arrow(
            table.column(col["name"]), col["kind"], col["dtype"]
        )
    if meta["index"]:
        frame = frame.set_index(meta["index"])
    return frame


def _assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    pd.testing.assert_index_equal(got.columns, expected.columns, exact=True)
    pd.testing.assert_index_equal(got.index, expected.index, exact=True)
    assert [str(t) for t in got.dtypes] == [str(t) for t in expected.dtypes]
    for name in got.columns:
        if got[name].dtype == object:
            cells, want = got[name].tolist(), expected[name].tolist()
            assert [type(v) for v in cells] == [type(v) for v in want], name
            assert repr(cells) == repr(want), name
            mutable = [id(v) for v in cells if isinstance(v, list | dict)]
            assert len(mutable) == len(set(mutable)), f"{name}: a list or dict shared by rows"


def _every_kind(n: int) -> pd.DataFrame:
    frame = snapshot(5, n=n)
    frame["url"] = pd.Series(
        [f"https://x/DispForm.aspx?ID={i}" * 3 for i in range(n)], dtype=object
    )
    frame["lookups"] = pd.Series(  # [] beside [int]: stored as JSON, a few distinct cells
        [[i % 7, 3] if i % 3 else [] for i in range(n)], dtype=object
    )
    frame["titles"] = pd.Series(
        [["Å [x]", "b"] if i % 4 == 0 else ([] if i % 4 == 1 else ["c"]) for i in range(n)],
        dtype=object,
    )
    frame["mixed"] = pd.Series(
        [
            [
                None,
                [[1, 2], [3]],
                {"k": [dt.date(2024, 1, 1)]},
                dt.date(2024, 2, 29),
                "text",
                7,
                float("nan"),
                pd.Timestamp("2024-03-01T10:00:00+00:00"),
                [],
                ["a", None],
            ][i % 10]
            for i in range(n)
        ],
        dtype=object,
    )
    frame["day"] = pd.Series([dt.date(2026, 1, 1 + i % 5) for i in range(n)], dtype=object)
    return frame


@pytest.mark.parametrize("group_rows", [7, 65_536])
def test_every_column_kind_reads_as_the_cell_by_cell_conversion(
    monkeypatch: pytest.MonkeyPatch, group_rows: int
) -> None:
    monkeypatch.setattr(frames, "ROW_GROUP_ROWS", group_rows)
    frame = _every_kind(60)
    data = frame_to_parquet(frame)
    kinds = {
        c["kind"]
        for c in json.loads(pq.read_schema(io.BytesIO(data)).metadata[b"sp_sync.frame"])["columns"]
    }
    assert kinds == {"native", "object", "json"}
    back = frame_from_parquet(data)
    _assert_same(back, _reference(data))
    _assert_same(back, frame)
    for name in ("quality", "indexed"):
        other = quality(3) if name == "quality" else snapshot(2, n=9).set_index("ID")
        data = frame_to_parquet(other)
        _assert_same(frame_from_parquet(data), _reference(data))


def test_json_cells_are_parsed_once_per_distinct_text_and_never_shared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[int] = []
    real = frames._json_column

    def counting(texts: list[str | None]) -> list[Any]:
        parsed.append(len(texts))
        return real(texts)

    monkeypatch.setattr(frames, "_json_column", counting)
    n = 3_000
    frame = _every_kind(n)[["ID", "lookups", "mixed"]]
    back = frame_from_parquet(frame_to_parquet(frame))
    _assert_same(back, frame)
    # `lookups` has 8 distinct cells, `mixed` 9 distinct texts (None is no text); the 5 kinds
    # of `mixed` cell whose text has a brace or a second bracket (the nested list, the dict and
    # the tagged NaN, date and timestamp) are parsed again for each of their rows (5 in 10).
    assert sorted(parsed) == sorted([8, 9] + [1] * (5 * n // 10))
    # Each row's list is its own: changing one changes no other.
    back["lookups"][1].append(99)
    assert back["lookups"][4] == [4, 3] and back["lookups"][1] == [1, 3, 99]
    back["mixed"][1][0].append(0)
    assert back["mixed"][11] == [[1, 2], [3]]


def test_mostly_distinct_text_is_read_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames, "ROW_GROUP_ROWS", 50)
    frame = _every_kind(200)
    data = frame_to_parquet(frame)
    metadata = pq.ParquetFile(io.BytesIO(data)).metadata
    strings = ["Title", "Lan", "url", "lookups", "titles", "mixed"]
    assert frames._mostly_distinct(metadata, strings) == {"url", "Title"}
    _assert_same(frame_from_parquet(data), _reference(data))


def test_reading_pauses_the_collector_and_restores_it(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    real = frames._object_values

    def spying(*args: Any) -> np.ndarray:
        seen.append(gc.isenabled())
        return real(*args)

    monkeypatch.setattr(frames, "_object_values", spying)
    data = frame_to_parquet(_every_kind(30))
    assert gc.isenabled()
    frame_from_parquet(data)
    assert seen and not any(seen) and gc.isenabled()
    gc.disable()
    try:
        frame_from_parquet(data)
        assert not gc.isenabled()  # a caller's choice is left as it was
    finally:
        gc.enable()
    with pytest.raises(StateError):
        frame_from_parquet(data[:100])
    assert gc.isenabled()


def test_a_delta_read_is_the_frame_the_full_write_stores() -> None:
    """`read_rows` takes the base file's columns straight into the state; the result is
    what `apply_delta` over the base's frame gives and what a full write reads back as."""
    base = _every_kind(6_000)
    base_file = frame_to_parquet(base)
    new = base.copy()
    new.loc[[5, 700, 4_000], "Title"] = ["ändrad 1", "ändrad 2", "ändrad 3"]
    new.loc[[5, 700], "lookups"] = pd.Series([[1, 2, 3], []], index=[5, 700], dtype=object)
    new = new.drop(index=[10, 11]).reset_index(drop=True)
    since = stored_rows("g1", "sha", base)
    assert since is not None
    changes = Changes(since=since, fresh_ids=frozenset({6, 701, 4_001, 11, 12}))
    plan = plan_delta(new, changes)
    assert plan is not None
    delta_file = bytes(delta_to_parquet(plan))
    manifest = cast(Manifest, SimpleNamespace(base_directory="g1", rows_sha256="sha"))
    rows, stored = read_rows(manifest, base_file, delta_file)
    _assert_same(rows, frame_from_parquet(frame_to_parquet(new)))
    via_frame, dropped, delta_ids, dtypes = apply_delta(frame_from_parquet(base_file), delta_file)
    _assert_same(rows, via_frame)
    assert stored is not None
    assert np.array_equal(stored.dropped, dropped) and np.array_equal(stored.delta_ids, delta_ids)
    assert stored.dtypes == dtypes and np.array_equal(stored.base_ids, base["ID"].to_numpy())


@pytest.mark.parametrize("group_rows", [7, 65_536])
def test_selected_rows_read_as_the_whole_frame_taken(
    monkeypatch: pytest.MonkeyPatch, group_rows: int
) -> None:
    """`columns_from_parquet(select=…)` (a delta read's base): the rows named, in that order,
    each column as `take` of the whole read; lists still one per row."""
    monkeypatch.setattr(frames, "ROW_GROUP_ROWS", group_rows)
    frame = _every_kind(40)
    data = frame_to_parquet(frame)
    seen: list[list[str]] = []

    def select(natives: Any) -> np.ndarray:
        seen.append(sorted(natives))
        assert np.array_equal(natives["ID"], frame["ID"].to_numpy())
        return np.array(wanted)

    wanted = [39, 3, 1, 0, 20, 2]
    stored = frames.columns_from_parquet(data, select=select)
    assert stored.selected and stored.num_rows == 6
    natives = ["AnsvarigId", "Antal", "Created", "Created_local", "ID", "Lan", "Title", "_version"]
    assert seen == [natives]  # the `str`-typed text is native
    expected = frame_from_parquet(data).take(wanted).reset_index(drop=True)
    _assert_same(frames.stored_frame(stored), expected)
    # A row named twice (a delta read names base row 0 where each delta row goes, then puts
    # the delta's cells there) holds equal values.
    wanted = [5, 0, 5, 5]
    got = frames.stored_frame(frames.columns_from_parquet(data, select=select))
    expected = frame_from_parquet(data).take(wanted).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    # An indexed file is read whole: `select` is not asked.
    indexed = frames.columns_from_parquet(frame_to_parquet(frame.set_index("ID")), select=select)
    assert not indexed.selected and indexed.num_rows == 40 and len(seen) == 2
