"""Datakvalitet names each record's item by its title and county, looked up in the snapshots:
only the rows asked for are read (issue 14 goal 4), with the same answers as before — the last
row of a duplicated ID, nothing for an ID that is not in the list or a record without one."""

from __future__ import annotations

import pandas as pd

from sp_sync.report.tables import DIALOGUES, FEEDBACK, KNOWLEDGE, _item_facts


def test_item_facts_reads_the_rows_asked_for() -> None:
    kn = pd.DataFrame(
        {
            "ID": [5, 3, 9, 3],
            "Title": ["fem", "tre", "nio", "tre igen"],
            "County": ["Skåne län", None, "Gotlands län", "Uppsala län"],
            "Other": [1, 2, 3, 4],
        }
    )
    fb = pd.DataFrame({"ID": [1, 2], "Title": ["ett", "två"], "County": ["A", "B"]})
    snapshots = {KNOWLEDGE: kn, FEEDBACK: fb, DIALOGUES: pd.DataFrame()}
    keys = [
        (KNOWLEDGE, 9),
        None,
        (KNOWLEDGE, 3),  # duplicated: the last row wins
        (FEEDBACK, 2),
        (KNOWLEDGE, 42),  # not in the list
        (DIALOGUES, 1),  # an empty list
        ("Okänd lista", 1),
        (KNOWLEDGE, 5),
    ]
    assert _item_facts(snapshots, keys) == [
        ("nio", "Gotlands län"),
        (None, None),
        ("tre igen", "Uppsala län"),
        ("två", "B"),
        (None, None),
        (None, None),
        (None, None),
        ("fem", "Skåne län"),
    ]
