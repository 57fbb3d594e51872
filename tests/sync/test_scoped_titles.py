"""Lookup titles re-resolved only where they can have moved (issue 14 goal 4) give exactly what
re-resolving every row gives.

When a list's stored lookup titles were resolved against the target map the night started from
(the stored digest says so), and the target was synced tonight, only the rows pointing at a
target id whose title moved, and the rows touched tonight, are re-resolved
(`ListSyncer._scoped_titles`). Random nights of title edits, deletes and adds on the targets
and of reference edits on the feedback list are synced twice from the same SharePoint, once
with the scoped path and once with every row re-resolved: the committed rows, the quality
records, the stored states and the changes the rollup receives are identical.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sp_sync.schema import load_schemas
from sp_sync.state.local import LocalStateStore
from sp_sync.sync import engine, titles
from sp_sync.sync.engine import LOOKUP_TITLES, VALIDATION_INPUTS, sync_site
from sp_sync.sync.normalize import apply_lookup_titles
from sp_sync.sync.quality import (
    PUBLISHED_GENERATION,
    PUBLISHED_KEY,
    county_key,
    cross_list_inputs,
    title_key,
)
from tests.sync.fakes import FakeSharePoint
from tests.sync.test_validate_changed import LISTS, dialogue, feedback, fresh, knowledge

SCHEMAS = load_schemas()
NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
SITE = "127.0.0.1_sites_x"
FEEDBACK = "Dialogåterkoppling"


def _frame_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for name in a.columns:  # cell types too (a list of str is not a list of str-like values)
        left, right = a[name].tolist(), b[name].tolist()
        assert [type(v) for v in left] == [type(v) for v in right], name


def _sync(
    sp: FakeSharePoint, store: LocalStateStore, scoped: bool, lists: list[str] | None = None
) -> Any:
    """One night. `scoped=False`: the plain passes — every row re-resolved, and no list's
    published sums trusted (each is computed from the rows, as before the record existed)."""
    engine.SCOPED_TITLES = scoped
    real = engine.published_of
    if not scoped:
        engine.published_of = lambda state: {}
    try:
        out = sync_site(fresh(sp), store, SITE, SCHEMAS, now=NOW, lists=lists)
    finally:
        engine.SCOPED_TITLES = True
        engine.published_of = real
    assert not out.errors
    return out


def _generations(store: LocalStateStore) -> dict[str, int]:
    out = {}
    for title in LISTS:
        st = store.read_list_state(SITE, title)
        out[title] = st.checkpoint.generation if st is not None else 0
    return out


def _compare(
    fast: Any,
    full: Any,
    fast_store: LocalStateStore,
    full_store: LocalStateStore,
    before: dict[str, int] | None = None,
) -> None:
    """The two arms' nights are identical. `before`: the generations before the night (the
    lists committed tonight are those whose generation moved)."""
    assert [r.list for r in fast.lists] == [r.list for r in full.lists]
    for a, b in zip(fast.lists, full.lists, strict=True):
        assert (a.mode, a.added, a.updated, a.deleted, a.rows, a.quality_issues) == (
            b.mode,
            b.added,
            b.updated,
            b.deleted,
            b.rows,
            b.quality_issues,
        ), a.list
    assert set(fast.states) == set(full.states)
    for title in fast.states:
        _frame_equal(fast.states[title].rows, full.states[title].rows)
        _frame_equal(fast.states[title].quality, full.states[title].quality)
        assert fast.states[title].checkpoint.extra == full.states[title].checkpoint.extra
    assert set(fast.changes) == set(full.changes)
    for title in fast.changes:
        a, b = fast.changes[title], full.changes[title]
        assert a.ids == b.ids, title
        assert (a.base_generation, a.base_etag is None) == (b.base_generation, b.base_etag is None)
        _frame_equal(a.before.reset_index(drop=True), b.before.reset_index(drop=True))
    snapshots = {}
    for title in LISTS:
        sa = fast_store.read_list_state(SITE, title)
        sb = full_store.read_list_state(SITE, title)
        assert sa is not None and sb is not None
        _frame_equal(sa.rows, sb.rows)
        _frame_equal(sa.quality, sb.quality)
        assert sa.rows_file == sb.rows_file, title
        snapshots[title] = sa.rows
        _assert_published(title, sa)
    # The validation digest taken from the targets' records is the one a pass gives, for the
    # lists committed tonight. A list left out of a `--list` night, or whose commit was skipped
    # because its rows and validation came out as stored, keeps the digest it was committed
    # with: a stale digest only makes the next night validate every row again.
    now = _generations(fast_store)
    for title in fast.states:
        if before is not None and now[title] == before[title]:
            continue
        st = fast_store.read_list_state(SITE, title)
        assert st is not None
        expected = cross_list_inputs(SCHEMAS[title], st.rows, SCHEMAS, snapshots)
        assert st.checkpoint.extra[VALIDATION_INPUTS] == expected, title


def _assert_published(title: str, st: Any) -> None:
    """What a list's commit records for the lists looking it up (kept from night to night by
    the rows that changed) is what a pass over its stored rows gives."""
    record = st.checkpoint.extra.get(PUBLISHED_KEY)
    if title == FEEDBACK:
        assert record is None  # nothing looks it up
        return
    assert record is not None, title
    county = SCHEMAS[title].county_column
    assert county is not None
    expected = {
        PUBLISHED_GENERATION: st.checkpoint.generation,
        title_key("Title"): titles.title_sums(st.rows, "Title").digest(),
        county_key(county.name): titles.county_sums(st.rows, county.name).digest(),
    }
    assert record == expected, title


def _night(rng: random.Random, sp: FakeSharePoint, night: int) -> None:
    knowledge_ids = sorted(sp.lists["Länskunskap"].items)
    feedback_ids = sorted(sp.lists[FEEDBACK].items)
    dialogue_ids = sorted(sp.lists["Dialoger"].items)
    titles_now = [sp.lists["Länskunskap"].items[i].get("Title") for i in knowledge_ids]
    for item in rng.sample(knowledge_ids, rng.randrange(0, 6)):
        kind = rng.random()
        if kind < 0.5:
            sp.update("Länskunskap", item, Title=f"Kunskap {night}-{item}")
        elif kind < 0.65:  # a title another item has: the map's values repeat
            sp.update("Länskunskap", item, Title=rng.choice(titles_now))
        elif kind < 0.75:  # a missing title
            sp.update("Länskunskap", item, Title=None)
        elif kind < 0.85:  # an edit that leaves the title as it was
            sp.update("Länskunskap", item, Department="Analys")
        else:
            sp.delete("Länskunskap", item)
    for k in range(rng.randrange(0, 3)):
        knowledge(sp, 1000 * night + k)
    if rng.random() < 0.3 and dialogue_ids:
        sp.update("Dialoger", rng.choice(dialogue_ids), Title=f"Dialog omdöpt {night}")
    knowledge_ids = sorted(sp.lists["Länskunskap"].items)
    # References: to live ids, to deleted ones, none at all.
    pool = [*knowledge_ids, max(knowledge_ids) + 5]
    for item in rng.sample(feedback_ids, min(len(feedback_ids), rng.randrange(0, 4))):
        kind = rng.random()
        if kind < 0.6:
            linked = rng.sample(pool, rng.randrange(0, 4))
            # SharePoint's own titles: kept while normalizing for an id the target lacks, then
            # replaced when the row is re-resolved (a title that moves on a touched row).
            shown = {"results": [{"Title": f"SP {i}"} for i in linked]}
            sp.update(FEEDBACK, item, LinkedKnowledgeId=linked, LinkedKnowledge=shown)
        elif kind < 0.8:
            sp.update(FEEDBACK, item, Status="Pågår")
        else:
            sp.delete(FEEDBACK, item)
    for k in range(rng.randrange(0, 2)):
        feedback(sp, 1000 * night + k, rng.choice(dialogue_ids), rng.sample(pool, 2))


@pytest.mark.parametrize("seed", range(6))
def test_scoped_titles_equal_the_full_pass(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    scoped_nights: list[int] = []
    real = engine.ListSyncer._scoped_titles

    def counting(self: Any, *args: Any) -> Any:
        out = real(self, *args)
        if out:
            scoped_nights.append(sum(len(p) for p in out.values()))
        return out

    monkeypatch.setattr(engine.ListSyncer, "_scoped_titles", counting)
    rng = random.Random(seed)
    sp = FakeSharePoint()
    for title in LISTS:
        sp.add_list(title)
    dialogues = [dialogue(sp, i) for i in range(6)]
    items = [knowledge(sp, i) for i in range(40)]
    for i in range(60):
        linked = rng.sample(items, rng.randrange(0, 4))
        feedback(sp, i, dialogues[i % 6], linked)
    fast_store = LocalStateStore(tmp_path / "fast")
    full_store = LocalStateStore(tmp_path / "full")
    _compare(_sync(sp, fast_store, True), _sync(sp, full_store, False), fast_store, full_store)
    for night in range(1, 13):
        _night(rng, sp, night)
        if rng.random() < 0.25:  # a night of the target alone (`--list`), then the others
            before = _generations(fast_store)
            fast = _sync(sp, fast_store, True, ["Länskunskap"])
            full = _sync(sp, full_store, False, ["Länskunskap"])
            _compare(fast, full, fast_store, full_store, before)
            _night(rng, sp, 100 + night)
        before = _generations(fast_store)
        fast = _sync(sp, fast_store, True)
        full = _sync(sp, full_store, False)
        _compare(fast, full, fast_store, full_store, before)
    assert len(scoped_nights) >= 3  # the scoped path was taken (and compared) on most nights


def test_only_rows_pointing_at_moved_titles_are_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feedback rows re-resolved on a night one knowledge title moves: those pointing at it
    and the one feedback row edited tonight, not the list."""
    sp = FakeSharePoint()
    for title in LISTS:
        sp.add_list(title)
    dialogues = [dialogue(sp, i) for i in range(3)]
    items = [knowledge(sp, i) for i in range(10)]
    rows = [
        feedback(sp, i, dialogues[i % 3], [items[i % 10], items[(i + 3) % 10]]) for i in range(30)
    ]
    store = LocalStateStore(tmp_path / "state")
    _sync(sp, store, True)

    resolved: list[list[int]] = []

    def spy(frame: pd.DataFrame, schema: Any, maps: Any) -> pd.DataFrame:
        if schema.title == FEEDBACK and "LinkedKnowledge" in maps:
            resolved.append(sorted(int(i) for i in frame["ID"].tolist()))
        return apply_lookup_titles(frame, schema, maps)

    monkeypatch.setattr(engine, "apply_lookup_titles", spy)
    sp.update("Länskunskap", items[2], Title="Omdöpt kunskap")
    sp.update(FEEDBACK, rows[20], Status="Pågår")
    out = _sync(sp, store, True)
    pointing = [r for i, r in enumerate(rows) if items[2] in (items[i % 10], items[(i + 3) % 10])]
    assert resolved == [sorted({*pointing, rows[20]})]
    changes = out.changes[FEEDBACK]
    # The rollup still hears of every feedback row whose title moved.
    assert changes.ids == frozenset({*pointing, rows[20]})
    st = store.read_list_state(SITE, FEEDBACK)
    assert st is not None
    moved = st.rows[st.rows["ID"].isin(pointing)]
    assert all("Omdöpt kunskap" in t for t in moved["LinkedKnowledge"].tolist())

    # Without the target's changes (its sync ran apart from the feedback list's) every row is.
    sp.update("Länskunskap", items[5], Title="Omdöpt igen")
    assert not sync_site(fresh(sp), store, SITE, SCHEMAS, now=NOW, lists=["Länskunskap"]).errors
    resolved.clear()
    out = sync_site(fresh(sp), store, SITE, SCHEMAS, now=NOW, lists=[FEEDBACK])
    assert not out.errors
    assert resolved == [sorted(rows)]
    pointing = [r for i, r in enumerate(rows) if items[5] in (items[i % 10], items[(i + 3) % 10])]
    assert out.changes[FEEDBACK].ids == frozenset(pointing)


