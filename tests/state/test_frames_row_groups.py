"""Snapshots written and read one row group at a time (issue 14 goal 3) round-trip exactly.

`frame_to_parquet` converts and writes 65,536 rows at a time and `frame_from_parquet` rebuilds
object columns per row group; here the group size is made tiny so that every column kind —
text, dates, lists, mixed values stored as JSON, nullable ints, timestamps, a column that is
empty in some groups only — crosses group boundaries.
"""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pyarrow.parquet as pq
import pytest

from sp_sync.state import frames
from sp_sync.state.frames import frame_from_parquet, frame_to_parquet
from tests.state.helpers import snapshot


def test_every_column_kind_round_trips_across_row_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames, "ROW_GROUP_ROWS", 4)
    frame = snapshot(3, n=23)
    n = len(frame)
    frame["late_text"] = pd.Series([None] * (n - 2) + ["x", "y"], dtype=object)
    frame["mixed"] = pd.Series([[1, 2] if i % 2 else "text" for i in range(n)], dtype=object)
    frame["days"] = pd.Series([dt.date(2026, 1, 1 + i % 3) for i in range(n)], dtype=object)
    data = frame_to_parquet(frame)
    assert pq.ParquetFile(io.BytesIO(data)).num_row_groups == -(-n // 4)
    back = frame_from_parquet(data)
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert [str(t) for t in back.dtypes] == [str(t) for t in frame.dtypes]
    assert type(back["mixed"][1]) is list and back["mixed"][0] == "text"


def test_repeated_values_come_back_as_one_object_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames, "ROW_GROUP_ROWS", 10)
    county = "".join(["Skåne", " län"])  # built at run time: not a shared constant
    frame = pd.DataFrame(
        {
            "County": pd.Series([county if i % 4 else None for i in range(100)], dtype=object),
            "Due": pd.Series([dt.date(2026, 3, 29)] * 100, dtype=object),
        }
    )
    back = frame_from_parquet(frame_to_parquet(frame))
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    counties = {id(v) for v in back["County"] if v is not None}
    assert len(counties) == 1 and len({id(v) for v in back["Due"]}) == 1


def test_text_read_dictionary_encoded_is_exact_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """Text columns are read as Parquet's dictionary pages (no per-cell decode): mostly distinct
    text, nulls, a column empty in a whole group, and text whose dictionary outgrew Parquet's
    page limit (stored plain from there on) all come back as the same `str` values."""
    monkeypatch.setattr(frames, "ROW_GROUP_ROWS", 700)
    n = 2_000
    frame = pd.DataFrame(
        {
            "ID": range(1, n + 1),
            "url": pd.Series([f"https://x/items/{i}" for i in range(n)], dtype=object),
            "status": pd.Series([("Öppen", "Stängd", None)[i % 3] for i in range(n)], dtype=object),
            "late": pd.Series([None] * (n - 5) + ["a", "b", "a", None, "å"], dtype=object),
            # 2,000 distinct texts of 1,000 characters: past the 1 MB dictionary page limit.
            "long": pd.Series([f"{i:05d}" + "ä" * 995 for i in range(n)], dtype=object),
        }
    )
    data = frame_to_parquet(frame)
    back = frame_from_parquet(data)
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    for name in ("url", "status", "late", "long"):
        assert back[name].dtype == object
        assert {type(v) for v in back[name]} <= {str, type(None)}
    assert back["status"].isna().sum() == n // 3 + (n % 3 > 2)
