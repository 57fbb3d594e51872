"""Validation rules over hand-built normalized snapshots (no SharePoint needed)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from sp_sync.schema import SchemaSet, load_schemas
from sp_sync.sync.quality import (
    DataQualityIssue,
    issues_from_frame,
    issues_to_frame,
    validate_rows,
)

from .conftest import edit

SITE = "http://127.0.0.1:1/sites/x"


def url(list_url: str, item_id: int) -> str:
    return f"{SITE}/Lists/{list_url}/DispForm.aspx?ID={item_id}"


def dialoger() -> pd.DataFrame:
    rows = [
        # ok
        dict(
            ID=1,
            Title="Dialog Stockholm 2025",
            County="Stockholms län",
            Year=2025.0,
            Phase="Dialog",
            PlannedDate=dt.date(2025, 3, 1),
            HeldDate=dt.date(2025, 3, 2),
        ),
        # held date missing although phase is Dialog (required_if)
        dict(
            ID=2,
            Title="Dialog Skåne 2025",
            County="Skåne län",
            Year=2025.0,
            Phase="Återkoppling",
            PlannedDate=dt.date(2025, 4, 1),
            HeldDate=None,
        ),
        # ok: preparation needs no held date
        dict(
            ID=3,
            Title="Dialog Gotland 2025",
            County="Gotlands län",
            Year=2025.0,
            Phase="Förberedelse",
            PlannedDate=None,
            HeldDate=None,
        ),
        # unknown county, year out of range, unknown phase
        dict(
            ID=4,
            Title="Dialog X",
            County="Atlantis län",
            Year=1999.0,
            Phase="Planering",
            PlannedDate=None,
            HeldDate=None,
        ),
        # missing required county and title
        dict(
            ID=5,
            Title="  ",
            County=None,
            Year=np.nan,
            Phase="Förberedelse",
            PlannedDate=None,
            HeldDate=None,
        ),
    ]
    df = pd.DataFrame(rows)
    df["CountyLeadId"] = pd.array([None] * len(df), dtype="Int64")
    df["CountyLead"] = None
    df["_item_url"] = [url("Dialoger", i) for i in df["ID"]]
    return df


def kunskap() -> pd.DataFrame:
    df = pd.DataFrame(
        [
            dict(
                ID=10,
                Title="Kompetens i norr",
                County="Norrbottens län",
                SubjectArea="Kompetensförsörjning",
                Department="Företag",
                EntryType="Kunskap",
                Description="<p>x</p>",
                Description_text="x",
                Priority="Hög",
                ValidUntil=None,
                Status="Aktuell",
            ),
            dict(
                ID=11,
                Title="x" * 256,
                County="Skåne län",
                SubjectArea="Turism",
                Department="Regioner",
                EntryType=None,
                Description="<div></div>",
                Description_text="y" * 20001,
                Priority="Medel",
                ValidUntil=None,
                Status="Utkast",
            ),
        ]
    )
    df["OwnerId"] = pd.array([None, None], dtype="Int64")
    df["_item_url"] = [url("Lanskunskap", i) for i in df["ID"]]
    return df


def feedback() -> pd.DataFrame:
    df = pd.DataFrame(
        [
            # ok: Dialog 1 is in Stockholm, linked knowledge exists
            dict(
                ID=100,
                Title="Fler praktikplatser",
                County="Stockholms län",
                DialogueId=1,
                DialogueDate=dt.date(2025, 3, 2),
                ReceivingDepartment="Företag",
                SubjectArea="Kompetensförsörjning",
                DueDate=dt.date(2025, 6, 1),
                Status="Ny",
                LinkedKnowledgeId=[10],
            ),
            # due date before dialogue date; dialogue in another county
            dict(
                ID=101,
                Title="Bredband",
                County="Gotlands län",
                DialogueId=1,
                DialogueDate=dt.date(2025, 3, 2),
                ReceivingDepartment="Regioner",
                SubjectArea="Digitalisering",
                DueDate=dt.date(2025, 3, 1),
                Status="Pågående",
                LinkedKnowledgeId=[],
            ),
            # lookups that do not resolve; department missing
            dict(
                ID=102,
                Title="Turism",
                County="Skåne län",
                DialogueId=99,
                DialogueDate=dt.date(2025, 5, 5),
                ReceivingDepartment=None,
                SubjectArea=None,
                DueDate=None,
                Status="Klar",
                LinkedKnowledgeId=[10, 77],
            ),
        ]
    )
    df["DialogueId"] = df["DialogueId"].astype("Int64")
    df["OwnerId"] = pd.array([None] * 3, dtype="Int64")
    df["_item_url"] = [url("Dialogaterkoppling", i) for i in df["ID"]]
    return df


def keyed(issues: list[DataQualityIssue]) -> set[tuple[int, str]]:
    return {(i.item_id, i.column) for i in issues}


def test_dialoger_rules(schemas: SchemaSet) -> None:
    issues = validate_rows(schemas["Dialoger"], dialoger(), schemas)
    assert keyed(issues) == {
        (2, "HeldDate"),
        (4, "County"),
        (4, "Year"),
        (4, "Phase"),
        (5, "Title"),
        (5, "County"),
    }
    by = {(i.item_id, i.column): i for i in issues}
    held = by[(2, "HeldDate")]
    assert held.problem_sv == "Genomfört datum saknas fast dialogen är i fas Återkoppling."
    assert held.problem_en == "Date held is missing although the dialogue is in phase Återkoppling."
    assert held.item_url == url("Dialoger", 2)
    assert by[(4, "County")].problem_sv == "Okänt län i Län: 'Atlantis län'."
    assert by[(4, "County")].value == "Atlantis län"
    assert by[(4, "Year")].problem_sv == "År (1999) är mindre än 2000."
    assert by[(4, "Year")].problem_en == "Year (1999) is less than 2000."
    assert by[(4, "Phase")].problem_en == "'Planering' is not one of the choices for Phase."
    assert by[(5, "Title")].problem_sv == "Obligatoriskt fält saknas: Rubrik."
    assert by[(5, "County")].problem_en == "Required field is empty: County."
    assert by[(5, "County")].value is None
    # Ordered by item, then by the schema's column order.
    assert [(i.item_id, i.column) for i in issues][:4] == [
        (2, "HeldDate"),
        (4, "County"),
        (4, "Year"),
        (4, "Phase"),
    ]


def test_kunskap_lengths_and_choices(schemas: SchemaSet) -> None:
    issues = validate_rows(schemas["Länskunskap"], kunskap(), schemas)
    assert keyed(issues) == {(11, "Title"), (11, "SubjectArea"), (11, "Description")}
    by = {(i.item_id, i.column): i for i in issues}
    assert by[(11, "Title")].problem_sv == "Rubrik är för lång (256 tecken, högst 255)."
    assert by[(11, "Description")].problem_en == (
        "Description is too long (20001 characters, at most 20000)."
    )


def test_feedback_dates_lookups_and_county(schemas: SchemaSet) -> None:
    lookups = {"Dialoger": dialoger(), "Länskunskap": kunskap()}
    issues = validate_rows(schemas["Dialogåterkoppling"], feedback(), schemas, lookup_rows=lookups)
    assert keyed(issues) == {
        (101, "DueDate"),
        (101, "Dialogue"),
        (102, "Dialogue"),
        (102, "ReceivingDepartment"),
        (102, "LinkedKnowledge"),
    }
    by = {(i.item_id, i.column): i for i in issues}
    assert by[(101, "DueDate")].problem_sv == (
        "Sista datum (2025-03-01) ligger före dialogdatum (2025-03-02)."
    )
    assert by[(101, "Dialogue")].problem_en == (
        "The linked dialogue belongs to another county (Stockholms län)."
    )
    assert by[(102, "Dialogue")].problem_sv == (
        "Dialog pekar på en post som inte finns i Dialoger (ID 99)."
    )
    assert by[(102, "LinkedKnowledge")].value == "77"
    # Without the other lists' snapshots lookups are not judged (only dates/required).
    alone = validate_rows(schemas["Dialogåterkoppling"], feedback(), schemas)
    assert keyed(alone) == {(101, "DueDate"), (102, "ReceivingDepartment")}


def test_rows_are_not_dropped_or_changed(schemas: SchemaSet) -> None:
    rows = dialoger()
    before = rows.copy()
    validate_rows(schemas["Dialoger"], rows, schemas)
    pd.testing.assert_frame_equal(rows, before)


def test_multi_choice_membership(schemas: SchemaSet, schema_dir: Path) -> None:
    edit(
        schema_dir / "lanskunskap.yaml",
        "  - name: ValidUntil",
        "  - name: Tags\n    title: Taggar\n    type: multi_choice\n"
        "    choices: [a, b]\n  - name: ValidUntil",
    )
    s = load_schemas(schema_dir)
    rows = kunskap().iloc[:1].copy()
    rows = pd.concat([rows, rows.assign(ID=12)], ignore_index=True)
    rows["Tags"] = [["a", "b"], ["a", "zz", "yy"]]
    issues = [i for i in validate_rows(s["Länskunskap"], rows, s) if i.column == "Tags"]
    assert [(i.item_id, i.value) for i in issues] == [(12, "zz, yy")]


def test_issue_frame_round_trip(schemas: SchemaSet) -> None:
    issues = validate_rows(schemas["Dialoger"], dialoger(), schemas)
    frame = issues_to_frame(issues)
    assert list(frame.columns) == [
        "list_title",
        "item_id",
        "item_url",
        "column",
        "problem_sv",
        "problem_en",
        "value",
    ]
    assert len(frame) == len(issues)
    assert issues_from_frame(frame) == issues
    assert issues_to_frame([]).empty


def test_empty_rows(schemas: SchemaSet) -> None:
    assert validate_rows(schemas["Dialoger"], dialoger().iloc[0:0], schemas) == []


def test_exact_on_100k_rows(schemas: SchemaSet) -> None:
    """100,000 rows with one bad row in a hundred validate in about a second."""
    n = 100_000
    base = feedback()
    # Row 0 of the seed is clean; every 100th row is a copy of the bad rows 101/102.
    pick = np.zeros(n, dtype=int)
    pick[::100] = np.where(np.arange(0, n, 100) % 200 == 0, 1, 2)
    rows = base.loc[pick].reset_index(drop=True)
    rows["ID"] = np.arange(1, n + 1)
    rows["_item_url"] = [f"{SITE}/x?ID={i}" for i in rows["ID"]]
    lookups = {"Dialoger": dialoger(), "Länskunskap": kunskap()}
    issues = validate_rows(schemas["Dialogåterkoppling"], rows, schemas, lookup_rows=lookups)
    # 500 copies of row 101 (2 issues) and 500 of row 102 (3 issues).
    assert len(issues) == 500 * 2 + 500 * 3
    assert {i.item_id for i in issues} == set(range(1, n + 1, 100))


def test_python_rule_from_the_registry(schema_dir: Path) -> None:
    """`year_matches_date` is a cross-field rule implemented in Python, used from the YAML."""
    edit(
        schema_dir / "dialoger.yaml",
        "rules:\n",
        "rules:\n  - kind: year_matches_date\n    year: Year\n    date: PlannedDate\n",
    )
    s = load_schemas(schema_dir)
    rows = dialoger()
    rows.loc[0, "Year"] = 2024.0  # planned 2025-03-01
    issues = [i for i in validate_rows(s["Dialoger"], rows, s) if i.column == "Year"]
    assert [(i.item_id, i.problem_sv, i.problem_en) for i in issues] == [
        (
            1,
            "År (2024) stämmer inte med Planerat datum (2025-03-01).",
            "Year (2024) does not match Planned date (2025-03-01).",
        ),
        (4, "År (1999) är mindre än 2000.", "Year (1999) is less than 2000."),
    ]