def test_a_digest_of_another_kind_never_matches() -> None:
    frame = pd.DataFrame({"ID": np.array([1, 2], dtype="int64"), "Title": ["a", None]})
    digest = titles.title_sums(frame, "Title").digest()
    assert digest.startswith("sum1:2:")
    # The sums of parts add up to the sum of the whole; a title moved changes it.
    part = titles.title_sums(frame, "Title", np.array([1]))
    rest = titles.title_sums(frame, "Title", np.array([0]))
    assert rest.plus(part).digest() == digest
    moved = frame.assign(Title=["a", ""])  # None and "" are the same title in the map
    assert titles.title_sums(moved, "Title").digest() == digest
    assert titles.title_sums(frame.assign(Title=["a", "b"]), "Title").digest() != digest
    assert LOOKUP_TITLES == "lookup_titles"


def test_sums_of_a_few_rows_add_up_with_those_of_many() -> None:
    """A few rows are hashed without categorizing first, many with: the same hashes."""
    n = 1500
    frame = pd.DataFrame(
        {
            "ID": np.arange(1, n + 1, dtype="int64"),
            "Title": [f"t{i % 7}" if i % 5 else None for i in range(n)],
            "County": [f"c{i % 3}" if i % 4 else None for i in range(n)],
        }
    )
    few, rest = np.arange(10), np.arange(10, n)
    for sums in (
        lambda at: titles.title_sums(frame, "Title", at),
        lambda at: titles.county_sums(frame, "County", at),
    ):
        assert sums(few).plus(sums(rest)).digest() == sums(None).digest()
        assert sums(None).minus(sums(few)).digest() == sums(rest).digest()


