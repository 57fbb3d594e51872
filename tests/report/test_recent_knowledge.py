"""Länsbild → Inför dialogen: each county's most recently added current knowledge, picked from
the county codes before the table is built (issue 14 goal 4). Checked against the definition
written out plainly: newest first (no date last), then the higher ID, five per county."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from sp_sync.report.publish import build_tables
from sp_sync.report.tables import DIALOGUES, FEEDBACK, KNOWLEDGE, RECENT_KNOWLEDGE_ROWS
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_snapshots


def _expected(kn: pd.DataFrame, county: str) -> list[int]:
    mine = kn[(kn["County"] == county) & (kn["Status"] == "Aktuell")].copy()
    mine["has"] = mine["Created"].notna()
    mine["at"] = pd.to_datetime(mine["Created"], utc=True)
    ordered = mine.sort_values(["has", "at", "ID"], ascending=False, kind="mergesort")
    return ordered["ID"].head(RECENT_KNOWLEDGE_ROWS).tolist()


def test_the_newest_five_of_each_county_ties_and_missing_dates_included() -> None:
    snaps = make_snapshots(knowledge=0, feedback=0, dialogues_per_county=0, empty_counties=())
    at = dt.datetime(2026, 3, 20, 8, 0, tzinfo=dt.UTC)
    rows = []
    for n in range(1, 41):
        county = ("Skåne län", "Hallands län", "Okänt län")[n % 3]
        created = None if n % 7 == 0 else at - dt.timedelta(hours=n % 4)  # ties, gaps
        rows.append(
            {
                "ID": n,
                "Title": f"Kunskap {n}",
                "County": county,
                "Status": "Aktuell" if n % 5 else "Inaktuell",
                "ValidUntil": None,
                "Created": created,
                "Modified": at,
                "SubjectArea": "Miljö",
                "EntryType": "Iakttagelse",
                "Department": "Analys",
                "_item_url": f"https://example/items/{n}",
            }
        )
    kn = pd.DataFrame(rows)
    tables = build_tables(
        {KNOWLEDGE: kn, FEEDBACK: snaps[FEEDBACK], DIALOGUES: snaps[DIALOGUES]},
        None,
        None,
        site_url=SITE,
        generated_at=GENERATED_AT,
        time_zone=STHLM,
    )
    recent = tables.county_recent_knowledge
    assert "Okänt län" not in recent  # a county not in the reference data has no workbook
    for county in ("Skåne län", "Hallands län"):
        shown = recent[county]["link"].str.rsplit("/", n=1).str[-1].astype(int).tolist()
        assert shown == _expected(kn, county)
        assert len(shown) == RECENT_KNOWLEDGE_ROWS
    assert recent["Blekinge län"].empty
    assert list(recent["Skåne län"].columns) == [
        "created",
        "subject_area",
        "title",
        "entry_type",
        "department",
        "link",
    ]
