"""The tables read only READ_COLUMNS of each list, so a changed row whose read columns are as
they were routes no workbook (issue 14 goal 4: a night's retitled knowledge re-resolves the
lookup titles of the feedback linking it; those feedback rows put every department's workbook
into the scope, though none of them shows the lookup)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sp_sync.report.scope import affected, read_changes
from sp_sync.report.tables import DIALOGUES, FEEDBACK, KNOWLEDGE, READ_COLUMNS, Scope
from tests.report.test_scoped_rollup import (
    GENERATED_AT,
    _fingerprints,
    _linked_base,
    _Night,
    _tables,
)
from tests.rollup.helpers import make_snapshots


def _linked_item(snaps: dict[str, pd.DataFrame]) -> tuple[int, pd.DataFrame]:
    """A knowledge item linked by feedback of several departments, and that feedback."""
    fb = snaps[FEEDBACK]
    counts: dict[int, set[str]] = {}
    for ids, department in zip(fb["LinkedKnowledgeId"], fb["ReceivingDepartment"], strict=True):
        for i in ids:
            counts.setdefault(int(i), set()).add(str(department))
    item = max(counts, key=lambda i: (len(counts[i]), -i))
    linking = fb[[item in ids for ids in fb["LinkedKnowledgeId"]]]
    return item, linking


def test_feedback_whose_linked_knowledge_was_retitled_routes_no_workbook() -> None:
    snaps = _linked_base()
    before = _fingerprints(_tables(snaps))
    item, linking = _linked_item(snaps)
    assert linking["ReceivingDepartment"].nunique() >= 2
    kn = snaps[KNOWLEDGE]
    county = str(kn.loc[kn["ID"] == item, "County"].iloc[0])
    night = _Night(snaps)
    night.retitle(KNOWLEDGE, item, "Omdöpt kunskap")
    changes = night.changes()
    assert set(changes[FEEDBACK].ids) == {int(i) for i in linking["ID"]}  # the sync's hand-over
    scope = affected(
        changes, night.now, _tables(snaps).reference, since=GENERATED_AT, now=GENERATED_AT
    )
    # Only the retitled item's county: before, every department of the linking feedback and
    # every county of it were built too.
    assert scope == Scope(frozenset({county}), frozenset())
    # Exact: the full path finds no other workbook changed.
    after = _fingerprints(_tables(night.now))
    changed = {key for key in before if before[key] != after[key]}
    assert changed <= {("overview", ""), ("county", county)}


def test_a_change_in_a_read_column_still_routes_its_row() -> None:
    snaps = _linked_base()
    reference = _tables(snaps).reference
    row = snaps[FEEDBACK].iloc[3]
    item = int(row["ID"])
    every = Scope(frozenset({str(row["County"])}), frozenset({str(row["ReceivingDepartment"])}))
    for column, value in (
        ("Dialogue", "Annan dialog"),
        ("Status", "Klar" if row["Status"] != "Klar" else "Ny"),
        ("Action_text", "Ny åtgärd"),
        ("Owner", "Någon annan"),
    ):
        night = _Night(snaps)
        night.set(FEEDBACK, item, column, value)
        scope = affected(
            night.changes(), night.now, reference, since=GENERATED_AT, now=GENERATED_AT
        )
        assert scope == every, column
    unread: tuple[tuple[str, object], ...] = (
        ("LinkedKnowledgeId", [1, 2]),
        ("_version", 99),
        ("Editor", "X"),
    )
    for column, other in unread:
        night = _Night(snaps)
        night.set(FEEDBACK, item, column, other)
        scope = affected(
            night.changes(), night.now, reference, since=GENERATED_AT, now=GENERATED_AT
        )
        assert scope == Scope(frozenset(), frozenset()), column


def test_the_tables_read_no_column_outside_read_columns() -> None:
    snaps = _linked_base()
    scrambled = {}
    rng = np.random.default_rng(5)
    for title, df in snaps.items():
        df = df.copy()
        for column in df.columns:
            if column not in READ_COLUMNS[title]:
                df[column] = pd.Series(
                    [f"x{n}" for n in rng.integers(0, 10**6, len(df))], index=df.index, dtype=object
                )
        scrambled[title] = df
    scrambled[FEEDBACK]["Extra"] = "not read"
    assert _fingerprints(_tables(scrambled)) == _fingerprints(_tables(snaps))


def test_read_changes_keeps_every_row_it_cannot_prove_unchanged() -> None:
    snaps = make_snapshots(knowledge=30, feedback=20)
    fb = snaps[FEEDBACK].reset_index(drop=True)
    before = fb.iloc[:4].copy()
    now = fb.iloc[:4].copy()
    now.loc[0, "_version"] = 77  # unread: dropped
    now.loc[1, "Title"] = "Ny rubrik"  # read: kept
    was, is_ = read_changes(FEEDBACK, before, now)
    # Rows 2 and 3 are identical in every column: they are dropped too.
    assert was["ID"].tolist() == is_["ID"].tolist() == [int(fb.loc[1, "ID"])]
    # Added and removed rows stay.
    was, is_ = read_changes(FEEDBACK, before.iloc[:2], now.iloc[1:3])
    assert was["ID"].tolist() == before["ID"].iloc[:2].tolist()
    assert is_["ID"].tolist() == now["ID"].iloc[1:3].tolist()
    # Another dtype of a read column, a duplicated ID, or a read column on one side only:
    # nothing is dropped.
    other = (
        now.astype({"Title": object})
        if now["Title"].dtype != object
        else now.astype({"Title": "string"})
    )
    assert len(read_changes(FEEDBACK, before, other)[0]) == 4
    twice = pd.concat([now, now.iloc[[2]]], ignore_index=True)
    assert len(read_changes(FEEDBACK, before, twice)[1]) == 5
    assert len(read_changes(FEEDBACK, before, now.drop(columns=["Owner"]))[0]) == 4
    # A list the tables do not know: every row.
    assert len(read_changes("Annan lista", before, now)[0]) == 4


def test_same_values_are_compared_strictly() -> None:
    before = pd.DataFrame(
        {
            "ID": [1, 2, 3, 4],
            "Title": pd.Series(["a", "b", None, "d"], dtype=object),
            "Year": [2026.0, np.nan, 1.0, 2.0],
        }
    )
    now = before.copy()
    # None → NaN: another value, to be safe; a missing number stays missing.
    now["Title"] = pd.Series(["a", "b", float("nan"), "d"], dtype=object)
    now["Year"] = [2026.0, np.nan, 1.0, 2.5]
    was, is_ = read_changes(DIALOGUES, before, now)
    assert was["ID"].tolist() == is_["ID"].tolist() == [3, 4]


def test_read_columns_hold_every_column_the_tables_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tables see only READ_COLUMNS (`aggregate` cuts the snapshots itself), so a column a
    table reads that the list forgot would silently read as missing: with the cut turned off
    every workbook's fingerprint must be what it is with the cut."""
    from sp_sync.report import tables

    for snaps in (_linked_base(), make_snapshots(knowledge=60, feedback=40)):
        cut = _fingerprints(_tables(snaps))
        with monkeypatch.context() as m:
            m.setattr(tables, "read_columns", lambda s: dict(s))
            assert _fingerprints(_tables(snaps)) == cut
