"""The pandas tables behind the Excel rollups (pure: no clock, no I/O besides reading reference data).

Definitions — made once here and used by every table and workbook. The *reference date* is the
calendar date of ``generated_at`` in the site's time zone (never the machine clock):

* **Current knowledge** — a Länskunskap item with Status "Aktuell" whose "Giltig till"
  (ValidUntil) is empty or on/after the reference date.
* **Open feedback** — a Dialogåterkoppling item with Status "Ny" or "Pågående".
  **Closed** is "Klar" or "Ingen åtgärd".
* **Overdue** — open feedback whose "Sista datum" (DueDate) is before the reference date. Date-only
  columns are already site-local calendar dates in the snapshots, so no UTC shift can move a due
  date by a day.
* **Current phase** of a county — the phase of its latest dialogue round: highest "År", then the
  latest "Planerat datum", then the highest ID (rounds without a year or date count as oldest).
* **Next planned dialogue** — the earliest planned date on or after the reference date of a round
  not yet held; **last dialogue held** — the latest held date on or before the reference date.
* **Added in the last 30 days** — knowledge items (any status) created in the 30 days up to
  ``generated_at``.

Output columns are keyed by English identifiers (see :mod:`sp_sync.i18n` for the labels); choice
values stay as the lists store them (Swedish) and are translated when rendered.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from sp_sync.i18n import label
from sp_sync.report.safe_text import html_to_text

__all__ = [
    "CLOSED_STATUSES",
    "CURRENT_KNOWLEDGE_STATUS",
    "DIALOGUES",
    "FEEDBACK",
    "KNOWLEDGE",
    "OPEN_STATUSES",
    "CountyRef",
    "ListSyncInfo",
    "RollupReference",
    "RollupTables",
    "aggregate",
    "current_knowledge_mask",
    "load_reference",
    "open_feedback_mask",
    "overdue_mask",
    "reference_date",
]

logger = logging.getLogger(__name__)

KNOWLEDGE = "Länskunskap"
DIALOGUES = "Dialoger"
FEEDBACK = "Dialogåterkoppling"

CURRENT_KNOWLEDGE_STATUS = "Aktuell"
OPEN_STATUSES = ("Ny", "Pågående")
CLOSED_STATUSES = ("Klar", "Ingen åtgärd")
STRATEGIC_INPUT = "Strategiskt inspel"
RECENT_DAYS = 30

# ---------------------------------------------------------------------------------------------
# Reference data


@dataclass(frozen=True)
class CountyRef:
    """A county with its official letter code and team."""

    name: str
    code: str
    team: str


@dataclass(frozen=True)
class RollupReference:
    """The reference data the rollups need, in display order.

    Built from ``sp_sync.schema.model.load_schemas().reference`` (or, when that is unavailable, read
    straight from ``list_schemas/reference.yaml``). `translations` maps every Swedish choice value
    that has an English label (counties excepted) to that label.
    """

    counties: tuple[CountyRef, ...]
    teams: tuple[str, ...]
    phases: tuple[str, ...]
    subject_areas: tuple[str, ...]
    departments: tuple[str, ...]
    translations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_schema_reference(
        cls, reference: Any, translations: Mapping[str, str] | None = None
    ) -> RollupReference:
        """Adapt a ``sp_sync.schema.model.Reference`` (duck-typed) into a RollupReference."""

        def name(obj: Any) -> str:
            return str(obj if isinstance(obj, str) else getattr(obj, "name", obj))

        trans = dict(translations or {})
        for group in ("teams", "phases", "subject_areas", "departments"):
            for item in getattr(reference, group, ()) or ():
                en = getattr(item, "en", None)
                if en:
                    trans.setdefault(name(item), str(en))
        phases = sorted(
            getattr(reference, "phases", ()) or (), key=lambda p: getattr(p, "number", 0)
        )
        return cls(
            counties=tuple(
                CountyRef(str(c.name), str(c.code), name(c.team)) for c in reference.counties
            ),
            teams=tuple(name(t) for t in reference.teams),
            phases=tuple(name(p) for p in phases),
            subject_areas=tuple(name(s) for s in reference.subject_areas),
            departments=tuple(name(d) for d in reference.departments),
            translations=trans,
        )


def _schema_dir(directory: str | os.PathLike[str] | None) -> Path:
    if directory is not None:
        return Path(directory)
    env = os.environ.get("SP_SYNC_SCHEMA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "list_schemas"


def _choice_translations(directory: Path) -> dict[str, str]:
    """Every {name, en} pair in the schema files: choice values and their English labels."""
    import yaml

    out: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("name"), str) and isinstance(node.get("en"), str):
                out.setdefault(node["name"], node["en"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted(directory.glob("*.yaml")):
        with path.open(encoding="utf-8") as fh:
            walk(yaml.safe_load(fh))
    return out


def load_reference(directory: str | os.PathLike[str] | None = None) -> RollupReference:
    """Reference data for the rollups from the list schemas (counties, teams, phases, …)."""
    path = _schema_dir(directory)
    translations = _choice_translations(path)
    from sp_sync.schema import load_schemas

    return RollupReference.from_schema_reference(load_schemas(path).reference, translations)


@dataclass(frozen=True)
class ListSyncInfo:
    """What 'Om rapporten' says about one list: items in the snapshot and last synchronisation."""

    list_title: str
    item_count: int
    last_synced: dt.datetime | None = None


# ---------------------------------------------------------------------------------------------
# Definitions


def reference_date(generated_at: dt.datetime, time_zone: ZoneInfo) -> dt.date:
    """The calendar date of `generated_at` in the site's time zone."""
    if generated_at.tzinfo is None:
        raise ValueError("generated_at must be timezone-aware")
    return generated_at.astimezone(time_zone).date()


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df.columns:
        return df[name]
    return pd.Series([None] * len(df), index=df.index, dtype=object)