def test_a_record_carried_by_a_release_without_it_is_not_trusted(tmp_path: Path) -> None:
    """A rollback night: the release before the `published` record carries every checkpoint key
    it does not know into its own commit, so the knowledge list's new state holds the record of
    the rows before that night. The next night must not take it for tonight's sums: the
    feedback rows pointing at the item renamed in between show its new title, as on a store
    that never saw the older release."""
    from dataclasses import replace

    sp = FakeSharePoint()
    for title in LISTS:
        sp.add_list(title)
    dialogues = [dialogue(sp, i) for i in range(3)]
    items = [knowledge(sp, i) for i in range(6)]
    rows = [feedback(sp, i, dialogues[i % 3], [items[i % 6]]) for i in range(12)]
    store = LocalStateStore(tmp_path / "state")
    control = LocalStateStore(tmp_path / "control")
    _sync(sp, store, True)
    _sync(sp, control, True)
    before = store.read_list_state(SITE, "Länskunskap")
    assert before is not None
    carried = before.checkpoint.extra[PUBLISHED_KEY]

    # The older release's night: only the knowledge list, one item renamed.
    sp.update("Länskunskap", items[1], Title="Omdöpt")
    for target in (store, control):
        assert not sync_site(
            fresh(sp), target, SITE, SCHEMAS, now=NOW, lists=["Länskunskap"]
        ).errors
    state = store.read_list_state(SITE, "Länskunskap")
    assert state is not None
    extra = {**state.checkpoint.extra, PUBLISHED_KEY: carried}  # what that release leaves
    store.commit_list_state(
        SITE,
        "Länskunskap",
        state.rows,
        state.quality,
        replace(state.checkpoint, extra=extra),
        expected_etag=state.etag,
    )

    sp.update(FEEDBACK, rows[0], Status="Pågår")
    _sync(sp, store, True)
    _sync(sp, control, True)
    got = store.read_list_state(SITE, FEEDBACK)
    want = control.read_list_state(SITE, FEEDBACK)
    assert got is not None and want is not None
    pointing = [r for i, r in enumerate(rows) if i % 6 == 1]
    shown = got.rows[got.rows["ID"].isin(pointing)]["LinkedKnowledge"].tolist()
    assert shown and all(titles_ == ["Omdöpt"] for titles_ in shown), shown
    _frame_equal(got.rows, want.rows)
    _frame_equal(got.quality, want.quality)


