"""DataFrame ⇄ Parquet bytes that round-trip the normalized snapshot contract exactly.

pandas' own `to_parquet`/`read_parquet` is close but not exact for our snapshots: list cells come
back as numpy arrays, an `object` column of strings comes back as pandas' `str` dtype, and a
column that mixes types (a data-quality record's offending value) cannot be written at all. So
each column's pandas dtype is recorded in the file's metadata and restored on read; `object`
columns are rebuilt from plain Python values (lists stay lists, dates stay `datetime.date`), and
columns Arrow cannot type are stored as tagged JSON text.
"""

from __future__ import annotations

import datetime as dt
import gc
import io
import json
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pandas.api.extensions import ExtensionArray
from pandas.api.internals import create_dataframe_from_blocks

from sp_sync.errors import StateError
from sp_sync.i18n import Text

_NAMES_NOT_TEXT = Text(
    sv="En ögonblicksbilds kolumnnamn måste vara text.",
    en="A snapshot's column names must be text.",
)
_DUPLICATE_NAMES = Text(
    sv="En ögonblicksbild har dubbla kolumnnamn.", en="A snapshot has duplicate column names."
)
_INDEX_CLASH = Text(
    sv="En ögonblicksbilds indexnamn krockar med ett kolumnnamn.",
    en="A snapshot's index name clashes with a column name.",
)
_UNKNOWN_FORMAT = Text(
    sv="En ögonblicksbildsfil har okänt format {format}.",
    en="A snapshot file has unknown format {format}.",
)
_ROWS_MISSING = Text(
    sv="En ögonblicksbildsfil innehåller inte de rader som dess metadata anger.",
    en="A snapshot file does not hold the rows its metadata names.",
)
_CORRUPT = Text(
    sv="En ögonblicksbildsfil i tillståndslagret går inte att läsa (trasig Parquet).",
    en="A snapshot file in the state store cannot be read (corrupt Parquet).",
)
_CANNOT_STORE = Text(
    sv="Kolumnen {column} av typen {dtype} går inte att lagra.",
    en="Column {column} of type {dtype} cannot be stored.",
)

__all__ = [
    "ArrayLike",
    "Reuse",
    "Select",
    "StoredColumns",
    "array_of",
    "columns_from_parquet",
    "frame_and_extra_from_parquet",
    "frame_from_columns",
    "frame_from_parquet",
    "frame_to_parquet",
    "frame_to_parquet_view",
    "stored_frame",
]

#: One column's values as a frame holds them.
ArrayLike: TypeAlias = np.ndarray | ExtensionArray

_META_KEY = b"sp_sync.frame"
_FORMAT = 1

# Kinds of stored column.
_NATIVE = "native"  # Arrow conversion of a typed pandas column, dtype restored on read
_OBJECT = "object"  # an object column Arrow can type (str, list[str], date, bool …)
_JSON = "json"  # an object column of mixed values, stored as tagged JSON text


def frame_to_parquet(frame: pd.DataFrame, *, reuse: Reuse | None = None) -> bytes:
    """Serialise `frame` to Parquet bytes (zstd), recording what is needed to restore it exactly."""
    return bytes(frame_to_parquet_view(frame, reuse=reuse))


@dataclass(frozen=True)
class Reuse:
    """What a commit knows about a stored file the new snapshot mostly repeats (issue 14 goal 4:
    a night writes what changed): `previous`, that file (the old snapshot's, or the base a
    compaction folds its delta into); `fresh_ids`, the IDs whose rows may differ from it (fetched,
    added or deleted tonight, and for a compaction the delta's rows and dropped IDs too);
    `changed_rows`, per column, the
    rows of the new frame (a boolean mask by position) whose cell may differ from the old
    snapshot's although the row is not fresh (lookup titles re-resolved). Every other cell of
    an object column equals the old snapshot's, so its stored value is taken from `previous`."""

    previous: bytes | memoryview
    fresh_ids: frozenset[int]
    changed_rows: Mapping[str, np.ndarray] = field(default_factory=dict)


