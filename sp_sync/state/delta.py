"""Base + delta snapshots: an edited night writes the rows that changed, not the list (issue 14
goal 4).

A full commit writes the whole snapshot (`rows.parquet`). An incremental commit of a large list
whose changes since that full file are few writes a delta file instead (`delta.parquet`, in its
own generation folder): the rows of the state that are not verbatim rows of the base file (each
with its position in the state), and the base IDs that are dropped (edited, deleted, re-titled).
The state is then: the base rows not dropped, in base order, with the delta rows put at their
positions. The delta is cumulative (always over the base, never over another delta), so a read
is at most two files and a crash or cleanup never has a chain to break.

When the delta would hold more than `COMPACT_SHARE` of the base's rows the commit writes a
full file again (compaction), converting only the changed rows (`frames.Reuse` over the base).
Why 10 %: a read of a delta state decodes base + delta rows, so at most about 10 % more than a
compacted one; a night's delta write costs at most about 10 % of a full write; and with a few
dozen edits a night a 100,000-row list compacts about once a season. Below
`DELTA_MIN_BASE_ROWS` a full write costs a few milliseconds and a second file would only cost a
request (blob) and a read, so small lists are always written whole.

The reader returns exactly the frame a full write would have stored: same rows, order, dtypes
and values (each file round-trips exactly, `sp_sync.state.frames`, and a delta is only written
when the new frame's columns and dtypes are the base's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sp_sync.errors import StateError
from sp_sync.i18n import Text
from sp_sync.state.base import Changes, ListState, Manifest, StoredRows, sha256
from sp_sync.state.frames import (
    ArrayLike,
    Reuse,
    array_of,
    columns_from_parquet,
    frame_and_extra_from_parquet,
    frame_from_columns,
    frame_from_parquet,
    frame_to_parquet_view,
    is_default_index,
    stored_frame,
)

__all__ = [
    "COMPACT_SHARE",
    "DELTA_MIN_BASE_ROWS",
    "DeltaPlan",
    "apply_delta",
    "compaction_reuse",
    "delta_to_parquet",
    "plan_delta",
    "read_rows",
    "rows_to_write",
    "state_from_files",
    "stored_rows",
]

#: Lists with fewer base rows are always written whole (see the module docstring).
DELTA_MIN_BASE_ROWS = 5_000
#: A delta whose rows plus dropped base IDs pass this share of the base's rows is compacted.
COMPACT_SHARE = 0.10
#: The delta file's index: each delta row's position in the state.
POSITION = "__sp_sync_position__"

_BAD_DELTA = Text(
    sv="En deltafil i tillståndslagret stämmer inte med sin basfil.",
    en="A delta file in the state store does not match its base file.",
)


@dataclass(frozen=True, eq=False)
class DeltaPlan:
    """What a delta commit writes: `rows`, the state's rows that are not verbatim base rows
    (indexed by their position in the state), and `dropped`, the base IDs left out."""

    rows: pd.DataFrame
    dropped: np.ndarray
    total: int


def id_array(frame: pd.DataFrame) -> np.ndarray | None:
    """The frame's IDs as int64, or None when it has no integer ID column without gaps (such
    a frame is never written as a delta)."""
    if "ID" not in frame.columns:
        return None
    return _ids(frame["ID"])


def _ids(column: pd.Series) -> np.ndarray | None:
    if not pd.api.types.is_integer_dtype(column.dtype) or bool(column.isna().any()):
        return None
    return column.to_numpy(dtype=np.int64)


def _dtypes(frame: pd.DataFrame) -> tuple[tuple[str, str], ...]:
    return tuple((str(name), str(frame[name].dtype)) for name in frame.columns)


def stored_rows(
    directory: str,
    sha256: str,
    frame: pd.DataFrame,
    *,
    base_ids: np.ndarray | None = None,
    dropped: np.ndarray | None = None,
    delta_ids: np.ndarray | None = None,
) -> StoredRows | None:
    """How `frame` (a state as read) is stored; base IDs default to the frame's own (a full
    state). None when the frame cannot have a delta (no integer ID, or an index)."""
    ids = id_array(frame)
    if ids is None or not is_default_index(frame.index):
        return None
    empty = np.empty(0, dtype=np.int64)
    return StoredRows(
        base_directory=directory,
        base_sha256=sha256,
        base_ids=ids if base_ids is None else base_ids,
        dropped=empty if dropped is None else dropped,
        delta_ids=empty if delta_ids is None else delta_ids,
        dtypes=_dtypes(frame),
    )


def plan_delta(rows: pd.DataFrame, changes: Changes) -> DeltaPlan | None:
    """The delta that stores `rows` over `changes.since`'s base, or None when a full write is
    due: a small list, other columns or dtypes than the base's, rows that are not the base's
    in the base's order, or a delta past `COMPACT_SHARE` of the base."""
    since = changes.since
    if len(since.base_ids) < DELTA_MIN_BASE_ROWS or not is_default_index(rows.index):
        return None
    dtypes = _dtypes(rows)
    if dtypes != since.dtypes or any(d == "category" for _, d in dtypes):
        # Two categorical files may hold different categories: their rows would not concatenate
        # into the one dtype a full write keeps.
        return None
    ids = id_array(rows)
    if ids is None:
        return None
    fresh = np.fromiter(changes.fresh_ids, dtype=np.int64, count=len(changes.fresh_ids))
    redo = np.isin(ids, np.concatenate([since.delta_ids, fresh]))
    for mask in changes.changed_rows.values():
        if len(mask) != len(rows):
            return None
        redo |= np.asarray(mask, dtype=bool)
    # Base rows that are not verbatim in the new state: dropped before, fresh tonight, or a
    # row whose cells moved (re-titled lookups).
    leaving = np.concatenate([since.dropped, fresh, ids[redo]])
    dropped = np.unique(since.base_ids[np.isin(since.base_ids, leaving)])
    kept = ~np.isin(since.base_ids, dropped)
    if int(redo.sum()) + len(dropped) > COMPACT_SHARE * len(since.base_ids):
        return None
    # Every row not in the delta must be the base row of its ID, in base order; the engine's
    # contract (`Changes`) says its cells are the stored ones.
    if not np.array_equal(since.base_ids[kept], ids[~redo]):
        return None
    positions = np.flatnonzero(redo)
    delta = rows.iloc[positions].copy(deep=False)
    delta.index = pd.Index(positions.astype(np.int64), name=POSITION)
    return DeltaPlan(rows=delta, dropped=dropped, total=len(rows))


