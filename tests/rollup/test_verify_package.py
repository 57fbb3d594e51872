"""verify_workbook checks the .xlsx package without openpyxl (issue 14 goal 4): a workbook is
uploaded only when every part is intact and readable. Each test breaks one thing of a real
rendered workbook and asserts that it is refused, so the check cannot pass everything."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable

import pandas as pd
import pytest
from openpyxl import load_workbook

from sp_sync.errors import UploadError
from sp_sync.report.layouts import RollupWorkbook, render_county, render_overview
from sp_sync.report.publish import build_tables, verify_workbook
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_snapshots

Parts = dict[str, bytes]


@pytest.fixture(scope="module")
def small() -> dict[str, pd.DataFrame]:
    return make_snapshots(knowledge=400, feedback=300, dialogues_per_county=1)


@pytest.fixture(scope="module")
def county(small: dict[str, pd.DataFrame]) -> RollupWorkbook:
    tables = build_tables(
        small, None, None, site_url=SITE, generated_at=GENERATED_AT, time_zone=STHLM
    )
    return render_county(tables, "Skåne län")


@pytest.fixture(scope="module")
def overview(small: dict[str, pd.DataFrame]) -> RollupWorkbook:
    tables = build_tables(
        small, None, None, site_url=SITE, generated_at=GENERATED_AT, time_zone=STHLM
    )
    return render_overview(tables)


def parts_of(data: bytes) -> Parts:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def package(parts: Parts) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()


def changed(wb: RollupWorkbook, change: Callable[[Parts], None]) -> bytes:
    parts = parts_of(wb.data)
    change(parts)
    return package(parts)


def refused(data: bytes, wb: RollupWorkbook) -> str:
    with pytest.raises(UploadError) as caught:
        verify_workbook(data, expected_sheets=wb.sheets, name=wb.name)
    return caught.value.render("en")


def test_a_rendered_workbook_passes_and_its_sheets_are_named_as_openpyxl_names_them(
    county: RollupWorkbook, overview: RollupWorkbook
) -> None:
    for wb in (county, overview):
        sheets = verify_workbook(wb.data, expected_sheets=wb.sheets, name=wb.name)
        assert sheets == tuple(load_workbook(io.BytesIO(wb.data), read_only=True).sheetnames)
    # Repacked unchanged, it still passes: the checks below fail for what they break only.
    assert verify_workbook(changed(county, lambda p: None)) == county.sheets


def test_a_damaged_part_fails_its_crc(county: RollupWorkbook) -> None:
    data = bytearray(county.data)
    with zipfile.ZipFile(io.BytesIO(county.data)) as archive:
        info = archive.getinfo("xl/worksheets/sheet2.xml")
    # The local header is 30 bytes plus the name and the extra field; then the deflated data.
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    middle = start + info.compress_size // 2
    data[middle] ^= 0xFF
    assert "could not be opened again" in refused(bytes(data), county)


def _damage_at_start(data: bytearray, start: int, central: int) -> None:
    data[start] ^= 0xFF  # the deflate stream's first block header: zlib.error


def _unknown_compression(data: bytearray, start: int, central: int) -> None:
    data[central + 10 : central + 12] = (99).to_bytes(2, "little")  # NotImplementedError


def _encrypted_flag(data: bytearray, start: int, central: int) -> None:
    data[central + 8] |= 0x01  # RuntimeError: "is encrypted, password required"


@pytest.mark.parametrize(
    "damage",
    [_damage_at_start, _unknown_compression, _encrypted_flag],
    ids=["deflate-stream", "compression-method", "encrypted-flag"],
)
def test_any_damage_zipfile_raises_for_is_an_upload_error(
    county: RollupWorkbook, damage: Callable[[bytearray, int, int], None]
) -> None:
    # Review finding: zipfile raises more than BadZipFile for a damaged part (zlib.error is no
    # OSError); each must reach the user as the workbook that could not be opened again, never
    # as a traceback with the exit code of a bug.
    data = bytearray(county.data)
    with zipfile.ZipFile(io.BytesIO(county.data)) as archive:
        info = archive.getinfo("xl/worksheets/sheet2.xml")
    header = info.header_offset
    name_length = int.from_bytes(data[header + 26 : header + 28], "little")
    extra_length = int.from_bytes(data[header + 28 : header + 30], "little")
    # zipfile takes the method and flags from the part's central directory entry.
    name = info.filename.encode()
    central = data.find(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(name)] != name:
        central = data.find(b"PK\x01\x02", central + 4)
    damage(data, header + 30 + name_length + extra_length, central)
    assert "could not be opened again" in refused(bytes(data), county)


def test_a_sheet_that_is_not_well_formed_xml_is_refused(county: RollupWorkbook) -> None:
    def break_sheet(parts: Parts) -> None:
        parts["xl/worksheets/sheet1.xml"] = parts["xl/worksheets/sheet1.xml"].replace(
            b"</sheetData>", b"</sheetDta>", 1
        )

    assert "sheet1.xml" in refused(changed(county, break_sheet), county)


def test_a_large_sheet_cut_short_is_refused(overview: RollupWorkbook) -> None:
    # Larger than what is parsed whole: its start is parsed, its end must close the root.
    def grow_and_cut(parts: Parts) -> None:
        sheet = parts["xl/worksheets/sheet3.xml"]
        rows = re.search(rb"<sheetData>(.*)</sheetData>", sheet, re.S)
        assert rows is not None
        big = sheet.replace(rows[1], rows[1] * (2_500_000 // len(rows[1]) + 1), 1)
        assert len(big) > 2_000_000
        parts["xl/worksheets/sheet3.xml"] = big[: len(big) * 2 // 3]

    assert "sheet3.xml" in refused(changed(overview, grow_and_cut), overview)


def test_a_large_sheet_complete_passes(overview: RollupWorkbook) -> None:
    def grow(parts: Parts) -> None:
        sheet = parts["xl/worksheets/sheet3.xml"]
        rows = re.search(rb"<sheetData>(.*)</sheetData>", sheet, re.S)
        assert rows is not None
        parts["xl/worksheets/sheet3.xml"] = sheet.replace(
            rows[1], rows[1] * (2_500_000 // len(rows[1]) + 1), 1
        )

    assert verify_workbook(changed(overview, grow)) == overview.sheets


def test_a_part_a_relationship_names_must_exist(county: RollupWorkbook) -> None:
    def drop_table(parts: Parts) -> None:
        # Gone from the content types too: only the sheet's relationship still names it.
        del parts["xl/tables/table1.xml"]
        parts["[Content_Types].xml"] = re.sub(
            rb'<Override PartName="/xl/tables/table1.xml"[^>]*/>', b"", parts["[Content_Types].xml"]
        )

    assert "points at xl/tables/table1.xml, which is missing" in refused(
        changed(county, drop_table), county
    )


def test_a_part_the_content_types_name_must_exist(county: RollupWorkbook) -> None:
    def drop_styles(parts: Parts) -> None:
        del parts["xl/styles.xml"]

    assert "xl/styles.xml" in refused(changed(county, drop_styles), county)


def test_a_sheet_without_its_worksheet_part_is_refused(county: RollupWorkbook) -> None:
    def drop_sheet(parts: Parts) -> None:
        rels = parts["xl/_rels/workbook.xml.rels"]
        parts["xl/_rels/workbook.xml.rels"] = re.sub(
            rb'<Relationship [^>]*Target="/xl/worksheets/sheet2.xml"[^>]*/>', b"", rels
        )
        del parts["xl/worksheets/sheet2.xml"]

    message = refused(changed(county, drop_sheet), county)
    assert "no worksheet part" in message or "missing" in message


def test_a_package_without_its_workbook_part_is_refused(county: RollupWorkbook) -> None:
    def drop_book(parts: Parts) -> None:
        del parts["xl/workbook.xml"]

    assert "xl/workbook.xml" in refused(changed(county, drop_book), county)


def test_other_sheets_than_expected_are_refused(county: RollupWorkbook) -> None:
    with pytest.raises(UploadError) as caught:
        verify_workbook(county.data, expected_sheets=(*county.sheets, "Extra"), name="x")
    assert "expected" in caught.value.render("en")


def test_bytes_that_are_no_zip_are_refused(county: RollupWorkbook) -> None:
    assert "could not be opened again" in refused(county.data[:-200], county)
    assert "could not be opened again" in refused(b"PK\x03\x04 not really", county)


def test_the_parts_read_by_the_check_give_the_same_content_fingerprint(
    overview: RollupWorkbook,
) -> None:
    from sp_sync.report.fingerprint import content_fingerprint

    parts: dict[str, bytes] = {}
    verify_workbook(overview.data, expected_sheets=overview.sheets, parts=parts)
    assert parts == parts_of(overview.data)
    local = GENERATED_AT.astimezone(STHLM).replace(tzinfo=None)
    assert content_fingerprint(overview.data, local, parts=parts) == content_fingerprint(
        overview.data, local
    )
