"""The writer's two text paths give the same cell XML: a pandas string column rendered in Arrow
throughout (sp_sync.report.xlsx_writer._string_cells) and any other column cleaned value by
value (safe_text) — for hostile text too (issue 14 goal 5)."""

from __future__ import annotations

import pandas as pd
import pytest
from openpyxl import Workbook

from sp_sync.report import xlsx_writer
from sp_sync.report.safe_text import MAX_CELL_CHARS, safe_text

HOSTILE: list[str | None] = [
    "plain",
    "",
    None,
    " leading space",
    "trailing space ",
    "\u3000ideographic space",
    "ends with a line\n",
    "two\nlines",
    "windows\r\nline\rends",
    "=SUM(A1:A2)",
    "+46 70 123",
    "-minus",
    "@mention",
    "\ttab first",
    "＝fullwidth",
    "a & b < c > d \"quoted\" 'single'",
    "bell\x07 and\x1f unit separator\x0b",
    "åäö ÅÄÖ – “typographic” ✓",
    "x" * (MAX_CELL_CHARS + 10),
    "y" * MAX_CELL_CHARS,
    "\x85next line first",
]


def _book(language: str) -> xlsx_writer.XlsxBook:
    return xlsx_writer.XlsxBook(
        Workbook(), language=language, translate=lambda v: f"<{v}> översatt"
    )


@pytest.mark.parametrize("kind", ["text", "choice"])
@pytest.mark.parametrize("wrap", [False, True])
@pytest.mark.parametrize("language", ["sv", "en"])
def test_string_columns_render_like_cell_by_cell(kind: str, wrap: bool, language: str) -> None:
    book = _book(language)
    rows = [str(5 + i) for i in range(len(HOSTILE))]
    arrow = xlsx_writer._joined(
        xlsx_writer._string_cells(
            book,
            kind,  # type: ignore[arg-type]
            pd.Series(HOSTILE, dtype="string"),
            "C",
            rows,
            wrap=wrap,
        )
    ).to_pylist()
    one_by_one = xlsx_writer._column_cells(book, kind, list(HOSTILE), "C", rows, [], wrap=wrap)  # type: ignore[arg-type]
    assert arrow == one_by_one
    # And what they agree on is right: cleaned, escaped, protected, truncated with the note.
    assert arrow[2] == ""  # a missing value: no cell
    if kind == "choice":  # translated per distinct value, then cleaned like any text
        assert "&lt;plain&gt; översatt" in arrow[0]
    else:
        assert arrow[1] == ""
        assert 'xml:space="preserve"' in arrow[3] and 'xml:space="preserve"' in arrow[5]
        assert "a &amp; b &lt; c &gt; d" in arrow[15]
        assert "\x07" not in arrow[16] and "\x1f" not in arrow[16]
        assert "windows\nline\nends" in arrow[8]
        shown = safe_text(HOSTILE[18] or "", language=language)
        assert shown in arrow[18] and len(shown) == MAX_CELL_CHARS
        assert f"<t>{'y' * MAX_CELL_CHARS}</t>" in arrow[19]
        quoted = f' s="{book.styles.quoted_wrapped if wrap else book.styles.quoted}"'
        assert quoted in arrow[9] and quoted in arrow[14]  # "=SUM(…)", "＝fullwidth"
