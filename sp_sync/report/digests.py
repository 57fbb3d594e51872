"""Row digests of frames, computed once and reused for every workbook's fingerprint (issue 14
goal 4: a night costs what changed).

sp_sync.report.fingerprint decides *what* a fingerprint covers; this module makes hashing it
cheap:

* every column is hashed on its own with pandas' public `hash_pandas_object`, so only a column
  that really holds lists (multi-choice, multi-lookup) pays for turning its values into text;
* a table's cells are hashed once into a matrix of 64-bit row × column digests
  (`TableDigest`); a department's or county's workbook then digests only its rows of that
  matrix instead of filtering the table and hashing the copy again, 27 times a night;
* tables with the same columns and dtypes (the 21 per-county tables of one kind) are hashed
  together, one call per column instead of one per column and table (`TableDigest.many`): the
  calls' fixed cost was most of the hashing.

A digest covers the column names, their dtypes, the number of rows and every cell, in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TableDigest", "column_hashes", "update_frame"]


def _text_if_unhashable(value: Any) -> Any:
    return repr(value) if isinstance(value, list | tuple | dict | set) else value


#: Columns whose values are nearly all distinct (item links): hashed without first collecting
#: the distinct values, which only pays where values repeat (4× faster for links). Chosen by
#: name, never by the data, so that a column is always hashed the same way.
_DISTINCT_COLUMNS = frozenset({"link", "_item_url"})


def column_hashes(column: pd.Series) -> np.ndarray:
    """One uint64 per value of `column` (equal values, equal hashes; the row's index is not
    part of it)."""
    categorize = str(column.name) not in _DISTINCT_COLUMNS
    try:
        hashed = pd.util.hash_pandas_object(column, index=False, categorize=categorize)
    except TypeError:
        # Lists and other unhashable values are hashed by their repr.
        hashed = pd.util.hash_pandas_object(
            column.map(_text_if_unhashable), index=False, categorize=categorize
        )
    return hashed.to_numpy(dtype=np.uint64)


def _header(df: pd.DataFrame) -> bytes:
    return (
        repr([str(c) for c in df.columns]).encode()
        + repr([str(t) for t in df.dtypes]).encode()
        + str(len(df)).encode()
    )


def _without(df: pd.DataFrame, drop: Iterable[str]) -> pd.DataFrame:
    dropped = [c for c in drop if c in df.columns]
    return df.drop(columns=dropped) if dropped else df


def update_frame(h: Any, df: pd.DataFrame | None, drop: Iterable[str] = ()) -> None:
    """Feed `df` (without the columns in `drop`) into the hash object `h`."""
    if df is None:
        h.update(b"<none>")
        return
    df = _without(df, drop)
    h.update(_header(df))
    if len(df) == 0 or len(df.columns) == 0:
        return
    for name in df.columns:
        h.update(column_hashes(df[name]).tobytes())


def _cells(df: pd.DataFrame, n: int, k: int) -> np.ndarray:
    cells = np.empty((k, n), dtype=np.uint64)
    for j, name in enumerate(df.columns):
        if n:
            cells[j] = column_hashes(df[name])
    return cells


class TableDigest:
    """A table's cells hashed once; digests of the whole table or of a subset of its rows.

    `rows_where(column, value)` digests the rows whose `column` equals `value` exactly as
    `update_frame` would digest that filtered copy of the table (same header for its row count,
    the same cells, column by column)."""

    def __init__(
        self, df: pd.DataFrame, drop: Iterable[str] = (), *, cells: np.ndarray | None = None
    ) -> None:
        self._df = _without(df, drop)
        self._names = [str(c) for c in self._df.columns]
        self._dtypes = [str(t) for t in self._df.dtypes]
        n, k = len(self._df), len(self._df.columns)
        if cells is not None:  # hashed together with other tables (see `many`)
            self._cells = cells
        else:
            # Column-major: one column's hashes lie together, as update_frame feeds them.
            self._cells = _cells(self._df, n, k)
        self._groups: dict[str, tuple[np.ndarray, dict[Any, int]]] = {}

    @classmethod
    def many(cls, frames: Sequence[pd.DataFrame], drop: Iterable[str] = ()) -> list[TableDigest]:
        """A digest of each of `frames`; the frames with the same columns and dtypes are hashed
        as one table (a value hashes alike wherever it stands), then split again."""
        drop = tuple(drop)
        kept = [_without(df, drop) for df in frames]
        alike: dict[tuple[tuple[str, ...], tuple[str, ...]], list[int]] = {}
        for n, df in enumerate(kept):
            key = (tuple(str(c) for c in df.columns), tuple(str(t) for t in df.dtypes))
            alike.setdefault(key, []).append(n)
        out: list[TableDigest | None] = [None] * len(frames)
        for members in alike.values():
            sizes = [len(kept[n]) for n in members]
            if len(members) == 1 or sum(sizes) == 0:
                for n in members:
                    out[n] = cls(kept[n])
                continue
            joined = pd.concat([kept[n] for n in members], ignore_index=True)
            if [str(t) for t in joined.dtypes] != [str(t) for t in kept[members[0]].dtypes]:
                for n in members:  # the join changed a dtype: hash each on its own
                    out[n] = cls(kept[n])
                continue
            cells = _cells(joined, len(joined), len(joined.columns))
            ends = np.cumsum(sizes)
            for n, end, size in zip(members, ends.tolist(), sizes, strict=True):
                out[n] = cls(kept[n], cells=np.ascontiguousarray(cells[:, end - size : end]))
        return [d for d in out if d is not None]

    @property
    def columns(self) -> list[str]:
        return self._names

    def _update(self, h: Any, cells: np.ndarray, rows: int) -> None:
        h.update(repr(self._names).encode() + repr(self._dtypes).encode() + str(rows).encode())
        if rows == 0 or not self._names:
            return
        # Row-major bytes of the column-major matrix: each column's hashes in turn, in one call.
        h.update(np.ascontiguousarray(cells).tobytes())

    def update(self, h: Any) -> None:
        """The whole table, as update_frame(h, table, drop) would feed it."""
        self._update(h, self._cells, self._cells.shape[1])

    def update_rows_where(self, h: Any, column: str, value: object) -> None:
        """The rows whose `column` equals `value`, as update_frame(h, table[table[column] ==
        value], drop) would feed them."""
        codes, code_of = self._groups.get(column) or self._factorize(column)
        at = code_of.get(value, -1) if _hashable(value) else -1
        picked = np.flatnonzero(codes == at) if at >= 0 else np.empty(0, dtype=np.intp)
        self._update(h, self._cells[:, picked], len(picked))

    def _factorize(self, column: str) -> tuple[np.ndarray, dict[Any, int]]:
        codes, uniques = pd.factorize(self._df[column], use_na_sentinel=True)
        # A dict, not an Index: a workbook asks for one value, 27 times a table.
        self._groups[column] = (np.asarray(codes), {v: n for n, v in enumerate(uniques)})
        return self._groups[column]


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
