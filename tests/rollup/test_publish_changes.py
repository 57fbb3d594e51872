"""Only real changes uploaded (issue 12 item 9) and nights that cost what changed (issue 14 goal 4):
the fingerprint skip, against the emulator, counted in requests and uploads."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from sp_sync.report.fingerprint import (
    content_fingerprint,
    workbook_input_fingerprints,
    workbook_keys,
)
from sp_sync.report.layouts import render_county, render_department, render_overview
from sp_sync.report.publish import PublishResult, RollupInputs, build_tables, publish_workbooks
from sp_sync.report.tables import KNOWLEDGE, RollupTables
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_snapshots

emulator = pytest.importorskip("sp_emulator")

FOLDER = "Sammanställningar"


def _uploads(emu: Any) -> list[str]:
    """Paths of the requests that wrote a file's content."""
    return [
        e["path"]
        for e in emu.journal()
        if e["method"] == "POST"
        and any(op in e["path"].lower() for op in ("/files/add", "finishupload", "/$value"))
    ]


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
    client: Any, snapshots: dict[str, pd.DataFrame], when: dt.datetime, previous: Any
) -> PublishResult:
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


def test_second_publish_without_change_uploads_nothing_in_two_requests(
    site: tuple[Any, Any], small_snapshots: dict[str, pd.DataFrame]
) -> None:
    emu, client = site
    first = _publish(client, small_snapshots, GENERATED_AT, None)
    assert len(first.files) == 27
    assert {f.status for f in first.files} == {"uploaded"}
    assert len(_uploads(emu)) >= 27

    emu.reset_stats()
    journal_before = len(emu.journal())
    later = GENERATED_AT + dt.timedelta(hours=1)  # same day in Stockholm: only freshness moved
    second = _publish(client, small_snapshots, later, first.record)
    new_requests = emu.journal()[journal_before:]
    assert {f.status for f in second.files} == {"unchanged"}
    assert [f.name for f in second.files] == [f.name for f in first.files]
    assert second.aggregated is False and second.rendered == []
    assert _uploads_in(new_requests) == []
    # One listing of the folder's files with their ETags (the folder as the record names it:
    # no request for the library root or the folder), and one $batch that records the
    # night's check in the files' columns (its parts are journalled apart, with is_batch_sub).
    sent = [e for e in new_requests if not e.get("is_batch_sub")]
    assert len(sent) == 2 and sent[-1]["path"].endswith("/_api/$batch")
    assert sent[0]["path"].endswith("/Files")
    # No version was added to any workbook.
    url = first.files[0].server_relative_url
    assert len(client.get_file_versions(url)) == 0


def _uploads_in(entries: list[dict[str, Any]]) -> list[str]:
    return [
        e["path"]
        for e in entries
        if e["method"] == "POST"
        and any(op in e["path"].lower() for op in ("/files/add", "finishupload", "/$value"))
    ]


def test_an_edit_in_one_county_rebuilds_and_uploads_only_what_shows_it(
    site: tuple[Any, Any], small_snapshots: dict[str, pd.DataFrame]
) -> None:
    emu, client = site
    first = _publish(client, small_snapshots, GENERATED_AT, None)
    edited = dict(small_snapshots)
    kn = edited[KNOWLEDGE].copy()
    county = "Skåne län"
    rows = kn.index[kn["County"] == county][:5]
    kn.loc[rows, "Title"] = [f"Ändrad rubrik {i}" for i in range(len(rows))]
    edited[KNOWLEDGE] = kn

    journal_before = len(emu.journal())
    second = _publish(client, edited, GENERATED_AT + dt.timedelta(minutes=30), first.record)
    uploaded = [f.name for f in second.files if f.status == "uploaded"]
    # The overview shows no knowledge titles: its inputs (the tables it reads) are the same, so
    # it is not even rendered again.
    assert uploaded == [f"Länsbild – {county}.xlsx"]
    assert [w.name for w in second.rendered] == [f"Länsbild – {county}.xlsx"]
    assert len(_uploads_in(emu.journal()[journal_before:])) == 1
    assert sum(f.status == "unchanged" for f in second.files) == 26
    # The new version really holds the edit.
    data = client.download_file(f"/sites/x/Shared Documents/{FOLDER}/Länsbild – {county}.xlsx")
    assert b"\xc3\x84ndrad rubrik 0" in _sheet_text(data)


def _sheet_text(data: bytes) -> bytes:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return b"".join(z.read(n) for n in z.namelist() if n.startswith("xl/worksheets/"))


def test_a_workbook_replaced_on_the_site_is_uploaded_again(
    site: tuple[Any, Any], small_snapshots: dict[str, pd.DataFrame]
) -> None:
    _emu, client = site
    first = _publish(client, small_snapshots, GENERATED_AT, None)
    target = first.files[5]
    folder_url = target.server_relative_url.rsplit("/", 1)[0]
    client.upload_file(folder_url, target.name, b"someone else's file")
    second = _publish(client, small_snapshots, GENERATED_AT, first.record)
    statuses = {f.name: f.status for f in second.files}
    assert statuses[target.name] == "uploaded"
    assert sum(s == "uploaded" for s in statuses.values()) == 1
    assert client.download_file(target.server_relative_url) != b"someone else's file"