def delta_to_parquet(plan: DeltaPlan) -> memoryview:
    """The delta file's bytes: the delta rows (positions as index) with the dropped IDs and
    the state's row count in the file's metadata."""
    return frame_to_parquet_view(
        plan.rows,
        extra={"delta": 1, "dropped": plan.dropped.tolist(), "num_rows": plan.total},
    )


def apply_delta(
    base: pd.DataFrame, data: bytes
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, tuple[tuple[str, str], ...]]:
    """The state stored as `base` (the base file's frame, taken apart here) plus the delta file
    `data`: (rows, dropped base IDs, delta IDs, the rows' dtypes). Raises StateError when they
    do not fit."""
    # Column by column, each base column dropped once used: the base's and the state's
    # reference arrays are never both whole in memory.
    columns = [(str(name), array_of(base.pop(name))) for name in list(base.columns)]
    return _apply_delta(columns, data)


def _apply_delta(
    base: list[tuple[str, ArrayLike]], data: bytes
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, tuple[tuple[str, str], ...]]:
    """`apply_delta` of the base file's columns (as `columns_from_parquet` gives them; the
    list is emptied, each column dropped once used)."""
    delta, extra = frame_and_extra_from_parquet(data)
    dtypes = tuple((name, str(array.dtype)) for name, array in base)
    id_column = dict(base).get("ID")
    layout = _layout(id_column, delta, extra)
    if _dtypes(delta) != dtypes:
        raise StateError(_BAD_DELTA)
    out: list[tuple[str, ArrayLike]] = []
    base.reverse()
    while base:
        name, column = base.pop()
        out.append((name, _with_delta(column.take(layout.source), delta[name], layout.positions)))
        del column
    return _state(out, layout, dtypes)


@dataclass(frozen=True, eq=False)
class _Layout:
    """Where a delta's rows go: `source`, the base row of each row of the state (any valid
    row where a delta row goes: it is put in place after); `positions`, the delta rows'."""

    base_ids: np.ndarray
    dropped: np.ndarray
    delta_ids: np.ndarray
    positions: np.ndarray
    source: np.ndarray
    total: int


def _layout(id_column: ArrayLike | None, delta: pd.DataFrame, extra: dict[str, Any]) -> _Layout:
    """The layout of the state from the base's ID column and the delta file's frame and
    metadata; StateError when they do not fit."""
    try:
        if extra.get("delta") != 1:
            raise ValueError("not a delta file")
        dropped = np.asarray(extra["dropped"], dtype=np.int64)
        total = int(extra["num_rows"])
        positions = delta.index.to_numpy(dtype=np.int64)
        if delta.index.name != POSITION:
            raise ValueError("columns")
        base_ids = None if id_column is None else _ids(pd.Series(id_column, copy=False))
        if base_ids is None:
            raise ValueError("ids")
        kept = np.flatnonzero(~np.isin(base_ids, dropped))
        if len(kept) + len(delta) != total or (
            len(positions)
            and (positions[0] < 0 or positions[-1] >= total or not (np.diff(positions) > 0).all())
        ):
            raise ValueError("positions")
        delta_ids = delta["ID"].to_numpy(dtype=np.int64)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise StateError(_BAD_DELTA) from exc
    # One take per column copies references, not values.
    source = np.zeros(total, dtype=np.intp)
    in_delta = np.zeros(total, dtype=bool)
    in_delta[positions] = True
    source[~in_delta] = kept
    return _Layout(base_ids, dropped, delta_ids, positions, source, total)


