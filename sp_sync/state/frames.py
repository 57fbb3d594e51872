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
import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sp_sync.errors import StateError

__all__ = ["frame_from_parquet", "frame_to_parquet"]

_META_KEY = b"sp_sync.frame"
_FORMAT = 1

# Kinds of stored column.
_NATIVE = "native"  # Arrow conversion of a typed pandas column, dtype restored on read
_OBJECT = "object"  # an object column Arrow can type (str, list[str], date, bool …)
_JSON = "json"  # an object column of mixed values, stored as tagged JSON text


def frame_to_parquet(frame: pd.DataFrame) -> bytes:
    """Serialise `frame` to Parquet bytes (zstd), recording what is needed to restore it exactly."""
    names = list(frame.columns)
    if any(not isinstance(n, str) for n in names):
        raise StateError("A snapshot's column names must be text.")
    if len(set(names)) != len(names):
        raise StateError("A snapshot has duplicate column names.")

    index_names: list[str] = []
    if not _is_default_index(frame.index):
        index_names = [
            n if isinstance(n, str) else f"__index_level_{i}__"
            for i, n in enumerate(frame.index.names)
        ]
        if set(index_names) & set(names):
            raise StateError("A snapshot's index name clashes with a column name.")
        frame = frame.copy(deep=False)
        frame.index = frame.index.set_names(index_names)
        frame = frame.reset_index()

    arrays: list[pa.Array | pa.ChunkedArray] = []
    columns_meta: list[dict[str, str]] = []
    for name in frame.columns:
        series = frame[name]
        dtype = str(series.dtype)
        kind, array = _column_to_arrow(series)
        arrays.append(array)
        columns_meta.append({"name": name, "dtype": dtype, "kind": kind})

    meta = {
        "format": _FORMAT,
        "columns": columns_meta,
        "index": index_names,
        "index_dtypes": [str(frame[n].dtype) for n in index_names],
        "num_rows": len(frame),
    }
    table = pa.Table.from_arrays(arrays, names=[str(n) for n in frame.columns])
    table = table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def frame_from_parquet(data: bytes) -> pd.DataFrame:
    """Read bytes written by `frame_to_parquet` back into an identical DataFrame."""
    try:
        # No Arrow worker threads: the snapshot is already in memory, and a pool thread still
        # alive at interpreter exit aborts the process ("terminate called without an active
        # exception", apache/arrow#34314) — about one CLI run in six did so after succeeding.
        table = pq.read_table(io.BytesIO(data), use_threads=False, pre_buffer=False)
    except (pa.ArrowException, OSError) as exc:
        raise StateError(
            "A snapshot file in the state store cannot be read (corrupt Parquet)."
        ) from exc
    raw_meta = (table.schema.metadata or {}).get(_META_KEY)
    if raw_meta is None:
        # A Parquet file from elsewhere: best effort through pandas.
        return table.to_pandas()
    meta = json.loads(raw_meta)
    if meta.get("format") != _FORMAT:
        raise StateError(f"A snapshot file has unknown format {meta.get('format')!r}.")

    columns: dict[str, pd.Series] = {}
    for col in meta["columns"]:
        columns[col["name"]] = _column_from_arrow(
            table.column(col["name"]), col["kind"], col["dtype"]
        )
    frame = pd.DataFrame(columns, index=pd.RangeIndex(meta["num_rows"]))
    if meta["index"]:
        frame = frame.set_index(meta["index"])
        frame.index = frame.index.set_names(
            [None if n.startswith("__index_level_") else n for n in meta["index"]]
        )
    return frame


def _is_default_index(index: pd.Index) -> bool:
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
                f"Column {series.name!r} of type {series.dtype} cannot be stored."
            ) from exc
    values = series.tolist()
    types = set(map(type, values))  # C speed; the per-value walk below is for the rare cases
    types.discard(type(None))
    if len(types) == 1 and next(iter(types)) in _SCALAR_TYPES:
        # One plain scalar type (text, dates, booleans …): what `_kinds` would find, without
        # visiting every value in Python — this was most of a 100,000-row commit's time.
        try:
            return _OBJECT, pa.array(values, from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            pass
    values = [_plain(v) for v in values]
    if len(_kinds(values)) <= 1:
        try:
            return _OBJECT, pa.array(values, from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            pass
    # Mixed types (e.g. the offending values in data-quality records). Arrow would coerce them
    # to one type (an int next to dates becomes a date), so keep them as tagged JSON instead.
    return _JSON, pa.array([None if v is None else _json_dumps(v) for v in values], pa.string())


#: Exact types (not subclasses: `datetime` is a `date`, `bool` an `int`) whose columns Arrow types
#: the same way `_kinds` would classify them.
_SCALAR_TYPES = frozenset({str, bool, int, float, dt.date})


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
        if (
            pa.types.is_string(column.type)
            or pa.types.is_large_string(column.type)
            or pa.types.is_date32(column.type)
        ):
            return pd.Series(_shared_values(column), dtype=object)
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


def _shared_values(column: pa.ChunkedArray) -> np.ndarray:
    """A text or date column as an object array of `str`/`date`/None, one Python object per
    distinct value.

    Choice values, names, e-mails and dates repeat on most rows: sharing them keeps a large
    snapshot in memory at a fraction of one object per cell (same values, same dtype), and
    builds far fewer objects.
    """
    encoded = column.combine_chunks().dictionary_encode() if len(column) else None
    if encoded is None or len(encoded.dictionary) * 2 > len(column):
        if pa.types.is_date32(column.type):
            return np.asarray(column.to_pylist(), dtype=object)
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
    uniques = np.empty(len(encoded.dictionary) + 1, dtype=object)
    uniques[:-1] = encoded.dictionary.to_pylist()
    uniques[-1] = None
    indices = encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(zero_copy_only=False)
    return uniques[indices]


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


def _json_dumps(value: Any) -> str:
    return json.dumps(_encode(value), ensure_ascii=False, allow_nan=False)


def _json_loads(text: str) -> Any:
    return _decode(json.loads(text))
