"""The demo data tells the story on any run date (issue 12 item 10)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from sp_sync.demo.data import _ACTIONS, generate_demo_data, person_ids
from sp_sync.schema import load_schemas

REFERENCE = load_schemas().reference
PHASES = [p.name for p in sorted(REFERENCE.phases, key=lambda p: p.number)]


@pytest.mark.parametrize(
    "base",
    [dt.date(2026, 1, 2), dt.date(2026, 6, 30), dt.date(2026, 11, 30), dt.date(2027, 12, 31)],
)
def test_dialogues_lie_ahead_and_phases_fit_the_dates(base: dt.date) -> None:
    data = generate_demo_data(REFERENCE, user_ids=[1, 2, 3], base_date=base, feedback_per_county=5)
    ahead = [
        d
        for d in data.dialogues
        if not d["HeldDate"] and dt.date.fromisoformat(d["PlannedDate"]) >= base
    ]
    within_60 = [
        d for d in ahead if dt.date.fromisoformat(d["PlannedDate"]) <= base + dt.timedelta(days=60)
    ]
    assert len(ahead) >= 7 and len(within_60) >= 3
    contradictions = 0
    for d in data.dialogues:
        held = d["HeldDate"]
        early = PHASES.index(d["Phase"]) < PHASES.index("Dialog")
        contradictions += bool(held and early)
        if held:
            assert dt.date.fromisoformat(held) < base
        assert d["Year"] == dt.date.fromisoformat(d["PlannedDate"]).year
    assert contradictions == 1  # the one deliberate example for the phase/date rule
    for fb in data.feedback:
        assert dt.date.fromisoformat(fb["DialogueDate"]) < base  # only from held rounds


def test_actions_read_as_their_status_says_and_formula_text_is_visible() -> None:
    base = dt.date(2026, 11, 30)
    data = generate_demo_data(REFERENCE, user_ids=[1, 2], base_date=base)
    for fb in data.feedback:
        if fb.get("Action") is not None:
            assert fb["Action"] in _ACTIONS[fb["Status"]], fb
    formula = next(k for k in data.knowledge if k["Title"] == "=SUMMA(A1:A9)")
    assert formula["Status"] == "Aktuell" and formula["ValidUntil"] is None
    phone = next(f for f in data.feedback if f["Title"].startswith("+46"))
    assert phone["Status"] in ("Ny", "Pågående") and phone["DueDate"] > base.isoformat()


def test_the_app_principal_is_never_a_responsible_person() -> None:
    users = {
        1: SimpleNamespace(login_name="i:0#.f|membership|anna@example.se"),
        7: SimpleNamespace(login_name="i:0i.t|ms.sp.ext|app@emulator"),
        9: SimpleNamespace(login_name="i:0#.f|membership|erik@example.se"),
    }
    assert person_ids(users) == [1, 9]
