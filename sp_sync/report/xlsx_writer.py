"""A fast .xlsx writer for large tables: cells rendered straight to worksheet XML.

This module knows nothing about the rollups; `sp_sync.report.layouts` decides which sheets,
tables and columns a workbook has and how they look, and writes them through an `XlsxBook`.

Speed (issue 5, issue 14 goal 5): table cells never become openpyxl Cell objects. Each column
is rendered to cell XML at once with Arrow's kernels — text cleaned and escaped, numbers and dates
formatted, links and their relationships built — and a table's rows are joined from those
columns in C when its sheet is spliced into the worksheet part openpyxl's public
`Workbook.save` writes for everything else. A pass that cannot change a column (no character to
escape, no value too long) is skipped, and the formula and whitespace checks read each value's
first and last byte. No private openpyxl class is used, only the OOXML package format. The zip
is written here, deflated by zlib-ng (the same format at half zlib's CPU; see ZIP_LEVEL), with
the entries Python's zipfile wrote. 100,000 + 50,000 items render in 2.3 s of CPU
(benchmarks/bench_engines.py, `current`; 85 s cell by cell; 5.8 s before the number, date and
link columns and the row heights were built column-wise; 4.1 s on the same machine before
calendar days went through Arrow, table columns were joined straight into the rows, the figures
blocks were written directly and zlib-ng deflated the zip).

Output is deterministic: the same content gives byte-identical files, because the zip entries'
timestamps are set from a time the caller passes instead of the clock. Values are always written
as values (see sp_sync.report.safe_text); dates are real Excel dates shown as ``yyyy-mm-dd``;
counts use ``#,##0`` (shown with a space as thousands separator by a Swedish Excel) and shares
``0 %``.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
import struct
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.packaging.relationship import get_rels_path
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel as _to_excel
from openpyxl.worksheet.dimensions import RowDimension
from openpyxl.worksheet.filters import AutoFilter
from openpyxl.worksheet.table import Table, TableColumn, TableStyleInfo
from openpyxl.worksheet.worksheet import Worksheet
from openpyxl.xml.constants import PKG_REL_NS
from openpyxl.xml.functions import tostring
from zlib_ng import zlib_ng

from sp_sync.i18n import label
from sp_sync.report.safe_text import (
    _TRUNCATION_NOTE,
    FORMULA_PREFIXES,
    MAX_CELL_CHARS,
    MAX_ROWS,
    excel_table_name,
    safe_sheet_name,
    safe_text,
    safe_texts,
)

__all__ = [
    "COUNT_FORMAT",
    "DATETIME_FORMAT",
    "DATE_FORMAT",
    "HEADER_ROW",
    "Column",
    "ColumnKind",
    "TableInfo",
    "XlsxBook",
    "finish_sheet",
]

DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
# The file stores the locale-neutral code; a Swedish Excel displays it as "# ##0". Writing a
# literal "# ##0" would print a stray space before small numbers.
# The trailing "_ " keeps a space's width free after the number, so a right-aligned count never
# runs into the next column's left-aligned text ("3 Dialog", "634 Erik Johansson").
COUNT_FORMAT = "#,##0_ "
PERCENT_FORMAT = {"sv": "0 %_ ", "en": "0%_ "}
#: Years and IDs: no thousands separator (an ID is a name, not an amount), same padding.
PLAIN_NUMBER_FORMAT = "0_ "
TABLE_STYLE = "TableStyleMedium2"
#: Where a table's header goes by default: below a title (row 1), a subtitle (row 2) and a gap.
HEADER_ROW = 4
MAX_WIDTH = 60
WIDTH_SAMPLE = 2000

_TITLE_FONT = Font(bold=True, size=14, color="1F3864")
_SUBTITLE_FONT = Font(italic=True, color="595959")
_NOTE_FONT = Font(italic=True, color="9C0006")
# Kunskapsmatris keeps its subject-area columns narrow: their headers are turned 45° (and wrap
# when still too long), so long names such as "Kompetensförsörjning" show whole and unbroken.
_HEADER_WRAP = Alignment(wrap_text=True, vertical="bottom", text_rotation=45)
# Multi-line list text (rich text turned into lines, several paragraphs): wrapped and top-aligned,
# so LibreOffice grows the row instead of drawing the lines over each other, and Excel shows the
# first line cleanly until the row is widened.
_WRAP_TOP = Alignment(wrap_text=True, vertical="top")
_TOP = Alignment(vertical="top")
# Deflate level for the .xlsx zip, compressed by zlib-ng (the same deflate format as zlib, with
# faster match finding). Measured on the 27 rollups of 100,000 + 50,000 items (189 MB of XML):
# zlib level 1 0.65-0.73 s CPU, 18.7 MB; zlib 2 0.65-0.67 s, 17.1 MB; zlib 6 1.56 s, 13.9 MB;
# zlib-ng 1 0.26 s, 22.9 MB; zlib-ng 2 0.33-0.34 s, 16.7 MB; zlib-ng 3 0.48 s, 15.9 MB; zlib-ng 6
# 1.1 s, 13.7 MB. zlib-ng level 2 takes half the CPU of zlib's level 2 and writes 2 % smaller
# files (SharePoint's version history keeps every upload). The level and the library change only
# the zip's bytes, never a part, so content fingerprints (sp_sync.report.fingerprint) and
# therefore uploads are unaffected.
ZIP_LEVEL = 2

#: How a column's values are written: `text` as-is, `choice` translated to the book's language
#: first, `int`/`year`/`percent` as numbers, `date`/`datetime` as Excel dates, `link` as a
#: hyperlink whose text is "Öppna" / "Open".
ColumnKind = Literal["text", "choice", "int", "year", "percent", "date", "datetime", "link"]


@dataclass(frozen=True)
class Column:
    """One column of a table: the key of its values (and of its header label) and its kind."""

    key: str
    kind: ColumnKind = "text"
    #: Text columns only: wrap long text in the column width (multi-line text always wraps).
    wrap: bool = False


# ---------------------------------------------------------------------------------------------
# Low-level cell writing
#
# openpyxl spends ~30 µs per cell (a Cell object, type sniffing, an lxml element per cell), which
# is most of the time for ~2 million cells. The data sheets therefore never hold openpyxl Cells:
# every cell is rendered straight to its worksheet XML (`<c>`), a whole column at a time, into a
# _SheetData, and XlsxBook.to_bytes splices those rows (and the hyperlinks) into the worksheet part
# openpyxl's public Workbook.save writes for everything else (columns, panes, tables, conditional
# formats, print setup, drawings). Strings are inline strings, exactly as openpyxl writes them.

_EXCEL_EPOCH = pd.Timestamp("1899-12-30")
# Hyperlink relationship ids start here so they never collide with openpyxl's own (drawing, tables:
# rId1, rId2, … in the order it appends them).
_LINK_RID_BASE = 1000
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_HYPERLINK_REL = f"{_REL_NS}/hyperlink"


#: A column's row numbers as text: a list, or (faster, shared by a table's columns) Arrow.
Rows: TypeAlias = "Sequence[str] | pa.Array"


def _row_numbers(first: int, n: int) -> pa.Array:
    """The row numbers first, first + 1, … (n of them) as Arrow text."""
    return pc.cast(pa.array(np.arange(first, first + n, dtype=np.int64)), pa.large_string())


def _row_array(rows: Rows) -> pa.Array:
    return rows if isinstance(rows, pa.Array) else pa.array(list(rows), type=pa.large_string())


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _missing_mask(values: Sequence[Any]) -> list[bool]:
    """_is_missing for a whole column at once (None, NaN, NA, NaT); lists are never missing."""
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)  # element-wise, so list values stay single objects
    return [bool(m) for m in pd.isna(arr)]


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attr_escape(text: str) -> str:
    return _xml_escape(text).replace('"', "&quot;")


def _s(style_id: int) -> str:
    return f' s="{style_id}"' if style_id else ""


def _string_xml(ref: str, text: str, style_id: int = 0) -> str:
    """An inline-string cell; `text` must already be safe (sp_sync.report.safe_text.safe_text)."""
    space = ' xml:space="preserve"' if text != text.strip() else ""
    return (
        f'<c r="{ref}" t="inlineStr"{_s(style_id)}><is><t{space}>{_xml_escape(text)}</t></is></c>'
    )


@dataclass(frozen=True)
class _CellParts:
    """A table column's cells not joined yet: texts and equally long Arrow arrays whose
    element-wise concatenation is each row's cell. Only a column with a cell in every row is
    kept so: its parts are joined straight into the rows when the sheet is written, so its
    cells are never copied into an array of their own (issue 14 goal 5)."""

    parts: tuple[str | pa.Array, ...]

    def __len__(self) -> int:
        return next(len(p) for p in self.parts if not isinstance(p, str))

    @property
    def null_count(self) -> int:
        return sum(p.null_count for p in self.parts if not isinstance(p, str))


#: A table column's cells: their XML ("" for no cell), or their parts.
_Cells: TypeAlias = "pa.Array | _CellParts"


def _joined(cells: _Cells) -> pa.Array:
    """A column's cells as an Arrow array of their XML."""
    return _join(*cells.parts) if isinstance(cells, _CellParts) else cells


