"""Lookup titles at the cost of what changed (issue 14 goal 4).

A list with a lookup column stores, per column, a digest of the `{target id: title}` map its
rows were resolved against (`lookup_title_map`). Tonight's target map differs from the one the
night started from only on the ids the target's own sync touched (`ListChanges`): when the
stored digest is that of the night's starting map, only the rows pointing at one of those ids
can hold a title that moved, and only they are re-resolved.

The digest is a sum, modulo 2**64, of one hash per target row (id and title, two keys), so
the digest of the starting map is tonight's digest minus the touched rows as they are plus the
touched rows as they were: no pass over the target's other rows is needed to know it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "TitleSums",
    "county_sums",
    "rows_pointing_at",
    "title_sums",
    "titles_at",
    "titles_of",
]

_MASK = (1 << 64) - 1
_KEY = "sp-sync-titles-1"  # 16 bytes (pandas' hash key)
_ID_MIX = np.uint64(0x9E3779B97F4A7C15)
_MIXES = (np.uint64(1), np.uint64(0xD6E8FEB86659FD93))  # odd: a bijection of the title hash
#: Names the digest's kind: a stored digest of another kind (an older release) never matches.
_PREFIX = "sum1"


@dataclass(frozen=True)
class TitleSums:
    """The digest of a `{target id: title}` map as its parts: row count and two sums."""

    column: str
    rows: int
    first: int
    second: int

    def plus(self, other: TitleSums) -> TitleSums:
        return TitleSums(
            self.column,
            self.rows + other.rows,
            (self.first + other.first) & _MASK,
            (self.second + other.second) & _MASK,
        )

    def minus(self, other: TitleSums) -> TitleSums:
        return TitleSums(
            self.column,
            self.rows - other.rows,
            (self.first - other.first) & _MASK,
            (self.second - other.second) & _MASK,
        )

    def digest(self) -> str:
        return f"{_PREFIX}:{self.rows}:{self.first:016x}{self.second:016x}:{self.column}"

    @classmethod
    def parse(cls, text: Any) -> TitleSums | None:
        """The parts of `digest()`'s text; None for anything else."""
        if not isinstance(text, str):
            return None
        parts = text.split(":", 3)
        if len(parts) != 4 or parts[0] != _PREFIX or len(parts[2]) != 32:
            return None
        try:
            return cls(parts[3], int(parts[1]), int(parts[2][:16], 16), int(parts[2][16:], 16))
        except ValueError:
            return None