def _as_datetime64(series: pd.Series) -> pd.Series:
    """Date-only values (datetime.date or None) as datetime64 for vectorised comparison."""
    return pd.to_datetime(series, errors="coerce")


def current_knowledge_mask(knowledge: pd.DataFrame, ref_date: dt.date) -> pd.Series:
    """True for current knowledge: Status Aktuell and ValidUntil empty or ≥ the reference date."""
    valid = _as_datetime64(_col(knowledge, "ValidUntil"))
    status = _col(knowledge, "Status")
    return (status == CURRENT_KNOWLEDGE_STATUS) & (valid.isna() | (valid >= pd.Timestamp(ref_date)))


def open_feedback_mask(feedback: pd.DataFrame) -> pd.Series:
    """True for open feedback: Status Ny or Pågående."""
    return _col(feedback, "Status").isin(OPEN_STATUSES)


def overdue_mask(feedback: pd.DataFrame, ref_date: dt.date) -> pd.Series:
    """True for overdue feedback: open and DueDate (site-local date) before the reference date."""
    due = _as_datetime64(_col(feedback, "DueDate"))
    return open_feedback_mask(feedback) & due.notna() & (due < pd.Timestamp(ref_date))


# ---------------------------------------------------------------------------------------------
# Tables


DRIFT_COLUMNS = ["list", "column", "severity", "problem"]

#: Columns of the open-feedback table on Länsöversikt → Återkoppling, in order.
OPEN_FEEDBACK_COLUMNS = [
    "county",
    "title",
    "receiving_department",
    "subject_area",
    "status",
    "due_date",
    "days_overdue",
    "owner",
    "action",
    "modified",
    "link",
]

#: Columns of each department's feedback table (Återkoppling – {Avdelning}.xlsx), in order.
DEPARTMENT_COLUMNS = [
    "county",
    "title",
    "subject_area",
    "status",
    "dialogue_date",
    "due_date",
    "days_overdue",
    "owner",
    "feedback_text",
    "action",
    "modified",
    "link",
]


@dataclass(frozen=True)
class RollupTables:
    """Every table behind the workbooks. DataFrames hold plain Python/pandas values."""

    reference: RollupReference
    generated_at: dt.datetime
    generated_local: dt.datetime
    reference_date: dt.date
    time_zone: str
    site_url: str
    overview: pd.DataFrame
    matrix: pd.DataFrame
    open_feedback: pd.DataFrame
    dialogue_plan: pd.DataFrame
    chart_feedback: pd.DataFrame
    chart_knowledge: pd.DataFrame
    quality: pd.DataFrame
    about_lists: pd.DataFrame
    by_department: dict[str, pd.DataFrame]
    county_knowledge: dict[str, pd.DataFrame]
    county_dialogues: dict[str, pd.DataFrame]
    county_feedback: dict[str, pd.DataFrame]
    #: Differences between the site and the list schemas found by the run's drift check
    #: (columns: list, column, severity, problem); empty when the site matches.
    drift: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DRIFT_COLUMNS))


