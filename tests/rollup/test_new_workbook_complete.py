"""Issue 11 item 6: a new workbook appears on the site only complete. A kill during the first
chunked upload left a 0-byte Länsöversikt.xlsx; now a new file is uploaded under a temporary
name and moved into place when complete, an existing one is replaced only by finishUpload, and
the next publish removes what a killed run left behind."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from sp_sync.errors import UploadError
from sp_sync.report.publish import RollupInputs, publish_workbooks, verify_workbook
from sp_sync.sharepoint.files import TEMP_PREFIX
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_snapshots

pytest.importorskip("sp_emulator")

FOLDER = "Sammanställningar"
FOLDER_URL = f"/sites/x/Shared Documents/{FOLDER}"
OVERVIEW = "Länsöversikt.xlsx"
CHUNK = 16 * 1024


class Killed(BaseException):
    """The process dying mid-upload: no `except SpSyncError` cleanup runs (like SIGKILL)."""


@pytest.fixture(scope="module")
def small_snapshots() -> dict[str, pd.DataFrame]:
    return make_snapshots(knowledge=300, feedback=150, dialogues_per_county=2)


@pytest.fixture()
def site() -> Iterator[tuple[Any, Any]]:
    from sp_emulator import SharePointEmulator
    from sp_sync.auth import StaticTokenProvider
    from sp_sync.sharepoint import SharePointClient

    with SharePointEmulator(sites=["x"]) as emu:
        client = SharePointClient(
            emu.site_url("x"), StaticTokenProvider(emu.issue_token()), organisation="Test"
        )
        yield emu, client
        client.close()


def _publish(
    client: Any,
    snapshots: dict[str, pd.DataFrame],
    previous: Any = None,
    *,
    when: dt.datetime = GENERATED_AT,
    progress: Any = None,
) -> Any:
    return publish_workbooks(
        client,
        snapshots,
        None,
        None,
        inputs=RollupInputs.of(site_url=SITE, generated_at=when, time_zone=STHLM),
        previous=previous,
        folder=FOLDER,
        chunk_size=CHUNK,
        progress=progress,
    )


def _kill_after_chunks(name: str, chunks: int) -> Any:
    def progress(workbook: str, done: int, total: int) -> None:
        if workbook == name and done >= chunks * CHUNK and done < total:
            raise Killed

    return progress


def _files(client: Any) -> dict[str, int]:
    return {f.name: f.size for f in client.list_files(FOLDER_URL)}


def test_a_kill_in_the_first_chunked_upload_leaves_no_file_under_the_real_name(
    site: tuple[Any, Any], small_snapshots: dict[str, pd.DataFrame]
) -> None:
    _emu, client = site
    with pytest.raises(Killed):
        _publish(client, small_snapshots, progress=_kill_after_chunks(OVERVIEW, 2))
    on_site = _files(client)
    assert OVERVIEW not in on_site  # neither empty nor partial
    temps = [n for n in on_site if n.startswith(TEMP_PREFIX)]
    assert len(temps) == 1 and temps[0].endswith(OVERVIEW)  # what the killed run left

    result = _publish(client, small_snapshots)  # the next night (no record was stored)
    on_site = _files(client)
    assert [n for n in on_site if n.startswith(TEMP_PREFIX)] == []
    assert len(on_site) == len(result.files) == 27
    overview = next(f for f in result.files if f.name == OVERVIEW)
    data = client.download_file(overview.server_relative_url)
    built = next(w for w in result.rendered if w.name == OVERVIEW)
    assert data == built.data and len(data) > 2 * CHUNK
    assert "Om rapporten" in verify_workbook(data)
    # An upload session hangs on an empty file, so the history holds that one empty version
    # (made under the temporary name); what anyone could open under the real name is complete.
    assert [v.size for v in client.get_file_versions(overview.server_relative_url)] == [0]


def test_a_failed_first_upload_removes_its_temporary_file(
    site: tuple[Any, Any], small_snapshots: dict[str, pd.DataFrame]
) -> None:
    emu, client = site
    # The third chunk request of the first workbook's session never gets an answer.
    emu.faults.drop_connection(count=1, path=r"continueUpload")
    with pytest.raises(UploadError) as caught:
        _publish(client, small_snapshots)
    assert OVERVIEW in str(caught.value)
    assert _files(client) == {}  # no real name, and the temporary file was removed

    emu.faults.clear()
    result = _publish(client, small_snapshots)
    assert {f.status for f in result.files} == {"uploaded"}
    assert all(size > 0 for size in _files(client).values())
    assert len(_files(client)) == 27


def test_an_existing_workbook_keeps_its_content_until_the_new_one_is_complete(
    site: tuple[Any, Any], small_snapshots: dict[str, pd.DataFrame]
) -> None:
    _emu, client = site
    first = _publish(client, small_snapshots)
    url = next(f.server_relative_url for f in first.files if f.name == OVERVIEW)
    before = client.download_file(url)
    with pytest.raises(Killed):
        _publish(  # the next day: a new reference date, so new figures (days overdue)
            client,
            small_snapshots,
            first.record,
            when=GENERATED_AT + dt.timedelta(days=1),
            progress=_kill_after_chunks(OVERVIEW, 2),
        )
    # SharePoint replaces the content only on finishUpload (File.StartUpload, MS Learn).
    assert client.download_file(url) == before
    assert [n for n in _files(client) if n.startswith(TEMP_PREFIX)] == []
