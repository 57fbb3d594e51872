"""The column-at-a-time cell builders give exactly the cells the value-by-value code wrote
(issue 14 goal 5): numbers, dates, links, text edges, row heights and widths. Each test holds
the value-by-value rule written out in plain Python and compares whole columns, hostile values
included, so a shortcut that drifts from it fails here (and not only in a workbook diff)."""

from __future__ import annotations

import datetime as dt
import io
import math
import random
import re
import zipfile
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from sp_sync.report import layouts, xlsx_writer
from sp_sync.report.fingerprint import content_fingerprint
from sp_sync.report.safe_text import FORMULA_PREFIXES


def _book() -> xlsx_writer.XlsxBook:
    return xlsx_writer.XlsxBook(Workbook(), language="sv")


def _rows(n: int) -> list[str]:
    return [str(7 + i) for i in range(n)]


# --- numbers and dates --------------------------------------------------------------------------


def _reference_typed(book: xlsx_writer.XlsxBook, kind: str, values: list[Any]) -> list[str]:
    """The value-by-value code this replaced (xlsx_writer at fb71a5c)."""
    s = book.styles
    rows = _rows(len(values))
    if kind in ("int", "year", "percent"):
        nums = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce")
        missing = nums.isna().tolist()
        if kind == "percent":
            texts = [repr(float(v)) for v in nums.fillna(0.0).tolist()]
            sid = s.percent
        else:
            texts = [str(int(v)) for v in nums.fillna(0).round().tolist()]
            sid = s.year if kind == "year" else s.count
    else:
        missing_list, serial = xlsx_writer._excel_serials(values)
        missing = missing_list
        if kind == "date":
            texts = [str(v) for v in np.floor(np.nan_to_num(serial)).astype("int64").tolist()]
            sid = s.date
        else:
            texts = [repr(v) for v in np.nan_to_num(serial).tolist()]
            sid = s.datetime
    sa = f' s="{sid}"' if sid else ""
    return [
        "" if m else f'<c r="D{r}"{sa}><v>{t}</v></c>'
        for m, t, r in zip(missing, texts, rows, strict=True)
    ]


NUMBERS: list[Any] = [
    0,
    1,
    -1,
    None,
    float("nan"),
    pd.NA,
    2.5,
    3.5,
    -2.5,
    12345678,
    2**53 + 2,
    1e20,
    "17",
    "not a number",
    True,
    0.0,
    -0.0,
    1e-9,
    0.00001,
    0.0001,
    0.05,
    1 / 3,
    2 / 3,
    1.0,
    999_999_999.5,
    1e9,
    123456789012345.6,
    np.int64(42),
    np.float64(0.125),
]


@pytest.mark.parametrize("kind", ["int", "year", "percent"])
def test_number_columns_match_value_by_value(kind: str) -> None:
    book = _book()
    rng = random.Random(5)
    values = NUMBERS + [
        rng.choice([None, rng.random(), rng.randint(-999, 99_999)]) for _ in range(500)
    ]
    got = xlsx_writer._typed_column(book, kind, values, "D", _rows(len(values))).to_pylist()  # type: ignore[arg-type]
    assert got == _reference_typed(book, kind, values)
    # A missing value gets no cell; a present one its number.
    assert got[3] == "" and got[4] == "" and got[13] == ""
    assert "<v>12345678</v>" in got[9] if kind != "percent" else "<v>12345678.0</v>" in got[9]


@pytest.mark.parametrize("kind", ["int", "year", "percent"])
@pytest.mark.parametrize("dtype", ["int64", "uint64", "float64", "float32", "object"])
def test_number_columns_of_a_frame_match_their_values_as_a_list(kind: str, dtype: str) -> None:
    """A frame's numeric column is read as it is, not value by value: the same cells."""
    rng = random.Random(6)
    if dtype.startswith(("int", "uint")):
        raw: list[Any] = [rng.randint(0, 10**6) for _ in range(300)] + [2**53 + 2, 0]
    else:
        raw = [rng.choice([math.nan, rng.uniform(-1e6, 1e6), 0.5, 2.5, 1 / 3]) for _ in range(300)]
    column = pd.Series(raw, dtype=dtype, index=range(100, 100 + len(raw)))
    book = _book()
    by_frame = xlsx_writer._typed_column(book, kind, column, "D", _rows(len(raw)))  # type: ignore[arg-type]
    by_list = xlsx_writer._typed_column(book, kind, column.tolist(), "D", _rows(len(raw)))  # type: ignore[arg-type]
    assert by_frame.to_pylist() == by_list.to_pylist()


