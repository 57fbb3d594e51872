"""An incremental sync validates only the rows it touched and keeps the other rows' records
(issue 14 goal 4) — and the result is always exactly what validating every row gives: the same
records in the same order, after edits that create and clear issues, in this list and in the
lists its lookups point to (lookup targets deleted, moved to another county, renamed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sp_sync.schema import load_schemas
from sp_sync.state import frames
from sp_sync.state.frames import frame_to_parquet
from sp_sync.state.local import LocalStateStore
from sp_sync.sync import engine
from sp_sync.sync.engine import SOURCE_COLUMN, sync_site
from sp_sync.sync.normalize import apply_lookup_titles, lookup_title_map
from sp_sync.sync.quality import validate_rows
from tests.sync.fakes import FakeSharePoint

SCHEMAS = load_schemas()
NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
SITE = "127.0.0.1_sites_x"
LISTS = ("Dialoger", "Länskunskap", "Dialogåterkoppling")


def fresh(sp: FakeSharePoint) -> FakeSharePoint:
    sp._digest = False
    sp._stats = type(sp._stats)()
    return sp


def dialogue(sp: FakeSharePoint, i: int, county: str = "Skåne län") -> int:
    return sp.add(
        "Dialoger",
        Title=f"Dialog {i}",
        County=county,
        Year=2026,
        # Every third one is held without a date: a required_if record to carry or clear.
        Phase="Dialog" if i % 3 == 0 else "Förberedelse",
        PlannedDate="2026-03-28T23:00:00Z",
        HeldDate=None,
        CountyLeadId=7,
        CountyLead={"Title": "Anna Andersson", "EMail": "anna@example.se"},
    )


def knowledge(sp: FakeSharePoint, i: int, county: str = "Skåne län") -> int:
    return sp.add(
        "Länskunskap",
        Title=f"Kunskap {i}",
        County=county,
        SubjectArea="Kompetensförsörjning" if i % 2 else None,
        Department="Företagsfrämjande",
        EntryType="Kunskap",
    )


def feedback(sp: FakeSharePoint, i: int, dialogue_id: int, linked: list[int]) -> int:
    return sp.add(
        "Dialogåterkoppling",
        Title=f"Återkoppling {i}",
        County="Skåne län",
        DialogueId=dialogue_id,
        Dialogue={"Title": f"Dialog {dialogue_id - 1}"},
        DialogueDate="2026-03-28T23:00:00Z",
        ReceivingDepartment="Företagsfrämjande",
        Status="Ny",
        LinkedKnowledgeId=linked,
    )


def stored(store: LocalStateStore, title: str) -> Any:
    st = store.read_list_state(SITE, title)
    assert st is not None
    return st


def assert_exact(store: LocalStateStore) -> None:
    """Each list's stored validation records equal a full validation of its stored rows."""
    snapshots = {t: stored(store, t).rows for t in LISTS}
    for title in LISTS:
        st = stored(store, title)
        kept = st.quality[st.quality[SOURCE_COLUMN] == "validate"].drop(columns=[SOURCE_COLUMN])
        full = validate_rows(SCHEMAS[title], st.rows, SCHEMAS, lookup_rows=dict(snapshots))
        expected = [
            (i.item_id, i.column, i.problem_sv, i.problem_en, i.value, i.item_url) for i in full
        ]
        got = [
            (r["item_id"], r["column"], r["problem_sv"], r["problem_en"], r["value"], r["item_url"])
            for r in kept.to_dict("records")
        ]
        assert got == expected, title
        # Lookup titles are those of the targets as stored (columns whose target titles did
        # not move are not re-resolved, so this checks that skip too).
        schema = SCHEMAS[title]
        maps = {
            c.name: lookup_title_map(snapshots[c.lookup_list], c.lookup_column or "Title")
            for c in schema.columns
            if c.is_lookup and c.lookup_list in snapshots
        }
        if maps:
            pd.testing.assert_frame_equal(apply_lookup_titles(st.rows, schema, maps), st.rows)
        # The rows file an incremental commit writes from the previous one (frames.Reuse) is
        # the file a full conversion of the snapshot writes.
        assert st.rows_file == frame_to_parquet(st.rows), title


