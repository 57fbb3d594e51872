"""Base + delta snapshots (issue 14 goal 4, `sp_sync.state.delta`): an incremental commit of a
large list writes only the rows that changed, and a read returns exactly the frame a full write
would have stored."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sp_sync.errors import StateError
from sp_sync.state import LocalStateStore, SyncCheckpoint
from sp_sync.state import delta as delta_module
from sp_sync.state.base import MANIFEST_NAME, Changes, ListState, StateStore
from sp_sync.state.frames import (
    frame_and_extra_from_parquet,
    frame_from_parquet,
    frame_to_parquet,
    frame_to_parquet_view,
)
from sp_sync.sync.engine import _merge
from tests.state.test_frames_reuse import snapshot

SITE = "https://contoso.sharepoint.com/sites/team"
LIST = "Länskunskap"
N = 400


@pytest.fixture(autouse=True)
def small_lists_get_deltas(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real floor (5,000 rows) would make every test list large; the logic is the same.
    monkeypatch.setattr(delta_module, "DELTA_MIN_BASE_ROWS", 100)


@pytest.fixture
def store(tmp_path: Path) -> LocalStateStore:
    return LocalStateStore(tmp_path / "state")


def list_folder(store: LocalStateStore) -> Path:
    (manifest,) = store.root.glob(f"*/*/{MANIFEST_NAME}")
    return manifest.parent


def manifest_doc(store: LocalStateStore) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((list_folder(store) / MANIFEST_NAME).read_bytes())
    return doc


def quality_of(n: int) -> pd.DataFrame:
    return pd.DataFrame({"item_id": pd.array([n], dtype="Int64"), "problem": [f"natt {n}"]})


def commit(
    store: StateStore,
    rows: pd.DataFrame,
    n: int,
    state: ListState | None,
    changes: Changes | None = None,
) -> None:
    store.commit_list_state(
        SITE,
        LIST,
        rows,
        quality_of(n),
        SyncCheckpoint(change_token=f"token-{n}"),
        expected_etag=state.etag if state is not None else None,
        changes=changes,
    )


def read(store: StateStore) -> ListState:
    state = store.read_list_state(SITE, LIST)
    assert state is not None
    return state


def night(
    store: StateStore,
    n: int,
    fresh: pd.DataFrame,
    deleted: set[int],
    *,
    retitle: dict[str, tuple[list[int], Callable[[int], Any]]] | None = None,
) -> pd.DataFrame:
    """What the sync does on an incremental night: read, merge tonight's rows, re-title
    lookup cells of untouched rows, commit with what changed. Returns the frame committed."""
    state = read(store)
    assert state.stored is not None
    touched = set(deleted) | {int(i) for i in fresh["ID"]}
    rows = _merge(state.rows, touched, fresh)
    masks: dict[str, np.ndarray] = {}
    for name, (ids, fn) in (retitle or {}).items():
        mask = rows["ID"].isin(ids).to_numpy()
        values = rows[name].to_numpy(dtype=object).copy()
        for at in np.flatnonzero(mask):  # one by one: list cells must stay lists
            values[at] = fn(int(rows["ID"].iat[at]))
        rows[name] = pd.Series(values, index=rows.index, dtype=object)
        masks[name] = mask
    expected = rows.copy()
    commit(store, rows, n, state, Changes(state.stored, frozenset(touched), masks, state.rows_file))
    return expected


def edited(ids: list[int], tag: str, n_max: int = N + 50) -> pd.DataFrame:
    rows = snapshot(n_max)
    rows = rows[rows["ID"].isin(ids)].reset_index(drop=True)
    rows["Title"] = pd.Series([f"{tag} {i}" for i in rows["ID"]], dtype=object)
    rows["Tags"] = pd.Series([[tag] for _ in range(len(rows))], dtype=object)
    return rows


def assert_reads_as_full_write(store: StateStore, expected: pd.DataFrame) -> None:
    """The state read equals the frame committed and what a full write of it reads back."""
    got = read(store).rows
    full = frame_from_parquet(frame_to_parquet(expected))
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    pd.testing.assert_frame_equal(got, full, check_exact=True)
    # Cell types too (assert_frame_equal compares object cells by ==).
    for name in expected.columns:
        if expected[name].dtype == object:
            assert list(map(type, got[name])) == list(map(type, full[name])), name


def start(store: StateStore, n: int = N) -> pd.DataFrame:
    base = snapshot(n)
    commit(store, base, 1, None)
    return base


CASES: dict[str, Callable[[], tuple[pd.DataFrame, set[int], dict[str, Any]]]] = {
    "edits": lambda: (edited([5, 17, 200], "Ändrad"), set(), {}),
    "adds": lambda: (edited([401, 402, 430], "Ny"), set(), {}),
    "deletes": lambda: (edited([], "x"), {3, 250, 400}, {}),
    "edits, adds and deletes": lambda: (edited([1, 99, 410], "Blandat"), {2, 300}, {}),
    "retitled lookup rows": lambda: (
        edited([7], "Ändrad"),
        set(),
        {"Names": ([20, 21, 22, 7], lambda i: [f"omdöpt {i}"])},
    ),
    "a cell of another kind": lambda: (
        edited([8], "x").assign(Mixed=pd.Series([dict(a=1)], dtype=object)),
        set(),
        {},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_delta_night_reads_back_as_a_full_write(store: LocalStateStore, case: str) -> None:
    start(store)
    fresh, deleted, retitle = CASES[case]()
    expected = night(store, 2, fresh, deleted, retitle=retitle)
    assert manifest_doc(store)["format"] == 2  # stored as a delta
    assert_reads_as_full_write(store, expected)
    assert read(store).quality.equals(quality_of(2))


def test_a_delta_commit_writes_only_the_touched_rows(store: LocalStateStore) -> None:
    big = 4_000  # large enough that the file footers do not dominate the sizes
    start(store, big)
    night(store, 2, edited([5, 17, big + 1], "Ändrad", big + 2), {300, 301})
    doc = manifest_doc(store)
    gen = list_folder(store) / doc["directory"]
    # The new generation holds the delta and the quality records, no full rows file.
    assert sorted(p.name for p in gen.iterdir()) == ["delta.parquet", "quality.parquet"]
    base_file = list_folder(store) / doc["base_directory"] / "rows.parquet"
    assert doc["rows"] == f"{doc['base_directory']}/rows.parquet"
    assert doc["delta"] == f"{doc['directory']}/delta.parquet"
    stored = pq.ParquetFile(gen / "delta.parquet")
    assert stored.metadata.num_rows == 3  # the two edits and the add
    assert pq.ParquetFile(base_file).metadata.num_rows == big
    delta_rows = frame_from_parquet((gen / "delta.parquet").read_bytes())
    assert delta_rows.index.tolist() == [4, 16, big - 2]  # positions in the new state
    assert sorted(delta_rows["ID"]) == [5, 17, big + 1]
    assert (gen / "delta.parquet").stat().st_size * 10 < base_file.stat().st_size
    state = read(store)
    assert state.stored is not None
    assert state.stored.dropped.tolist() == [5, 17, 300, 301]
    assert sorted(state.stored.delta_ids.tolist()) == [5, 17, big + 1]
    assert len(state.rows) == big - 2 + 1


def test_a_chain_of_nights_stays_one_delta_over_the_base_then_compacts(
    store: LocalStateStore,
) -> None:
    start(store)
    base_dir = manifest_doc(store)["directory"]
    rng = np.random.default_rng(7)
    expected = None
    formats = []
    new_id = N + 1
    for n in range(2, 12):
        state_ids = read(store).rows["ID"].to_numpy()
        edits = sorted({int(i) for i in rng.choice(state_ids, 4, replace=False)})
        deletes = {int(i) for i in rng.choice(state_ids, 2, replace=False)} - set(edits)
        ids = [*edits, new_id]
        new_id += 1
        expected = night(store, n, edited(ids, f"natt {n}", new_id + 1), deletes)
        assert_reads_as_full_write(store, expected)
        doc = manifest_doc(store)
        formats.append(doc["format"])
        if doc["format"] == 2:
            assert doc["base_directory"] == base_dir  # cumulative: always over the base
        else:
            base_dir = doc["directory"]  # compacted: the next deltas are over this file
    # A night adds up to 11 to the delta's size (an edit counts twice: a delta row and a
    # dropped base ID): past 10 % of 400 rows on the fifth night, which compacts; the nights
    # after it are deltas over the compacted file.
    assert formats[:5] == [2, 2, 2, 2, 1], formats
    assert formats[5:8] == [2, 2, 2], formats
    assert manifest_doc(store)["base_directory"] == base_dir


def test_compaction_writes_the_full_file_byte_for_byte(store: LocalStateStore) -> None:
    start(store)
    night(store, 2, edited([1, 2, 3], "a"), set())
    # 45 more rows: past 10 % of the base, so this night compacts.
    expected = night(store, 3, edited(list(range(10, 55)), "b"), set())
    doc = manifest_doc(store)
    assert doc["format"] == 1 and "base_directory" not in doc
    rows_file = list_folder(store) / doc["directory"] / "rows.parquet"
    assert rows_file.read_bytes() == frame_to_parquet(expected)
    assert_reads_as_full_write(store, expected)


def test_cleanup_keeps_the_base_a_live_manifest_names(store: LocalStateStore) -> None:
    start(store)
    base_dir = manifest_doc(store)["directory"]
    for n in range(2, 6):
        night(store, n, edited([n], f"natt {n}"), set())
    doc = manifest_doc(store)
    dirs = sorted(p.name for p in list_folder(store).iterdir() if p.is_dir())
    # Base, previous and current; the older deltas are gone.
    assert dirs == sorted({base_dir, doc["previous_directory"], doc["directory"]})
    assert doc["previous_base_directory"] == base_dir
    # Compaction: the base stays while the previous manifest (a delta over it) is live …
    night(store, 6, edited(list(range(100, 150)), "stor"), set())
    doc = manifest_doc(store)
    assert doc["format"] == 1
    assert base_dir in {p.name for p in list_folder(store).iterdir()}
    # … and goes with the next commit.
    night(store, 7, edited([9], "natt 7"), set())
    assert base_dir not in {p.name for p in list_folder(store).iterdir()}
    assert manifest_doc(store)["base_directory"] == manifest_doc(store)["previous_directory"]


def test_small_lists_and_other_columns_are_written_whole(
    store: LocalStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    start(store, 60)  # below the floor of 100 rows
    night(store, 2, edited([5], "x", 80), set())
    assert manifest_doc(store)["format"] == 1
    # A dtype that moved (a column read as float after a schema change) forces a full file.
    monkeypatch.setattr(delta_module, "DELTA_MIN_BASE_ROWS", 10)
    state = read(store)
    assert state.stored is not None
    rows = state.rows.copy()
    rows["Amount"] = rows["Amount"].astype("float32")
    commit(store, rows, 3, state, Changes(state.stored, frozenset(), {}, state.rows_file))
    assert manifest_doc(store)["format"] == 1
    pd.testing.assert_frame_equal(read(store).rows, rows, check_exact=True)


def test_a_full_state_written_before_deltas_still_reads(store: LocalStateStore) -> None:
    """A manifest as the code before deltas wrote it (format 1, no base keys) is read, and
    the next incremental commit writes a delta over its rows file."""
    base = start(store)
    path = list_folder(store) / MANIFEST_NAME
    doc = json.loads(path.read_bytes())
    assert doc["format"] == 1
    old_keys = {
        "format", "site", "list_key", "generation", "directory", "rows", "quality",
        "rows_sha256", "quality_sha256", "previous_directory", "committed_at", "checkpoint",
    }  # fmt: skip
    assert set(doc) == old_keys
    path.write_bytes(json.dumps(doc, indent=1).encode())
    pd.testing.assert_frame_equal(read(store).rows, base, check_exact=True)
    expected = night(store, 2, edited([3], "x"), set())
    assert manifest_doc(store)["format"] == 2
    assert_reads_as_full_write(store, expected)


def test_a_damaged_delta_is_a_corrupt_state(store: LocalStateStore) -> None:
    start(store)
    night(store, 2, edited([3], "x"), set())
    doc = manifest_doc(store)
    delta_file = list_folder(store) / doc["directory"] / "delta.parquet"
    delta_file.write_bytes(delta_file.read_bytes()[:-10])
    with pytest.raises(StateError, match="skadat"):
        store.read_list_state(SITE, LIST)


def test_a_delta_that_does_not_fit_its_base_is_refused(store: LocalStateStore) -> None:
    start(store)
    night(store, 2, edited([3], "x"), set())
    state = read(store)
    assert state.stored is not None
    rows_file = state.rows_file
    assert rows_file is not None
    # A delta saying the state has one row more than base + delta hold.
    delta_bytes = list_folder(store) / manifest_doc(store)["directory"] / "delta.parquet"
    rows, extra = frame_and_extra_from_parquet(delta_bytes.read_bytes())
    bad = bytes(frame_to_parquet_view(rows, extra={**extra, "num_rows": extra["num_rows"] + 1}))
    with pytest.raises(StateError):
        delta_module.apply_delta(frame_from_parquet(rows_file), bad)