def _with_delta(values: ArrayLike, delta: pd.Series, positions: np.ndarray) -> ArrayLike:
    """`values` (a state column, taken from the base) with the delta's cells put in place."""
    if len(positions):
        if isinstance(values, np.ndarray):
            values[positions] = delta.to_numpy()
        else:  # extension dtypes (nullable integers, time zones, …) keep their own arrays
            values[positions] = delta.array
    return values


def _state(
    columns: list[tuple[str, ArrayLike]], layout: _Layout, dtypes: tuple[tuple[str, str], ...]
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, tuple[tuple[str, str], ...]]:
    rows = frame_from_columns(columns, layout.total)
    if _dtypes(rows) != dtypes:
        raise StateError(_BAD_DELTA)
    return rows, layout.dropped, layout.delta_ids, dtypes


def compaction_reuse(base_file: bytes, changes: Changes) -> Reuse:
    """What a full write of the new state can take from the base file: every row that is not
    verbatim a base row (delta rows, dropped IDs, tonight's) is converted again."""
    since = changes.since
    fresh = set(changes.fresh_ids) | set(since.dropped.tolist()) | set(since.delta_ids.tolist())
    return Reuse(base_file, frozenset(fresh), changes.changed_rows)


def rows_to_write(
    rows: pd.DataFrame, changes: Changes | None
) -> tuple[memoryview, memoryview | None]:
    """(full rows file, None) or (empty, delta file): what a commit of `rows` writes."""
    reuse = None
    if changes is not None:
        plan = plan_delta(rows, changes)
        if plan is not None:
            return memoryview(b""), delta_to_parquet(plan)
        if changes.base_file is not None:
            reuse = compaction_reuse(changes.base_file, changes)
    return frame_to_parquet_view(rows, reuse=reuse), None


def read_rows(
    manifest: Manifest, rows_file: bytes, delta_file: bytes | None
) -> tuple[pd.DataFrame, StoredRows | None]:
    """The rows of the state `manifest` names, from its (checked) files, and how they are
    stored."""
    if manifest.base_directory is None:
        frame = frame_from_parquet(rows_file)
        return frame, stored_rows(manifest.directory, manifest.rows_sha256, frame)
    if delta_file is None:
        raise StateError(_BAD_DELTA)
    # The base file is read straight into the state's rows: its own frame is never built,
    # and the rows the delta drops are never decoded (`select`, given the base's IDs).
    delta, extra = frame_and_extra_from_parquet(delta_file)
    layouts: list[_Layout] = []

    def select(natives: Mapping[str, ArrayLike]) -> np.ndarray:
        layouts.append(_layout(natives.get("ID"), delta, extra))
        return layouts[0].source

    base = columns_from_parquet(rows_file, select=select)
    if not base.selected:  # an indexed base (never written by a commit): the general way
        frame = stored_frame(base)
        base_ids = id_array(frame)
        rows, dropped, delta_ids, dtypes = apply_delta(frame, delta_file)
    else:
        layout = layouts[0]
        base_ids = layout.base_ids
        dtypes = tuple((name, str(array.dtype)) for name, array in base.columns)
        if _dtypes(delta) != dtypes:
            raise StateError(_BAD_DELTA)
        columns = [
            (name, _with_delta(values, delta[name], layout.positions))
            for name, values in base.columns
        ]
        del base
        rows, dropped, delta_ids, dtypes = _state(columns, layout, dtypes)
    assert base_ids is not None  # apply_delta refuses a base without IDs
    stored = StoredRows(
        base_directory=manifest.base_directory,
        base_sha256=manifest.rows_sha256,
        base_ids=base_ids,
        dropped=dropped,
        delta_ids=delta_ids,
        dtypes=dtypes,
    )
    return rows, stored


def state_from_files(
    manifest: Manifest,
    rows_file: bytes | None,
    delta_file: bytes | None,
    quality_file: bytes | None,
    etag: str,
) -> ListState | None:
    """The state `manifest` names, from its files as a store read them (None: not there); None
    when a file is missing or does not match its hash (a newer commit may have cleaned it up:
    the store reads the manifest again to tell that from damage)."""
    if (
        rows_file is None
        or quality_file is None
        or sha256(rows_file) != manifest.rows_sha256
        or sha256(quality_file) != manifest.quality_sha256
    ):
        return None
    if manifest.base_directory is not None and (
        delta_file is None or sha256(delta_file) != manifest.delta_sha256
    ):
        return None
    frame, stored = read_rows(manifest, rows_file, delta_file)
    return ListState(
        checkpoint=manifest.checkpoint,
        rows=frame,
        quality=frame_from_parquet(quality_file),
        etag=etag,
        rows_file=rows_file,
        stored=stored,
    )
