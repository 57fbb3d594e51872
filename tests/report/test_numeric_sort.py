"""The tables' sorts by numeric keys go through np.lexsort instead of building and sorting a
frame, and per-county counts through np.bincount of the county codes instead of value_counts
(issue 14 goal 4): the same order and the same figures as before."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sp_sync.report.tables import _numeric_sort_positions, _sort_positions


def _frame_order(df: pd.DataFrame, keys: list[tuple[pd.Series | str, bool]]) -> np.ndarray:
    tmp = pd.DataFrame(index=df.index)
    names = []
    for n, (key, _ascending) in enumerate(keys):
        tmp[f"k{n}"] = df[key] if isinstance(key, str) else key
        names.append(f"k{n}")
    tmp["_at"] = np.arange(len(df))
    ordered = tmp.sort_values(
        names, ascending=[a for _k, a in keys], kind="mergesort", na_position="last"
    )
    return ordered["_at"].to_numpy()


def test_numeric_keys_sort_as_the_frame_sort_did() -> None:
    rng = np.random.default_rng(14)
    for n in (0, 1, 7, 500):
        index = pd.RangeIndex(n) if n % 2 else pd.Index(rng.permutation(n) + 10)
        df = pd.DataFrame({"id": rng.integers(0, 5, n)}, index=index)
        days = rng.choice([-np.inf, np.inf, 0.0, -0.0, 3.5, 20000.0], n)
        keys: list[tuple[pd.Series | str, bool]] = [
            (pd.Series(days, index=index), True),
            (pd.Series(rng.integers(-3, 3, n), index=index), True),
            ("id", True),
        ]
        expected = _frame_order(df, keys)
        fast = _numeric_sort_positions(df, keys)
        assert fast is not None or n == 0
        assert _sort_positions(df, keys).tolist() == expected.tolist()


def test_other_keys_take_the_frame_sort() -> None:
    df = pd.DataFrame({"id": [3, 1, 2], "title": ["b", "a", "b"]}, index=[5, 6, 7])
    nan = pd.Series([1.0, np.nan, 0.0], index=df.index)
    misaligned = pd.Series([1, 2, 3], index=[7, 6, 5])
    for keys in (
        [("title", True), ("id", True)],  # text
        [("id", False)],  # descending
        [(nan, True)],  # a missing value goes last
        [(misaligned, True)],  # aligned by label, not by position
        [(pd.Series([True, False, True], index=df.index), True)],  # not int64 / float64
    ):
        assert _numeric_sort_positions(df, keys) is None
        assert _sort_positions(df, keys).tolist() == _frame_order(df, keys).tolist()


def test_county_counts_are_the_value_counts_of_the_reference_counties() -> None:
    from sp_sync.report.tables import _codes, _count, _county_counts

    names = ("Skåne län", "Gotlands län", "Uppsala län")
    values = pd.Series(
        ["Skåne län", None, "Okänt län", "Gotlands län", "Skåne län", float("nan"), "Skåne län"],
        dtype=object,
    )
    mask = pd.Series([True, True, True, False, True, True, False])
    codes = _codes(values, names)
    for rows in (None, mask, mask.to_numpy()):
        counted = _county_counts(codes, rows)
        picked = values if rows is None else values[np.asarray(rows, dtype=bool)]
        expected = picked.value_counts()
        for name in (*names, "Okänt län", "Inget"):
            want = _count(expected, name) if name in names else 0
            assert _count(counted, name) == want, (rows is None, name)
    empty = _county_counts(_codes(pd.Series([], dtype=object), names))
    assert [_count(empty, n) for n in names] == [0, 0, 0]