DATES: list[Any] = [
    dt.date(2025, 6, 4),
    None,
    dt.date(1900, 1, 1),
    dt.date(1900, 2, 28),
    dt.date(1900, 3, 1),
    dt.date(1899, 12, 31),
    dt.date(9999, 12, 31),
    dt.date(1, 1, 1),
    dt.datetime(2025, 6, 4, 13, 25),
    dt.datetime(2025, 6, 4, 0, 0),
    dt.datetime(2025, 6, 4, 23, 59, 59, 999999),
    pd.Timestamp("2025-11-08 13:25:00"),
    pd.Timestamp("2025-07-31 00:49:17.123456"),
    pd.NaT,
    float("nan"),
    "2025-01-02",
    "no date",
]


@pytest.mark.parametrize("kind", ["date", "datetime"])
@pytest.mark.parametrize("aware", [False, True])
def test_date_columns_match_value_by_value(kind: str, aware: bool) -> None:
    book = _book()
    rng = random.Random(7)
    base = dt.datetime(2020, 1, 1)
    values: list[Any] = list(DATES) + [
        base + dt.timedelta(minutes=rng.randint(0, 3_000_000)) for _ in range(500)
    ]
    if aware:
        # Aware and naive values mixed are converted one by one (openpyxl's to_excel), which
        # takes dates and datetimes only.
        values = [v for v in values if not isinstance(v, str)]
        values = [
            pd.Timestamp(v).tz_localize("Europe/Stockholm")
            if isinstance(v, dt.datetime) and not isinstance(v, pd.Timestamp) and v.year > 1900
            else v
            for v in values
        ]
    got = xlsx_writer._typed_column(book, kind, values, "D", _rows(len(values))).to_pylist()  # type: ignore[arg-type]
    assert got == _reference_typed(book, kind, values)
    assert got[1] == ""
    if kind == "date":
        assert f'<c r="D7" s="{book.styles.date}"><v>45812</v></c>' == got[0]
    if kind == "date" and not aware:
        assert "<v>59</v>" in got[3] and "<v>61</v>" in got[4]  # Excel's 1900 leap-year bug


def test_date_object_columns_take_arrow_with_pandas_serials() -> None:
    """A table column of datetime.date objects (due dates) is converted by Arrow's date32, not
    parsed value by value by pandas; the serials, the missing mask and the 1900 leap-year fix
    are the ones pandas gives. Any other object in the column leaves it to pandas."""
    rng = random.Random(3)
    days: list[Any] = [
        dt.date(2025, 6, 4),
        None,
        dt.date(1900, 1, 1),
        dt.date(1900, 2, 28),
        dt.date(1900, 3, 1),
        dt.date(1899, 12, 30),
        dt.date(1899, 12, 31),
        dt.date(1, 1, 1),
        dt.date(9999, 12, 31),
        dt.date(1970, 1, 1),
    ] + [dt.date(2000, 1, 1) + dt.timedelta(days=rng.randint(-40_000, 40_000)) for _ in range(500)]
    column = pd.Series(days, dtype=object)
    assert xlsx_writer._calendar_days(column) is not None  # the Arrow path is taken
    missing, serial = xlsx_writer._excel_serial_array(column)
    ref_missing, ref_serial = xlsx_writer._excel_serial_array(list(days))  # through pandas
    assert missing.tolist() == ref_missing.tolist()
    np.testing.assert_array_equal(serial, ref_serial)
    assert serial[0] == 45812 and serial[3] == 59 and serial[4] == 61 and missing[1]

    book = _book()
    for kind in ("date", "datetime"):
        got = xlsx_writer._typed_column(book, kind, column, "D", _rows(len(days))).to_pylist()
        assert got == _reference_typed(book, kind, days)

    # A datetime (a date subclass), a Timestamp, NaN or text is not a calendar day: pandas.
    for odd in (dt.datetime(2025, 6, 4, 13, 25), pd.Timestamp("2025-06-04 13:25"), math.nan, "x"):
        mixed = pd.Series([*days[:5], odd], dtype=object)
        assert xlsx_writer._calendar_days(mixed) is None
        got_missing, got_serial = xlsx_writer._excel_serial_array(mixed)
        ref_missing, ref_serial = xlsx_writer._excel_serial_array([*days[:5], odd])
        assert got_missing.tolist() == ref_missing.tolist()
        np.testing.assert_array_equal(got_serial, ref_serial)
    assert xlsx_writer._calendar_days(pd.Series([None, None], dtype=object)) is not None
    assert xlsx_writer._excel_serial_array(pd.Series([None], dtype=object))[0].tolist() == [True]