class _SheetData:
    """The cells of one worksheet as XML: loose cells by (row, column), table bodies as blocks
    of consecutive rows (Arrow arrays of each row's cells, column by column, joined in C into
    the rows when written)."""

    def __init__(self) -> None:
        self.cells: dict[int, dict[int, str]] = {}
        # (first row, [each row's cells of one or more columns, left to right])
        self.blocks: list[tuple[int, list[_Cells]]] = []
        # Hyperlinks in the order they were written, in chunks: (cell references, target URLs).
        self.links: list[tuple[pa.Array, pa.Array]] = []
        # Row heights of table bodies, as (rows, points) arrays in the order they were set (a
        # later height of a row wins): not openpyxl RowDimension objects (one object per row
        # of wrapped text cost more than writing the row's cells), nor a dict of Python ints.
        self.heights: list[tuple[np.ndarray, np.ndarray]] = []
        self.max_row = 1
        self.max_col = 1

    def _extend(self, row: int, col: int) -> None:
        self.max_row = max(self.max_row, row)
        self.max_col = max(self.max_col, col)

    def _block_body(self, row: int) -> str | None:
        for first, columns in self.blocks:
            if first <= row < first + len(columns[0]):
                if any(isinstance(c, _CellParts) for c in columns):
                    return "<c/>"  # such a column has a cell in every row
                return "".join(
                    str(c[row - first].as_py() or "") for c in columns if isinstance(c, pa.Array)
                )
        return None

    def put(self, row: int, col: int, xml: str) -> None:
        if self._block_body(row):
            raise ValueError(f"row {row} is already written as a table body")
        self.cells.setdefault(row, {})[col] = xml
        self._extend(row, col)

    def put_columns(self, first_row: int, columns: Sequence[_Cells], last_col: int) -> None:
        """Consecutive rows from `first_row`, given column by column (each an Arrow array of
        the column's cell XML, "" for no cell): a row's cells are joined only when the sheet is
        written, in the same pass that writes the row, so the table is copied once less."""
        columns = list(columns)
        n = len(columns[0]) if columns else 0
        if not n:
            return
        if any(len(c) != n for c in columns):
            raise ValueError(f"table columns from row {first_row} differ in length")
        if any(c.null_count for c in columns):  # a row that lost its cells must fail loudly
            raise ValueError(f"table rows from {first_row} include a row without XML")
        last = first_row + n - 1
        for row in self.cells:
            if first_row <= row <= last:
                raise ValueError(f"row {row} is already written")
        for first, other in self.blocks:
            if first <= last and first_row <= first + len(other[0]) - 1:
                raise ValueError(f"rows {first_row}-{last} overlap a table already written")
        self.blocks.append((first_row, columns))
        self._extend(last, last_col)

    def add_links(self, links: Sequence[tuple[str, str]]) -> None:
        """Hyperlinks (cell reference, target URL) written value by value."""
        if links:
            self.links.append(
                (
                    pa.array([ref for ref, _ in links], type=pa.large_string()),
                    pa.array([target for _, target in links], type=pa.large_string()),
                )
            )

    @property
    def dimension(self) -> str:
        return f"A1:{get_column_letter(self.max_col)}{self.max_row}"

    def _loose_row(self, row: int, attrs: str) -> bytes:
        loose = self.cells.get(row, {})
        body = "".join(loose[c] for c in sorted(loose))
        return f'<row r="{row}"{attrs}>{body}</row>'.encode()

    def _block_xml(self, first: int, columns: list[_Cells], row_attrs: _RowAttrs) -> memoryview:
        """A table body's rows (`<row r=... >cells</row>`), joined in C; a row with neither
        cells nor attributes is left out, as a loose row without cells would be."""
        n = len(columns[0])
        # Each row's attributes as an index into the few distinct attribute texts (heights
        # repeat), so no Python string is made per row.
        codes = np.zeros(n, dtype=np.int64)
        inside = (row_attrs.rows >= first) & (row_attrs.rows < first + n)
        codes[row_attrs.rows[inside] - first] = row_attrs.codes[inside]
        loose = [row for row in self.cells if first <= row < first + n]
        if loose:  # cells put into a row the table left empty (rare): merged here
            joined = pc.binary_join_element_wise(*map(_joined, columns), _lit(""))
            texts = joined.to_pylist()
            for row in loose:
                put = self.cells[row]
                texts[row - first] = "".join(put[c] for c in sorted(put))
            columns = [pa.array(texts, type=pa.large_string())]
        attrs = _per_value(codes, row_attrs.texts)
        numbers = pc.cast(pa.array(np.arange(first, first + n, dtype=np.int64)), pa.large_string())
        parts: list[str | pa.Array] = []
        for column in columns:
            parts.extend(column.parts if isinstance(column, _CellParts) else [column])
        rows = _join('<row r="', numbers, '"', attrs, ">", *parts, "</row>")
        if any(isinstance(c, _CellParts) for c in columns) or (isinstance(attrs, str) and attrs):
            return _concatenated_view(rows)  # every row has a cell or attributes
        # Byte lengths come from the offsets alone; filtering copies, so only when needed.
        size = np.zeros(n, dtype=np.int64)
        for column in (*columns, attrs):
            if isinstance(column, pa.Array):
                size += pc.binary_length(column).to_numpy(zero_copy_only=False)
        if not (size > 0).all():
            rows = rows.filter(pa.array(size > 0))
        return _concatenated_view(rows)

    def sheet_data_xml(self, row_attrs: Mapping[int, str] | _RowAttrs) -> bytes:
        """The worksheet's `<sheetData>` element, rows in order, as UTF-8."""
        return b"".join(self.sheet_data_parts(row_attrs))

    def sheet_data_parts(
        self, row_attrs: Mapping[int, str] | _RowAttrs
    ) -> list[bytes | memoryview]:
        """sheet_data_xml in pieces, to be written one after the other: a table body is a view
        of the Arrow buffer its rows were joined into, never copied into one large bytes."""
        if not isinstance(row_attrs, _RowAttrs):
            row_attrs = _RowAttrs.of(row_attrs)
        blocks = sorted(self.blocks, key=lambda b: b[0])
        cell_rows = np.fromiter(self.cells.keys(), dtype=np.int64, count=len(self.cells))
        candidates = np.union1d(cell_rows, row_attrs.rows)
        outside = np.ones(len(candidates), dtype=bool)
        for first, columns in blocks:  # most row attributes are heights of table rows
            outside &= (candidates < first) | (candidates >= first + len(columns[0]))
        loose = candidates[outside].tolist()  # sorted, as union1d returns them
        loose_attrs = row_attrs.texts_of(loose)
        parts: list[bytes | memoryview] = [b"<sheetData>"]
        i = 0
        for first, columns in blocks:
            while i < len(loose) and loose[i] < first:
                parts.append(self._loose_row(loose[i], loose_attrs.get(loose[i], "")))
                i += 1
            parts.append(self._block_xml(first, columns, row_attrs))
        for row in loose[i:]:
            parts.append(self._loose_row(row, loose_attrs.get(row, "")))
        parts.append(b"</sheetData>")
        return parts

    def hyperlinks_xml(self) -> tuple[bytes, bytes]:
        """(the worksheet's <hyperlinks> element, the matching <Relationship> elements), built
        a whole sheet at a time in Arrow (a county's knowledge links one cell per row)."""
        refs = pa.concat_arrays([chunk for chunk, _ in self.links])
        targets = pa.concat_arrays([chunk for _, chunk in self.links])
        present = _bytes_present(targets)
        for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;")):
            if present[ord(char)]:
                targets = pc.replace_substring(targets, char, entity)
        first = _LINK_RID_BASE
        ids = pc.cast(
            pa.array(np.arange(first, first + len(refs), dtype=np.int64)), pa.large_string()
        )
        links = pc.binary_join_element_wise(
            _lit('<hyperlink ref="'), refs, _lit('" r:id="rId'), ids, _lit('"/>'), _lit("")
        )
        rels = pc.binary_join_element_wise(
            _lit('<Relationship Id="rId'),
            ids,
            _lit(f'" Type="{_HYPERLINK_REL}" Target="'),
            targets,
            _lit('" TargetMode="External"/>'),
            _lit(""),
        )
        head = f'<hyperlinks xmlns:r="{_REL_NS}">'.encode()
        return head + _concatenated(links) + b"</hyperlinks>", _concatenated(rels)


