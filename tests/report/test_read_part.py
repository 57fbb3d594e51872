"""verify_workbook inflates the parts with zlib-ng (issue 14 goal 4: inflating was most of
checking a large overview) and keeps every check zipfile made: each part is what zipfile
reads, and a package zipfile refuses is refused too."""

from __future__ import annotations

import io
import zipfile

import pytest

from sp_sync.errors import UploadError
from sp_sync.report.layouts import render_overview
from sp_sync.report.publish import _read_part, build_tables, verify_workbook
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_snapshots


@pytest.fixture(scope="module")
def data() -> bytes:
    snaps = make_snapshots(knowledge=300, feedback=200, dialogues_per_county=1)
    tables = build_tables(
        snaps, None, None, site_url=SITE, generated_at=GENERATED_AT, time_zone=STHLM
    )
    return render_overview(tables).data


def _central(data: bytearray, name: str) -> int:
    raw = name.encode()
    at = data.find(b"PK\x01\x02")
    while data[at + 46 : at + 46 + len(raw)] != raw:
        at = data.find(b"PK\x01\x02", at + 4)
    return at


def test_every_part_is_what_zipfile_reads(data: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert all(archive.getinfo(n).compress_type == zipfile.ZIP_DEFLATED for n in names)
        for name in names:
            assert _read_part(archive, data, name) == archive.read(name)
    parts: dict[str, bytes] = {}
    verify_workbook(data, parts=parts)
    assert set(parts) == set(names)


def test_stored_and_zlib_deflated_packages_read_as_zipfile_reads_them(data: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        parts = {n: archive.read(n) for n in archive.namelist()}
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", method) as archive:
            for name, part in parts.items():
                archive.writestr(name, part)
        again: dict[str, bytes] = {}
        verify_workbook(out.getvalue(), parts=again)
        assert again == parts


def _refused(data: bytes) -> None:
    with pytest.raises(UploadError, match="could not be opened again"):
        verify_workbook(data)


def test_a_local_header_naming_another_part_is_refused(data: bytes) -> None:
    damaged = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo("xl/workbook.xml")
    at = info.header_offset + 30
    damaged[at : at + 2] = b"XX"  # "xl/" → "XX/" in the local header only
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(bytes(damaged))).read("xl/workbook.xml")
    _refused(bytes(damaged))


def test_a_part_longer_or_shorter_than_its_directory_says_is_refused(data: bytes) -> None:
    for delta in (-1, 1):
        damaged = bytearray(data)
        at = _central(damaged, "xl/workbook.xml")
        size = int.from_bytes(damaged[at + 24 : at + 28], "little")
        damaged[at + 24 : at + 28] = (size + delta).to_bytes(4, "little")
        _refused(bytes(damaged))


def test_a_deflate_stream_cut_short_is_refused(data: bytes) -> None:
    damaged = bytearray(data)
    at = _central(damaged, "xl/styles.xml")
    compressed = int.from_bytes(damaged[at + 20 : at + 24], "little")
    damaged[at + 20 : at + 24] = (compressed // 2).to_bytes(4, "little")
    _refused(bytes(damaged))


def test_a_bad_local_header_signature_is_refused(data: bytes) -> None:
    damaged = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo("xl/styles.xml")
    damaged[info.header_offset] = ord("X")
    _refused(bytes(damaged))