def drift_frame(findings: Any, language: str = "sv") -> pd.DataFrame:
    """The drift report's findings as a table (`findings`: DriftFinding objects or mappings)."""
    rows = []
    for f in findings or ():
        get = f.get if isinstance(f, Mapping) else lambda k, _f=f: getattr(_f, k, None)
        problem = get("message_en" if language == "en" else "message_sv") or get("message")
        severity = get("severity")
        rows.append(
            [
                get("list_title") or get("list"),
                get("column"),
                label(severity, language) if severity in ("harmless", "breaking") else severity,
                problem,
            ]
        )
    return pd.DataFrame(rows, columns=DRIFT_COLUMNS)


def _none_if_nan(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), None)


def _dates(series: pd.Series) -> pd.Series:
    """datetime.date or None (object dtype), whatever came in."""
    d64 = _as_datetime64(series)
    out = pd.Series([None] * len(series), index=series.index, dtype=object)
    mask = d64.notna()
    if mask.any():
        out[mask] = d64[mask].dt.date
    return out


def _local_naive(series: pd.Series, tz: ZoneInfo) -> pd.Series:
    """Aware timestamps → naive wall-clock datetimes in the site zone (Excel has no zones)."""
    ts = pd.to_datetime(series, errors="coerce", utc=True)
    local = ts.dt.tz_convert(tz).dt.tz_localize(None).dt.floor("s")
    out = pd.Series([None] * len(series), index=series.index, dtype=object)
    mask = local.notna()
    if mask.any():
        out[mask] = list(local[mask].dt.to_pydatetime())
    return out


def _text(df: pd.DataFrame, name: str) -> pd.Series:
    """Plain text of a note column: the snapshot's `<Name>_text`, else HTML converted here."""
    if f"{name}_text" in df.columns:
        return df[f"{name}_text"].fillna("").astype(str)
    raw = _col(df, name)
    return raw.map(lambda v: html_to_text(str(v)) if isinstance(v, str) else "")


def _order(values: pd.Series, order: tuple[str, ...]) -> pd.Series:
    """Sort key for reference order; unknown values after known ones."""
    rank = {name: i for i, name in enumerate(order)}
    return values.map(lambda v: rank.get(v, len(rank))).astype("int64")


def _sorted(df: pd.DataFrame, keys: list[tuple[pd.Series | str, bool]]) -> pd.DataFrame:
    """Stable, explicit multi-key sort (determinism: every table is sorted down to the ID)."""
    tmp = pd.DataFrame(index=df.index)
    names = []
    asc = []
    for i, (key, ascending) in enumerate(keys):
        tmp[f"k{i}"] = df[key] if isinstance(key, str) else key
        names.append(f"k{i}")
        asc.append(ascending)
    order = tmp.sort_values(names, ascending=asc, kind="mergesort", na_position="last").index
    return df.loc[order].reset_index(drop=True)