@dataclass(frozen=True)
class _RowAttrs:
    """Rows' extra attributes (heights) as arrays: `rows` sorted and unique, each row's text
    `texts[codes[i]]`; texts[0] is "" (no attributes)."""

    rows: np.ndarray
    codes: np.ndarray
    texts: list[str]

    @classmethod
    def of(cls, by_row: Mapping[int, str]) -> _RowAttrs:
        """From row -> attribute text."""
        index = {"": 0}
        codes = [index.setdefault(text, len(index)) for text in by_row.values()]
        texts = list(index)
        rows = np.fromiter(by_row.keys(), dtype=np.int64, count=len(by_row))
        order = np.argsort(rows, kind="stable")
        return cls(rows[order], np.asarray(codes, dtype=np.int64)[order], texts)

    def texts_of(self, rows: Sequence[int]) -> dict[int, str]:
        """The attribute texts of `rows` (a few: the rows outside tables) that have any."""
        at = np.searchsorted(self.rows, np.asarray(rows, dtype=np.int64))
        out: dict[int, str] = {}
        for row, i in zip(rows, at.tolist(), strict=True):
            if i < len(self.rows) and self.rows[i] == row:
                out[row] = self.texts[int(self.codes[i])]
        return out


class _Styles:
    """Cell style ids (cellXfs indexes) for the few looks we use, registered once per workbook."""

    def __init__(self, wb: Workbook, language: str) -> None:
        ws = wb.active if wb.active is not None else wb.create_sheet()
        self._wb = wb
        self._probe = ws
        # Every body cell is top-aligned: in a row made tall by wrapped text, the other cells
        # line up with its first line instead of sinking to the bottom.
        self.date = self._make(number_format=DATE_FORMAT, alignment=_TOP)
        self.datetime = self._make(number_format=DATETIME_FORMAT, alignment=_TOP)
        self.count = self._make(number_format=COUNT_FORMAT, alignment=_TOP)
        self.year = self._make(number_format=PLAIN_NUMBER_FORMAT, alignment=_TOP)
        self.percent = self._make(number_format=PERCENT_FORMAT[language], alignment=_TOP)
        self.link = self._make(style="Hyperlink", alignment=_TOP)
        self.top = self._make(alignment=_TOP)
        self.quoted = self._make(quote=True, alignment=_TOP)
        self.wrapped = self._make(alignment=_WRAP_TOP)
        self.quoted_wrapped = self._make(quote=True, alignment=_WRAP_TOP)
        self.title = self._make(font=_TITLE_FONT)
        self.subtitle = self._make(font=_SUBTITLE_FONT)
        self.note = self._make(font=_NOTE_FONT)
        self.header_wrap = self._make(alignment=_HEADER_WRAP)

    def _make(
        self,
        *,
        number_format: str | None = None,
        style: str | None = None,
        quote: bool = False,
        font: Font | None = None,
        alignment: Alignment | None = None,
    ) -> int:
        # A free-standing cell (never added to the sheet) carries the look; `style_id` is
        # openpyxl's public way to register it and learn its cellXfs index.
        cell = Cell(self._probe, row=1, column=1)
        if style:
            cell.style = style
        if number_format:
            cell.number_format = number_format
        if font is not None:
            cell.font = font
        if alignment is not None:
            cell.alignment = alignment
        if quote:
            cell.quotePrefix = True
        return int(cell.style_id)


def _excel_serials(values: Sequence[Any]) -> tuple[list[bool], Any]:
    """(missing mask, Excel serial numbers as float64) for a column of dates/datetimes."""
    missing, serial = _excel_serial_array(values)
    return [bool(m) for m in missing], serial