@pytest.mark.parametrize("style_id", [None, 0, 7])
def test_single_values_are_written_like_a_column_of_one(style_id: int | None) -> None:
    """put_value writes a count, year or calendar day directly; the XML is the one the column
    path gives (which every other value still takes)."""
    book = _book()
    values: list[Any] = [
        None,
        0,
        -3,
        1234567,
        2**53 - 1,
        2**53,
        10**30,
        True,
        2.5,
        np.int64(5),
        dt.date(2025, 6, 4),
        dt.date(1900, 1, 1),
        dt.date(1900, 2, 28),
        dt.date(1900, 3, 1),
        dt.date(1899, 12, 30),
        dt.date(1899, 12, 29),
        dt.date(1, 1, 1),
        dt.date(9999, 12, 31),
        dt.datetime(2025, 6, 4, 13, 25),
        pd.Timestamp("2025-06-04"),
        "17",
        math.nan,
    ]
    direct = 0
    for kind in ("int", "year", "date", "datetime"):
        for value in values:
            fast = xlsx_writer._single_cell(book.styles, kind, value, "B9", style_id)
            (column,) = xlsx_writer._column_cells(book, kind, [value], "B", ["9"], [])
            if column and style_id is not None:
                head, sep, tail = column.partition(">")
                column = re.sub(r' s="\d+"', "", head) + xlsx_writer._s(style_id) + sep + tail
            if fast is not None:
                direct += 1
                assert fast == column, (kind, value)
    assert direct >= 4 * 1 + 2 * 4 + 2 * 8  # None, the small ints, the dates
    assert xlsx_writer._single_cell(book.styles, "text", "x", "B9", None) is None


def test_float_text_is_python_repr_everywhere() -> None:
    rng = np.random.default_rng(11)
    values = np.concatenate(
        [
            10 ** rng.uniform(-12, 20, 20_000),
            -(10 ** rng.uniform(-12, 20, 5_000)),
            np.round(10 ** rng.uniform(0, 8, 5_000)),
            rng.uniform(30_000, 60_000, 20_000),  # Excel datetimes
            [0.0, -0.0, 1e-4, 1e9, 1e9 - 0.5, 1e16, math.inf, -math.inf, math.nan, 5e-324],
        ]
    )
    assert xlsx_writer._float_texts(values).to_pylist() == [repr(v) for v in values.tolist()]


def test_int_text_is_python_str_of_int() -> None:
    values = pd.Series([0.0, -0.0, 1.0, -7.0, 2.0**53 - 1, 2.0**60, -(2.0**60), 1e19])
    assert xlsx_writer._int_texts(values).to_pylist() == [str(int(v)) for v in values]
    ints = pd.Series([0, -5, 2**62, -(2**63)], dtype="int64")
    assert xlsx_writer._int_texts(ints).to_pylist() == [str(v) for v in ints]


# --- links ---------------------------------------------------------------------------------------


