"""When a night may build only some workbooks (sp_sync.report.publish._scope), and when it must
build every workbook's tables as before: anything the record cannot vouch for falls back."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest

from sp_sync.report import publish
from sp_sync.report.fingerprint import state_source, workbook_keys
from sp_sync.report.tables import DIALOGUES, FEEDBACK, KNOWLEDGE, Scope, load_reference
from sp_sync.sync.changes import ListChanges
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_snapshots

REFERENCE = load_reference()
SNAPS = make_snapshots(knowledge=120, feedback=80)
INPUTS = publish.RollupInputs.of(site_url=SITE, generated_at=GENERATED_AT, time_zone=STHLM)
CONTEXT = publish._context_fingerprint(REFERENCE, INPUTS, "v1")
LATER = GENERATED_AT + dt.timedelta(hours=2)


def _record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "format": publish.RECORD_FORMAT,
        "snapshot": "abc",
        "context": CONTEXT,
        "sources": {KNOWLEDGE: "4:k", DIALOGUES: "2:d", FEEDBACK: "7:f"},
        "generated_at": GENERATED_AT.isoformat(),
        "workbooks": {
            f"{kind}:{name}": {"name": f"{kind}-{name}.xlsx", "input": "x", "etag": "e"}
            for kind, name in workbook_keys(REFERENCE)
        },
    }
    record.update(changes)
    return record


def _feedback_change(row: int = 0) -> tuple[dict[str, ListChanges], dict[str, pd.DataFrame]]:
    fb = SNAPS[FEEDBACK]
    item = fb.iloc[[row]]
    edited = fb.copy()
    edited.loc[edited.index[row], "Title"] = "Ny rubrik"
    change = ListChanges(7, "f", frozenset({int(item["ID"].iloc[0])}), item)
    return {FEEDBACK: change}, {**SNAPS, FEEDBACK: edited}


def _scope(
    record: dict[str, Any] | None,
    *,
    intact: bool = True,
    context: str = CONTEXT,
    sources: dict[str, str] | None = None,
) -> Scope | None:
    changes, snaps = _feedback_change()
    old = dict((record or {}).get("workbooks") or {})
    return publish._scope(
        record,
        old,
        lambda rec: intact,
        context=context,
        sources=sources or {KNOWLEDGE: "4:k", DIALOGUES: "2:d", FEEDBACK: "8:f2"},
        changes=changes,
        snapshots=snaps,
        reference=REFERENCE,
        now=LATER,
    )


def test_a_complete_record_of_the_changes_base_gives_the_changed_rows_workbooks() -> None:
    row = SNAPS[FEEDBACK].iloc[0]
    assert _scope(_record()) == Scope(
        frozenset({str(row["County"])}), frozenset({str(row["ReceivingDepartment"])})
    )


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (None, "a first run"),
        (_record(format=0), "a record of another format"),
        (_record(snapshot=None), "the last rollup stopped before every upload"),
        (_record(context="other"), "reference date, language, schemas, drift or code changed"),
        (_record(sources=None), "the last rollup hashed frames (no named states)"),
        (
            _record(sources={KNOWLEDGE: "4:k", DIALOGUES: "2:d", FEEDBACK: "6:f"}),
            "the changes start from another state than the record's (a sync in between)",
        ),
        (
            _record(sources={KNOWLEDGE: "3:k", DIALOGUES: "2:d", FEEDBACK: "7:f"}),
            "a list not in the changes is not the state the record was built from",
        ),
        (_record(sources={DIALOGUES: "2:d", FEEDBACK: "7:f"}), "another set of lists"),
        (_record(generated_at=None), "no time the 30-day figures were counted to"),
        (_record(generated_at="2026-03-30T05:15:00"), "a time without a zone"),
    ],
)
def test_anything_the_record_cannot_vouch_for_builds_everything(
    record: dict[str, Any] | None, why: str
) -> None:
    assert _scope(record) is None, why


def test_a_workbook_not_intact_on_the_site_or_missing_from_the_record_is_built_too() -> None:
    every = _scope(_record(), intact=False)
    assert every is not None
    assert every.counties == {c.name for c in REFERENCE.counties}
    assert every.departments == set(REFERENCE.departments)
    record = _record()
    del record["workbooks"]["county:Uppsala län"]
    scope = _scope(record)
    assert scope is not None and "Uppsala län" in scope.counties


def test_a_changed_row_with_a_county_outside_the_reference_builds_everything() -> None:
    fb = SNAPS[FEEDBACK]
    item = fb.iloc[[0]]
    edited = fb.copy()
    edited.loc[edited.index[0], "County"] = "Okänt län"
    change = ListChanges(7, "f", frozenset({int(item["ID"].iloc[0])}), item)
    record = _record()
    assert (
        publish._scope(
            record,
            record["workbooks"],
            lambda rec: True,
            context=CONTEXT,
            sources={KNOWLEDGE: "4:k", DIALOGUES: "2:d", FEEDBACK: "8:f2"},
            changes={FEEDBACK: change},
            snapshots={**SNAPS, FEEDBACK: edited},
            reference=REFERENCE,
            now=LATER,
        )
        is None
    )


def test_the_context_covers_every_global_input() -> None:
    base = publish._context_fingerprint(REFERENCE, INPUTS, "v1")
    others = [
        publish._context_fingerprint(REFERENCE, INPUTS, "v2"),
        publish._context_fingerprint(
            REFERENCE,
            publish.RollupInputs.of(
                site_url=SITE, generated_at=GENERATED_AT, time_zone=STHLM, language="en"
            ),
            "v1",
        ),
        publish._context_fingerprint(
            REFERENCE,
            publish.RollupInputs.of(
                site_url=SITE, generated_at=GENERATED_AT + dt.timedelta(days=1), time_zone=STHLM
            ),
            "v1",
        ),
        publish._context_fingerprint(
            REFERENCE,
            publish.RollupInputs.of(
                site_url=SITE, generated_at=GENERATED_AT, time_zone=STHLM, max_rows=1000
            ),
            "v1",
        ),
        publish._context_fingerprint(
            REFERENCE,
            publish.RollupInputs.of(
                site_url=SITE, generated_at=GENERATED_AT, time_zone="Europe/Helsinki"
            ),
            "v1",
        ),
        publish._context_fingerprint(
            REFERENCE.__class__(**{**REFERENCE.__dict__, "departments": ("Analys",)}),
            INPUTS,
            "v1",
        ),
    ]
    assert base not in others and len(set(others)) == len(others)
    # Later the same day: the same context (the 30-day edges are handled row by row).
    same_day = publish.RollupInputs.of(site_url=SITE, generated_at=LATER, time_zone=STHLM)
    assert publish._context_fingerprint(REFERENCE, same_day, "v1") == base
    assert state_source(7, "f") == "7:f"
