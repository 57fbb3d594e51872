"""Incremental nights stored as deltas over the base rows file (issue 14 goal 4,
`sp_sync.state.delta`) leave exactly the state full files leave: two stores synced in lockstep
from the same SharePoint, one writing deltas and one writing every night whole, read back the
same rows and quality records after edits, adds, deletes and renamed lookup targets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from sp_sync.state import delta
from sp_sync.state.local import LocalStateStore
from sp_sync.sync.engine import sync_site
from tests.sync.fakes import FakeSharePoint
from tests.sync.test_validate_changed import (
    LISTS,
    SCHEMAS,
    SITE,
    dialogue,
    feedback,
    fresh,
    knowledge,
)

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
KNOWLEDGE = 300


def manifest_format(store: LocalStateStore, title: str) -> int:
    (path,) = [
        p
        for p in store.root.glob("*/*/checkpoint.json")
        if json.loads(p.read_bytes())["list_key"] == title
    ]
    return int(json.loads(path.read_bytes())["format"])


def test_delta_nights_read_back_as_whole_nights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deltas = LocalStateStore(tmp_path / "deltas")
    whole = LocalStateStore(tmp_path / "whole")
    sp = FakeSharePoint()
    for title in LISTS:
        sp.add_list(title)
    dialogues = [dialogue(sp, i) for i in range(6)]
    items = [knowledge(sp, i) for i in range(KNOWLEDGE)]
    for i in range(120):
        feedback(sp, i, dialogues[i % 6], [items[i % KNOWLEDGE], items[(i + 7) % KNOWLEDGE]])

    def night() -> None:
        for store, floor in ((deltas, 100), (whole, 10**9)):
            monkeypatch.setattr(delta, "DELTA_MIN_BASE_ROWS", floor)
            out = sync_site(fresh(sp), store, SITE, SCHEMAS, now=NOW)
            assert not out.errors
        for title in LISTS:
            got, want = deltas.read_list_state(SITE, title), whole.read_list_state(SITE, title)
            assert got is not None and want is not None
            pd.testing.assert_frame_equal(got.rows, want.rows, check_exact=True)
            pd.testing.assert_frame_equal(got.quality, want.quality, check_exact=True)
            assert got.checkpoint.change_token == want.checkpoint.change_token
        assert manifest_format(whole, "Länskunskap") == 1

    night()
    sp.update("Länskunskap", items[3], Title="Ändrad", County="Uppsala län")
    sp.update("Länskunskap", items[250], SubjectArea=None)
    knowledge(sp, 1000)
    sp.delete("Länskunskap", items[10])
    night()
    assert manifest_format(deltas, "Länskunskap") == 2
    # A linked knowledge item renamed: the feedback rows pointing to it are re-titled
    # (changed cells of rows not fetched tonight) and go into the feedback list's delta.
    sp.update("Länskunskap", items[7], Title="Omdöpt kunskap")
    sp.update("Dialogåterkoppling", sorted(sp.lists["Dialogåterkoppling"].items)[5], Status="Ny")
    night()
    assert manifest_format(deltas, "Länskunskap") == 2
    assert manifest_format(deltas, "Dialogåterkoppling") == 2
    st = deltas.read_list_state(SITE, "Dialogåterkoppling")
    assert st is not None and st.stored is not None
    # Cumulative over the base: the edited row (i = 5), the rows linking tonight's renamed
    # item (i = 0, 7) and those re-titled last night, linking the item renamed (i = 3) and the
    # one deleted (i = 3, 10). Feedback item i has ID i + 1.
    assert st.stored.delta_ids.tolist() == [1, 4, 6, 8, 11]
    # Many edits at once: past 10 % of the base, compacted into a full file again.
    for i in range(40):
        sp.update("Länskunskap", items[100 + i], Title=f"Massändring {i}")
    night()
    assert manifest_format(deltas, "Länskunskap") == 1
    sp.update("Länskunskap", items[200], Title="Efter komprimering")
    night()
    assert manifest_format(deltas, "Länskunskap") == 2