def test_link_column_matches_value_by_value() -> None:
    targets: list[str | None] = [
        "https://example.org/a?x=1&y=<2>",
        None,
        "",
        "\x07",
        'https://example.org/bell\x07/"q"',
        "https://exempel.se/ä ö",
    ] * 3
    arrow_book, list_book = _book(), _book()
    arrow_ws = arrow_book.new_sheet("Länkar")
    list_ws = list_book.new_sheet("Länkar")
    chunks: list[tuple[pa.Array, pa.Array]] = []
    got = xlsx_writer._link_column(
        arrow_book, pd.Series(targets, dtype="string"), "J", _rows(len(targets)), chunks
    ).to_pylist()
    links: list[tuple[str, str]] = []
    expected = xlsx_writer._column_cells(
        list_book, "link", targets, "J", _rows(len(targets)), links
    )
    assert got == expected
    arrow_book.sheet(arrow_ws).links.extend(chunks)
    list_book.sheet(list_ws).add_links(links)
    assert arrow_book.sheet(arrow_ws).hyperlinks_xml() == list_book.sheet(list_ws).hyperlinks_xml()
    # What they agree on: no cell (and no link) for a missing or emptied target, the rest linked
    # to the cleaned target.
    assert [bool(c) for c in got[:6]] == [True, False, False, False, True, True]
    assert [t for _, t in links][:3] == [
        "https://example.org/a?x=1&y=<2>",
        'https://example.org/bell/"q"',
        "https://exempel.se/ä ö",
    ]
    assert not any(ILLEGAL_CHARACTERS_RE.search(t) for _, t in links)


# --- text edges ----------------------------------------------------------------------------------


def _reference_text_cell(book: xlsx_writer.XlsxBook, text: str | None, row: str, wrap: bool) -> str:
    """One cleaned text as the cell-by-cell code wrote it."""
    s = book.styles
    if not text:
        return ""
    formula = text.startswith(FORMULA_PREFIXES)
    multi = wrap or "\n" in text
    style = (
        (s.quoted_wrapped if multi else s.quoted) if formula else (s.wrapped if multi else s.top)
    )
    space = ' xml:space="preserve"' if text[0].isspace() or text[-1].isspace() else ""
    body = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'<c r="B{row}" t="inlineStr" s="{style}"><is><t{space}>{body}</t></is></c>'


@pytest.mark.parametrize("wrap", [False, True])
def test_text_edges_are_read_like_python(wrap: bool) -> None:
    """Formula prefixes and whitespace at either end, found from the edge bytes, agree with
    str.startswith and str.isspace for every whitespace character and prefix, ASCII or not."""
    book = _book()
    spaces = [chr(c) for c in range(0x3001) if chr(c).isspace() and chr(c) not in "\r"]
    edges = spaces + [p for p in FORMULA_PREFIXES if p != "\r"] + list("aZ0éÅ–“✓😀｜\u200b")
    rng = random.Random(3)
    texts: list[str | None] = [None, "", "x", "ä", "😀", "a\nb"]
    for _ in range(3000):
        middle = "".join(rng.choice("ab &<>ö\n") for _ in range(rng.randint(0, 6)))
        texts.append(rng.choice(edges) + middle + rng.choice(edges))
        texts.append(rng.choice(edges))
    rows = _rows(len(texts))
    got = xlsx_writer._text_cells(texts, "B", rows, wrap=wrap, styles=book.styles).to_pylist()
    expected = [_reference_text_cell(book, t, r, wrap) for t, r in zip(texts, rows, strict=True)]
    assert got == expected


def test_text_cells_of_a_sliced_array_use_its_own_values() -> None:
    """Edge bytes are read through the array's offsets, so a slice sees its own values."""
    book = _book()
    whole = pa.array(["=first", " second", "third ", "fourth"], type=pa.large_string())
    part = whole.slice(1, 2)
    got = xlsx_writer._text_cells_arrow(part, "B", ["1", "2"], wrap=False, styles=book.styles)
    assert got.to_pylist() == [
        _reference_text_cell(book, " second", "1", False),
        _reference_text_cell(book, "third ", "2", False),
    ]


# --- row heights and widths ----------------------------------------------------------------------


