"""A night builds only the workbooks whose inputs changed (issue 14 goal 4): the scope that the
sync's changed rows route to (sp_sync.report.scope) must hold every workbook whose input
fingerprint the full path would see change, and a scoped aggregation must give each workbook
it holds exactly the tables, fingerprint and bytes of the full one.

A missed workbook would be a silent stale report, so the differential test below applies many
random edits of every kind to a realistic state and compares the scope with what the full path
finds changed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pandas as pd
import pytest

from sp_sync.report.fingerprint import WorkbookKey, workbook_input_fingerprints, workbook_keys
from sp_sync.report.publish import build_tables
from sp_sync.report.scope import affected, window_crossers
from sp_sync.report.tables import DIALOGUES, FEEDBACK, KNOWLEDGE, RollupTables, Scope
from sp_sync.sync.changes import ListChanges
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_quality, make_snapshots

MAX_ROWS = 1_048_576
LISTS = (KNOWLEDGE, DIALOGUES, FEEDBACK)


def _tables(
    snaps: dict[str, pd.DataFrame], when: dt.datetime = GENERATED_AT, scope: Scope | None = None
) -> RollupTables:
    return build_tables(
        snaps,
        make_quality(snaps),
        None,
        site_url=SITE,
        generated_at=when,
        time_zone=STHLM,
        scope=scope,
    )


def _fingerprints(tables: RollupTables) -> dict[WorkbookKey, str]:
    keys = [key for key in workbook_keys(tables) if tables.covers(*key)]
    return workbook_input_fingerprints(tables, language="sv", max_rows=MAX_ROWS, keys=keys)


def _linked_base() -> dict[str, pd.DataFrame]:
    """The rollup fixtures with feedback linked to dialogues and knowledge (lookup titles the
    sync re-resolves when their targets are retitled)."""
    snaps = make_snapshots(knowledge=500, feedback=260, dialogues_per_county=2)
    fb = snaps[FEEDBACK].copy()
    dl = snaps[DIALOGUES]
    kn = snaps[KNOWLEDGE]
    rng = random.Random(11)
    dialogue, dialogue_id, linked, linked_ids = [], [], [], []
    for county in fb["County"]:
        rounds = dl[dl["County"] == county]
        if len(rounds) and rng.random() < 0.7:
            pick = rounds.iloc[rng.randrange(len(rounds))]
            dialogue.append(pick["Title"])
            dialogue_id.append(int(pick["ID"]))
        else:
            dialogue.append(None)
            dialogue_id.append(pd.NA)
        items = kn.iloc[rng.sample(range(len(kn)), rng.randrange(0, 3))]
        linked.append([str(t) for t in items["Title"]])
        linked_ids.append([int(i) for i in items["ID"]])
    fb["Dialogue"] = pd.Series(dialogue, index=fb.index, dtype=object)
    fb["DialogueId"] = pd.array(dialogue_id, dtype="Int64")
    fb["LinkedKnowledge"] = pd.Series(linked, index=fb.index, dtype=object)
    fb["LinkedKnowledgeId"] = pd.Series(linked_ids, index=fb.index, dtype=object)
    return {**snaps, FEEDBACK: fb}


class _Night:
    """Edits applied to a copy of the snapshots, with the ListChanges the sync would hand over
    (every row it fetched, removed or re-resolved, as it was before)."""

    def __init__(self, snaps: dict[str, pd.DataFrame]) -> None:
        self.before = snaps
        self.now = {title: df.copy() for title, df in snaps.items()}
        self.ids: dict[str, set[int]] = {title: set() for title in LISTS}

    def _row(self, title: str, item_id: int) -> int:
        df = self.now[title]
        return int(df.index[df["ID"] == item_id][0])

    def set(self, title: str, item_id: int, column: str, value: object) -> None:
        df = self.now[title]
        at = self._row(title, item_id)
        if column in ("LinkedKnowledge", "LinkedKnowledgeId"):
            df.at[at, column] = value
        else:
            df.loc[at, column] = value
        self.ids[title].add(item_id)

    def delete(self, title: str, item_id: int) -> None:
        df = self.now[title]
        self.now[title] = df[df["ID"] != item_id].reset_index(drop=True)
        self.ids[title].add(item_id)

    def add_copy(self, title: str, item_id: int, changes: dict[str, object]) -> int:
        df = self.now[title]
        new_id = int(df["ID"].max()) + 1
        row = df[df["ID"] == item_id].copy()
        row["ID"] = new_id
        row["_item_url"] = str(row["_item_url"].iloc[0]).rsplit("=", 1)[0] + f"={new_id}"
        for column, value in changes.items():
            row[column] = value
        self.now[title] = pd.concat([df, row], ignore_index=True)
        self.ids[title].add(new_id)
        return new_id

    def retitle(self, title: str, item_id: int, new_title: str) -> None:
        """A lookup target retitled: the feedback rows showing its title follow (the sync
        re-resolves them; they are changed rows of the feedback list)."""
        old_title = str(self.now[title].loc[self._row(title, item_id), "Title"])
        self.set(title, item_id, "Title", new_title)
        fb = self.now[FEEDBACK]
        for at in fb.index:
            fid = int(fb.at[at, "ID"])
            if title == DIALOGUES and fb.at[at, "Dialogue"] == old_title:
                fb.at[at, "Dialogue"] = new_title
                self.ids[FEEDBACK].add(fid)
            if title == KNOWLEDGE and old_title in (fb.at[at, "LinkedKnowledge"] or []):
                fb.at[at, "LinkedKnowledge"] = [
                    new_title if t == old_title else t for t in fb.at[at, "LinkedKnowledge"]
                ]
                self.ids[FEEDBACK].add(fid)

    def changes(self) -> dict[str, ListChanges]:
        out = {}
        for title in LISTS:
            old = self.before[title]
            ids = frozenset(self.ids[title])
            out[title] = ListChanges(1, "etag", ids, old[old["ID"].isin(list(ids))])
        return out


def _random_edit(night: _Night, rng: random.Random, reference: object) -> str:
    counties = [c.name for c in reference.counties]  # type: ignore[attr-defined]
    departments = list(reference.departments)  # type: ignore[attr-defined]
    kn, dl, fb = (night.now[t] for t in LISTS)

    def pick(df: pd.DataFrame) -> int:
        return int(df["ID"].iloc[rng.randrange(len(df))])

    kind = rng.choice(
        [
            "kn_county",
            "fb_county",
            "dl_county",
            "fb_department",
            "kn_title_linked",
            "kn_status",
            "kn_valid_until",
            "fb_status",
            "fb_due",
            "fb_text",
            "dl_retitle",
            "dl_planned",
            "kn_delete",
            "fb_delete",
            "dl_delete",
            "kn_add",
            "fb_add",
            "kn_priority",
        ]
    )
    if kind == "kn_county":
        night.set(KNOWLEDGE, pick(kn), "County", rng.choice(counties))
    elif kind == "fb_county":
        night.set(FEEDBACK, pick(fb), "County", rng.choice(counties))
    elif kind == "dl_county":
        night.set(DIALOGUES, pick(dl), "County", rng.choice(counties))
    elif kind == "fb_department":
        night.set(FEEDBACK, pick(fb), "ReceivingDepartment", rng.choice(departments))
    elif kind == "kn_title_linked":
        linked = [i for ids in fb["LinkedKnowledgeId"] for i in ids]
        target = rng.choice(linked) if linked and rng.random() < 0.8 else pick(kn)
        if target in set(kn["ID"]):
            night.retitle(KNOWLEDGE, int(target), f"Omdöpt kunskap {rng.randrange(10**6)}")
    elif kind == "kn_status":
        night.set(KNOWLEDGE, pick(kn), "Status", rng.choice(["Aktuell", "Utkast", "Inaktuell"]))
    elif kind == "kn_valid_until":
        day = GENERATED_AT.date() + dt.timedelta(days=rng.randrange(-5, 5))
        night.set(KNOWLEDGE, pick(kn), "ValidUntil", day)
    elif kind == "fb_status":
        night.set(FEEDBACK, pick(fb), "Status", rng.choice(["Ny", "Pågående", "Klar"]))
    elif kind == "fb_due":
        day = GENERATED_AT.date() + dt.timedelta(days=rng.randrange(-120, 30))
        night.set(FEEDBACK, pick(fb), "DueDate", day)
    elif kind == "fb_text":
        item = pick(fb)
        night.set(FEEDBACK, item, "Action", "Ny åtgärd")
        night.set(FEEDBACK, item, "Action_text", "Ny åtgärd")
    elif kind == "dl_retitle":
        night.retitle(DIALOGUES, pick(dl), f"Dialog omdöpt {rng.randrange(10**6)}")
    elif kind == "dl_planned":
        day = GENERATED_AT.date() + dt.timedelta(days=rng.randrange(-40, 60))
        night.set(DIALOGUES, pick(dl), "PlannedDate", day)
    elif kind == "kn_delete":
        night.delete(KNOWLEDGE, pick(kn))
    elif kind == "fb_delete":
        night.delete(FEEDBACK, pick(fb))
    elif kind == "dl_delete":
        night.delete(DIALOGUES, pick(dl))
    elif kind == "kn_add":
        night.add_copy(
            KNOWLEDGE,
            pick(kn),
            {"County": rng.choice(counties), "Created": pd.Timestamp(GENERATED_AT), "Title": "Ny"},
        )
    elif kind == "fb_add":
        night.add_copy(FEEDBACK, pick(fb), {"ReceivingDepartment": rng.choice(departments)})
    elif kind == "kn_priority":
        night.set(KNOWLEDGE, pick(kn), "Priority", rng.choice(["Hög", "Låg"]))
    return kind


@pytest.fixture(scope="module")
def base() -> tuple[dict[str, pd.DataFrame], dict[WorkbookKey, str]]:
    snaps = _linked_base()
    return snaps, _fingerprints(_tables(snaps))


def test_the_scope_holds_every_workbook_whose_inputs_changed(
    base: tuple[dict[str, pd.DataFrame], dict[WorkbookKey, str]],
) -> None:
    snaps, before = base
    reference = _tables(snaps).reference
    rng = random.Random(2026)
    missed: list[tuple[int, list[str], WorkbookKey]] = []
    built = changed_total = nights = 0
    for night_no in range(24):
        night = _Night(snaps)
        kinds = [_random_edit(night, rng, reference) for _ in range(rng.randrange(1, 7))]
        # Later the same day: the 30-day windows moved, the reference date did not.
        later = GENERATED_AT + dt.timedelta(hours=rng.choice([0, 1, 6, 14]))
        after = _fingerprints(_tables(night.now, later))
        changed = {key for key in before if before[key] != after[key]}
        scope = affected(night.changes(), night.now, reference, since=GENERATED_AT, now=later)
        assert scope is not None
        covered = {("overview", "")}
        covered |= {("county", c) for c in scope.counties}
        covered |= {("department", d) for d in scope.departments}
        missed += [(night_no, kinds, key) for key in changed - covered]
        built += len(covered)
        changed_total += len(changed)
        nights += 1
        # The scoped aggregation gives each workbook it holds the full path's fingerprint.
        scoped = _fingerprints(_tables(night.now, later, scope))
        assert scoped == {key: after[key] for key in scoped}, (night_no, kinds)
        assert set(scoped) == covered
    assert missed == []
    # The scope is a superset, and not everything: about this much larger than what changed.
    assert built < nights * len(before)
    assert changed_total <= built
    print(f"scope {built / nights:.1f} workbooks a night, changed {changed_total / nights:.1f}")


def test_workbooks_of_the_scope_render_the_same_bytes_as_from_every_table() -> None:
    from sp_sync.report.layouts import render_county, render_department, render_overview

    snaps = _linked_base()
    full = _tables(snaps)
    scope = Scope(
        frozenset({"Skåne län", "Gotlands län"}), frozenset({full.reference.departments[1]})
    )
    part = _tables(snaps, scope=scope)
    assert render_overview(part).data == render_overview(full).data
    for county in scope.counties:
        assert render_county(part, county).data == render_county(full, county).data
    for department in scope.departments:
        assert render_department(part, department).data == render_department(full, department).data
    for field in ("county_knowledge", "county_feedback", "county_prep", "county_recent_knowledge"):
        assert set(getattr(part, field)) == scope.counties
        for county in scope.counties:
            pd.testing.assert_frame_equal(
                getattr(part, field)[county], getattr(full, field)[county]
            )
    for field in ("by_department", "department_summary"):
        assert set(getattr(part, field)) == scope.departments
    # A workbook outside the scope is refused rather than fingerprinted from empty tables.
    with pytest.raises(ValueError, match="do not hold"):
        workbook_input_fingerprints(
            part, language="sv", max_rows=MAX_ROWS, keys=[("county", "Uppsala län")]
        )


def test_a_county_or_department_unknown_to_the_reference_builds_everything() -> None:
    snaps = make_snapshots(knowledge=100, feedback=60)
    reference = _tables(snaps).reference
    night = _Night(snaps)
    night.set(FEEDBACK, int(snaps[FEEDBACK]["ID"].iloc[0]), "County", "Okänt län")
    assert (
        affected(night.changes(), night.now, reference, since=GENERATED_AT, now=GENERATED_AT)
        is None
    )
    night = _Night(snaps)
    night.set(FEEDBACK, int(snaps[FEEDBACK]["ID"].iloc[0]), "ReceivingDepartment", "Ingen")
    assert (
        affected(night.changes(), night.now, reference, since=GENERATED_AT, now=GENERATED_AT)
        is None
    )


def test_a_row_moving_county_and_department_routes_to_both_ends() -> None:
    snaps = make_snapshots(knowledge=100, feedback=60)
    reference = _tables(snaps).reference
    fb = snaps[FEEDBACK]
    row = fb.iloc[0]
    night = _Night(snaps)
    new_county = next(c.name for c in reference.counties if c.name != row["County"])
    new_department = next(d for d in reference.departments if d != row["ReceivingDepartment"])
    night.set(FEEDBACK, int(row["ID"]), "County", new_county)
    night.set(FEEDBACK, int(row["ID"]), "ReceivingDepartment", new_department)
    scope = affected(night.changes(), night.now, reference, since=GENERATED_AT, now=GENERATED_AT)
    assert scope == Scope(
        frozenset({str(row["County"]), new_county}),
        frozenset({str(row["ReceivingDepartment"]), new_department}),
    )


def test_items_crossing_the_30_day_edge_are_found_between_the_two_times() -> None:
    edge = GENERATED_AT - dt.timedelta(days=30)
    rows = pd.DataFrame(
        {
            "Created": [
                edge + dt.timedelta(minutes=30),  # in the window at GENERATED_AT, not an hour on
                edge + dt.timedelta(hours=2),  # in it at both times
                edge - dt.timedelta(minutes=1),  # in it at neither
                GENERATED_AT + dt.timedelta(minutes=10),  # created between the two times
            ]
        }
    )
    later = GENERATED_AT + dt.timedelta(hours=1)
    assert window_crossers(rows, "Created", GENERATED_AT, later).tolist() == [
        True,
        False,
        False,
        True,
    ]
    assert window_crossers(rows, "Created", later, GENERATED_AT).tolist() == [
        True,
        False,
        False,
        True,
    ]


def test_a_pickled_scoped_table_set_keeps_its_scope() -> None:
    import pickle

    snaps = make_snapshots(knowledge=100, feedback=60)
    part = _tables(snaps, scope=Scope(frozenset({"Skåne län"}), frozenset()))
    copy = pickle.loads(pickle.dumps(part))
    assert copy.scope == part.scope and not copy.covers("county", "Uppsala län")
    assert dataclasses.replace(part, scope=None).covers("county", "Uppsala län")