def titles_of(values: np.ndarray) -> np.ndarray:
    """The titles `lookup_title_map` gives for `values` (a target column's cells): `""` for
    None and NaN, `str(value)` otherwise, as an object array of `str`."""
    values = np.asarray(values, dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        return values
    out = np.empty(len(values), dtype=object)
    out[:] = [
        str(t) if t is not None and not (isinstance(t, float) and np.isnan(t)) else ""
        for t in values.tolist()
    ]
    return out


def title_sums(target: pd.DataFrame, column: str, positions: Any = None) -> TitleSums:
    """The digest parts of the rows of `target` at `positions` (all rows when None)."""
    if not len(target) or column not in target.columns:
        return TitleSums(column, 0, 0, 0)
    ids = target["ID"].to_numpy(dtype="int64")
    cells = target[column].to_numpy(dtype=object)
    if positions is not None:
        ids, cells = ids[positions], cells[positions]
    return _chunked_sums(column, ids, cells, titles_of)


def county_sums(target: pd.DataFrame, column: str | None, positions: Any = None) -> TitleSums:
    """Like `title_sums`, of what `quality.cross_list_inputs` reads from a lookup target: its
    ids and (when it has one, `column`) its county cells as `str` (numpy's `astype(str)`)."""
    tag = f"county/{column or ''}"
    if not len(target) or "ID" not in target.columns:
        return TitleSums(tag, 0, 0, 0)
    ids = target["ID"].to_numpy(dtype="int64")
    if column is not None and column in target.columns:
        cells = target[column].to_numpy(dtype=object)
    else:
        cells = np.full(len(ids), "", dtype=object)
    if positions is not None:
        ids, cells = ids[positions], cells[positions]
    return _chunked_sums(tag, ids, cells, lambda part: part.astype(str).astype(object))


#: Rows hashed at a time: the sums add up, and the text of 1,000,000 cells converted at once
#: (`astype(str)` is a fixed-width copy of them all) raised a full sync's peak by 90 MB.
_CHUNK = 65_536


def _chunked_sums(
    column: str, ids: np.ndarray, cells: np.ndarray, text: Callable[[np.ndarray], np.ndarray]
) -> TitleSums:
    total = TitleSums(column, 0, 0, 0)
    for start in range(0, len(ids), _CHUNK):
        part = slice(start, start + _CHUNK)
        total = total.plus(_sums(column, ids[part], text(cells[part])))
    return total


def _sums(column: str, ids: np.ndarray, strings: np.ndarray) -> TitleSums:
    if not len(ids):
        return TitleSums(column, 0, 0, 0)
    # The same hashes either way; categorizing first pays off only on many (repeated) values,
    # and on a few it costs more than the hashing (an Index of them is built).
    text = pd.util.hash_array(strings, hash_key=_KEY, categorize=len(strings) > 1000)
    hashed_ids = pd.util.hash_array(ids)
    sums = []
    for mix in _MIXES:  # two sums of differently mixed (id, title) hashes
        per_row = pd.util.hash_array((text * mix) ^ (hashed_ids * _ID_MIX))
        sums.append(int(per_row.sum(dtype=np.uint64)))
    return TitleSums(column, len(ids), sums[0], sums[1])


def positions_of(target: pd.DataFrame, ids: Iterable[int]) -> np.ndarray:
    """Positions in `target` of those of `ids` it holds, in position order."""
    wanted = np.fromiter(ids, dtype="int64")
    if not len(target) or not len(wanted):
        return np.empty(0, dtype=np.intp)
    have = target["ID"].to_numpy(dtype="int64")
    if bool((have[1:] > have[:-1]).all()):  # ID order, each id once: a snapshot
        wanted.sort()
        at = np.searchsorted(have, wanted)
        inside = at < len(have)
        at = at[inside]
        return np.unique(at[have[at] == wanted[inside]])
    return np.flatnonzero(np.isin(have, wanted))


def titles_at(target: pd.DataFrame, column: str, ids: Iterable[int]) -> dict[int, str]:
    """`lookup_title_map(target, column)` restricted to `ids` (those the target holds)."""
    if not len(target) or column not in target.columns:
        return {}
    at = positions_of(target, ids)
    keys = target["ID"].to_numpy(dtype="int64")[at].tolist()
    titles = titles_of(target[column].to_numpy(dtype=object)[at]).tolist()
    return dict(zip(keys, titles, strict=True))


def rows_pointing_at(rows: pd.DataFrame, name: str, kind: str, ids: set[int]) -> np.ndarray | None:
    """Positions of the rows whose lookup column `name` (`f"{name}Id"`) holds one of `ids`;
    None when a cell is of a shape this cannot read (the caller then resolves every row)."""
    if not ids or not len(rows):
        return np.empty(0, dtype=np.intp)
    cells = rows[f"{name}Id"]
    if kind == "lookup":
        # `apply_lookup_titles` reads a cell as `int(cell)`: whole numbers (or missing) only.
        numbers = pd.to_numeric(cells, errors="coerce").to_numpy(dtype="float64")
        present = ~np.isnan(numbers)
        if int(present.sum()) != int(cells.notna().sum()):
            return None
        if not bool((numbers[present] == np.floor(numbers[present])).all()):
            return None
        return np.flatnonzero(np.isin(numbers, np.fromiter(ids, dtype="float64")))
    values = cells.tolist()
    # Set membership is `int(id) in ids` only for int elements (what stored rows hold).
    try:
        kinds = set(map(type, itertools.chain.from_iterable(filter(None, values))))
    except (TypeError, ValueError):  # a cell that is no list (NaN) or has no truth value
        kinds = set(map(type, itertools.chain.from_iterable(v for v in values if type(v) is list)))
    else:
        if not kinds - {int}:
            # Every cell is falsy or an iterable of ints, read as `apply_lookup_titles` does.
            apart = np.fromiter(
                map(ids.isdisjoint, [v or () for v in values]), dtype=bool, count=len(values)
            )
            return np.flatnonzero(~apart)
    if kinds - {int}:
        return None
    hits: list[int] = []
    for p, value in enumerate(values):
        if type(value) is list:
            if not ids.isdisjoint(value):
                hits.append(p)
        elif value is not None and not (isinstance(value, float) and np.isnan(value)):
            return None
    return np.asarray(hits, dtype=np.intp)
