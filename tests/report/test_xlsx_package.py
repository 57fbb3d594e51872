"""The .xlsx zip is written by sp_sync.report.xlsx_writer itself, deflated with zlib-ng (issue 14
goal 5: half of zlib's CPU): the entries must be the ones Python's zipfile wrote before (names,
order, times, permissions, sizes, CRCs) and the parts byte for byte the same; only the deflated
bytes differ. A package beyond the classic zip limits is written by zipfile with zip64 headers,
from the same saved parts."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
import zlib
from typing import Any

import pandas as pd
import pytest
from openpyxl import Workbook, load_workbook

from sp_sync.report import xlsx_writer
from sp_sync.report.xlsx_writer import Column, XlsxBook

WHEN = dt.datetime(2025, 6, 4, 13, 25, 31)


def _book(rows: int = 400) -> XlsxBook:
    book = XlsxBook(Workbook(), language="sv")
    ws = book.new_sheet("Kunskap åäö")
    frame = pd.DataFrame(
        {
            "title": pd.Series(
                [f"Rad {i} & <mer>" if i % 7 else f"=rad {i}\nandra raden" for i in range(rows)],
                dtype="string",
            ),
            "count": [i if i % 5 else None for i in range(rows)],
            "link": pd.Series(
                [f"https://exempel.se/sida?id={i}&x=1" if i % 3 else None for i in range(rows)],
                dtype="string",
            ),
        }
    )
    book.write_table(
        ws,
        frame,
        [Column("title"), Column("count", "int"), Column("link", "link")],
        table_base="Kunskap",
        header_labels=["Titel", "Antal", "Länk"],
    )
    return book


def _both(book: XlsxBook, monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, bytes]:
    """(the package as to_bytes writes it, the same saved parts written by zipfile)."""
    saved: dict[str, Any] = {}
    package = XlsxBook._package

    def spy(self: XlsxBook, plain: io.BytesIO, when: dt.datetime, kind: Any) -> bytes:
        saved["plain"] = plain
        return package(self, plain, when, kind)

    monkeypatch.setattr(XlsxBook, "_package", spy)
    data = book.to_bytes(WHEN)
    return data, package(book, saved["plain"], WHEN, xlsx_writer._ZipfilePackage)


_ENTRY_FIELDS = (
    "filename",
    "date_time",
    "compress_type",
    "comment",
    "extra",
    "create_system",
    "create_version",
    "extract_version",
    "reserved",
    "flag_bits",
    "volume",
    "internal_attr",
    "external_attr",
    "file_size",
    "CRC",
)


def test_the_package_has_zipfiles_entries_and_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    ours, by_zipfile = _both(_book(), monkeypatch)
    assert ours != by_zipfile  # zlib-ng's deflate, not zlib's
    with zipfile.ZipFile(io.BytesIO(ours)) as a, zipfile.ZipFile(io.BytesIO(by_zipfile)) as b:
        assert a.testzip() is None and b.testzip() is None  # every CRC checked
        assert a.namelist() == b.namelist()
        assert "xl/worksheets/_rels/sheet2.xml.rels" in a.namelist()  # the hyperlinks
        for x, y in zip(a.infolist(), b.infolist(), strict=True):
            assert [getattr(x, f) for f in _ENTRY_FIELDS] == [getattr(y, f) for f in _ENTRY_FIELDS]
            assert x.date_time == (2025, 6, 4, 13, 25, 30)
            assert x.compress_type == zipfile.ZIP_DEFLATED and x.compress_size < x.file_size
            assert a.read(x.filename) == b.read(y.filename)
    ws = load_workbook(io.BytesIO(ours))["Kunskap åäö"]
    assert [c.value for c in ws[6]] == ["Rad 1 & <mer>", 1, "Öppna"]
    assert ws["C6"].hyperlink.target == "https://exempel.se/sida?id=1&x=1"
    # The same content gives the same bytes.
    assert _book().to_bytes(WHEN) == ours


def test_with_zlibs_deflate_the_package_is_zipfiles_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The headers are exactly zipfile's: with zlib's deflate in place of zlib-ng's, the file
    is the one zipfile writes, byte for byte (the rows given in pieces deflate as one)."""
    monkeypatch.setattr(xlsx_writer, "zlib_ng", zlib)
    ours, by_zipfile = _both(_book(3000), monkeypatch)
    assert ours == by_zipfile


def test_a_package_beyond_the_zip32_limits_is_written_by_zipfile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    normal = _book().to_bytes(WHEN)
    # A limit every sheet exceeds stands in for a part of 4 GiB.
    monkeypatch.setattr(xlsx_writer, "_ZIP32_LIMIT", 5_000)
    large = _book().to_bytes(WHEN)
    assert large != normal
    with zipfile.ZipFile(io.BytesIO(large)) as a, zipfile.ZipFile(io.BytesIO(normal)) as b:
        assert a.testzip() is None
        assert a.namelist() == b.namelist()
        assert all(a.read(n) == b.read(n) for n in a.namelist())


def test_a_name_outside_ascii_is_flagged_utf8() -> None:
    package = xlsx_writer._DeflatedPackage((2025, 6, 4, 13, 25, 30))
    # A part given in pieces (bytes and views) is the pieces one after the other.
    package.put("a.xml", [b"<a/>" * 60, memoryview(b"<a/>" * 40), b""])
    package.put("blad/å.xml", [])
    with zipfile.ZipFile(io.BytesIO(package.getvalue())) as z:
        assert z.namelist() == ["a.xml", "blad/å.xml"]
        assert z.getinfo("blad/å.xml").flag_bits & 0x800
        assert not z.getinfo("a.xml").flag_bits & 0x800
        assert z.read("a.xml") == b"<a/>" * 100 and z.read("blad/å.xml") == b""
        assert z.testzip() is None