def _reference_lines(values: list[Any], per_line: float, wrap: bool) -> list[int]:
    out = []
    for v in values:
        n = 1
        tall = isinstance(v, str) and not (len(v) <= per_line and "\n" not in v)
        if tall and (wrap or "\n" in v):
            n = sum(max(1, -(-len(part) // int(per_line))) for part in v.split("\n"))
        out.append(n)
    return out


@pytest.mark.parametrize("wrap", [False, True])
@pytest.mark.parametrize("per_line", [1.0, 9.35, 40.0])
def test_lines_needed_counts_like_python(wrap: bool, per_line: float) -> None:
    rng = random.Random(9)
    values: list[Any] = [None, "", "\n", "\n\n", "a" * 100, "å" * 41 + "\n" + "b" * 3, "😀" * 12]
    for _ in range(2000):
        values.append("".join(rng.choice("ab öÅ\n😀") for _ in range(rng.randint(0, 90))))
    expected = _reference_lines(values, per_line, wrap)
    as_text = pd.Series(values, dtype="string")
    assert layouts._lines_needed(as_text, per_line, wrap=wrap).tolist() == expected
    mixed = pd.Series([*values, 12, ["a\nb"]], dtype=object)  # not a string column: value by value
    assert layouts._lines_needed(mixed, per_line, wrap=wrap).tolist() == [*expected, 1, 1]


def test_longest_line_counts_characters_of_the_longest_line() -> None:
    values = ["kort", "en mycket längre rad\nkort", None, "", "😀😀😀"]
    assert layouts._longest_line(pd.Series(values, dtype="string")) == len("en mycket längre rad")
    assert layouts._longest_line(pd.Series([*values, 10**30], dtype=object)) == 20
    assert layouts._longest_line(pd.Series([], dtype="string")) == 0
    assert layouts._longest_line(pd.Series([None, None], dtype="string")) == 0


# --- table rows given column by column -----------------------------------------------------------


def test_rows_given_column_by_column_join_in_order_and_drop_only_empty_rows() -> None:
    data = xlsx_writer._SheetData()
    a = pa.array(['<c r="A5"/>', "", "", '<c r="A8"/>'], type=pa.large_string())
    b = pa.array(['<c r="B5"/>', '<c r="B6"/>', "", ""], type=pa.large_string())
    data.put_columns(5, [a, b], 2)
    data.put(7, 3, '<c r="C7"/>')  # a loose cell in the row the table left empty
    xml = data.sheet_data_xml({8: ' ht="30" customHeight="1"'}).decode()
    assert xml == (
        "<sheetData>"
        '<row r="5"><c r="A5"/><c r="B5"/></row>'
        '<row r="6"><c r="B6"/></row>'
        '<row r="7"><c r="C7"/></row>'
        '<row r="8" ht="30" customHeight="1"><c r="A8"/></row>'
        "</sheetData>"
    )
    assert data.dimension == "A1:C8"
    with pytest.raises(ValueError, match="already written"):
        data.put(6, 3, '<c r="C6"/>')
    with pytest.raises(ValueError, match="overlap"):
        data.put_columns(8, [pa.array(["x"], type=pa.large_string())], 1)
    with pytest.raises(ValueError, match="differ in length"):
        data.put_columns(20, [a, b.slice(1)], 2)
    with pytest.raises(ValueError, match="without XML"):
        data.put_columns(30, [pa.array([None], type=pa.large_string())], 1)


def test_cells_given_as_parts_are_joined_into_the_rows() -> None:
    """A column with a cell in every row is kept as the parts of its cells and joined straight
    into the rows: the same XML as its cells joined first."""
    refs = pa.array(["5", "6", "7"], type=pa.large_string())
    parts = xlsx_writer._CellParts(
        ('<c r="A', refs, '" s="', pa.array(["1", "2", "3"], type=pa.large_string()), '"/>')
    )
    assert len(parts) == 3 and parts.null_count == 0
    assert xlsx_writer._joined(parts).to_pylist() == [
        '<c r="A5" s="1"/>',
        '<c r="A6" s="2"/>',
        '<c r="A7" s="3"/>',
    ]
    b = pa.array(['<c r="B5"/>', "", ""], type=pa.large_string())
    data = xlsx_writer._SheetData()
    data.put_columns(5, [parts, b], 2)
    data.put(9, 1, '<c r="A9"/>')
    with pytest.raises(ValueError, match="table body"):
        data.put(6, 3, '<c r="C6"/>')  # every row of the block has cells
    assert data.sheet_data_xml({6: ' ht="30"'}).decode() == (
        "<sheetData>"
        '<row r="5"><c r="A5" s="1"/><c r="B5"/></row>'
        '<row r="6" ht="30"><c r="A6" s="2"/></row>'
        '<row r="7"><c r="A7" s="3"/></row>'
        '<row r="9"><c r="A9"/></row>'
        "</sheetData>"
    )


def test_a_row_without_cells_or_attributes_is_left_out() -> None:
    data = xlsx_writer._SheetData()
    data.put_columns(2, [pa.array(["", ""], type=pa.large_string())], 1)
    assert data.sheet_data_xml({}) == b"<sheetData></sheetData>"


def test_row_heights_last_wins_and_the_sheets_own_rows_win_over_table_heights() -> None:
    """Table row heights are kept as arrays and rendered once per distinct height: a row given
    a height twice keeps the later one, a height the worksheet itself sets (a header) wins over
    any table height, and a height outside the table gives a row of its own."""
    book = _book()
    ws = book.new_sheet("Data")
    frame = pd.DataFrame({"title": pd.Series(["a", "b\nc", "d", "e"], dtype="string")})
    book.write_table(ws, frame, [xlsx_writer.Column("title")], table_base="Data")
    book.set_row_heights(ws, {5: 30.0, 6: 45.0, 7: 30.0})
    book.set_row_height_array(ws, np.array([6, 8, 12]), np.array([60.0, 409.0, 15.5]))
    ws.row_dimensions[4].height = 45  # the header row: the worksheet's own
    book.set_row_heights(ws, {4: 90.0})
    with pytest.raises(ValueError, match="as many rows"):
        book.set_row_height_array(ws, np.array([1, 2]), np.array([15.0]))
    with zipfile.ZipFile(io.BytesIO(book.to_bytes(dt.datetime(2025, 6, 4)))) as z:
        sheet = z.read("xl/worksheets/sheet2.xml").decode()
    rows = dict(re.findall(r'<row r="(\d+)"([^>]*)>', sheet))
    assert rows["4"] == ' ht="45" customHeight="1"'
    assert rows["5"] == rows["7"] == ' ht="30" customHeight="1"'
    assert rows["6"] == ' ht="60" customHeight="1"'  # the later height
    assert rows["8"] == ' ht="409" customHeight="1"'
    assert rows["12"] == ' ht="15.5" customHeight="1"'  # outside the table: a row of its own
    assert "9" not in rows and "10" not in rows


# --- the zip --------------------------------------------------------------------------------------


def test_the_deflate_level_changes_the_zip_but_no_part(monkeypatch: pytest.MonkeyPatch) -> None:
    """ZIP_LEVEL trades CPU for file size only: every part, and so the content fingerprint that
    decides uploads, is the same at any level."""
    rng = random.Random(1)
    words = ["Skåne", "Digitalisering", "öppen", "åtgärd", "Företag", "dialog", "2025"]
    frame = pd.DataFrame(
        {
            "title": pd.Series(
                [" ".join(rng.choice(words) for _ in range(6)) for _ in range(3000)],
                dtype="string",
            ),
            "count": [rng.randint(0, 500) for _ in range(3000)],
        }
    )
    when = dt.datetime(2025, 6, 4, 13, 25)

    def render(level: int) -> bytes:
        monkeypatch.setattr(xlsx_writer, "ZIP_LEVEL", level)
        book = _book()
        ws = book.new_sheet("Data")
        book.write_table(
            ws,
            frame,
            [xlsx_writer.Column("title"), xlsx_writer.Column("count", "int")],
            table_base="Data",
            header_labels=["Titel", "Antal"],
        )
        return book.to_bytes(when)

    fast, default = render(1), render(6)
    assert fast != default and len(default) < len(fast)
    with zipfile.ZipFile(io.BytesIO(fast)) as a, zipfile.ZipFile(io.BytesIO(default)) as b:
        assert a.namelist() == b.namelist()
        assert all(a.read(name) == b.read(name) for name in a.namelist())
    assert content_fingerprint(fast, when) == content_fingerprint(default, when)