def frame_to_parquet_view(
    frame: pd.DataFrame, *, reuse: Reuse | None = None, extra: Mapping[str, Any] | None = None
) -> memoryview:
    """`frame_to_parquet` without the final copy: a read-only view of Arrow's buffer (hash it,
    write it; a million-row snapshot's file need not be in memory twice).

    With `reuse`, the object columns of the rows that did not change are taken from the
    previous file instead of being converted again from Python values; the bytes are the same
    as without it (`_reused_plans` falls back to a full conversion of any column where that
    could not be shown). `extra` (JSON) is kept in the file's metadata beside the frame's
    (`frame_and_extra_from_parquet` returns it): a delta file's dropped IDs."""
    names = list(frame.columns)
    if any(not isinstance(n, str) for n in names):
        raise StateError(_NAMES_NOT_TEXT)
    if len(set(names)) != len(names):
        raise StateError(_DUPLICATE_NAMES)

    index_names: list[str] = []
    if not is_default_index(frame.index):
        index_names = [
            n if isinstance(n, str) else f"__index_level_{i}__"
            for i, n in enumerate(frame.index.names)
        ]
        if set(index_names) & set(names):
            raise StateError(_INDEX_CLASH)
        frame = frame.copy(deep=False)
        frame.index = frame.index.set_names(index_names)
        frame = frame.reset_index()

    # Columns are converted and written one row group at a time: the Arrow copy of a
    # million-row snapshot would otherwise sit in memory beside the frame (about as large again).
    plans: list[_ColumnPlan] = []
    columns_meta: list[dict[str, str]] = []
    reused = _reused_plans(frame, reuse) if reuse is not None and not index_names else {}
    for name in frame.columns:
        series = frame[name]
        plan = reused.pop(name, None) or _plan_column(series)
        plans.append(plan)
        columns_meta.append({"name": name, "dtype": str(series.dtype), "kind": plan.kind})
    del reused

    meta = {
        "format": _FORMAT,
        "columns": columns_meta,
        "index": index_names,
        "index_dtypes": [str(frame[n].dtype) for n in index_names],
        "num_rows": len(frame),
    }
    if extra is not None:
        meta["extra"] = dict(extra)
    names = [str(n) for n in frame.columns]
    schema = pa.schema(
        [pa.field(n, p.type) for n, p in zip(names, plans, strict=True)],
        metadata={_META_KEY: json.dumps(meta).encode()},
    )
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        total = len(frame)
        for start in range(0, max(total, 1), ROW_GROUP_ROWS):
            stop = min(total, start + ROW_GROUP_ROWS)
            arrays = [p.slice(start, stop) for p in plans]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            del arrays
    del plans
    view = memoryview(sink.getvalue())
    # Arrow's allocator keeps freed row-group buffers for reuse; give them back now.
    pa.default_memory_pool().release_unused()
    return view


#: Rows per Parquet row group: what is converted (and later read back) at once.
ROW_GROUP_ROWS = 65_536


class _ColumnPlan:
    """How one column is stored: its kind, its Arrow type, and its values by row range.

    Text, dates and other single-type scalar columns are converted slice by slice; the rare
    columns that need the full inspection (lists, mixed values) are converted whole once.
    """

    def __init__(
        self, kind: str, arrow_type: pa.DataType, *, values: pd.Series | None, array: Any
    ) -> None:
        self.kind = kind
        self.type = arrow_type
        self._values = values
        self._array = array

    def slice(self, start: int, stop: int) -> pa.Array | pa.ChunkedArray:
        if self._values is not None:
            # Python values one row group at a time: a list of every column's values at once
            # cost 8 bytes per cell on top of the frame.
            part = self._values.iloc[start:stop].tolist()
            return pa.array(part, type=self.type, from_pandas=True)
        return self._array.slice(start, stop - start)


_ARROW_SCALAR = {
    str: pa.string(),
    bool: pa.bool_(),
    int: pa.int64(),
    float: pa.float64(),
    dt.date: pa.date32(),
}


def _plan_column(series: pd.Series) -> _ColumnPlan:
    if series.dtype == object:
        values = series.tolist()
        types = set(map(type, values))  # C speed; the per-value walk is for the rare cases
        types.discard(type(None))
        if len(types) == 1:
            arrow_type = _ARROW_SCALAR.get(next(iter(types)))
            if arrow_type is not None and _fits(values, arrow_type):
                # One plain scalar type (text, dates, booleans …): what `_kinds` would find,
                # without visiting every value in Python; converted per row group.
                return _ColumnPlan(_OBJECT, arrow_type, values=series, array=None)
    kind, array = _column_to_arrow(series)
    return _ColumnPlan(kind, array.type, values=None, array=array)


_SCALAR_KINDS = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}


