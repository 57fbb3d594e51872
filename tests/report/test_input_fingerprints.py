"""Which workbooks an edit rebuilds (issue 14 goal 4): the per-workbook input fingerprints, now
computed from each table hashed once, change for exactly the workbooks that show the edit."""

from __future__ import annotations

import pandas as pd

from sp_sync.report.fingerprint import WorkbookKey, workbook_input_fingerprints
from sp_sync.report.publish import build_tables
from sp_sync.report.tables import FEEDBACK, KNOWLEDGE
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_quality, make_snapshots


def _fingerprints(snaps: dict[str, pd.DataFrame]) -> dict[WorkbookKey, str]:
    tables = build_tables(
        snaps, make_quality(snaps), None, site_url=SITE, generated_at=GENERATED_AT, time_zone=STHLM
    )
    return workbook_input_fingerprints(tables, language="sv", max_rows=1_048_576)


def _changed(before: dict[WorkbookKey, str], after: dict[WorkbookKey, str]) -> set[WorkbookKey]:
    assert before.keys() == after.keys()
    return {key for key in before if before[key] != after[key]}


def test_nothing_changed_nothing_rebuilt() -> None:
    snaps = make_snapshots(knowledge=400, feedback=200)
    assert (
        _changed(_fingerprints(snaps), _fingerprints(make_snapshots(knowledge=400, feedback=200)))
        == set()
    )


def test_title_edits_in_one_county_rebuild_that_county_only() -> None:
    # The overview shows no knowledge titles but those of items with a data-quality record (its
    # fingerprint covers the tables it reads, no more): only the county's workbook is rebuilt.
    snaps = make_snapshots(knowledge=400, feedback=200)
    before = _fingerprints(snaps)
    kn = snaps[KNOWLEDGE].copy()
    county = str(kn["County"].iloc[0])
    flagged = set(make_quality(snaps)["item_id"].dropna().astype(int))
    rows = kn.index[(kn["County"] == county) & ~kn["ID"].isin(flagged)][:5]
    kn.loc[rows, "Title"] = "Reviderad kunskap"
    assert _changed(before, _fingerprints({**snaps, KNOWLEDGE: kn})) == {("county", county)}


def test_a_title_shown_on_datakvalitet_rebuilds_the_overview_too() -> None:
    snaps = make_snapshots(knowledge=400, feedback=200)
    kn = snaps[KNOWLEDGE].copy()
    item = kn.iloc[7]
    record = {
        "list_title": KNOWLEDGE,
        "item_id": int(item["ID"]),
        "item_url": item["_item_url"],
        "column": "Owner",
        "problem_sv": "Ansvarig saknas.",
        "problem_en": "Owner is missing.",
        "value": None,
    }
    quality = pd.concat([make_quality(snaps), pd.DataFrame([record])], ignore_index=True)

    def fingerprints(frames: dict[str, pd.DataFrame]) -> dict[WorkbookKey, str]:
        tables = build_tables(
            frames, quality, None, site_url=SITE, generated_at=GENERATED_AT, time_zone=STHLM
        )
        return workbook_input_fingerprints(tables, language="sv", max_rows=1_048_576)

    before = fingerprints(snaps)
    kn.loc[kn.index[7], "Title"] = "Reviderad kunskap"
    changed = _changed(before, fingerprints({**snaps, KNOWLEDGE: kn}))
    assert ("overview", "") in changed
    assert {key for key in changed if key[0] != "overview"} <= {("county", str(item["County"]))}


def test_a_feedback_edit_rebuilds_its_department_its_county_and_the_overview() -> None:
    snaps = make_snapshots(knowledge=400, feedback=200)
    before = _fingerprints(snaps)
    fb = snaps[FEEDBACK].copy()
    open_rows = fb.index[fb["Status"].isin(["Ny", "Pågående"])]
    row = open_rows[0]
    fb.loc[row, "Action"] = "Ny åtgärd"
    fb.loc[row, "Action_text"] = "Ny åtgärd"
    changed = _changed(before, _fingerprints({**snaps, FEEDBACK: fb}))
    assert changed == {
        ("overview", ""),
        ("department", str(fb.loc[row, "ReceivingDepartment"])),
        ("county", str(fb.loc[row, "County"])),
    }
