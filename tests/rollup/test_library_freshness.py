"""Freshness in the workbooks' own metadata without a new version (issue 12 item 9): each night
every workbook's "Senast kontrollerad" column gets the run's time and "Data ändrad" the time its
content last changed, through one `$batch` of ValidateUpdateListItem(bNewDocumentUpdate=true).
The columns are added to the rollup library by `provision`."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from sp_sync.report.publish import RollupInputs, publish_workbooks
from sp_sync.schema import load_schemas
from sp_sync.schema.provision import (
    DATA_CHANGED_COLUMN,
    LAST_CHECKED_COLUMN,
    Plan,
    apply,
    library_column_steps,
    run_provision,
)
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_snapshots

pytest.importorskip("sp_emulator")

FOLDER = "Sammanställningar"


@pytest.fixture(scope="module")
def small_snapshots() -> dict[str, pd.DataFrame]:
    return make_snapshots(knowledge=200, feedback=100, dialogues_per_county=2)


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


def _provision_library(client: Any) -> None:
    steps = library_column_steps(client)
    apply(client, Plan(steps=tuple(steps), destructive=()))


def _night(client: Any, snapshots: dict[str, pd.DataFrame], when: dt.datetime, previous: Any):  # type: ignore[no-untyped-def]
    return publish_workbooks(
        client,
        snapshots,
        None,
        None,
        inputs=RollupInputs.of(site_url=SITE, generated_at=when, time_zone=STHLM),
        previous=previous,
        folder=FOLDER,
        chunk_size=64 * 1024,
    )


def _fields(client: Any, url: str) -> dict[str, Any]:
    item = client._get_json(
        f"/_api/web/getFileByServerRelativeUrl('{url}')/ListItemAllFields",
        description="reading a file's columns",
    )
    return {k: item.get(k) for k in (LAST_CHECKED_COLUMN, DATA_CHANGED_COLUMN)}


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _http_requests(emu: Any, since: int) -> list[dict[str, Any]]:
    """Requests that crossed the wire (a `$batch`'s parts are journalled apart)."""
    return [e for e in emu.journal()[since:] if not e.get("is_batch_sub")]


def test_provision_adds_the_freshness_columns_to_the_rollup_library(
    site: tuple[Any, Any],
) -> None:
    _emu, client = site
    schemas = load_schemas()
    planned, _ = run_provision(client, schemas, apply=False)
    library = [s for s in planned.columns_to_add if s.list_title == "Dokument"]
    assert [s.column for s in library] == [LAST_CHECKED_COLUMN, DATA_CHANGED_COLUMN]
    assert "Senast kontrollerad" in planned.format_text("sv")

    _provision_library(client)
    fields = {f.internal_name: f for f in client.get_fields("Dokument")}
    assert fields[LAST_CHECKED_COLUMN].title == "Senast kontrollerad"
    assert fields[DATA_CHANGED_COLUMN].title == "Data ändrad"
    assert library_column_steps(client) == []  # provisioned once, then nothing to do


def test_a_quiet_night_records_its_check_without_a_new_version(
    site: tuple[Any, Any], small_snapshots: dict[str, pd.DataFrame]
) -> None:
    emu, client = site
    _provision_library(client)
    first = _night(client, small_snapshots, GENERATED_AT, None)
    assert {f.status for f in first.files} == {"uploaded"}
    url = next(f.server_relative_url for f in first.files if f.name == "Länsöversikt.xlsx")
    county = next(f.server_relative_url for f in first.files if f.name.startswith("Länsbild"))
    # New workbooks: their item ids come with the next night's listing (no extra request).
    assert _fields(client, url) == {LAST_CHECKED_COLUMN: None, DATA_CHANGED_COLUMN: None}
    versions = {f.name: len(client.get_file_versions(f.server_relative_url)) for f in first.files}

    later = GENERATED_AT + dt.timedelta(hours=1, minutes=20)  # same day: nothing changed
    since = len(emu.journal())
    second = _night(client, small_snapshots, later, first.record)
    assert {f.status for f in second.files} == {"unchanged"}
    sent = _http_requests(emu, since)
    # The listing (of the folder the record names) and ONE $batch for the 27 workbooks'
    # columns.
    assert len(sent) == 2
    assert sent[-1]["path"].endswith("/_api/$batch")
    assert not any("/files/add" in e["path"].lower() for e in sent)
    for file_url in (url, county):
        fields = _fields(client, file_url)
        assert _utc(fields[LAST_CHECKED_COLUMN]) == later.replace(second=0)
        assert _utc(fields[DATA_CHANGED_COLUMN]) == GENERATED_AT.replace(second=0)
    after = {f.name: len(client.get_file_versions(f.server_relative_url)) for f in first.files}
    assert after == versions  # no workbook got a new version

    # The fingerprint skip still holds the night after: the record has the files' ETags.
    since = len(emu.journal())
    third = _night(client, small_snapshots, later + dt.timedelta(hours=1), second.record)
    assert {f.status for f in third.files} == {"unchanged"}
    assert len(_http_requests(emu, since)) == 2


def test_without_the_columns_the_night_still_succeeds(
    site: tuple[Any, Any], small_snapshots: dict[str, pd.DataFrame], caplog: Any
) -> None:
    _emu, client = site  # provision never ran: the library has no freshness columns
    first = _night(client, small_snapshots, GENERATED_AT, None)
    assert {f.status for f in first.files} == {"uploaded"}
    with caplog.at_level(logging.WARNING, logger="sp_sync.report.publish"):
        second = _night(client, small_snapshots, GENERATED_AT + dt.timedelta(hours=1), first.record)
    assert {f.status for f in second.files} == {"unchanged"}
    assert "sp-sync provision --apply" in caplog.text
    third = _night(client, small_snapshots, GENERATED_AT + dt.timedelta(hours=2), second.record)
    assert {f.status for f in third.files} == {"unchanged"}
