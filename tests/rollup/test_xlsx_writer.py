"""The xlsx writer on its own: any table, no rollup layout, read back with openpyxl."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
from openpyxl import Workbook, load_workbook

from sp_sync.report.xlsx_writer import COUNT_FORMAT, DATE_FORMAT, Column, XlsxBook, finish_sheet

COLUMNS = (
    Column("title"),
    Column("status", "choice"),
    Column("items", "int"),
    Column("due_date", "date"),
    Column("link", "link"),
)


def _book(language: str = "sv", max_rows: int = 1_048_576) -> XlsxBook:
    wb = Workbook()
    # openpyxl stamps a new workbook with the clock; two renders a second apart would differ.
    wb.properties.created = wb.properties.modified = dt.datetime(2026, 3, 30, 5, 15)
    book = XlsxBook(wb, language=language, max_rows=max_rows)
    wb.remove(wb.worksheets[0])
    return book


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "title": ["=1+1", "Plain"],
            "status": ["Ny", "Klar"],
            "items": [1234, None],
            "due_date": [dt.date(2026, 3, 1), None],
            "link": ["https://example.org/a?x=1&y=2", None],
        }
    )


def test_table_values_kinds_and_links_read_back() -> None:
    book = _book(language="en")
    book.translate = lambda v: {"Ny": "New"}.get(v, v)
    ws = book.new_sheet("Data/1")
    info = book.write_table(ws, _frame(), COLUMNS, table_base="Data")
    finish_sheet(ws)
    data = book.to_bytes(dt.datetime(2026, 3, 30, 7, 15))

    assert (info.first_row, info.last_row, info.letter("link")) == (5, 6, "E")
    read = load_workbook(io.BytesIO(data))
    assert read.sheetnames == ["Data-1"]
    sheet = read["Data-1"]
    rows = list(sheet.iter_rows(min_row=4, max_row=6, values_only=True))
    assert rows[0] == ("Title", "Status", "Items", "Due date", "Link")
    # A formula-looking text stays text; the choice is translated; numbers and dates are values.
    assert rows[1][:4] == ("=1+1", "New", 1234, dt.datetime(2026, 3, 1))
    assert rows[2][:4] == ("Plain", "Klar", None, None)
    assert sheet["C5"].number_format == COUNT_FORMAT
    assert sheet["D5"].number_format == DATE_FORMAT
    assert sheet["E5"].hyperlink.target == "https://example.org/a?x=1&y=2"
    assert sheet["E6"].value is None
    assert list(sheet.tables) == ["Data"]
    assert sheet.freeze_panes == "A5"


def test_same_content_same_bytes_and_rows_beyond_the_limit_are_noted() -> None:
    def render() -> bytes:
        book = _book(max_rows=6)  # header on row 4, one row left for the note: one data row
        ws = book.new_sheet("Data")
        book.write_table(ws, _frame(), COLUMNS, table_base="Data")
        return book.to_bytes(dt.datetime(2026, 3, 30, 7, 15))

    first = render()
    assert render() == first
    sheet = load_workbook(io.BytesIO(first))["Data"]
    assert sheet["A5"].value == "=1+1"
    assert str(sheet["A6"].value).startswith("… 1 rader visas inte")
    assert sheet.tables["Data"].ref == "A4:E5"
