"""Which workbooks a night's changes can have changed (issue 14 goal 4: a night rebuilds only
the workbooks whose inputs changed).

The sync hands over, per list synchronised incrementally, the rows it changed (`ListChanges`:
their ids, and the rows as they were). A county's workbook shows only rows of that county and a
department's only feedback addressed to it (sp_sync.report.tables, `KEYED_TABLES` in
sp_sync.report.fingerprint), and every one of their values is derived from its own row, the
reference date and the run's time: so the workbooks whose inputs can have changed are the
overview, the counties and receiving departments of every changed row as it was *and* as it is
(a row moving county changes two Länsbild), and those of the rows that crossed a 30-day
window's edge since the last rollup (added in the last 30 days: Created; closed in the last 30
days: Modified). A changed row whose every column the tables read (READ_COLUMNS) is as it
was routes nowhere: nothing any table shows can have moved (`read_changes`; e.g. feedback whose
linked knowledge titles were re-resolved). `affected` returns None, and the caller builds
everything, whenever a changed row names a county or department the reference data does not
know.

Everything global (the reference date, language, row limit, schema version, drift findings,
site, time zone, reference data, code) is compared by the caller as one context fingerprint,
and the record of the last rollup must name exactly the states the changes start from; the
caller falls back to building every workbook otherwise (sp_sync.report.publish).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sp_sync.report.tables import (
    FEEDBACK,
    KNOWLEDGE,
    READ_COLUMNS,
    RECENT_DAYS,
    RollupReference,
    Scope,
)

if TYPE_CHECKING:  # the report stage reads the sync's hand-over; it does not import the sync
    from sp_sync.sync.changes import ListChanges

__all__ = ["affected", "read_changes", "window_crossers"]

#: The columns that route a row into a per-county / per-department workbook.
_COUNTY = "County"
_DEPARTMENT = "ReceivingDepartment"
#: Per list, the time column of its 30-day window (added: Created; closed: Modified).
_WINDOWS = {KNOWLEDGE: "Created", FEEDBACK: "Modified"}


class _Unknown(Exception):
    """A changed row names a key the reference data does not know."""


def _keys(values: pd.Series, known: frozenset[str]) -> set[str]:
    out: set[str] = set()
    for value in pd.unique(values.to_numpy(dtype=object)):
        if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
            continue  # no county / department: in no workbook of either kind
        if not isinstance(value, str) or value not in known:
            raise _Unknown(repr(value))
        out.add(value)
    return out


def _route(rows: pd.DataFrame, counties: frozenset[str], departments: frozenset[str]) -> Scope:
    found_counties = _keys(rows[_COUNTY], counties) if _COUNTY in rows.columns else set()
    found_departments = (
        _keys(rows[_DEPARTMENT], departments) if _DEPARTMENT in rows.columns else set()
    )
    return Scope(frozenset(found_counties), frozenset(found_departments))


def _same(a: object, b: object) -> bool:
    """Whether two cells hold the same value, strictly: of one type and equal (a missing float
    equals a missing float); anything that does not compare to True is a change."""
    if type(a) is not type(b):
        return False
    if a is b:
        return True
    if isinstance(a, float) and a != a:
        return b != b
    try:
        equal = a == b
    except Exception:  # values that cannot be compared: a change, to be safe
        return False
    # An array or NA (not a plain truth) is a change too.
    return equal is True or (isinstance(equal, np.bool_) and bool(equal))


def read_changes(
    title: str, before: pd.DataFrame, now: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The changed rows of list `title` (as they were, as they are) without those that differ
    only in columns the tables never read (READ_COLUMNS: aggregate() sees no other). A night's
    retitled knowledge items re-resolve the lookup titles of the feedback linking them, and
    those rows change no workbook. A row is kept unless its ID is in both frames exactly once,
    and every read column is in both frames with one dtype and, for that row, the same value."""
    read = READ_COLUMNS.get(title)
    if read is None or not len(before) or not len(now):
        return before, now
    if "ID" not in before.columns or "ID" not in now.columns:
        return before, now
    columns = sorted(read & (set(before.columns) | set(now.columns)))
    for column in columns:
        if column not in before.columns or column not in now.columns:
            return before, now
        if before[column].dtype != now[column].dtype:
            return before, now
    before_ids, now_ids = before["ID"].tolist(), now["ID"].tolist()
    common = set(before_ids) & set(now_ids)
    if len(before_ids) != len(set(before_ids)) or len(now_ids) != len(set(now_ids)):
        return before, now
    at_before = {v: n for n, v in enumerate(before_ids) if v in common}
    at_now = {v: n for n, v in enumerate(now_ids) if v in common}
    same = set(common)
    for column in columns:
        if not same:
            break
        was, is_ = before[column].tolist(), now[column].tolist()
        same = {v for v in same if _same(was[at_before[v]], is_[at_now[v]])}
    if not same:
        return before, now
    keep_before = np.fromiter((v not in same for v in before_ids), dtype=bool, count=len(before))
    keep_now = np.fromiter((v not in same for v in now_ids), dtype=bool, count=len(now))
    return before[keep_before], now[keep_now]


def window_crossers(
    rows: pd.DataFrame, column: str, before: dt.datetime, now: dt.datetime
) -> np.ndarray:
    """Where `column` (a time) lies in a 30-day window ending at one of `before` and `now` but
    not in the other: the rows whose "in the last 30 days" figures moved between the two."""
    if column not in rows.columns or not len(rows):
        return np.zeros(len(rows), dtype=bool)
    times = pd.to_datetime(rows[column], errors="coerce", utc=True)
    lo, hi = sorted((pd.Timestamp(before), pd.Timestamp(now)))
    days = pd.Timedelta(days=RECENT_DAYS)
    # In (t - 30 d, t]: the membership moves for a time in (lo - 30 d, hi - 30 d] or (lo, hi].
    moved = ((times > lo - days) & (times <= hi - days)) | ((times > lo) & (times <= hi))
    return moved.fillna(False).to_numpy(dtype=bool)


def affected(
    changes: Mapping[str, ListChanges],
    snapshots: Mapping[str, pd.DataFrame],
    reference: RollupReference,
    *,
    since: dt.datetime,
    now: dt.datetime,
) -> Scope | None:
    """The counties and departments whose workbooks `changes` (and the time from `since`, the
    last rollup's, to `now`) can have changed; None when a changed row names a key outside the
    reference data (then build everything). The overview is always affected."""
    counties = frozenset(c.name for c in reference.counties)
    departments = frozenset(reference.departments)
    # The changed rows as they were and as they are, and the rows that crossed a 30-day edge.
    parts: list[pd.DataFrame] = []
    for title, change in changes.items():
        snap = snapshots.get(title)
        current = change.before.iloc[:0]
        if snap is not None and len(snap) and change.ids:
            current = snap[snap["ID"].isin(list(change.ids))]
        # A row that changed only in columns no table reads routes nowhere.
        parts.extend(read_changes(title, change.before, current))
    for title, column in _WINDOWS.items():
        snap = snapshots.get(title)
        if snap is not None:
            parts.append(snap[window_crossers(snap, column, since, now)])
    try:
        scopes = [_route(rows, counties, departments) for rows in parts]
    except _Unknown:
        return None
    return Scope(
        frozenset().union(*(s.counties for s in scopes)),
        frozenset().union(*(s.departments for s in scopes)),
    )
