"""Deterministic, realistic demo data for the three lists (used by `sp-sync demo` and tests).

Rows are produced in SharePoint's REST write shape (internal names, `<Name>Id` for persons and
lookups, `{"results": [...]}` for multi-values, `YYYY-MM-DD` for date-only columns), so they can be
written through the REST API or seeded straight into the emulator. Knowledge and feedback rows
also carry `Created`/`Modified` spread over the past year (the emulator's bulk seeding accepts
them; a REST write would ignore them), so "added in the last 30 days" means something. The same seed and base date
always give the same rows. A handful of rows carry deliberate data-quality problems, so the
Datakvalitet sheet has something to show.

The story holds on any run date: every county had last year's round (held, in follow-up) and
has this round's placed around the base date — held a few weeks ago (phase Dialog or
Återkoppling), coming up within two months (Internt inspel when close, else Förberedelse), or,
for a few, planned in the past but not held. Feedback comes only from rounds that were held;
old items are mostly closed, recent ones mostly open; the agreed action reads as its status
says. Responsible persons are people, never the app principal that writes the workbooks.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sp_sync.schema.model import Reference

_KNOWLEDGE_TOPICS = [
    "Kompetensbrist inom vård och omsorg",
    "Ny batterifabrik planeras",
    "Bredbandsutbyggnad på landsbygden",
    "Stark besöksnäring under sommaren",
    "Exportmognad hos små företag",
    "Omställning av basindustrin",
    "Tillgång till riskkapital i tidiga skeden",
    "Pendlingsmönster och infrastruktur",
    "Regional innovationsstrategi uppdaterad",
    "Kompetenscentrum för digitalisering",
    "Varsel inom tillverkningsindustrin",
    "Samverkan med lärosäten",
]
_FEEDBACK_TOPICS = [
    "Önskar tydligare stöd för kompetensförsörjning",
    "Behov av samordnad dialog om infrastruktur",
    "Fråga om finansiering av innovationsprojekt",
    "Regionen vill fördjupa samarbetet kring analys",
    "Synpunkter på handläggningstider",
    "Förslag om gemensam kommunikationsinsats",
    "Behov av regional statistik om besöksnäringen",
    "Uppföljning av tidigare överenskommelse",
]
#: The agreed action, worded as its status says (planned, under way, done, or none needed).
_ACTIONS = {
    "Ny": [
        "Avdelningen återkommer med förslag till upplägg.",
        "Boka uppföljningsmöte med regionen.",
        "Utred möjligheten till riktat stöd.",
    ],
    "Pågående": [
        "Underlag till nästa dialog tas fram.",
        "Uppföljningsmöte med regionen är bokat.",
        "Utredning om riktat stöd pågår.",
    ],
    "Klar": [
        "Förslag till upplägg skickat till regionen.",
        "Uppföljningsmöte genomfört med regionen.",
        "Underlag levererat inför nästa dialog.",
    ],
    "Ingen åtgärd": ["Ingen åtgärd behövs, informationen är vidarebefordrad."],
}
#: Login-name claims of people in SharePoint (apps use "i:0i.t|ms.sp.ext|…").
_PERSON_CLAIM = "i:0#.f|membership|"


def person_ids(users: Mapping[int, Any]) -> list[int]:
    """The ids of the site users who are people (not app principals), in id order: the only
    ones the demo names as responsible persons or county leads."""
    return [
        uid
        for uid, user in sorted(users.items())
        if str(getattr(user, "login_name", "")).startswith(_PERSON_CLAIM)
    ]


@dataclass
class DemoData:
    knowledge: list[dict[str, Any]] = field(default_factory=list)
    dialogues: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def _stamps(rng: random.Random, earliest: date, base_date: date) -> dict[str, str]:
    """Created somewhere between `earliest` and the base date, modified a little later."""
    span = max(0, (base_date - earliest).days)
    created = datetime.combine(earliest, time(7, 0), UTC) + timedelta(
        days=rng.randint(0, span), minutes=rng.randint(0, 600)
    )
    latest = datetime.combine(base_date, time(6, 0), UTC)
    created = min(created, latest)
    modified = min(
        created + timedelta(days=rng.randint(0, 20), minutes=rng.randint(0, 300)), latest
    )
    return {
        "Created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Modified": modified.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def generate_demo_data(
    reference: Reference,
    *,
    user_ids: Sequence[int],
    base_date: date,
    seed: int = 2026,
    knowledge_per_county: int = 60,
    feedback_per_county: int = 40,
) -> DemoData:
    """Build the demo rows. Lookup ids assume the lists start empty (IDs 1, 2, 3 …)."""
    rng = random.Random(seed)
    data = DemoData()
    subject_areas = [s.name for s in reference.subject_areas]
    departments = [d.name for d in reference.departments]
    phases = [p.name for p in reference.phases]
    # One county is left without knowledge and feedback on purpose: a zero is information.
    quiet_county = reference.counties[-1].name

    for county in reference.counties:
        for planned, held, phase in _rounds(rng, phases, base_date):
            data.dialogues.append(
                {
                    "Title": f"Strategisk dialog {county.name} {planned.year}",
                    "County": county.name,
                    "Year": planned.year,
                    "Phase": phase,
                    "PlannedDate": _iso(planned),
                    "HeldDate": _iso(held),
                    "CountyLeadId": rng.choice(user_ids),
                }
            )
    # Feedback comes from dialogues that were held.
    dialogue_ids_by_county: dict[str, list[int]] = {}
    for i, row in enumerate(data.dialogues, start=1):
        if row["HeldDate"]:
            dialogue_ids_by_county.setdefault(row["County"], []).append(i)

    for county in reference.counties:
        if county.name == quiet_county:
            continue
        for _ in range(knowledge_per_county):
            topic = rng.choice(_KNOWLEDGE_TOPICS)
            status = rng.choices(["Aktuell", "Utkast", "Inaktuell"], weights=[7, 2, 1])[0]
            valid_until = base_date + timedelta(days=rng.randint(-120, 720))
            data.knowledge.append(
                {
                    "Title": f"{topic} ({county.code})",
                    "County": county.name,
                    "SubjectArea": rng.choice(subject_areas),
                    "Department": rng.choice(departments),
                    "EntryType": rng.choices(
                        ["Kunskap", "Strategiskt inspel", "Utmaning", "Möjlighet"],
                        weights=[5, 3, 2, 2],
                    )[0],
                    "Description": (
                        f"<div><p><strong>{topic}</strong> i {county.name}.</p>"
                        f"<ul><li>Källa: regional dialog</li><li>Bedömning: "
                        f"{rng.choice(['hög', 'medel', 'låg'])} påverkan</li></ul></div>"
                    ),
                    "Priority": rng.choice(["Hög", "Medel", "Låg"]),
                    "ValidUntil": _iso(valid_until) if rng.random() < 0.8 else None,
                    "OwnerId": rng.choice(user_ids),
                    "Status": status,
                    **_stamps(rng, base_date - timedelta(days=365), base_date),
                }
            )
    knowledge_ids_by_county: dict[str, list[int]] = {}
    for i, row in enumerate(data.knowledge, start=1):
        knowledge_ids_by_county.setdefault(row["County"], []).append(i)

    for county in reference.counties:
        if county.name == quiet_county:
            continue
        for _ in range(feedback_per_county):
            # Most feedback is from the latest round held; some is still open from the one before.
            held_ids = dialogue_ids_by_county[county.name]
            dialogue_id = held_ids[-1] if rng.random() < 0.6 else rng.choice(held_ids)
            dialogue = data.dialogues[dialogue_id - 1]
            dialogue_date = date.fromisoformat(dialogue["HeldDate"])
            due = dialogue_date + timedelta(days=rng.randint(14, 150))
            # Old items are mostly closed by now; recent ones mostly open.
            weights = [0.1, 0.3, 9, 1] if due < base_date - timedelta(days=60) else [3, 3, 2, 1]
            status = rng.choices(["Ny", "Pågående", "Klar", "Ingen åtgärd"], weights=weights)[0]
            linked = rng.sample(knowledge_ids_by_county[county.name], k=rng.randint(0, 2))
            data.feedback.append(
                {
                    "Title": rng.choice(_FEEDBACK_TOPICS),
                    "County": county.name,
                    "DialogueId": dialogue_id,
                    "DialogueDate": _iso(dialogue_date),
                    "SubjectArea": rng.choice(subject_areas),
                    "ReceivingDepartment": rng.choice(departments),
                    "Feedback": f"<p>Regionen lyfte: {rng.choice(_FEEDBACK_TOPICS).lower()}.</p>",
                    "Action": rng.choice(_ACTIONS[status]),
                    "OwnerId": rng.choice(user_ids),
                    "DueDate": _iso(due),
                    "Status": status,
                    "LinkedKnowledgeId": {"results": sorted(linked)},
                    **_stamps(rng, min(dialogue_date, base_date), base_date),
                }
            )

    _add_quality_problems(data, reference)
    _add_formula_examples(data, base_date)
    return data


def _rounds(
    rng: random.Random, phases: Sequence[str], base_date: date
) -> list[tuple[date, date | None, str]]:
    """(planned, held, phase) of a county's last and current dialogue rounds around `base_date`."""
    offset = rng.choice([-70, -50, -35, -20, -8, 6, 12, 20, 27, 33, 41, 48, 55, 75, 95])
    offset += rng.randint(-3, 3)
    planned = base_date + timedelta(days=offset)
    held: date | None = None
    if offset < 0 and rng.random() < 0.85:
        held = planned + timedelta(days=rng.randint(0, 3))
        held = min(held, base_date - timedelta(days=1))
        phase = phases[3] if (base_date - held).days > 30 else phases[2]
    elif offset < 0:
        phase = phases[1]  # planned in the past, never held: Dialogplan marks it
    else:
        phase = phases[1] if offset <= 30 else phases[0]
    last_planned = planned - timedelta(days=rng.randint(340, 380))
    last_held = last_planned + timedelta(days=rng.randint(0, 5))
    return [(last_planned, last_held, phases[-1]), (planned, held, phase)]


