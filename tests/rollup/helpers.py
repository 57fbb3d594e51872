"""Deterministic snapshot generators for the rollup tests and the benchmark.

`make_snapshots()` returns DataFrames in the normalized snapshot contract (docs/design.md) for the
three lists: persons as display names, rich text, lookups, some overdue feedback, and one county
(Gotlands län by default) with no rows at all. The same arguments always give the same frames.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from zoneinfo import ZoneInfo

import pandas as pd

from sp_sync.report.tables import DIALOGUES, FEEDBACK, KNOWLEDGE, load_reference

SITE = "https://contoso.sharepoint.com/sites/regionarbete"
STHLM = ZoneInfo("Europe/Stockholm")
#: Monday morning just after the spring daylight-saving change.
GENERATED_AT = dt.datetime(2026, 3, 30, 5, 15, tzinfo=dt.UTC)

PERSONS = [
    ("Anna Lindqvist", "anna.lindqvist@example.se"),
    ("Björn Åström", "bjorn.astrom@example.se"),
    ("Cecilia Öberg", "cecilia.oberg@example.se"),
    ("David Nyström", "david.nystrom@example.se"),
    ("Eva Håkansson", "eva.hakansson@example.se"),
    ("Fredrik Ek", "fredrik.ek@example.se"),
]
TOPICS = [
    "Kompetensbrist inom vård och omsorg",
    "Ny batterifabrik planeras",
    "Bredbandsutbyggnad på landsbygden",
    "Stark besöksnäring under sommaren",
    "Exportmognad hos små företag",
    "Omställning av basindustrin",
    "Tillgång till riskkapital",
    "Pendlingsmönster och infrastruktur",
]
ENTRY_TYPES = ["Kunskap", "Strategiskt inspel", "Utmaning", "Möjlighet"]
PRIORITIES = ["Hög", "Medel", "Låg"]
KN_STATUS = ["Aktuell", "Aktuell", "Aktuell", "Utkast", "Inaktuell"]
FB_STATUS = ["Ny", "Pågående", "Klar", "Ingen åtgärd"]


def _system(rng: random.Random, i: int, list_url: str, base: dt.datetime) -> dict[str, object]:
    created = base - dt.timedelta(minutes=rng.randrange(0, 400 * 24 * 60))
    modified = created + dt.timedelta(minutes=rng.randrange(0, 30 * 24 * 60))
    modified = min(modified, base)
    author = PERSONS[i % len(PERSONS)][0]
    return {
        "ID": i,
        "Created": pd.Timestamp(created),
        "Modified": pd.Timestamp(modified),
        "Author": author,
        "Editor": author,
        "_item_url": f"{SITE}/Lists/{list_url}/DispForm.aspx?ID={i}",
        "_version": 1 + i % 3,
    }


def _person(rng: random.Random, prefix: str) -> dict[str, object]:
    idx = rng.randrange(len(PERSONS))
    name, mail = PERSONS[idx]
    return {f"{prefix}Id": idx + 10, prefix: name, f"{prefix}_email": mail}


def make_snapshots(
    *,
    knowledge: int = 300,
    dialogues_per_county: int = 3,
    feedback: int = 160,
    seed: int = 5,
    empty_counties: Sequence[str] = ("Gotlands län",),
    generated_at: dt.datetime = GENERATED_AT,
) -> dict[str, pd.DataFrame]:
    """Snapshots for the three lists; `empty_counties` get no rows in any list."""
    rng = random.Random(seed)
    ref = load_reference()
    counties = [c.name for c in ref.counties if c.name not in set(empty_counties)]
    today = generated_at.astimezone(STHLM).date()
    base = generated_at

    kn_rows = []
    for i in range(1, knowledge + 1):
        county = counties[rng.randrange(len(counties))]
        topic = TOPICS[rng.randrange(len(TOPICS))]
        html = f"<div><p>{topic} i <strong>{county}</strong>.</p><ul><li>Källa: SCB</li><li>Uppföljning &amp; analys</li></ul></div>"
        valid = None if rng.random() < 0.4 else today + dt.timedelta(days=rng.randrange(-200, 400))
        row = {
            "Title": f"{topic} ({i})",
            "County": county,
            "SubjectArea": ref.subject_areas[rng.randrange(len(ref.subject_areas))],
            "Department": ref.departments[rng.randrange(len(ref.departments))],
            "EntryType": ENTRY_TYPES[rng.randrange(len(ENTRY_TYPES))],
            "Description": html,
            "Description_text": f"{topic} i {county}.\n• Källa: SCB\n• Uppföljning & analys",
            "Priority": PRIORITIES[rng.randrange(3)],
            "ValidUntil": valid,
            "Status": KN_STATUS[rng.randrange(len(KN_STATUS))],
            **_person(rng, "Owner"),
            **_system(rng, i, "Lanskunskap", base),
        }
        kn_rows.append(row)

    dl_rows = []
    dl_id = 0
    for county in counties:
        for r in range(dialogues_per_county):
            dl_id += 1
            year = 2025 + r // 2
            planned = dt.date(year, 3 + 5 * (r % 2), 10 + dl_id % 15)
            held = planned if planned < today and rng.random() < 0.85 else None
            phase_no = (
                5
                if held and planned < today - dt.timedelta(days=120)
                else (3 if held else 1 + dl_id % 2)
            )
            dl_rows.append(
                {
                    "Title": f"Dialog {county} {year}:{r % 2 + 1}",
                    "County": county,
                    "Year": float(year),
                    "Phase": ref.phases[phase_no - 1],
                    "PlannedDate": planned,
                    "HeldDate": held,
                    **_person(rng, "CountyLead"),
                    **_system(rng, dl_id, "Dialoger", base),
                }
            )

    fb_rows = []
    for i in range(1, feedback + 1):
        county = counties[rng.randrange(len(counties))]
        ddate = today - dt.timedelta(days=rng.randrange(10, 300))
        due = None if rng.random() < 0.1 else ddate + dt.timedelta(days=rng.randrange(14, 200))
        fb_rows.append(
            {
                "Title": f"Återkoppling {i}: {TOPICS[i % len(TOPICS)].lower()}",
                "County": county,
                "DialogueId": pd.NA,
                "Dialogue": None,
                "DialogueDate": ddate,
                "SubjectArea": ref.subject_areas[rng.randrange(len(ref.subject_areas))],
                "ReceivingDepartment": ref.departments[rng.randrange(len(ref.departments) - 1)],
                "Feedback": f"<p>Regionen efterfrågar stöd kring {TOPICS[i % len(TOPICS)].lower()}.</p>",
                "Feedback_text": f"Regionen efterfrågar stöd kring {TOPICS[i % len(TOPICS)].lower()}.",
                "Action": f"Avdelningen återkommer med förslag ({i}).",
                "Action_text": f"Avdelningen återkommer med förslag ({i}).",
                "DueDate": due,
                "Status": FB_STATUS[rng.randrange(len(FB_STATUS))],
                "LinkedKnowledgeId": [],
                "LinkedKnowledge": [],
                **_person(rng, "Owner"),
                **_system(rng, i, "Dialogaterkoppling", base),
            }
        )

    def frame(rows: list[dict[str, object]]) -> pd.DataFrame:
        df = pd.DataFrame(rows)
        if len(df):
            df["ID"] = df["ID"].astype("int64")
            for col in [
                c
                for c in df.columns
                if c.endswith("Id") and c != "ID" and not c.startswith("Linked")
            ]:
                df[col] = df[col].astype("Int64")
        return df

    return {KNOWLEDGE: frame(kn_rows), DIALOGUES: frame(dl_rows), FEEDBACK: frame(fb_rows)}


def make_quality(snapshots: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """A few data-quality records pointing at real items."""
    fb = snapshots[FEEDBACK]
    rows = []
    for _, r in fb.head(3).iterrows():
        rows.append(
            {
                "list_title": FEEDBACK,
                "item_id": int(r["ID"]),
                "item_url": r["_item_url"],
                "column": "DueDate",
                "problem_sv": "Sista datum ligger före dialogdatum.",
                "problem_en": "Due date is before the dialogue date.",
                "value": "=cmd|' /C calc'!A0",
            }
        )
    return pd.DataFrame(rows)
