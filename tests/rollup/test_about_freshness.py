"""Om rapporten says when: "Skapad" and "Referensdatum" are real dates (issue 12 item 7), each
list shows its last successful check beside its last change (issue 11 item 13), and neither
moves the content fingerprint, so a quiet night uploads nothing (issue 12 item 9)."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from sp_sync.report.fingerprint import content_fingerprint, freshness_times
from sp_sync.report.layouts import render_overview
from sp_sync.report.publish import RollupInputs, build_tables, publish_workbooks
from sp_sync.report.tables import DIALOGUES, FEEDBACK, KNOWLEDGE, RollupTables
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_snapshots

FOLDER = "Sammanställningar"
LAST_CHANGE = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def small_snapshots() -> dict[str, pd.DataFrame]:
    return make_snapshots(knowledge=200, feedback=100, dialogues_per_county=2)


def _sync_info(checked: dt.datetime) -> dict[str, dict[str, Any]]:
    # As sp_sync.run.pipeline passes it: the last check as ISO text from the state store.
    return {
        title: {"item_count": 1, "last_synced": LAST_CHANGE, "last_checked": checked.isoformat()}
        for title in (KNOWLEDGE, DIALOGUES, FEEDBACK)
    }


def _tables(snaps: dict[str, pd.DataFrame], when: dt.datetime) -> RollupTables:
    # The lists were checked a few minutes before the workbooks were generated.
    checked = when - dt.timedelta(minutes=4, seconds=11)
    return build_tables(
        snaps, None, None, _sync_info(checked), site_url=SITE, generated_at=when, time_zone=STHLM
    )


def _about(data: bytes) -> Worksheet:
    wb = load_workbook(io.BytesIO(data))
    return wb["Om rapporten"]


def _value_beside(ws: Worksheet, text: str) -> Any:
    for row in ws.iter_rows(min_col=1, max_col=2):
        if row[0].value == text:
            return row[1]
    raise AssertionError(f"no row {text!r} on Om rapporten")


def test_generated_and_reference_date_are_date_cells(
    small_snapshots: dict[str, pd.DataFrame],
) -> None:
    tables = _tables(small_snapshots, GENERATED_AT)
    ws = _about(render_overview(tables).data)
    created = _value_beside(ws, "Skapad")
    assert isinstance(created.value, dt.datetime)
    # 05:15 UTC on 30 March 2026 is 07:15 in Stockholm (summer time began the day before).
    assert created.value == dt.datetime(2026, 3, 30, 7, 15)
    assert created.number_format == "yyyy-mm-dd hh:mm"
    reference = _value_beside(ws, "Referensdatum")
    assert isinstance(reference.value, dt.datetime)  # openpyxl reads date cells as datetime
    assert reference.value == dt.datetime(2026, 3, 30)
    assert reference.number_format == "yyyy-mm-dd"


def test_each_list_shows_its_last_check_beside_its_last_change(
    small_snapshots: dict[str, pd.DataFrame],
) -> None:
    checked = GENERATED_AT - dt.timedelta(minutes=3)
    tables = build_tables(
        small_snapshots,
        None,
        None,
        _sync_info(checked),
        site_url=SITE,
        generated_at=GENERATED_AT,
        time_zone=STHLM,
    )
    ws = _about(render_overview(tables).data)
    header = next(
        r for r in ws.iter_rows(min_col=1, max_col=4) if r[0].value == "Lista" and r[1].value
    )
    assert [c.value for c in header] == [
        "Lista",
        "Antal poster",
        "Senast synkroniserad",
        "Senast kontrollerad",
    ]
    rows = {
        r[0].value: (r[2].value, r[3].value)
        for r in ws.iter_rows(min_row=header[0].row + 1, max_row=header[0].row + 3, max_col=4)
    }
    assert set(rows) == {KNOWLEDGE, DIALOGUES, FEEDBACK}
    for last_change, last_check in rows.values():
        assert last_change == dt.datetime(2026, 3, 1, 10, 30)  # CET
        assert last_check == dt.datetime(2026, 3, 30, 7, 12)  # CEST
    assert ws.cell(header[0].row + 1, 4).number_format == "yyyy-mm-dd hh:mm"
    assert ws.column_dimensions["D"].width >= 16  # the date-time is not shown as ####


def test_generation_time_and_last_checks_do_not_move_the_content_fingerprint(
    small_snapshots: dict[str, pd.DataFrame],
) -> None:
    a = _tables(small_snapshots, GENERATED_AT)
    b = _tables(small_snapshots, GENERATED_AT + dt.timedelta(hours=3, minutes=41, seconds=7))
    wa, wb = render_overview(a), render_overview(b)
    assert wa.data != wb.data
    assert freshness_times(a) != freshness_times(b)
    assert content_fingerprint(wa.data, a.generated_local, freshness_times(a)) == (
        content_fingerprint(wb.data, b.generated_local, freshness_times(b))
    )
    # Without masking the last checks, the two would differ: the mask is what holds it.
    assert content_fingerprint(wa.data, a.generated_local) != content_fingerprint(
        wb.data, b.generated_local
    )


# ------------------------------------------------------------------------- against the emulator


@pytest.fixture()
def site() -> Iterator[tuple[Any, Any]]:
    pytest.importorskip("sp_emulator")
    from sp_emulator import SharePointEmulator
    from sp_sync.auth import StaticTokenProvider
    from sp_sync.sharepoint import SharePointClient

    with SharePointEmulator(sites=["x"]) as emu:
        client = SharePointClient(
            emu.site_url("x"), StaticTokenProvider(emu.issue_token()), organisation="Test"
        )
        yield emu, client
        client.close()


def _content_writes(entries: list[dict[str, Any]]) -> list[str]:
    return [
        e["path"]
        for e in entries
        if e["method"] == "POST"
        and any(
            op in e["path"].lower()
            for op in ("/files/add", "finishupload", "/$value", "moveto", "movefile")
        )
    ]


def test_a_quiet_night_rendered_again_uploads_nothing(
    site: tuple[Any, Any], small_snapshots: dict[str, pd.DataFrame]
) -> None:
    """Every workbook is rendered again (render_all), with a new generation time and new last
    checks on Om rapporten: none is uploaded, no version is added."""
    emu, client = site

    def night(when: dt.datetime, previous: Any) -> Any:
        return publish_workbooks(
            client,
            small_snapshots,
            None,
            None,
            _sync_info(when),
            inputs=RollupInputs.of(site_url=SITE, generated_at=when, time_zone=STHLM),
            previous=previous,
            folder=FOLDER,
            chunk_size=64 * 1024,
            render_all=True,
        )

    first = night(GENERATED_AT, None)
    assert {f.status for f in first.files} == {"uploaded"}
    before = len(emu.journal())
    second = night(GENERATED_AT + dt.timedelta(hours=2, minutes=13), first.record)
    assert len(second.rendered) == len(first.files)  # really rendered, with the new times
    assert {f.status for f in second.files} == {"unchanged"}
    assert _content_writes(emu.journal()[before:]) == []
    overview = next(f for f in first.files if f.name == "Länsöversikt.xlsx")
    assert client.get_file_versions(overview.server_relative_url) == []