@pytest.fixture
def store(tmp_path: Path) -> LocalStateStore:
    return LocalStateStore(tmp_path / "state")


@pytest.fixture
def validated(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """Rows handed to validate_rows per list, call by call."""
    calls: dict[str, list[int]] = {}

    def spy(schema: Any, rows: pd.DataFrame, *args: Any, **kw: Any) -> Any:
        calls.setdefault(schema.title, []).append(len(rows))
        return validate_rows(schema, rows, *args, **kw)

    monkeypatch.setattr(engine, "validate_rows", spy)
    return calls


def night(sp: FakeSharePoint, store: LocalStateStore) -> None:
    out = sync_site(fresh(sp), store, SITE, SCHEMAS, now=NOW)
    assert not out.errors
    assert_exact(store)


def test_carried_records_equal_a_full_validation(
    store: LocalStateStore, validated: dict[str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    sp = FakeSharePoint()
    for title in LISTS:
        sp.add_list(title)
    dialogues = [dialogue(sp, i, "Skåne län" if i < 8 else "Uppsala län") for i in range(10)]
    items = [knowledge(sp, i) for i in range(12)]
    for i in range(15):
        feedback(sp, i, dialogues[i % 10], [items[i % 12], items[(i + 5) % 12]])
    night(sp, store)  # the first, full read validates every row
    assert validated == {"Dialoger": [10], "Länskunskap": [12], "Dialogåterkoppling": [15]}

    # Issues created and cleared in one list: only the two edited rows are validated again.
    validated.clear()
    sp.update("Dialoger", dialogues[0], Phase="Förberedelse")  # clears its required_if
    sp.update("Dialoger", dialogues[1], Phase="Dialog", Title="")  # two new issues
    night(sp, store)
    assert validated["Dialoger"] == [2]

    # A new item with issues and a deleted one with issues; an unknown county.
    validated.clear()
    sp.delete("Dialoger", dialogues[3])
    dialogue(sp, 30)
    sp.update("Länskunskap", items[1], County="Atlantis län")
    night(sp, store)
    # Dialoger lost an id that feedback rows point to: those lookups must be checked again,
    # so Dialogåterkoppling is validated whole although none of its items changed.
    assert validated["Länskunskap"] == [1]
    assert validated["Dialogåterkoppling"] == [15]

    # A lookup target moves to another county: same_county on untouched feedback rows.
    validated.clear()
    sp.update("Dialoger", dialogues[2], County="Uppsala län")
    night(sp, store)
    assert validated["Dialoger"] == [1]
    assert validated["Dialogåterkoppling"] == [15]

    # A linked knowledge item is deleted: the multi-lookup of untouched rows breaks.
    validated.clear()
    sp.delete("Länskunskap", items[4])
    night(sp, store)
    assert validated["Dialogåterkoppling"] == [15]

    # A target is renamed (Dialogue is named by the same_county rule: full validation) …
    validated.clear()
    sp.update("Dialoger", dialogues[5], Title="Omdöpt dialog")
    night(sp, store)
    assert validated["Dialogåterkoppling"] == [15]
    # … and a knowledge item renamed, which no rule names: only the one feedback edited
    # tonight is validated, the retitled rows keep their records.
    validated.clear()
    sp.update("Länskunskap", items[6], Title="Omdöpt kunskap")
    edited = sorted(sp.lists["Dialogåterkoppling"].items)[3]
    sp.update("Dialogåterkoppling", edited, Status="Okänd status", County="Uppsala län")
    night(sp, store)
    assert validated["Länskunskap"] == [1]
    assert validated["Dialogåterkoppling"] == [1]

    # Issues cleared again in the feedback list; a deleted feedback row loses its records.
    # The commit converts only what changed: every object column comes from the previous file.
    reused: list[int] = []
    real = frames._reused_plans

    def counting(frame: pd.DataFrame, reuse: frames.Reuse) -> Any:
        plans = real(frame, reuse)
        reused.append(len(plans))
        return plans

    monkeypatch.setattr(frames, "_reused_plans", counting)
    validated.clear()
    sp.update("Dialogåterkoppling", edited, Status="Ny", County="Skåne län")
    sp.delete("Dialogåterkoppling", sorted(sp.lists["Dialogåterkoppling"].items)[0])
    night(sp, store)
    assert validated["Dialogåterkoppling"] == [1]
    assert len(reused) == 1 and reused[0] >= 8


def test_state_without_a_recorded_digest_is_validated_whole(
    store: LocalStateStore, validated: dict[str, list[int]]
) -> None:
    """State written before the digest was recorded (or by a run without it) has no proof its
    records match tonight's other lists: every row is validated once, then the digest is kept."""
    sp = FakeSharePoint()
    for title in LISTS:
        sp.add_list(title)
    ids = [dialogue(sp, i) for i in range(6)]
    night(sp, store)
    st = stored(store, "Dialoger")
    extra = {k: v for k, v in st.checkpoint.extra.items() if k != engine.VALIDATION_INPUTS}
    from dataclasses import replace

    store.commit_list_state(
        SITE,
        "Dialoger",
        st.rows,
        st.quality,
        replace(st.checkpoint, extra=extra),
        expected_etag=st.etag,
    )
    validated.clear()
    sp.update("Dialoger", ids[0], Phase="Förberedelse")
    night(sp, store)
    assert validated["Dialoger"] == [6]
    validated.clear()
    sp.update("Dialoger", ids[1], Phase="Förberedelse")
    night(sp, store)
    assert validated["Dialoger"] == [1]


def test_multi_lookup_titles_resolve_as_row_by_row() -> None:
    """apply_lookup_titles skips multi-lookup rows whose titles are already current: the result
    equals the row-by-row rule `[map.get(id) or "" for id in ids]` for every kind of row."""
    import random

    from sp_sync.sync import normalize

    schema = SCHEMAS["Dialogåterkoppling"]
    mapping = {i: f"Kunskap {i}" for i in range(1, 60)} | {60: ""}
    rng = random.Random(7)
    ids: list[Any] = []
    titles: list[Any] = []
    for _ in range(2000):
        row: Any = [rng.randint(1, 70) for _ in range(rng.randint(0, 4))]
        current = [mapping.get(i) or "" for i in row]
        kind = rng.random()
        if kind < 0.6:
            title: Any = current  # already current
        elif kind < 0.7:
            title = [*current[:-1], "gammal"] if row else ["x"]
        elif kind < 0.75:
            row, title = None, ([] if rng.random() < 0.5 else None)
        elif kind < 0.8:
            title = current[:-1]  # lengths differ
        elif kind < 0.85:
            title = tuple(current)  # not a list
        else:
            title = list(current)
        ids.append(row)
        titles.append(title)
    frame = pd.DataFrame(
        {
            "ID": range(1, 2001),
            "LinkedKnowledgeId": pd.Series(ids, dtype=object),
            "LinkedKnowledge": pd.Series(titles, dtype=object),
        }
    )
    got = normalize.apply_lookup_titles(frame, schema, {"LinkedKnowledge": mapping})
    want = [[mapping.get(int(i)) or "" for i in (row or [])] for row in ids]
    assert got["LinkedKnowledge"].tolist() == want
    assert all(type(v) is list for v in got["LinkedKnowledge"])
    assert frame["LinkedKnowledge"].tolist() == titles  # the input is untouched
    # Ids of another type (floats) go row by row, with the same result.
    floats = frame.assign(LinkedKnowledgeId=[[float(i) for i in r] if r else r for r in ids])
    got = normalize.apply_lookup_titles(floats, schema, {"LinkedKnowledge": mapping})
    assert got["LinkedKnowledge"].tolist() == want


def _self_lookup_schemas(tmp_path: Path) -> Any:
    """The shipped schemas with a lookup from Dialoger to Dialoger (a loader-allowed shape)."""
    import shutil

    root = Path(__file__).resolve().parents[2] / "list_schemas"
    copy = tmp_path / "schemas"
    shutil.copytree(root, copy)
    path = copy / "dialoger.yaml"
    text = path.read_text(encoding="utf-8")
    marker = "columns:\n"
    assert marker in text
    column = (
        "  - name: Previous\n    title: Föregående\n    title_en: Previous\n    type: lookup\n"
        "    lookup: {list: Dialoger, column: Title}\n"
    )
    path.write_text(text.replace(marker, marker + column, 1), encoding="utf-8")
    return load_schemas(copy)


def test_a_self_lookup_is_checked_against_tonights_rows_and_never_lags(
    tmp_path: Path, validated: dict[str, list[int]]
) -> None:
    """A list that looks itself up was validated against its snapshot from before the night
    (the lookup target's stored rows) while the carried-records digest read tonight's rows: a
    deleted target went unreported on the night it went and, carried, on every night after."""
    schemas = _self_lookup_schemas(tmp_path)
    sp = FakeSharePoint()
    sp.add_list("Dialoger")

    def add(i: int, previous: int | None = None) -> int:
        values: dict[str, Any] = {
            "Title": f"Dialog {i}",
            "County": "Skåne län",
            "Year": 2026,
            "Phase": "Förberedelse",
            "PlannedDate": "2026-03-28T23:00:00Z",
            "HeldDate": None,
        }
        if previous is not None:
            values.update(PreviousId=previous, Previous={"Title": f"Dialog {previous}"})
        return sp.add("Dialoger", **values)

    ids = [add(i) for i in range(5)]
    target = add(9)
    pointing = add(10, previous=target)
    store = LocalStateStore(tmp_path / "state")

    def records() -> list[tuple[int, str]]:
        sync_site(fresh(sp), store, SITE, schemas, now=NOW, lists=["Dialoger"])
        st = stored(store, "Dialoger")
        kept = st.quality[st.quality[SOURCE_COLUMN] == "validate"]
        full = validate_rows(schemas["Dialoger"], st.rows, schemas, lookup_rows={})
        assert [(r["item_id"], r["column"]) for r in kept.to_dict("records")] == [
            (i.item_id, i.column) for i in full
        ]
        return [(r["item_id"], r["column"]) for r in kept.to_dict("records")]

    assert (pointing, "Previous") not in records()
    sp.delete("Dialoger", target)
    sp.update("Dialoger", ids[0], Year=2027)
    assert (pointing, "Previous") in records()  # reported the night its target went
    sp.update("Dialoger", ids[1], Year=2027)
    validated.clear()
    assert (pointing, "Previous") in records()  # and carried after that
    assert validated["Dialoger"] == [1]  # only the edited row was validated again


def test_records_are_not_carried_across_a_change_of_the_validation_code(
    store: LocalStateStore, validated: dict[str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new release may change a check or its wording: untouched rows are validated again
    once, instead of keeping what the old code wrote until they are edited."""
    from sp_sync.sync import quality

    sp = FakeSharePoint()
    for title in LISTS:
        sp.add_list(title)
    ids = [dialogue(sp, i) for i in range(6)]
    night(sp, store)
    sp.update("Dialoger", ids[0], Year=2027)
    validated.clear()
    night(sp, store)
    assert validated["Dialoger"] == [1]  # the same code: only the edited row
    monkeypatch.setattr(quality, "VALIDATION_CODE", "the next release")
    sp.update("Dialoger", ids[1], Year=2027)
    validated.clear()
    night(sp, store)
    assert validated["Dialoger"] == [6]  # another code: every row, once
    sp.update("Dialoger", ids[2], Year=2027)
    validated.clear()
    night(sp, store)
    assert validated["Dialoger"] == [1]