def _reused_plans(frame: pd.DataFrame, reuse: Reuse) -> dict[str, _ColumnPlan]:
    """Plans for the object columns of `frame` whose unchanged cells can be taken from
    `reuse.previous`: those cells' stored values, and the other cells converted alone, put in
    `frame`'s order one row group at a time (`_ReusedColumn`). Native columns are left to
    `_plan_column` (Arrow converts them in C). A column is reused only when its kind and
    Arrow type are provably what converting the whole column gives (`_delta_array`); anything
    unexpected in the previous file (other columns, dtypes, rows) means no reuse at all."""
    try:
        parquet = pq.ParquetFile(io.BytesIO(reuse.previous), pre_buffer=False)
        raw_meta = (parquet.schema_arrow.metadata or {}).get(_META_KEY)
        if raw_meta is None:
            return {}
        meta = json.loads(raw_meta)
        if meta.get("format") != _FORMAT or meta.get("index"):
            return {}
        old_columns = {c["name"]: c for c in meta["columns"]}
        if [c["name"] for c in meta["columns"]] != list(frame.columns) or "ID" not in frame:
            return {}
        if frame["ID"].dtype == object or str(frame["ID"].dtype) != old_columns["ID"]["dtype"]:
            return {}
        old_ids = parquet.read(columns=["ID"], use_threads=False).column("ID").to_numpy()
        new_ids = frame["ID"].to_numpy()
        fresh = np.fromiter(reuse.fresh_ids, dtype=np.int64, count=len(reuse.fresh_ids))
        kept = ~np.isin(old_ids, fresh)
        is_fresh = np.isin(new_ids, fresh)
        # The unchanged rows must be exactly the old rows not named fresh, in the same order.
        if not np.array_equal(old_ids[kept], new_ids[~is_fresh]):
            return {}
        kept_positions = np.flatnonzero(kept)  # old row of each unchanged new row, in order
        source = _PreviousFile(parquet)
        plans: dict[str, _ColumnPlan] = {}
        for name in frame.columns:
            if not (
                frame[name].dtype == object
                and old_columns[name]["kind"] in (_OBJECT, _JSON)
                and old_columns[name]["dtype"] == "object"
            ):
                continue
            redo = is_fresh
            extra = reuse.changed_rows.get(name)
            if extra is not None:
                if len(extra) != len(new_ids):
                    continue
                redo = is_fresh | np.asarray(extra, dtype=bool)
            reused_rows = np.flatnonzero(~redo)
            found = _delta_array(
                old_columns[name]["kind"],
                frame[name].iloc[np.flatnonzero(redo)],
                frame[name],
                reused_rows,
            )
            if found is None:
                continue
            target, delta = found
            source.columns.append(name)
            plans[name] = _ColumnPlan(
                old_columns[name]["kind"],
                target,
                values=None,
                array=_ReusedColumn(
                    source, name, target, redo, kept_positions[~redo[~is_fresh]], delta
                ),
            )
        return plans
    except (pa.ArrowException, OSError, KeyError, TypeError, ValueError, OverflowError):
        # The previous file is only a shortcut: anything odd in it means a full conversion.
        return {}


class _PreviousFile:
    """Rows of the reused columns of the previous file by row range. Row groups are decoded
    once, all reused columns together, and dropped once the writer has moved past them (it
    asks for rows in increasing order): a large snapshot is never all in memory at once."""

    def __init__(self, parquet: pq.ParquetFile) -> None:
        self._parquet = parquet
        sizes = [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]
        self._starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        self.columns: list[str] = []
        self._groups: dict[int, pa.Table] = {}

    def _group(self, group: int) -> pa.Table:
        table = self._groups.get(group)
        if table is None:
            table = self._parquet.read_row_group(group, columns=self.columns, use_threads=False)
            self._groups[group] = table
        return table

    def rows(self, name: str, first: int, last: int) -> pa.Array:
        """Rows `first`..`last` (inclusive) of column `name` as one array."""
        g0 = int(np.searchsorted(self._starts, first, side="right")) - 1
        g1 = int(np.searchsorted(self._starts, last, side="right")) - 1
        for done in [g for g in self._groups if g < g0]:
            del self._groups[done]
        chunks = [c for g in range(g0, g1 + 1) for c in self._group(g).column(name).chunks]
        column = pa.chunked_array(chunks, type=self._group(g0).schema.field(name).type)
        offset = first - int(self._starts[g0])
        return column.slice(offset, last - first + 1).combine_chunks()


class _ReusedColumn:
    """A reused column's stored values for any row range of the new frame: the unchanged
    cells read from the previous file (old rows `old_rows`, in order), the redone cells from
    `delta` (in order), interleaved as `redo` says. Sliced like an Arrow array."""

    def __init__(
        self,
        source: _PreviousFile,
        name: str,
        target: pa.DataType,
        redo: np.ndarray,
        old_rows: np.ndarray,
        delta: pa.Array,
    ) -> None:
        self._source = source
        self._name = name
        self._target = target
        self._redo = redo
        # How many unchanged cells come before each row: where a row range starts in each.
        self._reused_before = np.concatenate([[0], np.cumsum(~redo, dtype=np.int64)])
        self._old_rows = old_rows
        self._delta = delta

    def slice(self, start: int, length: int) -> pa.Array:
        stop = start + length
        k0, k1 = int(self._reused_before[start]), int(self._reused_before[stop])
        j0, j1 = start - k0, stop - k1
        delta = self._delta.slice(j0, j1 - j0)
        if k1 == k0:
            return delta
        wanted = self._old_rows[k0:k1]
        block = self._source.rows(self._name, int(wanted[0]), int(wanted[-1]))
        if str(block.type) != str(self._target):  # `!=` ignores a list's item name
            block = block.cast(self._target)
        if j1 == j0 and len(block) == length:
            return block  # no cell redone and no old row left out: the old rows as they were
        # One take over the old block and the redone cells puts every row in place.
        order = np.empty(length, dtype=np.int64)
        redo = self._redo[start:stop]
        order[~redo] = wanted - wanted[0]
        order[redo] = len(block) + np.arange(j1 - j0)
        return pa.concat_arrays([block, delta]).take(pa.array(order))


