"""Deterministic, realistic demo data for the three lists (used by `sp-sync demo` and tests).

Rows are produced in SharePoint's REST write shape (internal names, `<Name>Id` for persons and
lookups, `{"results": [...]}` for multi-values, `YYYY-MM-DD` for date-only columns), so they can be
written through the REST API or seeded straight into the emulator. Knowledge and feedback rows
also carry `Created`/`Modified` spread over the past year (the emulator's bulk seeding accepts
them; a REST write would ignore them), so "added in the last 30 days" means something. The same seed and base date
always give the same rows. A handful of rows carry deliberate data-quality problems, so the
Datakvalitet sheet has something to show.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
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
_ACTIONS = [
    "Avdelningen återkommer med förslag till upplägg.",
    "Boka uppföljningsmöte med regionen.",
    "Ta fram underlag till nästa dialog.",
    "Ingen åtgärd behövs, informationen är vidarebefordrad.",
    "Utred möjligheten till riktat stöd.",
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
    year = base_date.year
    # One county is left without knowledge and feedback on purpose: a zero is information.
    quiet_county = reference.counties[-1].name

    for county in reference.counties:
        for dialogue_year in (year - 1, year):
            planned = date(dialogue_year, rng.choice([3, 4, 5, 9, 10, 11]), rng.randint(1, 28))
            held = planned + timedelta(days=rng.randint(-3, 10)) if planned < base_date else None
            if dialogue_year < year:
                phase = phases[-1]
            else:
                phase = phases[min(len(phases) - 1, rng.randint(0, 3) + (1 if held else 0))]
                if held is None and phase in phases[2:]:
                    phase = phases[1]
            data.dialogues.append(
                {
                    "Title": f"Strategisk dialog {county.name} {dialogue_year}",
                    "County": county.name,
                    "Year": dialogue_year,
                    "Phase": phase,
                    "PlannedDate": _iso(planned),
                    "HeldDate": _iso(held),
                    "CountyLeadId": rng.choice(user_ids),
                }
            )
    dialogue_ids_by_county: dict[str, list[int]] = {}
    for i, row in enumerate(data.dialogues, start=1):
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
            dialogue_id = rng.choice(dialogue_ids_by_county[county.name])
            dialogue = data.dialogues[dialogue_id - 1]
            dialogue_date = date.fromisoformat(dialogue["HeldDate"] or dialogue["PlannedDate"])
            due = dialogue_date + timedelta(days=rng.randint(14, 150))
            status = rng.choices(["Ny", "Pågående", "Klar", "Ingen åtgärd"], weights=[3, 3, 4, 1])[
                0
            ]
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
                    "Action": rng.choice(_ACTIONS),
                    "OwnerId": rng.choice(user_ids),
                    "DueDate": _iso(due),
                    "Status": status,
                    "LinkedKnowledgeId": {"results": sorted(linked)},
                    **_stamps(rng, min(dialogue_date, base_date), base_date),
                }
            )

    _add_quality_problems(data, reference)
    return data


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
        if held:
            held[0]["Phase"] = reference.phases[2].name
            held[0]["HeldDate"] = None  # phase Dialog without a date held
