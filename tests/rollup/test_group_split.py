"""The per-county and per-department tables are split from the sorted whole in one pass
(issue 14 goal 4): each equals the sorted whole table filtered to its county or department,
rows outside the reference data left out, empty groups as empty tables. The aggregation's
other shortcuts give what the general code gave: wall-clock times kept as datetime64, lookups
once per distinct value, date-only values kept as they came."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from sp_sync.report import tables as t
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_snapshots


@pytest.fixture(scope="module")
def built() -> tuple[t.RollupTables, t._Inputs]:
    snaps = make_snapshots(knowledge=400, feedback=300)
    fb = snaps[t.FEEDBACK].copy()
    fb.loc[fb.index[0], "County"] = "Atlantis län"  # not in the reference data
    fb.loc[fb.index[1], "ReceivingDepartment"] = None
    fb.loc[fb.index[2], "County"] = None
    snaps[t.FEEDBACK] = fb
    kn = snaps[t.KNOWLEDGE].copy()
    kn.loc[kn.index[0], "County"] = "Atlantis län"
    snaps[t.KNOWLEDGE] = kn
    ref = t.load_reference()
    tables = t.aggregate(
        snaps, None, ref, site_url=SITE, generated_at=GENERATED_AT, time_zone=STHLM
    )
    return tables, t._inputs(snaps, ref, GENERATED_AT, STHLM)


def _same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    if len(expected) == 0:
        assert len(got) == 0
    else:
        pd.testing.assert_frame_equal(got, expected.reset_index(drop=True))


def test_county_feedback_is_the_sorted_feedback_of_each_county(built: tuple) -> None:
    tables, i = built
    detail = t._feedback_detail(i)
    ordered = t._sorted(
        detail,
        [((~i.fb_open).astype(int), True), (t._date_key(i.due), True), (t._ids(i.fb), True)],
    )
    for county in i.county_names:
        mine = ordered[ordered["county"] == county].drop(columns=["team", "county"])
        _same(tables.county_feedback[county], mine)
    assert sum(len(v) for v in tables.county_feedback.values()) == len(i.fb) - 2
    assert len(tables.county_feedback["Gotlands län"]) == 0  # no rows in the fixture


def test_department_feedback_is_the_sorted_feedback_of_each_department(built: tuple) -> None:
    tables, i = built
    detail = t._feedback_detail(i)
    dept = t._col(i.fb, "ReceivingDepartment")
    ordered = t._sorted(
        detail.assign(_dept=dept),
        [
            (t._order(t._col(i.fb, "County"), i.county_names), True),
            ((~i.fb_open).astype(int), True),
            (t._date_key(i.due), True),
            (t._ids(i.fb), True),
        ],
    )
    for name in i.reference.departments:
        mine = ordered[ordered["_dept"] == name].drop(columns=["_dept"])
        _same(tables.by_department[name], mine)
    assert sum(len(v) for v in tables.by_department.values()) == len(i.fb) - 1


def test_county_knowledge_is_the_sorted_current_knowledge_of_each_county(built: tuple) -> None:
    tables, i = built
    kn = i.kn
    current = i.kn_current.to_numpy()
    whole = pd.DataFrame(
        {
            "county": t._col(kn, "County"),
            "subject_area": t._col(kn, "SubjectArea"),
            "title": t._col(kn, "Title"),
            "entry_type": t._col(kn, "EntryType"),
            "department": t._col(kn, "Department"),
            "priority": t._col(kn, "Priority"),
            "valid_until": t._dates(t._col(kn, "ValidUntil")),
            "owner": t._col(kn, "Owner"),
            "description": t._text(kn, "Description"),
            "modified": t._local_naive(t._col(kn, "Modified"), i.tz),
            "link": t._col(kn, "_item_url"),
        }
    )[current]
    ordered = t._sorted(
        whole,
        [
            (t._order(whole["subject_area"], i.reference.subject_areas), True),
            (whole["title"].fillna("").astype(str), True),
            (t._ids(kn)[current], True),
        ],
    )
    for county in i.county_names:
        _same(tables.county_knowledge[county], ordered[ordered["county"] == county].iloc[:, 1:])
    assert sum(len(v) for v in tables.county_knowledge.values()) == int(current.sum()) - (
        1 if current[0] else 0
    )


def _as_objects(frames: dict[str, pd.DataFrame], column: str) -> dict[str, pd.DataFrame]:
    """The frames with `column` as the Python values the tables held before (Timestamp or
    None), instead of datetime64."""
    out = {}
    for key, df in frames.items():
        values = df[column].astype(object)
        out[key] = df.assign(**{column: values.where(df[column].notna(), None)})
    return out


def test_wall_clock_times_as_datetime64_render_the_cells_python_values_did() -> None:
    import dataclasses
    import io
    import zipfile

    from sp_sync.report.layouts import render_county

    snaps = make_snapshots(knowledge=200, feedback=120, seed=11)
    kn = snaps[t.KNOWLEDGE].copy()
    edges = [
        pd.Timestamp("2026-03-29 00:59:59.7", tz="UTC"),  # the spring change, rounded down
        pd.Timestamp("2026-03-29 01:00:00", tz="UTC"),
        pd.Timestamp("2025-10-26 00:30:00", tz="UTC"),  # the autumn hour that repeats
        pd.Timestamp("2025-10-26 01:30:00.999", tz="UTC"),
        None,
    ]
    modified = kn["Modified"].astype(object).tolist()
    county = kn["County"].iloc[0]
    mine = [n for n, c in enumerate(kn["County"]) if c == county]
    for n, at in zip(mine, edges, strict=False):
        modified[n] = at
    kn["Modified"] = modified
    kn["Status"] = "Aktuell"
    kn["ValidUntil"] = None
    snaps[t.KNOWLEDGE] = kn
    ref = t.load_reference()
    tables = t.aggregate(
        snaps, None, ref, site_url=SITE, generated_at=GENERATED_AT, time_zone=STHLM
    )
    assert tables.county_knowledge[county]["modified"].dtype.kind == "M"
    assert tables.county_knowledge[county]["modified"].isna().sum() == 1
    before = dataclasses.replace(
        tables,
        county_knowledge=_as_objects(tables.county_knowledge, "modified"),
        county_feedback=_as_objects(tables.county_feedback, "modified"),
    )

    def parts(data: bytes) -> dict[str, bytes]:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return {n: z.read(n) for n in z.namelist() if not n.startswith("docProps")}

    new = render_county(tables, county, language="sv")
    old = render_county(before, county, language="sv")
    assert parts(new.data) == parts(old.data)


@pytest.mark.parametrize(
    "values",
    [
        pd.Series(["Skåne län", None, "Atlantis län", "Skåne län", float("nan")]),
        pd.Series([None, None]),
        pd.Series([], dtype=object),
        pd.Series(["Uppsala län", None], dtype="str", index=[7, 3]),
    ],
)
def test_lookups_of_distinct_values_equal_series_map(values: pd.Series) -> None:
    ref = t.load_reference()
    team_of = {c.name: c.team for c in ref.counties}
    pd.testing.assert_series_equal(t._mapped(values, team_of), values.map(team_of))
    rank = {c.name: n for n, c in enumerate(ref.counties)}
    expected = values.map(rank).fillna(len(rank)).astype("int64")
    pd.testing.assert_series_equal(t._order(values, tuple(rank)), expected)


@pytest.mark.parametrize(
    "values",
    [
        [dt.date(2026, 1, 1), None, dt.date(1899, 12, 31), dt.date(2026, 3, 29)],
        [None, None],
        [],
        [dt.date(2026, 3, 30), float("nan"), "2026-04-01", dt.datetime(2026, 4, 2, 23, 30)],
    ],
)
def test_date_columns_as_they_came_or_converted_give_the_same_dates(values: list) -> None:
    series = pd.Series(values, dtype=object, index=range(10, 10 + len(values)))
    d64 = pd.to_datetime(series, errors="coerce")
    expected = [None if pd.isna(v) else v.date() for v in d64]
    got = t._dates(series)
    assert got.tolist() == expected
    assert [type(v) for v in got] == [type(v) for v in expected]
    assert got.index.equals(series.index) and got.dtype == object


def test_unknown_counties_are_counted_once_each_across_the_lists(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The log line about rows outside the reference data counts the distinct county values
    not in it, across knowledge, feedback and dialogues (found by the cached county codes):
    missing values and known counties are not counted, a value in two lists once."""
    snaps = make_snapshots(knowledge=60, feedback=40)
    kn, fb = snaps[t.KNOWLEDGE].copy(), snaps[t.FEEDBACK].copy()
    kn.loc[kn.index[0], "County"] = "Atlantis län"
    kn.loc[kn.index[1], "County"] = None
    fb.loc[fb.index[0], "County"] = "Atlantis län"  # the same value again: counted once
    fb.loc[fb.index[1], "County"] = "Lemurien län"
    fb.loc[fb.index[2], "County"] = float("nan")
    snaps[t.KNOWLEDGE], snaps[t.FEEDBACK] = kn, fb
    i = t._inputs(snaps, t.load_reference(), GENERATED_AT, STHLM)
    with caplog.at_level("INFO", logger=t.logger.name):
        t._log_unknown_counties(i)
    assert [r.getMessage() for r in caplog.records if "county value" in r.getMessage()] == [
        "Rows with 2 county value(s) not in the reference data are left out of the "
        "per-county tables (they are listed on Datakvalitet)"
    ]
    caplog.clear()
    clean = make_snapshots(knowledge=60, feedback=40)
    with caplog.at_level("INFO", logger=t.logger.name):
        t._log_unknown_counties(t._inputs(clean, t.load_reference(), GENERATED_AT, STHLM))
    assert not [r for r in caplog.records if "county value" in r.getMessage()]