def _date_key(d64: pd.Series, missing: float = float("inf")) -> pd.Series:
    """Sort key for datetime64 values: days since 1970, missing dates as `missing`."""
    days = (d64 - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400.0
    return days.astype("float64").fillna(missing)


def _ids(df: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(_col(df, "ID"), errors="coerce").fillna(0).astype("int64")


def _frame(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def aggregate(
    snapshots: Mapping[str, pd.DataFrame],
    quality: pd.DataFrame | None,
    reference: RollupReference,
    sync_info: Mapping[str, ListSyncInfo] | None = None,
    *,
    site_url: str,
    generated_at: dt.datetime,
    time_zone: ZoneInfo | None = None,
) -> RollupTables:
    """All rollup tables from the normalized snapshots (see the module docstring for definitions)."""
    tz = time_zone or ZoneInfo("Europe/Stockholm")
    ref_date = reference_date(generated_at, tz)
    ref_ts = pd.Timestamp(ref_date)
    county_names = tuple(c.name for c in reference.counties)
    team_of = {c.name: c.team for c in reference.counties}

    kn = snapshots.get(KNOWLEDGE, pd.DataFrame()).reset_index(drop=True)
    dl = snapshots.get(DIALOGUES, pd.DataFrame()).reset_index(drop=True)
    fb = snapshots.get(FEEDBACK, pd.DataFrame()).reset_index(drop=True)

    # --- knowledge
    kn_current = current_knowledge_mask(kn, ref_date)
    kn_county = _col(kn, "County")
    created = pd.to_datetime(_col(kn, "Created"), errors="coerce", utc=True)
    recent = created.notna() & (
        created > pd.Timestamp(generated_at) - pd.Timedelta(days=RECENT_DAYS)
    )
    recent &= created <= pd.Timestamp(generated_at)
    strategic = kn_current & (_col(kn, "EntryType") == STRATEGIC_INPUT)

    current_counts = kn_county[kn_current].value_counts()
    strategic_counts = kn_county[strategic].value_counts()
    recent_counts = kn_county[recent].value_counts()

    # --- dialogues
    dl_county = _col(dl, "County")
    planned = _as_datetime64(_col(dl, "PlannedDate"))
    held = _as_datetime64(_col(dl, "HeldDate"))
    year = pd.to_numeric(_col(dl, "Year"), errors="coerce")
    dl_ids = _ids(dl)
    latest = pd.DataFrame(
        {
            "county": dl_county,
            "year": year.fillna(-1),
            "planned": _date_key(planned, float("-inf")),
            "id": dl_ids,
            "phase": _col(dl, "Phase"),
        }
    ).sort_values(["county", "year", "planned", "id"], kind="mergesort")
    current_phase = latest.groupby("county", sort=False)["phase"].last()
    upcoming = planned.notna() & held.isna() & (planned >= ref_ts)
    next_dialogue = planned[upcoming].groupby(dl_county[upcoming]).min()
    was_held = held.notna() & (held <= ref_ts)
    last_dialogue = held[was_held].groupby(dl_county[was_held]).max()

    # --- feedback
    fb_county = _col(fb, "County")
    fb_open = open_feedback_mask(fb)
    fb_overdue = overdue_mask(fb, ref_date)
    fb_closed = _col(fb, "Status").isin(CLOSED_STATUSES)
    fb_total_counts = fb_county.value_counts()
    fb_open_counts = fb_county[fb_open].value_counts()
    fb_overdue_counts = fb_county[fb_overdue].value_counts()
    fb_closed_counts = fb_county[fb_closed].value_counts()
    due = _as_datetime64(_col(fb, "DueDate"))
    days_overdue = pd.Series([None] * len(fb), index=fb.index, dtype=object)
    if fb_overdue.any():
        days_overdue[fb_overdue] = (ref_ts - due[fb_overdue]).dt.days.astype(int).tolist()

    def count(series: pd.Series, county: str) -> int:
        return int(series.get(county, 0))

    def day(series: pd.Series, county: str) -> dt.date | None:
        value = series.get(county)
        return None if value is None or pd.isna(value) else pd.Timestamp(value).date()

    overview_rows = []
    for team in reference.teams:
        for c in reference.counties:
            if c.team != team:
                continue
            total = count(fb_total_counts, c.name)
            closed = count(fb_closed_counts, c.name)
            phase = current_phase.get(c.name)
            overview_rows.append(
                {
                    "team": c.team,
                    "county": c.name,
                    "code": c.code,
                    "knowledge_current": count(current_counts, c.name),
                    "strategic_inputs": count(strategic_counts, c.name),
                    "added_30d": count(recent_counts, c.name),
                    "current_phase": phase if isinstance(phase, str) else None,
                    "next_dialogue": day(next_dialogue, c.name),
                    "last_dialogue": day(last_dialogue, c.name),
                    "feedback_open": count(fb_open_counts, c.name),
                    "feedback_overdue": count(fb_overdue_counts, c.name),
                    "feedback_closed_share": (closed / total) if total else None,
                }
            )
    overview = pd.DataFrame(overview_rows)

    # --- knowledge matrix: every county × every subject area, zeros included
    cur = pd.DataFrame(
        {"county": kn_county[kn_current], "area": _col(kn, "SubjectArea")[kn_current]}
    )
    pivot = pd.crosstab(cur["county"], cur["area"]) if len(cur) else pd.DataFrame()
    pivot = pivot.reindex(
        index=list(county_names), columns=list(reference.subject_areas), fill_value=0
    )
    pivot = pivot.fillna(0).astype("int64")
    matrix = pivot.reset_index(names="county")
    matrix.insert(0, "team", matrix["county"].map(team_of))

    # --- feedback details (shared by the open-feedback sheet and the per-department/county files)
    fb_ids = _ids(fb)
    feedback_detail = pd.DataFrame(
        {
            "team": fb_county.map(team_of),
            "county": fb_county,
            "title": _col(fb, "Title"),
            "receiving_department": _col(fb, "ReceivingDepartment"),
            "subject_area": _col(fb, "SubjectArea"),
            "status": _col(fb, "Status"),
            "dialogue_date": _dates(_col(fb, "DialogueDate")),
            "due_date": _dates(_col(fb, "DueDate")),
            "days_overdue": days_overdue,
            "owner": _col(fb, "Owner"),
            "feedback_text": _text(fb, "Feedback"),
            "action": _text(fb, "Action"),
            "modified": _local_naive(_col(fb, "Modified"), tz),
            "link": _col(fb, "_item_url"),
        }
    )
    fb_sort_county = _order(fb_county, county_names)
    open_feedback = _sorted(
        feedback_detail[fb_open.to_numpy()],
        [
            (_date_key(due)[fb_open], True),
            (fb_sort_county[fb_open], True),
            (fb_ids[fb_open], True),
        ],
    )[OPEN_FEEDBACK_COLUMNS]

    # --- dialogue plan
    dialogue_detail = pd.DataFrame(
        {
            "team": dl_county.map(team_of),
            "county": dl_county,
            "year": _none_if_nan(year.round().astype("Int64")) if len(dl) else year,
            "title": _col(dl, "Title"),
            "phase": _col(dl, "Phase"),
            "planned_date": _dates(_col(dl, "PlannedDate")),
            "held_date": _dates(_col(dl, "HeldDate")),
            "county_lead": _col(dl, "CountyLead"),
            "link": _col(dl, "_item_url"),
        }
    )
    dialogue_plan = _sorted(
        dialogue_detail,
        [
            (_order(dl_county, county_names), True),
            (year.fillna(-1), True),
            (_date_key(planned), True),
            (dl_ids, True),
        ],
    )

    # --- chart data
    chart_feedback = pd.DataFrame(
        {
            "county": list(county_names),
            "open": [count(fb_open_counts, c) - count(fb_overdue_counts, c) for c in county_names],
            "overdue": [count(fb_overdue_counts, c) for c in county_names],
            "closed": [count(fb_closed_counts, c) for c in county_names],
        }
    )
    cur_team = cur["county"].map(team_of)
    by_team = (pd.crosstab(cur["area"], cur_team) if len(cur) else pd.DataFrame()).reindex(
        index=list(reference.subject_areas), columns=list(reference.teams), fill_value=0
    )
    chart_knowledge = by_team.fillna(0).astype("int64").reset_index(names="subject_area")

    # --- data quality
    q = quality if quality is not None else pd.DataFrame()
    quality_table = pd.DataFrame(
        {
            "list": _col(q, "list_title"),
            "item_id": pd.to_numeric(_col(q, "item_id"), errors="coerce"),
            "column": _col(q, "column"),
            "problem_sv": _col(q, "problem_sv"),
            "problem_en": _col(q, "problem_en"),
            "value": _col(q, "value").map(lambda v: None if v is None else str(v)),
            "link": _col(q, "item_url"),
        }
    )
    quality_table["item_id"] = _none_if_nan(quality_table["item_id"].astype("Int64"))
    quality_table = _sorted(
        quality_table,
        [
            ("list", True),
            (pd.to_numeric(quality_table["item_id"], errors="coerce").fillna(-1), True),
            (quality_table["column"].fillna(""), True),
            (quality_table["problem_sv"].fillna(""), True),
        ],
    )

    # --- about
    about_rows = []
    info = dict(sync_info or {})
    for title in (KNOWLEDGE, DIALOGUES, FEEDBACK):
        si = info.get(title)
        snap = snapshots.get(title)
        count_items = si.item_count if si else (len(snap) if snap is not None else 0)
        last = si.last_synced if si else None
        about_rows.append(
            {
                "list": title,
                "items": int(count_items),
                "last_synced": (
                    last.astimezone(tz).replace(tzinfo=None, microsecond=0)
                    if last is not None and last.tzinfo is not None
                    else last
                ),
            }
        )
    for title in sorted(set(info) - {KNOWLEDGE, DIALOGUES, FEEDBACK}):
        si = info[title]
        about_rows.append(
            {
                "list": title,
                "items": int(si.item_count),
                "last_synced": si.last_synced.astimezone(tz).replace(tzinfo=None, microsecond=0)
                if si.last_synced is not None
                else None,
            }
        )
    about_lists = pd.DataFrame(about_rows)

    # --- per department: all feedback addressed to it, open first, by county and due date
    dept_cols = DEPARTMENT_COLUMNS
    fb_dept = _col(fb, "ReceivingDepartment")
    dept_sorted = _sorted(
        feedback_detail.assign(_dept=fb_dept),
        [
            (fb_sort_county, True),
            ((~fb_open).astype(int), True),
            (_date_key(due), True),
            (fb_ids, True),
        ],
    )
    by_department: dict[str, pd.DataFrame] = {}
    groups = {k: g for k, g in dept_sorted.groupby("_dept", sort=False)} if len(dept_sorted) else {}
    for dept in reference.departments:
        g = groups.get(dept)
        by_department[dept] = (
            g[dept_cols].reset_index(drop=True) if g is not None else _frame(dept_cols)
        )

    # --- per county
    kn_detail = pd.DataFrame(
        {
            "county": kn_county,
            "subject_area": _col(kn, "SubjectArea"),
            "title": _col(kn, "Title"),
            "entry_type": _col(kn, "EntryType"),
            "department": _col(kn, "Department"),
            "priority": _col(kn, "Priority"),
            "valid_until": _dates(_col(kn, "ValidUntil")),
            "owner": _col(kn, "Owner"),
            "description": _text(kn, "Description"),
            "modified": _local_naive(_col(kn, "Modified"), tz),
            "link": _col(kn, "_item_url"),
        }
    )[kn_current.to_numpy()]
    kn_detail = _sorted(
        kn_detail,
        [
            (_order(kn_detail["subject_area"], reference.subject_areas), True),
            (kn_detail["title"].fillna("").astype(str), True),
            (_ids(kn)[kn_current], True),
        ],
    )
    kn_cols = [c for c in kn_detail.columns if c != "county"]
    dl_cols = [c for c in dialogue_plan.columns if c not in ("team", "county")]
    fbc_cols = [c for c in feedback_detail.columns if c not in ("team", "county")]
    county_fb_sorted = _sorted(
        feedback_detail,
        [
            ((~fb_open).astype(int), True),
            (_date_key(due), True),
            (fb_ids, True),
        ],
    )
    kn_groups = dict(tuple(kn_detail.groupby("county", sort=False))) if len(kn_detail) else {}
    dl_groups = (
        dict(tuple(dialogue_plan.groupby("county", sort=False))) if len(dialogue_plan) else {}
    )
    fb_groups = (
        dict(tuple(county_fb_sorted.groupby("county", sort=False))) if len(county_fb_sorted) else {}
    )

    def pick(groups: dict[Any, pd.DataFrame], key: str, cols: list[str]) -> pd.DataFrame:
        g = groups.get(key)
        return g[cols].reset_index(drop=True) if g is not None else _frame(cols)

    county_knowledge = {c: pick(kn_groups, c, kn_cols) for c in county_names}
    county_dialogues = {c: pick(dl_groups, c, dl_cols) for c in county_names}
    county_feedback = {c: pick(fb_groups, c, fbc_cols) for c in county_names}

    unknown = set(kn_county.dropna()) | set(fb_county.dropna()) | set(dl_county.dropna())
    unknown -= set(county_names)
    if unknown:
        # Validation already lists each such row on Datakvalitet; this is for the operator's log.
        logger.info(
            "Rows with %d county value(s) not in the reference data are left out of the "
            "per-county tables (they are listed on Datakvalitet)",
            len(unknown),
        )

    return RollupTables(
        reference=reference,
        generated_at=generated_at,
        generated_local=generated_at.astimezone(tz).replace(tzinfo=None, microsecond=0),
        reference_date=ref_date,
        time_zone=str(tz.key),
        site_url=site_url,
        overview=overview,
        matrix=matrix,
        open_feedback=open_feedback,
        dialogue_plan=dialogue_plan,
        chart_feedback=chart_feedback,
        chart_knowledge=chart_knowledge,
        quality=quality_table,
        about_lists=about_lists,
        by_department=by_department,
        county_knowledge=county_knowledge,
        county_dialogues=county_dialogues,
        county_feedback=county_feedback,
    )