def _add_formula_examples(data: DemoData, base_date: date) -> None:
    """Text that looks like a formula, where a team lead will see it: current knowledge added
    recently (Länsbild, Inför dialogen) and open feedback (Översikt → Återkoppling). It must
    show as typed, never run."""
    if len(data.knowledge) > 11:
        kn = data.knowledge[11]
        kn.update({"Title": "=SUMMA(A1:A9)", "Status": "Aktuell", "ValidUntil": None})
        stamp = datetime.combine(base_date - timedelta(days=2), time(8, 0), UTC)
        kn["Created"] = kn["Modified"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    if len(data.feedback) > 2:
        fb = data.feedback[2]
        fb.update(
            {
                "Title": "+46 70 123 45 67 ringde om stödet",
                "Status": "Pågående",
                "Action": _ACTIONS["Pågående"][0],
                "DueDate": _iso(
                    max(base_date, date.fromisoformat(fb["DialogueDate"])) + timedelta(days=20)
                ),
            }
        )


def _add_quality_problems(data: DemoData, reference: Reference) -> None:
    """A few rows typed the way people really type them, for the Datakvalitet sheet."""
    if data.knowledge:
        data.knowledge[3]["County"] = "Stockholm"  # not a county name from the reference data
        data.knowledge[7]["SubjectArea"] = None  # required column left empty
        data.knowledge[11]["Title"] = "=SUMMA(A1:A9)"  # must stay text in every workbook
    if len(data.feedback) > 20:
        fb = data.feedback[5]
        fb["DueDate"] = _iso(date.fromisoformat(fb["DialogueDate"]) - timedelta(days=10))
        data.feedback[9]["ReceivingDepartment"] = None
        data.feedback[13]["DialogueId"] = len(data.dialogues) + 50  # a lookup that does not resolve
        data.feedback[17]["Feedback"] = (
            "<p>Kopierat från e-post:<br>+46 70 123 45 67</p><script>x</script>"
        )
    if data.dialogues:
        held = [d for d in data.dialogues if d["HeldDate"]]
        if len(held) > 1:
            held[0]["Phase"] = reference.phases[2].name
            held[0]["HeldDate"] = None  # phase Dialog without a date held
            held[1]["Phase"] = reference.phases[1].name  # held, but still "Internt inspel"
