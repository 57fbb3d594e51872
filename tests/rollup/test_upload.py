"""Uploading workbooks into the emulator's default document library."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from openpyxl import load_workbook

from sp_sync.errors import UploadError
from sp_sync.report.publish import RollupWorkbook, upload_workbooks

if TYPE_CHECKING:  # imported lazily below: the module is skipped without the emulator
    from sp_emulator import SharePointEmulator
    from sp_sync.sharepoint import SharePointClient

emulator = pytest.importorskip("sp_emulator")


def _workbook(name: str, payload: bytes = b"") -> RollupWorkbook:
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.title = "Blad"
    wb.active["A1"] = "x" * 10
    if payload:
        # Incompressible text makes the file big enough for several chunks.
        wb.active["A2"] = payload.hex()
    buf = io.BytesIO()
    wb.save(buf)
    return RollupWorkbook(name, buf.getvalue(), ("Blad",))


@pytest.fixture()
def site() -> Iterator[tuple[SharePointEmulator, SharePointClient]]:
    from sp_emulator import SharePointEmulator
    from sp_sync.auth import StaticTokenProvider
    from sp_sync.sharepoint import SharePointClient

    with SharePointEmulator(sites=["x"]) as emu:
        client = SharePointClient(
            emu.site_url("x"), StaticTokenProvider(emu.issue_token()), organisation="Test"
        )
        yield emu, client
        client.close()


def test_simple_and_chunked_uploads_land_byte_for_byte(
    site: tuple[SharePointEmulator, SharePointClient],
) -> None:
    emu, client = site
    small = _workbook("Länsöversikt.xlsx")
    big = _workbook("Länsbild – Skåne län.xlsx", os.urandom(30_000))
    progress: list[tuple[str, int, int]] = []
    uploaded = upload_workbooks(
        client,
        [small, big],
        folder="Sammanställningar/Veckovis",
        chunk_size=8_192,
        progress=lambda n, d, t: progress.append((n, d, t)),
    )
    assert [u.name for u in uploaded] == [small.name, big.name]
    assert (
        uploaded[0].server_relative_url
        == "/sites/x/Shared Documents/Sammanställningar/Veckovis/Länsöversikt.xlsx"
    )
    assert [u.size for u in uploaded] == [small.size, big.size]
    for wb, up in zip([small, big], uploaded, strict=True):
        assert client.download_file(up.server_relative_url) == wb.data
    routes = [j["path"] for j in emu.journal()]
    assert sum("startUpload" in p for p in routes) == 1
    assert sum("continueUpload" in p for p in routes) >= 1
    assert sum("finishUpload" in p for p in routes) == 1
    big_progress = [p for p in progress if p[0] == big.name]
    assert big_progress[-1] == (big.name, big.size, big.size) and len(big_progress) >= 3


def test_overwrite_keeps_previous_as_version(
    site: tuple[SharePointEmulator, SharePointClient],
) -> None:
    _, client = site
    first = _workbook("Länsöversikt.xlsx")
    second = _workbook("Länsöversikt.xlsx", b"second")
    upload_workbooks(client, [first])
    [up] = upload_workbooks(client, [second])
    assert client.download_file(up.server_relative_url) == second.data
    versions = client.get_file_versions(up.server_relative_url)
    assert [v.size for v in versions] == [first.size]


def test_failed_chunked_upload_leaves_previous_file_intact(
    site: tuple[SharePointEmulator, SharePointClient],
) -> None:
    emu, client = site
    previous = _workbook("Länsbild – Skåne län.xlsx", os.urandom(200))
    [up] = upload_workbooks(client, [previous])
    newer = _workbook("Länsbild – Skåne län.xlsx", os.urandom(30_000))
    emu.faults.drop_connection(count=1, method="POST", path=r"continueUpload")
    with pytest.raises(UploadError) as err:
        upload_workbooks(client, [newer], chunk_size=8_192)
    assert "Länsbild – Skåne län.xlsx" in str(err.value) and "unchanged" in str(err.value)
    assert client.download_file(up.server_relative_url) == previous.data
    assert any("CancelUpload" in j["path"] for j in emu.journal())
    load_workbook(io.BytesIO(client.download_file(up.server_relative_url)))


def test_failed_first_upload_leaves_no_empty_file(
    site: tuple[SharePointEmulator, SharePointClient],
) -> None:
    emu, client = site
    wb = _workbook("Ny.xlsx", os.urandom(30_000))
    emu.faults.drop_connection(count=1, method="POST", path=r"continueUpload")
    with pytest.raises(UploadError):
        upload_workbooks(client, [wb], chunk_size=8_192)
    assert not client.file_exists("/sites/x/Shared Documents/Sammanställningar/Ny.xlsx")


def test_a_broken_workbook_is_never_uploaded(
    site: tuple[SharePointEmulator, SharePointClient],
) -> None:
    emu, client = site
    broken = RollupWorkbook("Trasig.xlsx", b"PK\x03\x04 not really", ("Blad",))
    emu.reset_stats()
    with pytest.raises(UploadError):
        upload_workbooks(client, [broken])
    assert emu.stats()["requests"] == 0


def test_throttled_chunk_is_sent_again_and_the_upload_completes(
    site: tuple[SharePointEmulator, SharePointClient],
) -> None:
    emu, client = site
    wb = _workbook("Återkoppling – Analys.xlsx", os.urandom(30_000))
    emu.faults.inject(status=429, count=1, method="POST", path=r"continueUpload", retry_after=0)
    emu.faults.inject(status=503, count=1, method="POST", path=r"finishUpload", retry_after=0)
    [up] = upload_workbooks(client, [wb], chunk_size=8_192)
    assert client.download_file(up.server_relative_url) == wb.data
    paths = [j["path"] for j in emu.journal()]
    assert not any("CancelUpload" in p for p in paths)
    assert sum("finishUpload" in p for p in paths) == 2  # the refused one, then the real one
