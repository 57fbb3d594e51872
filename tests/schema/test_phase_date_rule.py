"""The phase/date contradiction rule (issue 12 item 4) and what required_if records as value."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from sp_sync.schema import SchemaSet
from sp_sync.sync.quality import validate_rows


def _rounds() -> pd.DataFrame:
    base = {"County": "Skåne län", "Year": 2026.0, "PlannedDate": dt.date(2026, 3, 1)}
    df = pd.DataFrame(
        [
            {
                **base,
                "ID": 1,
                "Title": "a",
                "Phase": "Internt inspel",
                "HeldDate": dt.date(2026, 3, 2),
            },
            {
                **base,
                "ID": 2,
                "Title": "b",
                "Phase": "Förberedelse",
                "HeldDate": dt.date(2026, 3, 3),
            },
            {**base, "ID": 3, "Title": "c", "Phase": "Internt inspel", "HeldDate": None},
            {**base, "ID": 4, "Title": "d", "Phase": "Dialog", "HeldDate": dt.date(2026, 3, 2)},
            {**base, "ID": 5, "Title": "e", "Phase": "Uppföljning", "HeldDate": None},
        ]
    )
    df["CountyLeadId"] = pd.array([None] * len(df), dtype="Int64")
    df["CountyLead"] = None
    df["_item_url"] = [f"https://x/Lists/Dialoger/DispForm.aspx?ID={i}" for i in df["ID"]]
    return df


def test_held_date_in_a_phase_before_dialog_is_flagged(schemas: SchemaSet) -> None:
    issues = validate_rows(schemas["Dialoger"], _rounds(), schemas)
    by = {(i.item_id, i.column): i for i in issues}
    assert set(by) == {(1, "HeldDate"), (2, "HeldDate"), (5, "HeldDate")}
    first = by[(1, "HeldDate")]
    assert (
        first.problem_sv == "Dialogen har ett genomfört datum men står kvar i fas Internt inspel."
    )
    assert first.problem_en == "The dialogue has a date held but is still in phase Internt inspel."
    assert first.value == "2026-03-02"  # the held date that contradicts the phase
    # required_if names the phase in its message but records the date itself: empty.
    missing = by[(5, "HeldDate")]
    assert "Uppföljning" in missing.problem_sv and missing.value is None