def test_blank_single_lookups_point_at_no_id() -> None:
    """An Int64 id column's blanks (<NA>) point nowhere, as `apply_lookup_titles` reads them:
    the restricted map is still used (not the whole target's)."""
    cells = pd.Series([1, None, 3], dtype="Int64")
    assert engine._referenced_ids(cells) == {1, 3}
    assert engine._referenced_ids(pd.Series([[2, 4], None, float("nan")], dtype=object)) == {2, 4}
    assert engine._referenced_ids(pd.Series(["x"], dtype=object)) is None


def test_sums_hashed_in_chunks_equal_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large list's sums are hashed 65,536 rows at a time (bounded memory at 1,000,000
    rows): the same digest as hashing every row at once."""
    n = 2500
    frame = pd.DataFrame(
        {
            "ID": np.arange(1, n + 1, dtype="int64"),
            "Title": [f"t{i % 97}" if i % 5 else None for i in range(n)],
            "County": [f"c{i % 3}" if i % 4 else None for i in range(n)],
        }
    )
    whole = (titles.title_sums(frame, "Title"), titles.county_sums(frame, "County"))
    monkeypatch.setattr(titles, "_CHUNK", 1000)
    assert (titles.title_sums(frame, "Title"), titles.county_sums(frame, "County")) == whole
    monkeypatch.setattr(titles, "_CHUNK", 7)
    assert titles.title_sums(frame, "Title").digest() == whole[0].digest()
    assert titles.county_sums(frame, "County").digest() == whole[1].digest()