def _delta_array(
    kind: str,
    delta: pd.Series,
    column: pd.Series,
    kept_rows: np.ndarray,
) -> tuple[pa.DataType, pa.Array] | None:
    """The Arrow type of one reused object column and its redone cells as converting the
    whole new column would store them, when that conversion provably keeps the old column's
    `kind`; None when it might not (then the column is converted whole).

    The whole-column conversion (`_plan_column`, `_column_to_arrow`) decides by the column's
    value kinds: one plain scalar type → that Arrow type; one kind otherwise → Arrow's
    inference; several → tagged JSON. Every reused cell has the old column's kind (a column
    of one kind stays one kind when cells are removed); a JSON column stays JSON only while
    two kinds remain, so a reused cell of a second kind is looked for (the scan stops at the
    first one)."""
    values = [_plain(v) for v in delta.tolist()]
    delta_kinds = _all_kinds(values)
    if kind == _JSON:
        if len(delta_kinds) < 2 and not _kept_kinds_exceed(column, kept_rows, delta_kinds):
            return None
        texts = [None if v is None else _json_dumps(v) for v in values]
        return pa.string(), pa.array(texts, pa.string())
    kept_kind = _first_kind(column, kept_rows)  # None: the reused cells are all empty
    if kept_kind is None or not delta_kinds <= {kept_kind}:
        return None
    if kept_kind == "date":
        target = pa.date32()
    elif kept_kind in _SCALAR_KINDS:
        target = _SCALAR_KINDS[kept_kind]
    elif kept_kind.startswith("list:") and kept_kind[5:] in _SCALAR_KINDS:
        # Arrow infers list<item: …>; a list read back from Parquet may name its item
        # "element": the stored type must be what the whole conversion gives.
        target = pa.list_(_SCALAR_KINDS[kept_kind[5:]])
    else:
        return None
    return target, pa.array(values, type=target, from_pandas=True)


def _all_kinds(values: list[Any]) -> set[str]:
    """`_kinds` without stopping at the second kind (for the few fresh rows)."""
    kinds: set[str] = set()
    for value in values:
        kinds |= _kinds([value])
    return kinds


def _first_kind(column: pd.Series, rows: np.ndarray) -> str | None:
    """The kind of the first non-missing value among `column`'s `rows`."""
    for value in column.to_numpy()[rows]:
        found = _kinds([_plain(value)])
        if found:
            return next(iter(found))
    return None


def _kept_kinds_exceed(column: pd.Series, rows: np.ndarray, delta_kinds: set[str]) -> bool:
    """Whether `column`'s `rows` together with `delta_kinds` hold at least two kinds."""
    seen = set(delta_kinds)
    for value in column.to_numpy()[rows]:
        seen |= _kinds([_plain(value)])
        if len(seen) > 1:
            return True
    return False


def _fits(values: list[Any], arrow_type: pa.DataType) -> bool:
    """Python ints beyond int64 go the general way (stored as JSON), as `_column_to_arrow` does."""
    if arrow_type != pa.int64():
        return True
    try:
        pa.array(values, type=arrow_type, from_pandas=True)
    except (pa.ArrowException, OverflowError):
        return False
    return True


def frame_from_parquet(data: bytes) -> pd.DataFrame:
    """Read bytes written by `frame_to_parquet` back into an identical DataFrame.

    Dictionary-encoded text and dates are read whole and decoded once per distinct value;
    other object columns are converted one row group at a time and joined at the end
    (`columns_from_parquet`).
    """
    return frame_and_extra_from_parquet(data)[0]


def frame_and_extra_from_parquet(data: bytes) -> tuple[pd.DataFrame, dict[str, Any]]:
    """`frame_from_parquet`, and the `extra` metadata the file was written with ({} if none)."""
    stored = columns_from_parquet(data)
    return stored_frame(stored), stored.extra


@dataclass(eq=False)
class StoredColumns:
    """A file's columns before they are put in a frame (a delta read takes them apart without
    building the base's frame): `columns`, each 1-d array as the frame holds it, in order;
    `num_rows`; `index`, the names of the columns that are the frame's index; `extra` (see
    `frame_and_extra_from_parquet`). `foreign`: a Parquet file from elsewhere, read whole."""

    columns: list[tuple[str, ArrayLike]]
    num_rows: int
    index: list[str]
    extra: dict[str, Any]
    foreign: pd.DataFrame | None = None
    #: The rows `select` chose are the rows here (see `columns_from_parquet`).
    selected: bool = False


#: Given a file's native columns, the positions of the rows wanted. A row named twice may hold
#: the same list object twice (a delta read names base row 0 where each delta row goes, then
#: puts the delta's cells there).
Select = Callable[[Mapping[str, ArrayLike]], np.ndarray]


