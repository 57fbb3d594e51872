"""The per-department and per-county tables are cut from shared rows (RowSource); the input
fingerprints hash those rows once (issue 14 goal 4) and must decide exactly as hashing every
table did, also for edits that leave a table looking almost the same."""

from __future__ import annotations

import dataclasses
import pickle
from types import MappingProxyType

import pandas as pd

from sp_sync.report.fingerprint import WorkbookKey, workbook_input_fingerprints
from sp_sync.report.publish import build_tables
from sp_sync.report.tables import FEEDBACK, KNOWLEDGE, RollupTables
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_quality, make_snapshots


def _tables(snaps: dict[str, pd.DataFrame]) -> RollupTables:
    return build_tables(
        snaps, make_quality(snaps), None, site_url=SITE, generated_at=GENERATED_AT, time_zone=STHLM
    )


def _fingerprints(tables: RollupTables) -> dict[WorkbookKey, str]:
    return workbook_input_fingerprints(tables, language="sv", max_rows=1_048_576)


def _both_ways(snaps: dict[str, pd.DataFrame]) -> dict[WorkbookKey, str]:
    """The fingerprints through the row sources, checked against hashing every table."""
    tables = _tables(snaps)
    assert tables.row_sources, "the per-county tables record where their rows come from"
    fast = _fingerprints(tables)
    plain = dataclasses.replace(tables, row_sources=MappingProxyType({}))
    assert fast == _fingerprints(plain)
    return fast


def _changed(before: dict[WorkbookKey, str], after: dict[WorkbookKey, str]) -> set[WorkbookKey]:
    return {key for key in before if before[key] != after[key]}


def test_each_row_source_is_the_tables_rows_value_for_value() -> None:
    tables = _tables(make_snapshots(knowledge=300, feedback=200))
    families = (tables.by_department, tables.county_feedback, tables.county_knowledge)
    cut = [df for family in families for df in family.values() if len(df)]
    assert cut and all(id(df) in tables.row_sources for df in cut)
    for df in cut:
        source = tables.row_sources[id(df)]
        assert source.table is df
        expected = source.source[list(source.columns)].iloc[source.positions]
        pd.testing.assert_frame_equal(df, expected.reset_index(drop=True), check_exact=True)


def test_two_items_of_a_county_swapping_their_titles_rebuild_that_county() -> None:
    # The county's table holds the same titles afterwards, each with another item's link.
    snaps = make_snapshots(knowledge=400, feedback=200)
    before = _both_ways(snaps)
    kn = snaps[KNOWLEDGE].copy()
    # Two current items of one county and subject area (both shown in its table).
    tables = _tables(snaps)
    county, shown = next(
        (c, df)
        for c, df in tables.county_knowledge.items()
        if df["subject_area"].duplicated().any()
    )
    area = shown["subject_area"][shown["subject_area"].duplicated()].iloc[0]
    links = shown.loc[shown["subject_area"] == area, "link"].iloc[:2].tolist()
    rows = [kn.index[kn["_item_url"] == link][0] for link in links]
    assert kn.loc[rows[0], "Title"] != kn.loc[rows[1], "Title"]
    kn.loc[rows, "Title"] = kn.loc[rows[::-1], "Title"].to_numpy()
    # The overview shows no knowledge titles (its fingerprint covers only the tables it reads):
    # only the county is rebuilt, and the overview rendered again would be the same.
    assert _changed(before, _both_ways({**snaps, KNOWLEDGE: kn})) == {("county", county)}
    assert _overview_content(tables) == _overview_content(_tables({**snaps, KNOWLEDGE: kn}))


def _overview_content(tables: RollupTables) -> str:
    from sp_sync.report.fingerprint import content_fingerprint
    from sp_sync.report.layouts import render_overview

    return content_fingerprint(render_overview(tables).data, tables.generated_local)


def test_a_feedback_text_changed_by_one_trailing_space_rebuilds_its_workbooks() -> None:
    snaps = make_snapshots(knowledge=400, feedback=200)
    before = _both_ways(snaps)
    fb = snaps[FEEDBACK].copy()
    row = fb.index[0]
    fb.loc[row, "Title"] = f"{fb.loc[row, 'Title']} "
    assert _changed(before, _both_ways({**snaps, FEEDBACK: fb})) == {
        ("overview", ""),
        ("department", str(fb.loc[row, "ReceivingDepartment"])),
        ("county", str(fb.loc[row, "County"])),
    }


def test_an_item_moved_to_another_county_rebuilds_both() -> None:
    snaps = make_snapshots(knowledge=400, feedback=200)
    before = _both_ways(snaps)
    fb = snaps[FEEDBACK].copy()
    row = fb.index[0]
    old = str(fb.loc[row, "County"])
    new = next(c for c in fb["County"].dropna().unique() if c != old)
    fb.loc[row, "County"] = new
    changed = _changed(before, _both_ways({**snaps, FEEDBACK: fb}))
    assert {("overview", ""), ("county", old), ("county", str(new))} <= changed
    assert {kind for kind, _ in changed} <= {"overview", "county", "department"}


def test_a_pickled_copy_has_no_row_sources_and_the_same_fingerprints() -> None:
    # The engine benchmark pickles the tables for its child processes; the id()-keyed records
    # cannot travel (and would point at nothing there).
    tables = _tables(make_snapshots(knowledge=300, feedback=200))
    copy = pickle.loads(pickle.dumps(tables))
    assert tables.row_sources and not copy.row_sources
    pd.testing.assert_frame_equal(copy.overview, tables.overview)
    assert _fingerprints(copy) == _fingerprints(tables)
