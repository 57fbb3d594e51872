"""Drift found by the nightly check is shown on the overview's "Om rapporten" sheet."""

from __future__ import annotations

import io
from collections.abc import Sequence

from openpyxl import load_workbook

from sp_sync.report.publish import build_workbooks
from sp_sync.schema.drift import DriftFinding
from tests.rollup.helpers import GENERATED_AT, SITE, make_quality, make_snapshots


def _about_rows(language: str, drift: Sequence[DriftFinding] | None) -> list[tuple[object, ...]]:
    snapshots = make_snapshots()
    books = build_workbooks(
        snapshots,
        make_quality(snapshots),
        None,
        site_url=SITE,
        generated_at=GENERATED_AT,
        language=language,
        drift=drift,
    )
    overview = books[0]
    ws = load_workbook(io.BytesIO(overview.data))[overview.sheets[-1]]
    return [tuple(c for c in row if c is not None) for row in ws.iter_rows(values_only=True)]


def test_drift_findings_are_listed_with_translated_severity() -> None:
    findings = [
        DriftFinding(
            "column_added",
            "harmless",
            "Länskunskap",
            "Extra",
            "Kolumnen Extra har lagts till.",
            "Column Extra was added.",
        ),
        DriftFinding(
            "column_missing",
            "breaking",
            "Dialoger",
            "Phase",
            "Kolumnen Fas saknas.",
            "Column Phase is missing.",
        ),
    ]
    rows = _about_rows("sv", findings)
    assert ("Avvikelser mellan webbplatsen och listschemana",) in rows
    assert ("Länskunskap", "Extra", "Ofarlig", "Kolumnen Extra har lagts till.") in rows
    assert ("Dialoger", "Phase", "Stoppar rapporterna", "Kolumnen Fas saknas.") in rows
    rows_en = _about_rows("en", findings)
    assert ("Länskunskap", "Extra", "Harmless", "Column Extra was added.") in rows_en


def test_no_drift_says_so() -> None:
    rows = _about_rows("sv", None)
    assert ("Avvikelser mellan webbplatsen och listschemana",) in rows
    assert ("Inga avvikelser.",) in rows
