"""summary.py: run summary values, JSON and text."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sp_sync.run.summary import ListSyncResult, RunSummary, UploadedWorkbook

STARTED = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def result(**kw: object) -> ListSyncResult:
    base: dict[str, object] = dict(
        list="Dialoger",
        mode="incremental",
        added=2,
        updated=3,
        deleted=1,
        unchanged=10,
        rows=15,
        requests=3,
        retries=1,
        wait_seconds=1.5,
        bytes_received=2048,
        duration_seconds=0.4,
        quality_issues=4,
    )
    base.update(kw)
    return ListSyncResult(**base)  # type: ignore[arg-type]


def test_list_result_json_and_text() -> None:
    r = result(
        item_count_mismatch=(16, 15),
        notes=("change token expired; full re-read",),
        notes_sv=("ändringstoken har gått ut; fullständig omläsning",),
        mode="reread",
    )
    doc = json.loads(json.dumps(r.to_dict()))
    assert doc["added"] == 2 and doc["mode"] == "reread"
    assert doc["item_count_mismatch"] == {"item_count": 16, "rows_read": 15}
    en = r.format_text("en")
    assert "full re-read" in en and "+2 added" in en and "-1 deleted" in en
    assert "SharePoint reports 16 items but 15 were read" in en
    sv = r.format_text("sv")
    assert "fullständig omläsning" in sv and "ändringstoken har gått ut" in sv
    assert "3 anrop" in sv and "1 omförsök" in sv


def test_continues_next_run_is_said_once() -> None:
    r = result(
        continues_next_run=True,
        notes=("stopped at ID 10; continues next run",),
        notes_sv=("avbröts vid ID 10; fortsätter nästa körning",),
    )
    assert r.format_text("en").count("continues next run") == 2  # the note + the flag line
    assert "fortsätter nästa körning" in r.format_text("sv")


def test_run_summary() -> None:
    lists = (result(), result(list="Länskunskap", continues_next_run=True))
    status = RunSummary.status_for(lists, [])
    assert status == "partial"
    assert RunSummary.status_for(lists[:1], []) == "ok"
    assert RunSummary.status_for([], [{"message": "x"}]) == "failed"
    s = RunSummary(
        run_id="r1",
        site="https://contoso.sharepoint.com/sites/team",
        started=STARTED,
        finished=STARTED + timedelta(seconds=42),
        lists=lists,
        workbooks=(
            UploadedWorkbook(
                "Länsöversikt.xlsx",
                "/sites/team/Shared Documents/Sammanställningar/Länsöversikt.xlsx",
                12345,
            ),
        ),
        errors=({"error": "ThrottledError", "message": "för många anrop"},),
        status=status,
    )
    doc = json.loads(json.dumps(s.to_dict()))
    assert doc["status"] == "partial" and doc["duration_seconds"] == 42
    assert doc["totals"]["added"] == 4 and doc["totals"]["wait_seconds"] == 3.0
    assert doc["workbooks"][0]["size"] == 12345
    text = s.format_text("sv")
    assert "delvis klar" in text and "Länsöversikt.xlsx" in text and "för många anrop" in text
    assert "partly done" in s.format_text("en")


def test_many_workbooks_are_summarised_by_folder_in_text_but_listed_in_json() -> None:
    start = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    folder = "/sites/x/Shared Documents/Sammanställningar"
    books = tuple(
        UploadedWorkbook(f"Länsbild – {i}.xlsx", f"{folder}/Länsbild – {i}.xlsx", 2048)
        for i in range(27)
    )
    summary = RunSummary(
        run_id="r",
        site="http://x/sites/x",
        started=start,
        finished=start + timedelta(seconds=3),
        workbooks=books,
    )
    text = summary.format_text("sv")
    assert f"27 arbetsböcker uppladdade till {folder} (54 kB)" in text
    assert "Länsbild – 3.xlsx" not in text
    assert "27 workbooks uploaded to" in summary.format_text("en")
    assert len(json.loads(json.dumps(summary.to_dict()))["workbooks"]) == 27