def test_content_fingerprint_ignores_generation_time_but_not_figures(
    small_snapshots: dict[str, pd.DataFrame],
) -> None:
    def tables(when: dt.datetime, snaps: dict[str, pd.DataFrame]) -> RollupTables:
        return build_tables(snaps, None, None, site_url=SITE, generated_at=when, time_zone=STHLM)

    a = tables(GENERATED_AT, small_snapshots)
    b = tables(GENERATED_AT + dt.timedelta(hours=2, minutes=7), small_snapshots)
    wa, wb = render_county(a, "Skåne län"), render_county(b, "Skåne län")
    assert wa.data != wb.data  # the subtitle and the document properties say when
    assert content_fingerprint(wa.data, a.generated_local) == content_fingerprint(
        wb.data, b.generated_local
    )
    assert workbook_input_fingerprints(a, language="sv", max_rows=1_048_576) == (
        workbook_input_fingerprints(b, language="sv", max_rows=1_048_576)
    )
    edited = dict(small_snapshots)
    kn = edited[KNOWLEDGE].copy()
    first = kn.index[kn["County"] == "Skåne län"][0]
    kn.loc[first, "Title"] = "Något annat"
    edited[KNOWLEDGE] = kn
    c = tables(GENERATED_AT, edited)
    wc = render_county(c, "Skåne län")
    assert content_fingerprint(wc.data, c.generated_local) != content_fingerprint(
        wa.data, a.generated_local
    )


def test_content_fingerprint_masks_the_generation_time_in_every_part_that_holds_it() -> None:
    """The generation time as text ("2026-03-30 07:15" and "… 07:15:00") is masked in any
    part (a data cell may hold it too), a part without it is taken as it is: parts differing
    only by the generation time give one digest, any other difference another."""
    when = dt.datetime(2026, 3, 30, 7, 15)

    def digest(*sheets: bytes) -> str:
        parts = {f"xl/worksheets/sheet{n}.xml": s for n, s in enumerate(sheets, 1)}
        return content_fingerprint(b"", when, parts=parts)

    def at(moment: dt.datetime) -> list[bytes]:
        short, long = moment.strftime("%Y-%m-%d %H:%M"), moment.strftime("%Y-%m-%d %H:%M:%S")
        return [
            f"<c><is><t>Skapad {short}</t></is></c>".encode(),
            f"<c><is><t>{long} och {short}</t></is></c>".encode(),
            b"<c><v>42</v></c>" * 1000,  # no mark: taken as it is
        ]

    later = when + dt.timedelta(hours=3, minutes=1)
    assert digest(*at(when)) != digest(*at(later))  # another time is data like any other
    same = content_fingerprint(
        b"", later, parts={f"xl/worksheets/sheet{n}.xml": s for n, s in enumerate(at(later), 1)}
    )
    assert digest(*at(when)) == same
    changed = at(when)
    changed[2] = changed[2].replace(b"42", b"43", 1)
    assert digest(*changed) != digest(*at(when))


def test_serial_marks_are_remembered_per_moment_as_written() -> None:
    """The generation time's and the last checks' cell values, asked for by every rendered
    workbook, are computed once per moment as written: an equal instant in another time zone
    (equal, same hash) is another wall-clock time in the sheet, so another mark."""
    from zoneinfo import ZoneInfo

    from sp_sync.report import fingerprint
    from sp_sync.report.xlsx_writer import _excel_serials

    def computed(moment: Any) -> bytes:
        return f"<v>{float(_excel_serials([moment])[1][0])!r}</v>".encode()

    here = dt.datetime(2026, 3, 30, 7, 15, 42, tzinfo=ZoneInfo("Europe/Stockholm"))
    moments = [
        here,
        here.astimezone(dt.UTC),  # the same instant: == here, but 05:15:42 in the sheet
        here.replace(tzinfo=None),
        pd.Timestamp(here),
        dt.datetime(1900, 2, 1, 12, 0),  # Excel's 1900 leap-year bug
    ]
    fingerprint._SERIAL_MARKS.clear()
    first = [fingerprint._serial_mark(m) for m in moments]
    again = [fingerprint._serial_mark(m) for m in reversed(moments)][::-1]
    assert first == again == [computed(m) for m in moments]
    assert first[0] != first[1]


def _perturbed(value: Any) -> Any:
    """The same table with its last row removed (dicts: in every entry)."""
    if isinstance(value, pd.DataFrame):
        return value.iloc[:-1] if len(value) else value
    return {k: _perturbed(v) for k, v in value.items()}


