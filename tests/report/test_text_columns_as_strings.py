"""Text columns that come from the state store as object columns are rendered through the
Arrow path (issue 14 goal 4): layouts._as_strings turns a column holding only text into a
pandas string column, and the workbook's bytes are the same as through the value-by-value path."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from sp_sync.report import layouts
from sp_sync.report.layouts import _as_strings, _lines_needed, _longest_line, render_county
from sp_sync.report.publish import build_tables
from sp_sync.report.xlsx_writer import Column
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_snapshots

TEXTS = [
    "kort",
    None,
    "två\nrader",
    "  mellanslag  ",
    "=SUMMA(A1)",
    "x" * 90,
    "å ä ö " * 20,
    "",
    float("nan"),
    "a & b < c > d",
]


def test_only_columns_holding_nothing_but_text_become_strings() -> None:
    df = pd.DataFrame(
        {
            "text": pd.Series(TEXTS, dtype=object),
            "listed": pd.Series([["a", "b"], "c"] + [None] * 8, dtype=object),
            "numbers": pd.Series([1, "två"] + [None] * 8, dtype=object),
            "empty": pd.Series([None] * 10, dtype=object),
            "day": pd.Series(["2026-01-01"] * 10, dtype=object),
        }
    )
    columns = [
        Column("text"),
        Column("listed"),
        Column("numbers", "choice"),
        Column("empty"),
        Column("day", "date"),
    ]
    out = _as_strings(df, columns)
    assert isinstance(out["text"].dtype, pd.StringDtype)
    assert out["text"].isna().tolist() == [v is None or v != v for v in TEXTS]
    assert out["text"].dropna().tolist() == [v for v in TEXTS if isinstance(v, str)]
    for kept in ("listed", "numbers", "empty", "day"):
        assert out[kept].dtype == object, kept
    assert df["text"].dtype == object  # the caller's frame is left as it was


@pytest.mark.parametrize("wrap", [False, True])
def test_row_heights_and_widths_count_the_same_either_way(wrap: bool) -> None:
    as_object = pd.Series(TEXTS, dtype=object)
    as_string = as_object.astype(pd.StringDtype("pyarrow"))
    for per_line in (5.0, 12.5, 40.0):
        assert np.array_equal(
            _lines_needed(as_object, per_line, wrap=wrap),
            _lines_needed(as_string, per_line, wrap=wrap),
        )
    assert _longest_line(as_object) == _longest_line(as_string) == 120


def _parts(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_a_workbook_is_the_same_through_the_arrow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshots = make_snapshots(knowledge=500, feedback=300, dialogues_per_county=2)
    # Object columns, as the state store gives them (the fixture's are string columns).
    snapshots = {
        title: df.astype({c: object for c in df.columns if isinstance(df[c].dtype, pd.StringDtype)})
        for title, df in snapshots.items()
    }
    tables = build_tables(
        snapshots, None, None, site_url=SITE, generated_at=GENERATED_AT, time_zone=STHLM
    )
    county = tables.county_knowledge["Skåne län"]
    assert any(county[c].dtype == object for c in county.columns)
    fast = render_county(tables, "Skåne län")
    monkeypatch.setattr(layouts, "_as_strings", lambda df, columns: df)
    slow = render_county(tables, "Skåne län")
    assert _parts(fast.data) == _parts(slow.data)