def columns_from_parquet(data: bytes, *, select: Select | None = None) -> StoredColumns:
    """The columns of bytes written by `frame_to_parquet`, exactly as `frame_from_parquet`
    puts them in its frame.

    With `select` (a file with a default index only: `selected` says it was used), the
    columns hold only the rows it names, in its order: `column.take(rows)` of each, but each
    cell of a text column is taken from its decoded distinct values, never decoded for a row
    left out and then copied again (a delta read: the base rows the state keeps)."""
    with _collector_paused():
        return _read_columns(data, select)


def stored_frame(stored: StoredColumns) -> pd.DataFrame:
    """The frame of `stored` (`frame_from_parquet`); its arrays are taken, not copied."""
    if stored.foreign is not None:
        return stored.foreign
    frame = frame_from_columns(stored.columns, stored.num_rows)
    if stored.index:
        frame = frame.set_index(stored.index)
        frame.index = frame.index.set_names(
            [None if n.startswith("__index_level_") else n for n in stored.index]
        )
    return frame


def array_of(series: pd.Series) -> ArrayLike:
    """The array a column holds: its extension array, or its numpy array (not a copy)."""
    if isinstance(series.dtype, np.dtype):
        return series.to_numpy(copy=False)
    return series.array


def frame_from_columns(columns: list[tuple[str, ArrayLike]], num_rows: int) -> pd.DataFrame:
    """A frame with a default index of `num_rows` rows and the 1-d arrays `columns` (numpy or
    extension arrays), each column its own block, the arrays taken as they are.

    What inserting them one by one (`frame[name] = Series(array, copy=False)`) builds, without
    rebuilding the frame's block list once per column (and without `pd.DataFrame(dict)`,
    which consolidates every object column into one block: a copy of them all)."""
    if not columns:
        return pd.DataFrame(index=pd.RangeIndex(num_rows))
    blocks = [
        (array.reshape(1, -1) if isinstance(array, np.ndarray) else array, np.array([i]))
        for i, (_, array) in enumerate(columns)
    ]
    return create_dataframe_from_blocks(
        blocks, index=pd.RangeIndex(num_rows), columns=pd.Index([name for name, _ in columns])
    )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a snapshot's cells are built.

    Reading a 50,000-row list with two multi-lookup columns creates some 100,000 lists; each
    700 allocations set off a collection, and the older generations' passes walk every object
    the process holds (pandas, pyarrow …), for nothing: the cells form no cycles. About half
    of reading such a list went there (issue 14 goal 4). The collector is switched back on as
    it was found (nested or concurrent readers: the last one out restores it), and collects as
    usual from then on.

    The switch is the process's: in the Functions host, site jobs running beside a read (up to
    `batchSize` of them) are not collected for its duration either, which they need not be for
    a fraction of a second. sp-sync itself never switches the collector off elsewhere while
    reads may run (the CLI's `_settle_heap` runs before any)."""
    global _paused, _was_enabled
    with _pause_lock:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _pause_lock:
            _paused -= 1
            if _paused == 0 and _was_enabled:
                gc.enable()


_pause_lock = threading.Lock()
_paused = 0
_was_enabled = True


def _read_columns(data: bytes, select: Select | None) -> StoredColumns:
    try:
        # No Arrow worker threads: the snapshot is already in memory, and a pool thread still
        # alive at interpreter exit aborts the process ("terminate called without an active
        # exception", apache/arrow#34314) — about one CLI run in six did so after succeeding.
        parquet = pq.ParquetFile(io.BytesIO(data), pre_buffer=False)
        schema = parquet.schema_arrow  # built anew on every access
        raw_meta = (schema.metadata or {}).get(_META_KEY)
        if raw_meta is None:
            # A Parquet file from elsewhere: best effort through pandas.
            return StoredColumns([], 0, [], {}, foreign=parquet.read(use_threads=False).to_pandas())
        meta = json.loads(raw_meta)
        if meta.get("format") != _FORMAT:
            raise StateError(_UNKNOWN_FORMAT.fill(format=repr(meta.get("format"))))
        native = [c["name"] for c in meta["columns"] if c["kind"] == _NATIVE]
        objects = [c for c in meta["columns"] if c["kind"] != _NATIVE]
        strings = [
            c["name"]
            for c in objects
            if c["kind"] in (_OBJECT, _JSON) and pa.types.is_string(schema.field(c["name"]).type)
        ]
        distinct = _mostly_distinct(parquet.metadata, strings)
        text = [name for name in strings if name not in distinct]
        if text:
            # Text columns are read as Parquet stored them, dictionary-encoded: decoding every
            # cell into one Arrow string buffer, only to find the distinct values again in
            # `_shared_values`, was most of loading a snapshot (issue 14 goal 4; about 5× the
            # time of the dictionary read for a 100,000-row list). JSON columns too: each
            # distinct cell text is parsed once (`_json_dictionary_values`). Not a column of
            # mostly distinct values (item URLs): Arrow would build a dictionary of every cell
            # only for each to be taken out again, about twice a plain read's time.
            parquet = pq.ParquetFile(
                io.BytesIO(data), pre_buffer=False, read_dictionary=text, metadata=parquet.metadata
            )
        native_table = parquet.read(columns=native, use_threads=False) if native else None
        natives: dict[str, ArrayLike] = {}
        if native_table is not None:
            for col in meta["columns"]:
                if col["kind"] == _NATIVE:
                    column = native_table.column(col["name"])
                    natives[col["name"]] = array_of(
                        _column_from_arrow(column, col["kind"], col["dtype"])
                    )
            del native_table
        total = int(meta["num_rows"])
        rows = select(natives) if select is not None and not meta["index"] else None
        if rows is not None:
            natives = {name: array.take(rows) for name, array in natives.items()}
        values: dict[str, np.ndarray] = {}
        # Dictionary-encoded text and dates are read whole: in Arrow they are a few bytes a
        # row, and one take per column puts every cell in place (no join of row groups).
        whole = [
            c["name"]
            for c in objects
            if c["kind"] == _OBJECT
            and (c["name"] in text or pa.types.is_date32(schema.field(c["name"]).type))
        ]
        if whole:
            table = parquet.read(columns=whole, use_threads=False)
            if table.num_rows != total:
                raise StateError(_ROWS_MISSING)
            for name in whole:
                values[name] = _object_values(table.column(name), _OBJECT, {}, rows)
            del table
        objects = [c for c in objects if c["name"] not in values]
        # The other object columns (text that hardly repeats, JSON, lists) one row group at a
        # time, so their Arrow copy is never whole in memory beside the frame being built;
        # each column's row groups are joined once at the end (most lists are one row group).
        # Growing Python lists held every column twice at the peak.
        parts: dict[str, list[np.ndarray]] = {c["name"]: [] for c in objects}
        shared: dict[str, dict[Any, Any]] = {c["name"]: {} for c in objects}
        if objects:
            at = 0
            for group in range(parquet.num_row_groups):
                part = parquet.read_row_group(
                    group, columns=[c["name"] for c in objects], use_threads=False
                )
                for col in objects:
                    name = col["name"]
                    column = part.column(name)
                    if name in distinct and col["kind"] == _OBJECT:
                        # Text that hardly repeats: nothing to share, each cell its own `str`.
                        got = np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
                    else:
                        got = _object_values(column, col["kind"], shared[name])
                    parts[name].append(got)
                    del column
                at += part.num_rows
                del part
            if at != total:
                raise StateError(_ROWS_MISSING)
        for name, pieces in parts.items():
            joined = _chunks_values(pieces)
            values[name] = joined if rows is None else joined.take(rows)
        del parts
    except (pa.ArrowException, OSError) as exc:
        raise StateError(_CORRUPT) from exc

    columns: list[tuple[str, ArrayLike]] = [
        (c["name"], natives.pop(c["name"]) if c["kind"] == _NATIVE else values.pop(c["name"]))
        for c in meta["columns"]
    ]
    extra = meta.get("extra")
    return StoredColumns(
        columns,
        total if rows is None else len(rows),
        list(meta["index"]),
        dict(extra) if isinstance(extra, dict) else {},
        selected=rows is not None,
    )


def _object_array(values: list[Any]) -> np.ndarray:
    """`values` as a 1-d object array: numpy would turn list values of equal length into a
    second dimension, so those are taken one by one (`fromiter` keeps each as one cell)."""
    if any(isinstance(v, list | tuple) for v in values):
        return np.fromiter(values, dtype=object, count=len(values))
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _object_values(
    column: pa.ChunkedArray, kind: str, shared: dict[Any, Any], rows: np.ndarray | None = None
) -> np.ndarray:
    """Python values of one row group of an object column (see `_column_from_arrow`), as a
    1-d object array; with `rows`, only those rows (`.take(rows)`) of a text or date column.

    Text and dates (most columns) come as an array straight from `_shared_values`: no Python
    list of the values, and no walk over them looking for lists (issue 14 goal 4: that walk and
    the JSON column's per-cell parsing were most of loading a snapshot)."""
    if kind == _JSON:
        if pa.types.is_dictionary(column.type):
            return _chunks_values(
                [_json_dictionary_values(c.dictionary, c.indices) for c in column.chunks]
            )
        return _object_array(_json_column(column.to_pylist()))
    if pa.types.is_dictionary(column.type):
        return _dictionary_values(column, shared, rows)
    if (
        pa.types.is_string(column.type)
        or pa.types.is_large_string(column.type)
        or pa.types.is_date32(column.type)
    ):
        return _shared_values(column, shared, rows)
    assert rows is None
    return _object_array(column.to_pylist())


def is_default_index(index: pd.Index) -> bool:
    return (
        isinstance(index, pd.RangeIndex)
        and index.start == 0
        and index.step == 1
        and index.name is None
    )


def _column_to_arrow(series: pd.Series) -> tuple[str, pa.Array | pa.ChunkedArray]:
    if series.dtype != object:
        try:
            return _NATIVE, pa.Array.from_pandas(series)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise StateError(
                _CANNOT_STORE.fill(column=repr(series.name), dtype=str(series.dtype))
            ) from exc
    values = [_plain(v) for v in series.tolist()]
    if len(_kinds(values)) <= 1:
        try:
            return _OBJECT, pa.array(values, from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            pass
    # Mixed types (e.g. the offending values in data-quality records). Arrow would coerce them
    # to one type (an int next to dates becomes a date), so keep them as tagged JSON instead.
    return _JSON, pa.array([None if v is None else _json_dumps(v) for v in values], pa.string())


def _kinds(values: list[Any]) -> set[str]:
    """Distinct value kinds in a column, list elements included ("list:int"); None/NaN ignored."""
    kinds: set[str] = set()
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if isinstance(value, list):
            inner = _kinds(value)
            kinds.add("list:" + ",".join(sorted(inner)))
        elif isinstance(value, dt.datetime):  # pd.Timestamp included
            kinds.add(f"datetime:{value.tzinfo}")
        else:
            kinds.add(type(value).__name__)
        if len(kinds) > 1:
            break
    return kinds


def _column_from_arrow(column: pa.ChunkedArray, kind: str, dtype: str) -> pd.Series:
    if kind == _OBJECT:
        return pd.Series(column.to_pylist(), dtype=object)
    if kind == _JSON:
        return pd.Series(
            [None if v is None else _json_loads(v) for v in column.to_pylist()], dtype=object
        )
    target = pd.api.types.pandas_dtype(dtype)
    if isinstance(target, pd.api.extensions.ExtensionDtype) and hasattr(target, "__from_arrow__"):
        # Nullable Int64/boolean/str etc. rebuild themselves from Arrow without a float detour.
        return pd.Series(target.__from_arrow__(column), dtype=target)
    series = column.to_pandas()
    if series.dtype != target:
        series = series.astype(target)
    return series


def _shared_values(
    column: pa.ChunkedArray, shared: dict[Any, Any], rows: np.ndarray | None = None
) -> np.ndarray:
    """A text or date column as an object array of `str`/`date`/None, one Python object per
    distinct value.

    Choice values, names, e-mails and dates repeat on most rows: sharing them keeps a large
    snapshot in memory at a fraction of one object per cell (same values, same dtype), and
    builds far fewer objects. `shared` carries the distinct values from row group to row group.
    """
    encoded = column.combine_chunks().dictionary_encode() if len(column) else None
    if encoded is None or len(encoded.dictionary) * 2 > len(column):
        if pa.types.is_date32(column.type):
            values = np.asarray(column.to_pylist(), dtype=object)
        else:
            values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
        return values if rows is None else values.take(rows)
    codes = encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(zero_copy_only=False)
    return _decoded(encoded.dictionary, codes if rows is None else codes[rows], shared, share=True)


def _dictionary_values(
    column: pa.ChunkedArray, shared: dict[Any, Any], rows: np.ndarray | None = None
) -> np.ndarray:
    """`_shared_values` of a text column read dictionary-encoded: the same values (`str` or
    None, one object per distinct value when values repeat), without decoding every cell.
    Row groups' dictionaries are unified first: each distinct value is decoded once and one
    take puts every cell in place."""
    if column.num_chunks > 1:
        column = column.unify_dictionaries()
    if column.num_chunks == 0:
        return np.empty(0 if rows is None else len(rows), dtype=object)
    dictionary = column.chunks[0].dictionary
    n = len(dictionary)
    parts = [c.indices.fill_null(n).to_numpy(zero_copy_only=False) for c in column.chunks]
    codes = parts[0] if len(parts) == 1 else np.concatenate(parts)
    # Mostly distinct (URLs, free text): sharing would find little to share.
    return _decoded(
        dictionary, codes if rows is None else codes[rows], shared, share=n * 2 <= len(column)
    )


#: Stored bytes per row above which a text column is read plain, not dictionary-encoded: a
#: column that repeats its values stores a small dictionary and an index of a few bits per row;
#: tens of bytes a row are values that hardly repeat (URLs, free text). Speed only: either
#: read gives the same values (`_shared_values` shares what repeats in a plain read).
_DISTINCT_BYTES_PER_ROW = 32


def _mostly_distinct(metadata: pq.FileMetaData, names: list[str]) -> set[str]:
    """Which of the columns `names` store so many bytes per row that their values mostly
    differ."""
    wanted = set(names)
    stored: dict[str, int] = {}
    rows = 0
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        rows += row_group.num_rows
        for i in range(row_group.num_columns):
            column = row_group.column(i)
            if column.path_in_schema in wanted:
                name = column.path_in_schema
                stored[name] = stored.get(name, 0) + column.total_uncompressed_size
    return {name for name, size in stored.items() if size > _DISTINCT_BYTES_PER_ROW * rows}


def _chunks_values(parts: list[np.ndarray]) -> np.ndarray:
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0, dtype=object)


def _json_dictionary_values(dictionary: pa.Array, indices: pa.Array) -> np.ndarray:
    """The cells of a JSON column read dictionary-encoded, as `_json_column` of every cell's
    text gives them: each distinct text is parsed once (a multi-lookup column repeats a few
    thousand title lists over 50,000 rows, and `[]` on a third of them), then put in every row
    that holds it. A mutable value is never shared between rows: a flat list (the usual cell)
    is copied per row, and a cell that may hold a nested list or a dict is parsed again for
    each of its rows. Immutable values (text, numbers, tagged dates) are shared, as text
    columns' values are."""
    texts = dictionary.to_pylist()
    n = len(texts)
    uniques = np.empty(n + 1, dtype=object)
    uniques[:n] = _object_array(_json_column(texts))
    uniques[n] = None
    codes = indices.fill_null(n).to_numpy(zero_copy_only=False)
    out = uniques[codes]
    if n == 0:
        return out
    # By the text: a list whose only bracket is its own holds scalars (a bracket inside a
    # string only sends the cell the slow, exact way); any brace may be a dict.
    is_list = pc.starts_with(dictionary, "[")
    nested = pc.or_(
        pc.greater(pc.count_substring(dictionary, "["), 1),
        pc.greater(pc.count_substring(dictionary, "{"), 0),
    )
    flat = np.append(pc.and_not(is_list, nested).to_numpy(zero_copy_only=False), False)
    deep = np.append(nested.to_numpy(zero_copy_only=False), False)
    rows = np.flatnonzero(flat[codes])
    if len(rows):
        out[rows] = np.fromiter(map(list, out[rows]), dtype=object, count=len(rows))
    for row in np.flatnonzero(deep[codes]).tolist():
        out[row] = _json_column([texts[codes[row]]])[0]
    return out


def _decoded(
    dictionary: pa.Array, codes: np.ndarray, shared: dict[Any, Any], *, share: bool
) -> np.ndarray:
    """The value of each code as an object array (`len(dictionary)`: None); with `share`
    each distinct value is the one object `shared` holds for it (see `_shared_values`)."""
    uniques = np.empty(len(dictionary) + 1, dtype=object)
    if share:
        uniques[:-1] = [shared.setdefault(v, v) for v in dictionary.to_pylist()]
    else:
        uniques[:-1] = dictionary.to_numpy(zero_copy_only=False)
    uniques[-1] = None
    return uniques[codes]


def _plain(value: Any) -> Any:
    """numpy scalars/arrays → Python values so Arrow infers the same types as for lists."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


# Tagged JSON for mixed object columns: plain JSON where it is exact, a one-key dict otherwise.
def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, list) and all(type(v) is str or type(v) is int for v in value):
        return value  # the common cell (lookup ids, choices): every element encodes as itself
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_encode(_plain(v)) for v in value]
    if isinstance(value, dict):
        return {"$dict": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, np.generic):
        return _encode(value.item())
    if value is pd.NA or value is pd.NaT:
        return None
    return {"$repr": repr(value)}


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        ((tag, inner),) = value.items()
        if tag == "$float":
            return float(inner)
        if tag == "$datetime":
            return pd.Timestamp(inner)
        if tag == "$date":
            return dt.date.fromisoformat(inner)
        if tag == "$dict":
            return {_decode(k): _decode(v) for k, v in inner}
        return inner  # $repr: the text is all that can be kept
    return value


#: What `json.dumps(…, ensure_ascii=False, allow_nan=False)` builds on every call, built once.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def _json_dumps(value: Any) -> str:
    return _ENCODER.encode(_encode(value))


def _json_loads(text: str) -> Any:
    return _decode(json.loads(text))


def _tagged(obj: dict[str, Any]) -> Any:
    """`_decode` of one tagged dict, as a `json.loads` object hook: the hook runs bottom-up, so
    the tag's inner values are decoded already."""
    ((tag, inner),) = obj.items()
    if tag == "$float":
        return float(inner)
    if tag == "$datetime":
        return pd.Timestamp(inner)
    if tag == "$date":
        return dt.date.fromisoformat(inner)
    if tag == "$dict":
        return {k: v for k, v in inner}
    return inner  # $repr: the text is all that can be kept


def _json_column(texts: list[str | None]) -> list[Any]:
    """`[_json_loads(t) if t is not None else None for t in texts]` in one parse: the cells
    are joined into one JSON array (each cell is one JSON value written by `_json_dumps`)."""
    if None not in texts:  # the common column (lookup ids, choices): no empty cell to skip
        whole: list[Any] = json.loads("[" + ",".join(texts) + "]", object_hook=_tagged)  # type: ignore[arg-type]
        return whole
    present = [t for t in texts if t is not None]
    if not present:
        return [None] * len(texts)
    parsed = iter(json.loads("[" + ",".join(present) + "]", object_hook=_tagged))
    return [None if t is None else next(parsed) for t in texts]