def test_input_fingerprints_cover_everything_a_layout_shows(
    small_snapshots: dict[str, pd.DataFrame],
) -> None:
    """A guard for layout changes: whenever changing a table changes a rendered workbook, that
    workbook's input fingerprint must change too, or a stale workbook would stay on the site."""
    tables = build_tables(
        small_snapshots, None, None, site_url=SITE, generated_at=GENERATED_AT, time_zone=STHLM
    )
    keys = [
        ("overview", ""),
        ("department", tables.reference.departments[0]),
        ("county", "Skåne län"),
    ]
    assert set(keys) <= set(workbook_keys(tables))

    def render(t: RollupTables, key: tuple[str, str]) -> str:
        kind, name = key
        if kind == "overview":
            wb = render_overview(t)
        elif kind == "department":
            wb = render_department(t, name)
        else:
            wb = render_county(t, name)
        return content_fingerprint(wb.data, t.generated_local)

    base_content = {k: render(tables, k) for k in keys}
    base_inputs = workbook_input_fingerprints(tables, language="sv", max_rows=1_048_576)
    frames = [
        f.name
        for f in dataclasses.fields(tables)
        if isinstance(getattr(tables, f.name), pd.DataFrame | dict)
    ]
    assert len(frames) >= 10
    for name in frames:
        changed = dataclasses.replace(tables, **{name: _perturbed(getattr(tables, name))})
        shown = [key for key in keys if render(changed, key) != base_content[key]]
        if not shown:
            continue  # (the fingerprints of all 27 workbooks are the costly part)
        inputs = workbook_input_fingerprints(changed, language="sv", max_rows=1_048_576)
        for key in shown:
            assert inputs[key] != base_inputs[key], (name, key)


# ------------------------------------------------------------------------------- whole pipeline


def test_second_run_with_no_list_change_uploads_nothing(night: tuple[Any, Any, Any]) -> None:
    from sp_sync.run import pipeline

    emu, runtime, _tmp = night
    site = runtime.settings.sites[0]
    first = pipeline.run_pipeline(runtime, site)
    doc = first.to_dict()
    assert doc["workbooks_uploaded"] == 27 and doc["workbooks_unchanged"] == 0

    journal_before = len(emu.journal())
    second = pipeline.run_pipeline(runtime, site)
    doc = second.to_dict()
    assert doc["workbooks_uploaded"] == 0 and doc["workbooks_unchanged"] == 27
    assert {w["status"] for w in doc["workbooks"]} == {"unchanged"}
    assert _uploads_in(emu.journal()[journal_before:]) == []
    text = second.format_text("sv")
    assert "27 arbetsböcker oförändrade" in text and "uppladdade till" not in text
    assert "27 workbooks unchanged" in second.format_text("en")
    status = pipeline.format_status(pipeline.site_status(runtime, site), "en")
    assert "workbooks: 0 uploaded, 27 unchanged" in status
    assert f"finished {second.finished.isoformat()}" in status

    # One feedback item's text edited: it shows in its county's workbook, its department's
    # and (when open) the overview — at most three uploads, the rest untouched.
    from sp_sync.report.tables import FEEDBACK

    backend = emu.backend
    bsite = backend.get_site("main")
    lst = backend.get_list(bsite, title=FEEDBACK)
    item_id = min(lst.items)
    county = lst.items[item_id].values["County"]
    backend.update_item(
        bsite, lst, backend.get_item(lst, item_id), {"Title": "Ny rubrik"}, if_match=None
    )
    journal_before = len(emu.journal())
    third = pipeline.run_pipeline(runtime, site).to_dict()
    assert third["totals"]["updated"] == 1, third["lists"]
    uploaded = {w["name"] for w in third["workbooks"] if w["status"] == "uploaded"}
    assert f"Länsbild – {county}.xlsx" in uploaded
    assert 1 <= len(uploaded) <= 3
    assert len(_uploads_in(emu.journal()[journal_before:])) == len(uploaded)
    assert third["workbooks_unchanged"] == 27 - len(uploaded)


def test_a_folder_removed_on_the_site_is_opened_again_before_anything_is_uploaded(
    site: tuple[Any, Any], small_snapshots: dict[str, pd.DataFrame]
) -> None:
    """The record names the folder, so a quiet night lists it straight away; a folder someone
    removed lists no file, and the next publish opens (creates) it as a first run does."""
    from sp_emulator import filestore

    emu, client = site
    first = _publish(client, small_snapshots, GENERATED_AT, None)
    url = first.record["folder"]["url"]
    assert first.record["folder"]["path"] == FOLDER
    assert url == first.files[0].server_relative_url.rsplit("/", 1)[0]

    folder = emu.backend.files.resolve_folder("x", "/sites/x", url)
    assert folder is not None
    filestore.recycle(emu.backend, folder, None)
    assert client.list_files(url) == []

    later = GENERATED_AT + dt.timedelta(hours=1)
    second = _publish(client, small_snapshots, later, first.record)
    assert {f.status for f in second.files} == {"uploaded"} and len(second.files) == 27
    assert sorted(f.name for f in client.list_files(url)) == sorted(f.name for f in first.files)
    assert second.record["folder"] == {"path": FOLDER, "url": url}