def _excel_serial_array(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """_excel_serials with the missing mask as a NumPy array."""
    days = _calendar_days(values)
    if days is not None:
        return _serials_of_days(days)
    try:
        if isinstance(values, pd.Series) and values.dtype.kind == "M":
            # Already datetime64 (the tables' wall-clock times): no Python object per cell.
            stamps = values
        else:
            stamps = pd.to_datetime(pd.Series(list(values), dtype=object), errors="coerce")
        if isinstance(stamps.dtype, pd.DatetimeTZDtype):
            # Excel has no time zones; the tables hold site-local wall-clock time already.
            stamps = stamps.dt.tz_localize(None)
        serial = ((stamps - _EXCEL_EPOCH) / pd.Timedelta(days=1)).to_numpy(dtype="float64")
    except (TypeError, ValueError):
        # Mixed aware/naive values: convert one by one, like openpyxl would.
        serial = pd.Series(
            [float("nan") if _is_missing(v) else float(_to_excel(_naive(v))) for v in values],
            dtype="float64",
        ).to_numpy()
    return _serials_of_days(serial)


def _serials_of_days(serial: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(missing mask, Excel serial numbers) from days since 1899-12-30 (NaN where missing)."""
    missing = np.asarray(pd.isna(serial), dtype=bool)
    # Excel's 1900 leap-year bug: serials before 1900-03-01 are one lower (as openpyxl writes them).
    early = (serial > 0) & (serial < 61)
    if early.any():
        serial = serial.copy()
        serial[early] -= 1
    return missing, serial


#: The Excel serial number of 1970-01-01, the day Arrow's date32 counts from.
_UNIX_EPOCH_SERIAL = 25569.0
_DATE_ONLY = frozenset({dt.date, type(None)})


def _calendar_days(values: Sequence[Any]) -> np.ndarray | None:
    """Days since 1899-12-30 (float64, NaN for None) of an object column holding nothing but
    `datetime.date` values and None, converted in C by Arrow; None for any other column.

    The tables keep calendar days (due dates, dialogue dates) as `datetime.date` objects;
    pandas parsed each of them (issue 14 goal 5). A whole day is an exact float, so the serial
    is the same number pandas' (day - epoch) / one day gives. A datetime (a subclass of date),
    Timestamp, NaN or text anywhere leaves the column to pandas, which keeps its time of day."""
    if not isinstance(values, pd.Series) or values.dtype != object or not len(values):
        return None
    listed = values.tolist()
    if not set(map(type, listed)) <= _DATE_ONLY:
        return None
    days = pc.cast(pa.array(listed, type=pa.date32()), pa.int32())
    return days.to_numpy(zero_copy_only=False).astype("float64") + _UNIX_EPOCH_SERIAL


#: The ordinal (datetime.date.toordinal) of 1899-12-30, Excel's day 0.
_EXCEL_EPOCH_ORDINAL = dt.date(1899, 12, 30).toordinal()


def _single_cell(
    styles: _Styles, kind: ColumnKind, value: Any, ref: str, style_id: int | None
) -> str | None:
    """The cell of one count, year or calendar day outside a table (the figures blocks: a few
    hundred per night), "" for None, written directly: the same XML as a column of one value
    (its style `style_id` when given), without the cost of a column. None for any other value
    or kind, which the column path writes."""
    if value is None:
        return "" if kind in _TYPED else None
    if kind in ("int", "year") and type(value) is int and abs(value) < _EXACT_INT:
        text, sid = str(value), (styles.year if kind == "year" else styles.count)
    elif kind in ("date", "datetime") and type(value) is dt.date:
        serial = value.toordinal() - _EXCEL_EPOCH_ORDINAL
        if 0 < serial < 61:  # Excel's 1900 leap-year bug, as _serials_of_days
            serial -= 1
        if kind == "date":
            text, sid = str(serial), styles.date
        else:
            text, sid = repr(float(serial)), styles.datetime
    else:
        return None
    return f'<c r="{ref}"{_s(sid if style_id is None else style_id)}><v>{text}</v></c>'


def _naive(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        value = value.replace(tzinfo=None)
    return value


def _column_cells(
    book: XlsxBook,
    kind: ColumnKind,
    values: Sequence[Any],
    letter: str,
    rows: Rows,
    links: list[tuple[str, str]],
    wrap: bool = False,
) -> list[str]:
    """The `<c>` XML of one table column (one string per row, "" for an empty cell).

    Hyperlink cells append (cell reference, target) to `links`.
    """
    s = book.styles
    n = len(values)
    if n == 0:
        return []
    if isinstance(rows, pa.Array):
        rows = rows.to_pylist()
    if kind in _TYPED:
        return list(_typed_column(book, kind, values, letter, rows).to_pylist())
    if kind == "link":
        text = _xml_escape(safe_text(book.open_text))
        sa = _s(s.link)
        out = []
        for v, r in zip(values, rows, strict=True):
            target = "" if _is_missing(v) else ILLEGAL_CHARACTERS_RE.sub("", str(v))
            if not target:
                out.append("")
                continue
            ref = f"{letter}{r}"
            out.append(f'<c r="{ref}" t="inlineStr"{sa}><is><t>{text}</t></is></c>')
            links.append((ref, target))
        return out

    return list(_text_column(book, kind, values, letter, rows, wrap=wrap).to_pylist())


#: The kinds written as a number (`<v>`) with a number format.
_TYPED = frozenset({"int", "year", "percent", "date", "datetime"})
_EXACT_INT = 2.0**53


def _typed_column(
    book: XlsxBook,
    kind: ColumnKind,
    values: Sequence[Any],
    letter: str,
    rows: Rows,
) -> pa.Array:
    """The `<c>` XML of a number or date column (see _typed_cells)."""
    return _joined(_typed_cells(book, kind, values, letter, rows))


def _typed_cells(
    book: XlsxBook,
    kind: ColumnKind,
    values: Sequence[Any],
    letter: str,
    rows: Rows,
) -> _Cells:
    """The `<c>` XML of a number or date column ("" for a missing value), built a whole
    column at a time in Arrow (issue 14 goal 5) with the same text the value-by-value code
    wrote: counts and years as `str(int(round(v)))`, shares as `repr(float(v))`, dates as
    whole Excel serial numbers and datetimes as `repr()` of the fractional serial."""
    s = book.styles
    if kind in ("int", "year", "percent"):
        nums = _numbers(values)
        missing = nums.isna().to_numpy(dtype=bool)
        if kind == "percent":
            texts = _float_texts(nums.fillna(0.0).to_numpy(dtype="float64"))
            sid = s.percent
        else:
            texts = _int_texts(nums.fillna(0).round())
            sid = s.year if kind == "year" else s.count
    else:
        missing, serial = _excel_serial_array(values)
        if kind == "date":
            # A date column shows the calendar day only (like writing datetime.date).
            texts = _int_texts(pd.Series(np.floor(np.nan_to_num(serial))))
            sid = s.date
        else:
            texts = _float_texts(np.nan_to_num(serial))
            sid = s.datetime
    parts = _CellParts((f'<c r="{letter}', _row_array(rows), f'"{_s(sid)}><v>', texts, "</v></c>"))
    if not missing.any():
        return parts
    return pc.if_else(pa.array(missing), _lit(""), _joined(parts))


def _numbers(values: Sequence[Any]) -> pd.Series:
    """The values as numbers (NaN where not a number), as pandas' to_numeric reads them: a
    frame's column of NumPy integers or floats is taken as it is (the same numbers), any other
    column value by value."""
    if (
        isinstance(values, pd.Series)
        and isinstance(values.dtype, np.dtype)
        and values.dtype.kind in "iuf"
    ):
        return values.reset_index(drop=True)
    return pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce")


def _int_texts(rounded: pd.Series) -> pa.Array:
    """`str(int(v))` of every (already rounded) number, by Arrow's integer formatting, which
    writes the same digits; a value beyond float's exact integers goes through Python."""
    arr = rounded.to_numpy()
    if arr.dtype.kind == "i" or (arr.dtype.kind == "f" and bool((np.abs(arr) < _EXACT_INT).all())):
        return pc.cast(pa.array(arr.astype(np.int64)), pa.large_string())
    return pa.array([str(int(v)) for v in rounded.tolist()], type=pa.large_string())


def _float_texts(values: np.ndarray) -> pa.Array:
    """`repr()` of every float64, built by Arrow's float formatting. Both write the shortest
    text that reads back as the same float, so for 1e-4 <= |v| < 1e9 (every Excel date, and
    shares from 0.01 %) the digits agree, except that Arrow leaves ".0" off a whole number;
    any other value (NaN, inf, very small or large) is formatted by Python."""
    values = np.asarray(values, dtype="float64")
    text = pc.cast(pa.array(values, type=pa.float64()), pa.large_string())
    with np.errstate(invalid="ignore"):
        magnitude = np.abs(values)
        whole = values == np.floor(values)
        odd = ~((magnitude < 1e9) & ((magnitude >= 1e-4) | (values == 0)))
    if whole.any():
        text = pc.if_else(
            pa.array(whole), pc.binary_join_element_wise(text, _lit(".0"), _lit("")), text
        )
    if odd.any():
        texts = text.to_pylist()
        for i in np.flatnonzero(odd).tolist():
            texts[i] = repr(float(values[i]))
        text = pa.array(texts, type=pa.large_string())
    return text


def _column_array(
    book: XlsxBook,
    kind: ColumnKind,
    values: Sequence[Any],
    letter: str,
    rows: Rows,
    links: list[tuple[str, str]],
    wrap: bool = False,
) -> pa.Array:
    """_column_cells as an Arrow array, so that a table's rows are joined in C."""
    if kind in ("text", "choice") and len(values):
        return _text_column(book, kind, values, letter, rows, wrap=wrap)
    if kind in _TYPED and len(values):
        return _typed_column(book, kind, values, letter, rows)
    cells = _column_cells(book, kind, values, letter, rows, links, wrap=wrap)
    return pa.array(cells, type=pa.large_string())


def _text_column(
    book: XlsxBook,
    kind: ColumnKind,
    values: Sequence[Any],
    letter: str,
    rows: Rows,
    *,
    wrap: bool,
) -> pa.Array:
    """The cells of a text or choice column (see _text_cells)."""
    s = book.styles
    # Text: list values joined, choice values translated, then cleaned a whole column at once.
    translate = kind == "choice"
    labels: dict[str, str] = {}
    raw: list[str | None] = []
    missing = _missing_mask(values)
    for v, m in zip(values, missing, strict=True):
        if m:
            raw.append(None)
            continue
        if isinstance(v, list | tuple):
            v = "; ".join(str(x) for x in v)
        text = v if isinstance(v, str) else str(v)
        if translate:
            shown = labels.get(text)
            if shown is None:
                shown = labels[text] = book.translate(text)
            text = shown
        raw.append(text)
    present = [t for t in raw if t is not None]
    cleaned = iter(safe_texts(present, language=book.language))
    cleaned_texts: list[str | None] = [None if t is None else next(cleaned) for t in raw]
    return _text_cells(cleaned_texts, letter, rows, wrap=wrap, styles=s)


def _string_cells(
    book: XlsxBook,
    kind: ColumnKind,
    values: pd.Series,
    letter: str,
    rows: Rows,
    *,
    wrap: bool,
) -> _Cells:
    """_text_column for a pandas string column, in Arrow throughout: choices translated per
    distinct value, then cleaned like safe_text (XML-illegal characters removed, CR as LF,
    truncated with the note) — the same text the per-cell path gives."""
    text = pa.array(values, from_pandas=True)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    text = text.cast(pa.large_string())
    if kind == "choice":
        distinct = pc.unique(text).drop_null()
        shown = pa.array([book.translate(v) for v in distinct.to_pylist()], type=pa.large_string())
        text = shown.take(pc.index_in(text, value_set=distinct))
    # Each pass below copies the whole column; a pass that cannot change anything (no such
    # character in the column's bytes, no value longer than the limit) is skipped.
    scanned = text
    present = _bytes_present(text)
    if present[_ILLEGAL_BYTES].any():
        text = pc.replace_substring_regex(text, _ILLEGAL_RE2, "")
    if present[ord("\r")]:
        text = pc.replace_substring(text, "\r\n", "\n")
        text = pc.replace_substring(text, "\r", "\n")
    # A text has at most as many characters as UTF-8 bytes, so only a value of more bytes than
    # the limit can be too long (byte lengths come from the offsets, without reading the text).
    if _longest_bytes(text) > MAX_CELL_CHARS:
        too_long = pc.fill_null(pc.greater(pc.utf8_length(text), MAX_CELL_CHARS), False)
        note = _TRUNCATION_NOTE.get(book.language, _TRUNCATION_NOTE["sv"])
        cut = pc.utf8_slice_codeunits(text, 0, MAX_CELL_CHARS - len(note))
        text = pc.if_else(too_long, pc.binary_join_element_wise(cut, _lit(note), _lit("")), text)
    # A column no pass changed (nearly all) is not scanned for its bytes a second time.
    return _text_cell_parts(
        text,
        letter,
        rows,
        wrap=wrap,
        styles=book.styles,
        present=present if text is scanned else None,
    )


def _link_column(
    book: XlsxBook,
    values: pd.Series,
    letter: str,
    rows: Rows,
    links: list[tuple[pa.Array, pa.Array]],
) -> pa.Array:
    """The cells of a link column (see _link_cells)."""
    return _joined(_link_cells(book, values, letter, rows, links))


def _link_cells(
    book: XlsxBook,
    values: pd.Series,
    letter: str,
    rows: Rows,
    links: list[tuple[pa.Array, pa.Array]],
) -> _Cells:
    """The cells of a link column, "Öppna"/"Open" linked to each value, built a whole column
    at a time in Arrow: the same cells and hyperlinks as the value-by-value code (a missing
    value, or one left empty once XML-illegal characters are removed, gets no cell)."""
    target = pa.array(values, from_pandas=True)
    if isinstance(target, pa.ChunkedArray):
        target = target.combine_chunks()
    target = target.cast(pa.large_string())
    if _bytes_present(target)[_ILLEGAL_BYTES].any():
        target = pc.replace_substring_regex(target, _ILLEGAL_RE2, "")
    linked = pc.fill_null(pc.not_equal(pc.binary_length(target), 0), False)
    refs = pc.binary_join_element_wise(_lit(letter), _row_array(rows), _lit(""))
    text = _xml_escape(safe_text(book.open_text))
    cells = _CellParts(
        ('<c r="', refs, f'" t="inlineStr"{_s(book.styles.link)}><is><t>{text}</t></is></c>')
    )
    if pc.any(linked).as_py():
        links.append((pc.filter(refs, linked), pc.filter(target, linked)))
    if pc.all(linked).as_py():
        return cells
    return pc.if_else(linked, _joined(cells), _lit(""))


def _value_bytes(text: pa.Array) -> np.ndarray:
    """The UTF-8 bytes of a large_string array's values, one after the other (no copy)."""
    if len(text) == 0:
        return np.empty(0, dtype=np.uint8)
    _, offsets_buf, data_buf = text.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[text.offset : text.offset + len(text) + 1]
    if data_buf is None:
        return np.empty(0, dtype=np.uint8)
    return np.frombuffer(data_buf, dtype=np.uint8)[int(offsets[0]) : int(offsets[-1])]


#: The bytes _bytes_present answers for besides the controls (below 32): the characters XML
#: escapes. Every byte it is asked about (the XML-illegal controls, CR, LF, & < > ") is one of
#: them; most of a text's bytes are not, so only those few are looked for.
_MARKUP_BYTES = b'&<>"'
_CONTROL_BYTES = 32
assert all(ord(c) < _CONTROL_BYTES or c.encode() in _MARKUP_BYTES for c in '\r\n&<>"')


def _bytes_present(text: pa.Array) -> np.ndarray:
    """Which of the 256 byte values occur in the array's text, answered for the controls
    (below 32) and the bytes of & < > " only; every other entry is False.

    The controls are counted among the few bytes below 32 (a comparison in SIMD, then the
    rare ones picked out), the four markup bytes by one comparison each: counting every byte
    below 64, as before, picked out the spaces and digits too, at twice the cost."""
    data = _value_bytes(text)
    present = np.zeros(256, dtype=bool)
    if not len(data):
        return present
    controls = data < _CONTROL_BYTES
    if controls.any():
        present[:_CONTROL_BYTES] = np.bincount(data[controls], minlength=_CONTROL_BYTES) > 0
    for byte in _MARKUP_BYTES:
        present[byte] = bool((data == byte).any())
    return present


def _longest_bytes(text: pa.Array) -> int:
    """The largest UTF-8 length of a value, from the offsets alone."""
    if len(text) == 0:
        return 0
    return int(pc.max(pc.binary_length(text)).as_py() or 0)


#: openpyxl's ILLEGAL_CHARACTERS_RE (what safe_text removes) for Arrow's RE2.
_ILLEGAL_RE2 = "[\\x{0}-\\x{8}\\x{b}\\x{c}\\x{e}-\\x{1f}]"
assert ILLEGAL_CHARACTERS_RE.pattern == "[\\000-\\010]|[\\013-\\014]|[\\016-\\037]"
#: The same characters as byte values (each is one byte in UTF-8, and no other character's
#: UTF-8 contains these bytes).
_ILLEGAL_BYTES = np.array([b for b in range(32) if ILLEGAL_CHARACTERS_RE.match(chr(b))])


# Python's str.isspace() characters, to decide xml:space="preserve" the way the cell-by-cell code
# did (text[0].isspace() or text[-1].isspace()).
_SPACES = pa.array([chr(c) for c in range(0x3001) if chr(c).isspace()], type=pa.large_string())
_MAX_CODEUNITS = 2**62
# Every formula prefix is one character (checked here, so a longer one cannot slip by).
assert all(len(p) == 1 for p in FORMULA_PREFIXES)
_FORMULA_RE = "^[" + "".join(f"\\x{{{ord(p):x}}}" for p in FORMULA_PREFIXES) + "]"


def _text_cells(
    texts: Sequence[str | None],
    letter: str,
    rows: Rows,
    *,
    wrap: bool,
    styles: _Styles,
) -> pa.Array:
    """The `<c>` XML of a column of cleaned texts ("" for a missing or empty text).

    Built a whole column at a time with Arrow's string kernels (issue 14 goal 5): escaping, the
    formula-prefix and whitespace checks and the concatenation run in C instead of once per cell
    in Python. The XML is the same as the per-cell code wrote: a multi-line or `wrap` text gets
    the wrapped style, a text starting like a formula the quote-prefixed one, a text with
    whitespace at either end xml:space="preserve"."""
    return _text_cells_arrow(
        pa.array(texts, type=pa.large_string()), letter, rows, wrap=wrap, styles=styles
    )


def _text_cells_arrow(
    text: pa.Array,
    letter: str,
    rows: Rows,
    *,
    wrap: bool,
    styles: _Styles,
    present: np.ndarray | None = None,
) -> pa.Array:
    """_text_cells for an Arrow column; `present` is its _bytes_present when already known."""
    return _joined(_text_cell_parts(text, letter, rows, wrap=wrap, styles=styles, present=present))


def _text_cell_parts(
    text: pa.Array,
    letter: str,
    rows: Rows,
    *,
    wrap: bool,
    styles: _Styles,
    present: np.ndarray | None = None,
) -> _Cells:
    """_text_cells_arrow, as parts when every value has a cell."""
    empty = pc.fill_null(pc.equal(pc.binary_length(text), 0), True)
    if present is None:
        present = _bytes_present(text)
    first, last = _edge_bytes(text)
    # The formula-prefix and whitespace checks look at each text's first and last byte; only a
    # text that starts or ends outside ASCII (rare) is checked character-wise by Arrow.
    formula = _edge_flags(_FORMULA_FIRST[first], _FORMULA_LEAD[first], text, _starts_like_formula)
    # Each cell's style: 0 plain (top-aligned), 1 wrapped, 2 quoted, 3 quoted and wrapped.
    if wrap:
        wrapped = np.ones(len(text), dtype=bool)
    elif present[ord("\n")]:
        found = pc.fill_null(pc.match_substring(text, "\n"), False)
        wrapped = found.to_numpy(zero_copy_only=False)
    else:
        wrapped = np.zeros(len(text), dtype=bool)
    style_ids = (styles.top, styles.wrapped, styles.quoted, styles.quoted_wrapped)
    style = _per_value(formula.astype(np.int8) * 2 + wrapped, [_s(i) for i in style_ids])
    edge_space = _edge_flags(
        _SPACE_BYTE[first] | _SPACE_BYTE[last],
        _SPACE_LEAD[first] | (last >= 0x80),
        text,
        _edge_space,
    )
    space = _per_value(edge_space.astype(np.int8), ["", ' xml:space="preserve"'])
    # Escaping copies the column once per character; skipped when the character never occurs.
    escaped = text
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        if present[ord(char)]:
            escaped = pc.replace_substring(escaped, char, entity)
    refs = _row_array(rows)
    parts = _CellParts(
        (
            f'<c r="{letter}',
            refs,
            '" t="inlineStr"',
            style,
            "><is><t",
            space,
            ">",
            escaped,
            "</t></is></c>",
        )
    )
    if not pc.any(empty).as_py():
        return parts
    return pc.if_else(empty, _lit(""), _joined(parts))


def _starts_like_formula(text: pa.Array) -> pa.Array:
    return pc.match_substring_regex(text, _FORMULA_RE)


def _edge_space(text: pa.Array) -> pa.Array:
    """Whether a text starts or ends with whitespace (only its first and last characters are
    looked at: a regex with `$` scans every text)."""
    return pc.or_(
        pc.is_in(pc.utf8_slice_codeunits(text, 0, 1), value_set=_SPACES),
        pc.is_in(pc.utf8_slice_codeunits(text, -1, _MAX_CODEUNITS), value_set=_SPACES),
    )


def _edge_bytes(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(first byte, last byte) of each value of a large_string array; 0 for an empty or
    missing value (byte 0 is neither whitespace nor a formula prefix)."""
    n = len(text)
    first = np.zeros(n, dtype=np.uint8)
    last = np.zeros(n, dtype=np.uint8)
    if n == 0:
        return first, last
    _, offsets_buf, data_buf = text.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[text.offset : text.offset + n + 1]
    starts, ends = offsets[:-1], offsets[1:]
    filled = ends > starts
    if text.null_count:
        filled &= pc.is_valid(text).to_numpy(zero_copy_only=False)
    if data_buf is None or not filled.any():
        return first, last
    data = np.frombuffer(data_buf, dtype=np.uint8)
    first[filled] = data[starts[filled]]
    last[filled] = data[ends[filled] - 1]
    return first, last


def _edge_flags(
    known: np.ndarray,
    unsure: np.ndarray,
    text: pa.Array,
    exact: Callable[[pa.Array], pa.Array],
) -> np.ndarray:
    """A per-value flag that is `known` from the values' edge bytes, except where `unsure`
    (a character outside ASCII at the edge): those values get `exact` (the Arrow check)."""
    flags = known.copy()
    unsure_at = np.flatnonzero(unsure)
    if len(unsure_at):
        checked = exact(text.take(pa.array(unsure_at)))
        flags[unsure_at] = pc.fill_null(checked, False).to_numpy(zero_copy_only=False)
    return flags


def _per_value(codes: np.ndarray, texts: Sequence[str]) -> str | pa.Array:
    """texts[code] for each value: one text when every value has the same code (then it is
    joined in as a literal, not as a column of copies of it)."""
    if not len(codes):
        return texts[0]
    low, high = int(codes.min()), int(codes.max())
    if low == high:
        return texts[low]
    return pa.array(texts, type=pa.large_string()).take(pa.array(codes))


def _join(*parts: str | pa.Array) -> pa.Array:
    """The element-wise concatenation of `parts` (texts and equally long Arrow arrays), with
    neighbouring texts made one literal; null where any array is null."""
    merged: list[str | pa.Array] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return pc.binary_join_element_wise(
        *(_lit(p) if isinstance(p, str) else p for p in merged), _lit("")
    )


def _byte_table(chars: Iterable[str], *, lead: bool) -> np.ndarray:
    """A 256-entry lookup: the byte values of the ASCII `chars` (lead=False), or the first
    UTF-8 bytes of the others (lead=True)."""
    table = np.zeros(256, dtype=bool)
    for char in chars:
        encoded = char.encode()
        if (len(encoded) > 1) == lead:
            table[encoded[0]] = True
    return table


_SPACE_CHARS = _SPACES.to_pylist()
_SPACE_BYTE = _byte_table(_SPACE_CHARS, lead=False)
_SPACE_LEAD = _byte_table(_SPACE_CHARS, lead=True)
_FORMULA_FIRST = _byte_table(FORMULA_PREFIXES, lead=False)
_FORMULA_LEAD = _byte_table(FORMULA_PREFIXES, lead=True)


_LITERALS: dict[str, pa.Scalar] = {}


def _lit(text: str) -> pa.Scalar:
    """`text` as an Arrow large_string scalar, made once per distinct text (the same few
    literals join every column's cells: made anew, they cost more than some joins)."""
    scalar = _LITERALS.get(text)
    if scalar is None:
        if len(_LITERALS) > 4096:  # texts with a row number or a label: keep the cache small
            _LITERALS.clear()
        scalar = _LITERALS[text] = pa.scalar(text, type=pa.large_string())
    return scalar


def _concatenated(strings: pa.Array) -> bytes:
    """Every string of a large_string array without nulls, one after the other, as UTF-8: the
    array's data buffer between its first and last offsets (no Python string per value)."""
    return bytes(_concatenated_view(strings))


def _concatenated_view(strings: pa.Array) -> memoryview:
    """_concatenated without the copy: a view of the array's data buffer (which it keeps
    alive)."""
    if len(strings) == 0:
        return memoryview(b"")
    if strings.null_count:
        strings = pc.fill_null(strings, _lit(""))
    _, offsets_buf, data_buf = strings.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[
        strings.offset : strings.offset + len(strings) + 1
    ]
    return memoryview(data_buf)[int(offsets[0]) : int(offsets[-1])]


def _width(header: str, values: Iterable[Any], kind: str) -> float:
    if kind == "date":
        longest = 10
    elif kind == "datetime":
        longest = 16
    elif kind == "link":
        longest = 8
    else:
        longest = 0
        for v in values:
            if v is None or v is pd.NA or v is pd.NaT or v != v:  # v != v: NaN
                continue
            text = v if isinstance(v, str) else str(v)
            n = len(text) if "\n" not in text else max(len(line) for line in text.split("\n"))
            if n > longest:
                longest = n
                if longest >= MAX_WIDTH:
                    break
    return float(min(MAX_WIDTH, max(len(header) + 4, longest + 2, 8)))


@dataclass(frozen=True)
class TableInfo:
    """Where a table landed: its data rows and its column keys (for conditional formats)."""

    first_row: int  # first data row
    last_row: int  # last data row (== first_row when the table is empty: one blank row)
    columns: tuple[str, ...]

    def letter(self, key: str) -> str:
        return get_column_letter(self.columns.index(key) + 1)


def finish_sheet(ws: Worksheet, *, header_row: int = HEADER_ROW, freeze: bool = True) -> None:
    """Freeze the header, repeat it on every printed page, and print landscape A4 to width."""
    if freeze:
        ws.freeze_panes = f"A{header_row + 1}"
    ws.print_title_rows = f"{header_row}:{header_row}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.gridLines = False


# The file is written by openpyxl's public `Workbook.save` with empty data sheets; then each
# data sheet's part gets its rows (and hyperlinks) spliced in while the package is copied into
# the final zip with fixed timestamps. Only the OOXML format is relied on, no openpyxl internals
# (issue 14 goal 5: its private writer classes may change in any release).
_SHEET_DATA_RE = re.compile(rb"<sheetData\s*/>|<sheetData>.*?</sheetData>", re.DOTALL)
_DIMENSION_RE = re.compile(rb"<dimension\b[^>]*/>")
# CT_Worksheet: <hyperlinks> comes right after <dataValidations>, before these.
_AFTER_HYPERLINKS = (
    b"<printOptions",
    b"<pageMargins",
    b"<pageSetup",
    b"<headerFooter",
    b"<rowBreaks",
    b"<colBreaks",
    b"<customProperties",
    b"<drawing",
    b"<legacyDrawing",
    b"<tableParts",
    b"<extLst",
    b"</worksheet>",
)


def _row_attrs(ws: Worksheet, heights: Sequence[tuple[np.ndarray, np.ndarray]]) -> _RowAttrs:
    """Row attributes for the table rows' `heights` and the worksheet's own row dimensions,
    written exactly as openpyxl writes them: each distinct height is rendered once through a
    RowDimension, and a row's last height wins, the worksheet's (headers, a few layout rows)
    over any table height, as they always did."""
    own = [
        (row, "".join(f' {k}="{_attr_escape(str(v))}"' for k, v in dim))
        for row, dim in ws.row_dimensions.items()
    ]
    texts = [""]
    row_chunks: list[np.ndarray] = []
    code_chunks: list[np.ndarray] = []
    if heights:
        points = np.concatenate([p for _, p in heights])
        distinct, codes = np.unique(points, return_inverse=True)
        for height in distinct.tolist():
            dim = RowDimension(ws, index=1, ht=height)
            texts.append("".join(f' {k}="{_attr_escape(str(v))}"' for k, v in dim))
        row_chunks.append(np.concatenate([r for r, _ in heights]).astype(np.int64, copy=False))
        code_chunks.append(codes.astype(np.int64) + 1)
    if own:
        index = {text: i for i, text in enumerate(texts)}
        row_chunks.append(np.array([row for row, _ in own], dtype=np.int64))
        code_chunks.append(
            np.array([index.setdefault(text, len(index)) for _, text in own], dtype=np.int64)
        )
        texts = list(index)
    if not row_chunks:
        return _RowAttrs(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), texts)
    rows = np.concatenate(row_chunks)
    codes_all = np.concatenate(code_chunks)
    # The last entry of each row wins: unique over the reversed arrays finds each row's last.
    unique_rows, last = np.unique(rows[::-1], return_index=True)
    return _RowAttrs(unique_rows, codes_all[::-1][last], texts)


def _splice_sheet(part: bytes, ws: Worksheet, data: _SheetData, links: bytes) -> list[Any]:
    """The worksheet part with our rows and `links` (its <hyperlinks> element, or b""), in
    pieces to be written one after the other (bytes and views of Arrow buffers): the rows of
    a large table are never copied into one bytes object."""
    row_attrs = _row_attrs(ws, data.heights)
    # Everything is located in the part openpyxl wrote (small); the rows and hyperlinks are
    # put in with one concatenation, so the large result is never searched or copied again.
    dimension = f'<dimension ref="{data.dimension}"/>'.encode()
    part, n = _DIMENSION_RE.subn(lambda _m: dimension, part, count=1)
    if n != 1:
        # openpyxl always writes one; without it the rows still read fine, so add it.
        part = part.replace(b"<sheetViews", dimension + b"<sheetViews", 1)
    found = _SHEET_DATA_RE.search(part)
    if found is None:
        raise RuntimeError(f"no sheetData in the part of sheet {ws.title!r}")
    sheet_data = data.sheet_data_parts(row_attrs)
    if not links:
        return [part[: found.start()], *sheet_data, part[found.end() :]]
    tail_at = min(i for i in (part.find(tag) for tag in _AFTER_HYPERLINKS) if i >= 0)
    return [
        part[: found.start()],
        *sheet_data,
        part[found.end() : tail_at],
        links,
        part[tail_at:],
    ]


class _Zip32Exceeded(Exception):
    """A part or the package is too large for the classic zip headers (4 GiB, 65,535 parts)."""


_ZIP32_LIMIT = 0xFFFFFFFF
_ZIP_MAX_ENTRIES = 0xFFFF
#: Deflated, "version needed to extract" 2.0; made by version 2.0 on Unix (as zipfile writes).
_ZIP_VERSION = 20
_ZIP_MADE_BY = (3 << 8) | _ZIP_VERSION
_ZIP_UTF8_NAME = 0x800


class _DeflatedPackage:
    """A zip archive of deflated parts written with zlib-ng, in the layout Python's zipfile
    writes (local header, data; then the central directory): every part has the given time and
    is readable and writable by its owner only. zipfile cannot take another compressor, so the
    few headers are written here; a package beyond the classic limits raises _Zip32Exceeded and
    is written by zipfile with zip64 headers instead (`XlsxBook.to_bytes`)."""

    def __init__(self, date_time: tuple[int, int, int, int, int, int]) -> None:
        year, month, day, hour, minute, second = date_time
        self._time = (hour << 11) | (minute << 5) | (second // 2)
        self._date = ((year - 1980) << 9) | (month << 5) | day
        self._chunks: list[bytes] = []
        self._central: list[bytes] = []
        self._offset = 0

    def put(self, name: str, pieces: Sequence[bytes | memoryview]) -> None:
        """A part, given as pieces of its bytes one after the other (a large table's rows are
        a view of the Arrow buffer they were joined in): deflated and checksummed piece by
        piece, so the part is never copied into one bytes object."""
        encoded = name.encode("utf-8")
        flags = 0 if name.isascii() else _ZIP_UTF8_NAME
        deflate = zlib_ng.compressobj(ZIP_LEVEL, zlib_ng.DEFLATED, -zlib_ng.MAX_WBITS)
        crc = 0
        size = 0
        deflated: list[bytes] = []
        for piece in pieces:
            crc = zlib_ng.crc32(piece, crc)
            size += memoryview(piece).nbytes
            deflated.append(deflate.compress(piece))
        deflated.append(deflate.flush())
        body = b"".join(deflated)
        if (
            size >= _ZIP32_LIMIT
            or self._offset + 30 + len(encoded) + len(body) >= _ZIP32_LIMIT
            or len(self._central) >= _ZIP_MAX_ENTRIES - 1
        ):
            raise _Zip32Exceeded(name)
        common = (
            _ZIP_VERSION,
            flags,
            zipfile.ZIP_DEFLATED,
            self._time,
            self._date,
            crc,
            len(body),
            size,
            len(encoded),
        )
        header = struct.pack("<4s5H3L2H", b"PK\x03\x04", *common, 0)
        self._central.append(
            struct.pack(
                "<4sH5H3L5H2L",
                b"PK\x01\x02",
                _ZIP_MADE_BY,
                *common,
                0,
                0,
                0,
                0,
                0o600 << 16,
                self._offset,
            )
            + encoded
        )
        self._chunks += (header, encoded, body)
        self._offset += len(header) + len(encoded) + len(body)

    def getvalue(self) -> bytes:
        directory = b"".join(self._central)
        if self._offset + len(directory) >= _ZIP32_LIMIT:
            raise _Zip32Exceeded("central directory")
        n = len(self._central)
        end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, len(directory), self._offset, 0)
        return b"".join((*self._chunks, directory, end))


class _ZipfilePackage:
    """The same package written by Python's zipfile with zlib (and zip64 headers where a part
    or the package needs them): for a workbook beyond the classic zip limits."""

    def __init__(self, date_time: tuple[int, int, int, int, int, int]) -> None:
        self._date_time = date_time
        self._out = io.BytesIO()
        self._zip = zipfile.ZipFile(
            self._out, "w", zipfile.ZIP_DEFLATED, allowZip64=True, compresslevel=ZIP_LEVEL
        )

    def put(self, name: str, pieces: Sequence[bytes | memoryview]) -> None:
        data = b"".join(pieces)
        info = zipfile.ZipInfo(name, date_time=self._date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o600 << 16
        # A ZipInfo carries no level of its own: without this, zlib's default 6 is used.
        self._zip.writestr(info, data, compresslevel=ZIP_LEVEL)

    def getvalue(self) -> bytes:
        self._zip.close()
        return self._out.getvalue()


def _zip_time(local_time: dt.datetime) -> tuple[int, int, int, int, int, int]:
    return (
        max(local_time.year, 1980),
        local_time.month,
        local_time.day,
        local_time.hour,
        local_time.minute,
        local_time.second - local_time.second % 2,
    )


class XlsxBook:
    """One workbook being written: its sheets' cell XML, styles, and the names already used.

    `translate` turns a choice value into the book's language (for `choice` columns). Sheets are
    added with `new_sheet`, cells with `put_text` and `write_table`; `to_bytes` writes the file.
    Everything that is not a cell (column widths, panes, charts, conditional formats, print
    setup) is set on the openpyxl worksheet as usual.
    """

    def __init__(
        self,
        wb: Workbook,
        *,
        language: str,
        max_rows: int = MAX_ROWS,
        translate: Callable[[str], str] = str,
    ) -> None:
        self.wb = wb
        self.language = language
        self.styles = _Styles(wb, language)
        self.table_names: list[str] = []
        self.sheet_names: list[str] = []
        self.max_rows = max_rows
        self.translate = translate
        self.open_text = label("open_link", language)
        self.data: dict[int, _SheetData] = {}  # by id(worksheet)

    def new_sheet(self, title: str) -> Worksheet:
        """A new worksheet named `title` (made a safe, unique sheet name)."""
        name = safe_sheet_name(title, self.sheet_names)
        self.sheet_names.append(name)
        ws = self.wb.create_sheet(name)
        self.data[id(ws)] = _SheetData()
        return ws

    def sheet(self, ws: Worksheet) -> _SheetData:
        return self.data[id(ws)]

    @property
    def sheet_titles(self) -> tuple[str, ...]:
        return tuple(ws.title for ws in self.wb.worksheets)

    def set_row_heights(self, ws: Worksheet, heights: Mapping[int, float]) -> None:
        """Heights (points) of table body rows, by row number; cheaper than setting
        `ws.row_dimensions[row].height` row by row, and written the same way."""
        rows = np.fromiter(heights.keys(), dtype=np.int64, count=len(heights))
        points = np.fromiter(heights.values(), dtype=np.float64, count=len(heights))
        self.set_row_height_array(ws, rows, points)

    def set_row_height_array(self, ws: Worksheet, rows: np.ndarray, points: np.ndarray) -> None:
        """set_row_heights with the rows and their heights as arrays (no Python object per
        row); a row given again later gets the later height."""
        if len(rows) != len(points):
            raise ValueError("row heights: as many rows as heights are needed")
        if len(rows):
            self.sheet(ws).heights.append(
                (np.asarray(rows, dtype=np.int64), np.asarray(points, dtype=np.float64))
            )

    def put_text(self, ws: Worksheet, row: int, col: int, text: str, style_id: int = 0) -> None:
        """One text cell outside a table body (titles, headers, notes), always a string."""
        ref = f"{get_column_letter(col)}{row}"
        self.sheet(ws).put(
            row, col, _string_xml(ref, safe_text(text, language=self.language), style_id)
        )

    def put_value(
        self,
        ws: Worksheet,
        row: int,
        col: int,
        value: Any,
        kind: ColumnKind,
        style_id: int | None = None,
    ) -> None:
        """One typed cell outside a table (a date, a count, a link…), written exactly like a
        table cell of `kind`, or with `style_id` instead of the kind's style. Nothing is
        written for a missing value."""
        letter = get_column_letter(col)
        xml = _single_cell(self.styles, kind, value, f"{letter}{row}", style_id)
        if xml is not None:
            if xml:
                self.sheet(ws).put(row, col, xml)
            return
        links: list[tuple[str, str]] = []
        (xml,) = _column_cells(self, kind, [value], letter, [str(row)], links)
        if xml and style_id is not None:
            head, sep, tail = xml.partition(">")
            head = re.sub(r' s="\d+"', "", head)
            xml = f"{head}{_s(style_id)}{sep}{tail}"
        if xml:
            data = self.sheet(ws)
            data.put(row, col, xml)
            data.add_links(links)

    def write_table(
        self,
        ws: Worksheet,
        df: pd.DataFrame,
        columns: Sequence[Column],
        *,
        table_base: str,
        header_row: int = HEADER_ROW,
        first_col: int = 1,
        header_labels: Sequence[str] | None = None,
        set_widths: bool = True,
        header_styles: Sequence[int] | None = None,
    ) -> TableInfo:
        """Write `df`'s `columns` as an Excel table with its header at `header_row`.

        Header labels default to each key's label in the book's language. At most `max_rows`
        rows fit a sheet; a note under the table says how many were left out, and an empty
        table gets one blank row and a note that it is empty.
        """
        keys = [c.key for c in columns]
        labels = (
            list(header_labels)
            if header_labels is not None
            else [label(k, self.language) for k in keys]
        )
        # Table header cells must be unique, non-empty strings.
        seen: set[str] = set()
        for i, text in enumerate(labels):
            base = safe_text(text) or f"Kolumn{i + 1}"
            name = base
            n = 2
            while name.casefold() in seen:
                name = f"{base} {n}"
                n += 1
            seen.add(name.casefold())
            labels[i] = name
            self.put_text(
                ws, header_row, first_col + i, name, header_styles[i] if header_styles else 0
            )

        limit = max(0, min(self.max_rows, MAX_ROWS) - header_row - 1)  # keep one row for the note
        total = len(df)
        shown = min(total, limit)
        # The row numbers as text, made once per table and shared by its columns.
        rows = _row_numbers(header_row + 1, shown)
        data = self.sheet(ws)
        cols: list[_Cells] = []
        for column in columns:
            letter = get_column_letter(first_col + len(cols))
            values = df[column.key].iloc[:shown] if column.key in df.columns else None
            if (
                shown
                and values is not None
                and column.kind in ("text", "choice")
                and isinstance(values.dtype, pd.StringDtype)
            ):
                # Strings stay in Arrow from the frame to the XML (no Python str per cell).
                cells = _string_cells(self, column.kind, values, letter, rows, wrap=column.wrap)
            elif (
                shown
                and values is not None
                and column.kind in ("date", "datetime")
                and (values.dtype.kind == "M" or values.dtype == object)
            ):
                # datetime64 straight to serial numbers (the same values as cell by cell), and
                # a column of datetime.date objects through Arrow's date32 (_calendar_days).
                cells = _typed_cells(self, column.kind, values, letter, rows)
            elif shown and values is not None and column.kind in ("int", "year", "percent"):
                # Numbers from the frame's column, not a list of its values (_numbers).
                cells = _typed_cells(self, column.kind, values, letter, rows)
            elif (
                shown
                and values is not None
                and column.kind == "link"
                and isinstance(values.dtype, pd.StringDtype)
            ):
                cells = _link_cells(self, values, letter, rows, data.links)
            else:
                listed = values.tolist() if values is not None else [None] * shown
                links: list[tuple[str, str]] = []
                cells = _column_array(
                    self, column.kind, listed, letter, rows, links, wrap=column.wrap
                )
                data.add_links(links)
            cols.append(cells)
        if cols and shown:
            # A row's cells are joined in C (Arrow) when the sheet is written, not row by row.
            data.put_columns(header_row + 1, cols, first_col + len(columns) - 1)
        last_row = header_row + max(shown, 1)
        if shown < total:
            count = f"{total - shown:,}".replace(",", " ")
            note = label("rows_not_shown", self.language, count=count)
            self.put_text(ws, last_row + 1, first_col, note, self.styles.note)
        elif total == 0:
            empty = label("empty", self.language)
            self.put_text(ws, last_row + 1, first_col, empty, self.styles.subtitle)

        first, last = get_column_letter(first_col), get_column_letter(first_col + len(keys) - 1)
        ref = f"{first}{header_row}:{last}{last_row}"
        name = excel_table_name(table_base, self.table_names)
        self.table_names.append(name)
        table = Table(displayName=name, ref=ref)
        table.tableStyleInfo = TableStyleInfo(
            name=TABLE_STYLE, showRowStripes=True, showColumnStripes=False
        )
        table.tableColumns = [TableColumn(id=i + 1, name=labels[i]) for i in range(len(labels))]
        table.autoFilter = AutoFilter(ref=ref)
        ws.add_table(table)

        if set_widths:
            for j, column in enumerate(columns):
                letter = get_column_letter(first_col + j)
                key = column.key
                sample = (
                    df[key].iloc[: min(shown, WIDTH_SAMPLE)].tolist()
                    if key in df.columns
                    else [None] * min(shown, WIDTH_SAMPLE)
                )
                ws.column_dimensions[letter].width = _width(labels[j], sample, column.kind)
        return TableInfo(first_row=header_row + 1, last_row=last_row, columns=tuple(keys))

    def to_bytes(self, local_time: dt.datetime) -> bytes:
        """The .xlsx file; every zip entry carries `local_time` (not the clock), so the same
        content always gives the same bytes."""
        props = self.wb.properties
        if props.creator == "openpyxl":
            # Properties the caller never filled in carry the time the Workbook object was
            # made; the file's time is `local_time`, so the same content gives the same bytes.
            props.created = local_time.replace(tzinfo=None, microsecond=0)
            props.modified = props.created
        modified = props.modified
        plain = io.BytesIO()
        self.wb.save(plain)
        # Workbook.save stamps "modified" with the clock; the layouts' value is put back.
        props.modified = modified
        try:
            return self._package(plain, local_time, _DeflatedPackage)
        except _Zip32Exceeded:
            # From the same saved parts: a second Workbook.save would not give the same XML.
            return self._package(plain, local_time, _ZipfilePackage)

    def _package(
        self,
        plain: io.BytesIO,
        local_time: dt.datetime,
        package_type: type[_DeflatedPackage] | type[_ZipfilePackage],
    ) -> bytes:
        """The .xlsx package: the parts `Workbook.save` wrote to `plain`, with our rows and
        hyperlinks spliced into the data sheets, written by `package_type`."""
        props = self.wb.properties
        by_part = {ws.path.lstrip("/"): ws for ws in self.wb.worksheets if id(ws) in self.data}
        package = package_type(_zip_time(local_time))
        extra_rels: dict[str, bytes] = {}
        with zipfile.ZipFile(plain) as source:
            names = source.namelist()

            put = package.put
            # Each sheet's hyperlinks first: they go into relationship parts that may come
            # before the sheet; then each part is built and written in turn, so only one
            # sheet's rows are held as XML at a time.
            links: dict[str, bytes] = {}
            for name, ws in by_part.items():
                data = self.data[id(ws)]
                if data.links:
                    links[name], rels = data.hyperlinks_xml()
                    extra_rels[get_rels_path("/" + name).lstrip("/")] = rels
            for name in names:
                part = source.read(name)
                ws = by_part.get(name)
                if ws is not None:
                    put(name, _splice_sheet(part, ws, self.data[id(ws)], links.get(name, b"")))
                    continue
                if name == "docProps/core.xml":
                    part = tostring(props.to_tree())
                extra = extra_rels.pop(name, None)
                if extra:
                    head, sep, tail = part.rpartition(b"</Relationships>")
                    part = head + extra + sep + tail
                put(name, [part])
            for name, rels in sorted(extra_rels.items()):
                # The sheet had no relationships part of its own: write the hyperlinks'.
                head = f'<Relationships xmlns="{PKG_REL_NS}">'.encode()
                put(name, [head, rels, b"</Relationships>"])
        return package.getvalue()
