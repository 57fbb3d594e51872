"""The pandas tables behind the Excel rollups (pure: no clock, no I/O).

The reference data and the English choice labels come from the run's `SchemaSet`
(`RollupReference.from_schemas`); which columns a sheet shows, and how, is declared next to its
layout in `sp_sync.report.layouts`. `aggregate()` composes one function per output table.

Definitions — made once here and used by every table and workbook. The *reference date* is the
calendar date of ``generated_at`` in the site's time zone (never the machine clock):

* **Current knowledge** — a Länskunskap item with Status "Aktuell" whose "Giltig till"
  (ValidUntil) is empty or on/after the reference date.
* **Open feedback** — a Dialogåterkoppling item with Status "Ny" or "Pågående", overdue or not:
  "Öppen" means this one thing on every sheet and chart. **Open in time** is open and not overdue.
  **Closed** is "Klar" or "Ingen åtgärd"; **closed in the last 30 days** is closed with
  "Modified" in the 30 days up to ``generated_at`` (the lists keep no closing date).
* **Overdue** — open feedback whose "Sista datum" (DueDate) is before the reference date. Date-only
  columns are already site-local calendar dates in the snapshots, so no UTC shift can move a due
  date by a day. **Days overdue** counts from the due date to the reference date; the **oldest
  overdue** is the largest of them; the bands are more than 30 and more than 90 days.
* **Current phase** of a county — the phase of its latest dialogue round: highest "År", then the
  latest "Planerat datum", then the highest ID (rounds without a year or date count as oldest).
* **Next planned dialogue** — the earliest planned date on or after the reference date of a round
  not yet held; **last dialogue held** — the latest held date on or before the reference date.
* **Dialogues in the next 30/60 days** — rounds not held whose planned date lies from the
  reference date up to 30/60 days after it. A round **planned but not held** has a planned date
  before the reference date and no held date.
* **Added in the last 30 days** — knowledge items (any status) created in the 30 days up to
  ``generated_at``.
* **Data-quality problems** — the records on Datakvalitet (one item can have several).

Output columns are keyed by English identifiers (see :mod:`sp_sync.i18n` for the labels); choice
values stay as the lists store them (Swedish) and are translated when rendered.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from sp_sync.i18n import label
from sp_sync.report.safe_text import html_to_text
from sp_sync.schema import SchemaSet, load_schemas
from sp_sync.schema.drift import DriftFinding

__all__ = [
    "CLOSED_STATUSES",
    "CURRENT_KNOWLEDGE_STATUS",
    "DIALOGUES",
    "FEEDBACK",
    "KNOWLEDGE",
    "OPEN_STATUSES",
    "READ_COLUMNS",
    "CountyRef",
    "Headline",
    "ListSyncInfo",
    "RollupReference",
    "RollupTables",
    "Scope",
    "aggregate",
    "current_knowledge_mask",
    "drift_frame",
    "load_reference",
    "open_feedback_mask",
    "overdue_mask",
    "read_columns",
    "reference_date",
]

logger = logging.getLogger(__name__)

KNOWLEDGE = "Länskunskap"
DIALOGUES = "Dialoger"
FEEDBACK = "Dialogåterkoppling"

#: The columns of each list's snapshot that the tables are derived from. aggregate() sees no
#: other column of these lists (it reads them through `read_columns`), so a row that changed in
#: other columns only (a lookup's titles re-resolved, its version or editor) changes no table:
#: sp_sync.report.scope routes no workbook for it. A table that needs another column must add
#: it here (without it the column reads as missing, and the tests comparing bytes fail).
READ_COLUMNS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        KNOWLEDGE: frozenset(
            {
                "ID",
                "Title",
                "County",
                "SubjectArea",
                "Department",
                "EntryType",
                "Description",
                "Description_text",
                "Priority",
                "ValidUntil",
                "Owner",
                "Status",
                "Created",
                "Modified",
                "_item_url",
            }
        ),
        DIALOGUES: frozenset(
            {
                "ID",
                "Title",
                "County",
                "Year",
                "Phase",
                "PlannedDate",
                "HeldDate",
                "CountyLead",
                "_item_url",
            }
        ),
        FEEDBACK: frozenset(
            {
                "ID",
                "Title",
                "County",
                "Dialogue",
                "DialogueDate",
                "SubjectArea",
                "ReceivingDepartment",
                "Feedback",
                "Feedback_text",
                "Action",
                "Action_text",
                "DueDate",
                "Status",
                "Owner",
                "Modified",
                "_item_url",
            }
        ),
    }
)

CURRENT_KNOWLEDGE_STATUS = "Aktuell"
OPEN_STATUSES = ("Ny", "Pågående")
CLOSED_STATUSES = ("Klar", "Ingen åtgärd")
STRATEGIC_INPUT = "Strategiskt inspel"
RECENT_DAYS = 30
#: Overdue age bands (days) that the workbooks colour: more than 30, more than 90.
OVERDUE_BANDS = (30, 90)
#: "Dialogues ahead" windows on Översikt (days from the reference date).
UPCOMING_DAYS = (30, 60)
#: How many of a county's most recent knowledge items its dialogue-preparation sheet lists.
RECENT_KNOWLEDGE_ROWS = 5
#: Dialogue round states on Dialogplan (keys; labels in sp_sync.i18n).
DIALOGUE_STATES = ("held", "upcoming", "missed", "unplanned")

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

    Built from the run's `SchemaSet` (`from_schemas`): `translations` maps every Swedish choice
    value that has an English label (counties excepted) to that label.
    """

    counties: tuple[CountyRef, ...]
    teams: tuple[str, ...]
    phases: tuple[str, ...]
    subject_areas: tuple[str, ...]
    departments: tuple[str, ...]
    translations: Mapping[str, str] = field(default_factory=dict)
    #: Column display names as SharePoint shows them: list title → internal name → (sv, en).
    column_titles: Mapping[str, Mapping[str, tuple[str, str]]] = field(default_factory=dict)

    def column_title(self, list_title: str, name: str, language: str = "sv") -> str:
        """A column's display name in `language`; the internal name when the schema lacks it."""
        sv_en = self.column_titles.get(list_title, {}).get(name)
        if sv_en is None:
            return name
        return sv_en[1] if language == "en" else sv_en[0]

    @classmethod
    def from_schemas(cls, schemas: SchemaSet) -> RollupReference:
        """The reference data and every English choice label the given schemas carry."""
        ref = schemas.reference
        return cls(
            counties=tuple(CountyRef(c.name, c.code, c.team) for c in ref.counties),
            teams=tuple(t.name for t in ref.teams),
            phases=tuple(p.name for p in sorted(ref.phases, key=lambda p: p.number)),
            subject_areas=tuple(s.name for s in ref.subject_areas),
            departments=tuple(d.name for d in ref.departments),
            translations=schemas.choice_translations(),
            column_titles={
                ls.title: {c.name: (c.label("sv"), c.label("en")) for c in ls.columns}
                for ls in schemas.lists.values()
            },
        )


def load_reference(directory: str | os.PathLike[str] | None = None) -> RollupReference:
    """The rollup reference of the schemas in `directory` (default: the repository's
    list_schemas/), read by the one schema loader; for tests and benchmarks."""
    return RollupReference.from_schemas(
        load_schemas(None if directory is None else os.fspath(directory))
    )


@dataclass(frozen=True)
class ListSyncInfo:
    """What 'Om rapporten' says about one list: items in the snapshot and last synchronisation."""

    list_title: str
    item_count: int
    last_synced: dt.datetime | None = None
    last_checked: dt.datetime | None = None  # last successful check (issue 11 item 13)


# ---------------------------------------------------------------------------------------------
# Definitions


def read_columns(snapshots: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """`snapshots` with each list of READ_COLUMNS cut to those columns (in their order; other
    lists as they are). Copy-on-write: no values are copied."""
    out: dict[str, pd.DataFrame] = {}
    for title, df in snapshots.items():
        wanted = READ_COLUMNS.get(title)
        if wanted is not None and any(c not in wanted for c in df.columns):
            df = df[[c for c in df.columns if c in wanted]]
        out[title] = df
    return out


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


@dataclass(frozen=True)
class Headline:
    """Översikt's headline block: the morning questions as single figures (module definitions)."""

    reference_date: dt.date
    feedback_open: int
    feedback_overdue: int
    overdue_over_30: int
    overdue_over_90: int
    oldest_overdue_days: int | None
    dialogues_next_30: int
    dialogues_next_60: int
    dialogues_missed: int
    knowledge_added_30d: int
    quality_problems: int


@dataclass(frozen=True)
class Scope:
    """The per-county and per-department tables an aggregate() builds (issue 14 goal 4: a
    night rebuilds only the workbooks whose inputs changed). The overview's tables are always
    complete; a county or department outside the scope has no entry in the per-county or
    per-department tables, so nothing can render it by mistake from an empty table."""

    counties: frozenset[str]
    departments: frozenset[str]


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
    headline: Headline
    department_matrix: pd.DataFrame
    team_summary: pd.DataFrame
    by_department: dict[str, pd.DataFrame]
    department_summary: dict[str, pd.DataFrame]
    county_prep: dict[str, pd.DataFrame]
    county_recent_knowledge: dict[str, pd.DataFrame]
    county_knowledge: dict[str, pd.DataFrame]
    county_dialogues: dict[str, pd.DataFrame]
    county_feedback: dict[str, pd.DataFrame]
    #: Differences between the site and the list schemas found by the run's drift check
    #: (`drift_frame`); empty when the site matches.
    drift: pd.DataFrame = field(default_factory=lambda: drift_frame(()))
    #: Where the rows of the per-department and per-county tables come from (see RowSource),
    #: by id() of the table; not a table itself. The input fingerprints hash each source once
    #: instead of every table cut from it.
    row_sources: Mapping[int, RowSource] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )
    #: The counties and departments whose tables were built (see Scope); None: every one.
    scope: Scope | None = None

    def covers(self, kind: str, name: str) -> bool:
        """Whether the tables hold everything the workbook (kind, name) shows (see Scope)."""
        if self.scope is None or kind == "overview":
            return True
        if kind == "county":
            return name in self.scope.counties
        return name in self.scope.departments

    def __getstate__(self) -> dict[str, object]:
        # A copy (pickle: the engine benchmark hands the tables to a child process) has tables
        # of other ids, so the records keyed by id() mean nothing there: it has none, and its
        # fingerprints hash each table, with the same result.
        return {**self.__dict__, "row_sources": {}}


@dataclass(frozen=True, eq=False)
class RowSource:
    """A table that is rows of another: `table` holds `source[columns]` at row `positions`, in
    that order, value for value (same dtypes). The tables are never changed after aggregate()
    made them; `table` is held here so that its id() cannot be reused while this exists."""

    table: pd.DataFrame
    source: pd.DataFrame
    columns: tuple[str, ...]
    positions: np.ndarray


def drift_frame(findings: Sequence[DriftFinding], language: str = "sv") -> pd.DataFrame:
    """The drift check's findings as a table: list, column, severity (translated), problem."""
    return pd.DataFrame(
        {
            "list": [f.list_title for f in findings],
            "column": [f.column for f in findings],
            "severity": [label(f.severity, language) for f in findings],
            "problem": [f.message(language) for f in findings],
        },
        dtype=object,
    )


def _none_if_nan(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), None)


def _dates(series: pd.Series) -> pd.Series:
    """datetime.date or None (object dtype), whatever came in."""
    if series.dtype == object:
        values = series.to_numpy()
        # Date-only columns come from the snapshots as datetime.date already: kept as they
        # are (a round trip through datetime64 gave back equal dates at six times the cost).
        # The types checked in one C loop (a generator per value cost 0.04 s a night).
        if set(map(type, values)) <= {dt.date, type(None)}:
            return pd.Series(values.copy(), index=series.index, dtype=object)
    d64 = _as_datetime64(series)
    out = pd.Series([None] * len(series), index=series.index, dtype=object)
    mask = d64.notna()
    if mask.any():
        out[mask] = d64[mask].dt.date
    return out


def _local_naive(series: pd.Series, tz: ZoneInfo) -> pd.Series:
    """Aware timestamps → naive wall-clock times in the site zone to the second (Excel has no
    zones), as a datetime64 column: missing times are NaT.

    Kept as datetime64 rather than Python objects: making one Timestamp object per row was most
    of the aggregation of a night (issue 14 goal 4); the writer and the input fingerprints read
    the column as an array."""
    ts = pd.to_datetime(series, errors="coerce", utc=True)
    local = ts.dt.tz_convert(tz).dt.tz_localize(None).dt.floor("s")
    return local.astype("datetime64[ns]")


def _text(df: pd.DataFrame, name: str) -> pd.Series:
    """Plain text of a note column: the snapshot's `<Name>_text`, else HTML converted here."""
    if f"{name}_text" in df.columns:
        return df[f"{name}_text"].fillna("").astype(str)
    raw = _col(df, name)
    return raw.map(lambda v: html_to_text(str(v)) if isinstance(v, str) else "")


def _order(values: pd.Series, order: tuple[str, ...]) -> pd.Series:
    """Sort key for reference order; unknown values after known ones."""
    rank = {name: i for i, name in enumerate(order)}
    # Looked up once per distinct value (a Python call per row was a tenth of the aggregation;
    # Series.map with a dict still cost 7 times this).
    return pd.Series(_lookup(values, rank, len(rank)), index=values.index, dtype="int64")


def _lookup(values: pd.Series, table: Mapping[str, int], missing: int) -> np.ndarray:
    """`table[value]` for every value (`missing` for a value not in it, or none), as int64."""
    if not len(values):
        return np.empty(0, dtype="int64")
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    found = [table.get(u, missing) if isinstance(u, str) else missing for u in uniques]
    # The last entry answers the sentinel (-1) of a missing value.
    return np.asarray([*found, missing], dtype="int64")[codes]


def _mapped(values: pd.Series, table: Mapping[str, str]) -> pd.Series:
    """`values.map(table)`, looking up each distinct value once."""
    if not len(values):
        return values.map(table)
    # As Series.map does it (the table as a Series, its values taken by position, -1 missing),
    # with the positions found for the distinct values only.
    mapper = pd.Series(table)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    at = np.append(mapper.index.get_indexer(pd.Index(uniques, dtype=object)), -1)[codes]
    taken = pd.api.extensions.take(mapper.array, at, allow_fill=True)
    return pd.Series(taken, index=values.index)


def _codes(values: pd.Series, names: Sequence[str]) -> tuple[np.ndarray, dict[str, int]]:
    """(each value's code, name → code) for the names of `names`; -1 for any other value.

    Comparing small integers replaces comparing object arrays of names once per group (the
    per-department and per-county figures compared 50,000 names about 120 times a run)."""
    code = {name: n for n, name in enumerate(names)}
    return _lookup(values, code, -1), code


def _numeric_sort_positions(
    df: pd.DataFrame, keys: list[tuple[pd.Series | str, bool]]
) -> np.ndarray | None:
    """`_sort_positions` for ascending int64 / float64 keys without NaN, aligned with `df`:
    np.lexsort is stable, as the mergesort of sort_values, and without a missing value there is
    nothing to put last. None for any other keys (most of the sorts have only such keys:
    building and sorting a frame of them cost several times this)."""
    columns = []
    for key, ascending in keys:
        series = df[key] if isinstance(key, str) else key
        if not ascending or not series.index.equals(df.index):
            return None
        values = series.to_numpy()
        if values.dtype != np.int64 and not (
            values.dtype == np.float64 and not np.isnan(values).any()
        ):
            return None
        columns.append(values)
    if not columns:
        return None
    return np.lexsort(columns[::-1])  # the last key given to lexsort is the first one sorted by


def _sort_positions(df: pd.DataFrame, keys: list[tuple[pd.Series | str, bool]]) -> np.ndarray:
    """The row positions of `df` in `_sorted` order."""
    fast = _numeric_sort_positions(df, keys)
    if fast is not None:
        return fast
    tmp = pd.DataFrame(index=df.index)
    names = []
    asc = []
    for i, (key, ascending) in enumerate(keys):
        tmp[f"k{i}"] = df[key] if isinstance(key, str) else key
        names.append(f"k{i}")
        asc.append(ascending)
    tmp["_at"] = np.arange(len(df))
    ordered = tmp.sort_values(names, ascending=asc, kind="mergesort", na_position="last")
    return ordered["_at"].to_numpy()


def _sorted(df: pd.DataFrame, keys: list[tuple[pd.Series | str, bool]]) -> pd.DataFrame:
    """Stable, explicit multi-key sort (determinism: every table is sorted down to the ID)."""
    return df.take(_sort_positions(df, keys)).reset_index(drop=True)


def _split(
    df: pd.DataFrame,
    by: pd.Series,
    names: Sequence[str],
    columns: list[str],
    order: np.ndarray | None = None,
    *,
    sources: dict[int, RowSource],
) -> dict[str, pd.DataFrame]:
    """`df` (in `order`, positions; default: as it stands) split by the values of `by` into one
    table of `columns` per name of `names` (empty tables included); rows whose value is not a
    name are left out. The same tables as sorting, grouping by `by` and taking each group's
    columns, with one take of the rows instead of one per group. Each table's RowSource goes
    into `sources`."""
    if not len(df):
        return {name: _frame(columns) for name in names}
    codes, code_of = _codes(by, names)
    at = np.arange(len(df)) if order is None else np.asarray(order)
    at = at[codes[at] >= 0]  # rows of no name are in no table: not taken at all
    at = at[np.argsort(codes[at], kind="stable")]  # grouped, each group in `order`
    grouped = codes[at]
    rows = df[columns].take(at).reset_index(drop=True)
    out: dict[str, pd.DataFrame] = {}
    for name in names:
        code = code_of[name]
        start, end = np.searchsorted(grouped, [code, code + 1]).tolist()
        if end <= start:
            out[name] = _frame(columns)
            continue
        out[name] = table = rows.iloc[start:end].reset_index(drop=True)
        sources[id(table)] = RowSource(table, df, tuple(columns), at[start:end])
    return out


def _date_key(d64: pd.Series, missing: float = float("inf")) -> pd.Series:
    """Sort key for datetime64 values: days since 1970, missing dates as `missing`."""
    days = (d64 - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400.0
    return days.astype("float64").fillna(missing)


def _ids(df: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(_col(df, "ID"), errors="coerce").fillna(0).astype("int64")


def _frame(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


@dataclass(frozen=True)
class _FeedbackArrays:
    open: np.ndarray
    overdue: np.ndarray
    closed: np.ndarray
    closed_30d: np.ndarray
    days_overdue: np.ndarray  # NaN where not overdue


@dataclass(frozen=True)
class _Inputs:
    """The snapshots and what several tables derive from them, computed once per aggregate()."""

    reference: RollupReference
    tz: ZoneInfo
    generated_at: dt.datetime
    ref_date: dt.date
    kn: pd.DataFrame
    dl: pd.DataFrame
    fb: pd.DataFrame
    kn_current: pd.Series
    fb_open: pd.Series
    fb_overdue: pd.Series
    fb_closed: pd.Series
    #: The RowSource of every table _split cuts during this aggregate() (RollupTables.row_sources).
    sources: dict[int, RowSource] = field(default_factory=dict)

    @property
    def ref_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.ref_date)

    @property
    def county_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.reference.counties)

    @property
    def team_of(self) -> dict[str, str]:
        return {c.name: c.team for c in self.reference.counties}

    # Cached: the per-department and per-county summaries ask for these once per group (about
    # 120 times a run); converting the feedback's dates each time was most of the aggregation.
    @functools.cached_property
    def due(self) -> pd.Series:
        return _as_datetime64(_col(self.fb, "DueDate"))

    @functools.cached_property
    def days_overdue(self) -> pd.Series:
        """Days from the due date to the reference date for overdue items, else NaN."""
        days = (self.ref_ts - self.due).dt.days.astype("float64")
        return days.where(self.fb_overdue.to_numpy(), float("nan"))

    @functools.cached_property
    def fb_closed_30d(self) -> pd.Series:
        """Closed feedback last modified in the 30 days up to generated_at (no closing date
        exists in the list, so the last change stands in for it)."""
        modified = pd.to_datetime(_col(self.fb, "Modified"), errors="coerce", utc=True)
        now = pd.Timestamp(self.generated_at)
        recent = (modified > now - pd.Timedelta(days=RECENT_DAYS)) & (modified <= now)
        return self.fb_closed & recent.fillna(False).astype(bool)

    @functools.cached_property
    def current_kn(self) -> pd.DataFrame:
        """The current knowledge items: the per-county knowledge tables derive their columns
        from these rows only (deriving them for every item and then filtering cost twice)."""
        return self.kn[self.kn_current.to_numpy(dtype=bool)]

    @functools.cached_property
    def fb_county_codes(self) -> tuple[np.ndarray, dict[str, int]]:
        return _codes(_col(self.fb, "County"), self.county_names)

    @functools.cached_property
    def kn_county_codes(self) -> tuple[np.ndarray, dict[str, int]]:
        return _codes(_col(self.kn, "County"), self.county_names)

    @functools.cached_property
    def fb_department_codes(self) -> tuple[np.ndarray, dict[str, int]]:
        return _codes(_col(self.fb, "ReceivingDepartment"), self.reference.departments)

    @functools.cached_property
    def fb_team_codes(self) -> tuple[np.ndarray, dict[str, int]]:
        """The team of each feedback item's county (-1: a county not in the reference data)."""
        county_codes, _ = self.fb_county_codes
        team_code = {name: n for n, name in enumerate(self.reference.teams)}
        # Indexed by county code; the last entry (-1) stands for a county not in the reference.
        of_county = [team_code.get(c.team, -1) for c in self.reference.counties] + [-1]
        return np.asarray(of_county, dtype="int64")[county_codes], team_code

    @functools.cached_property
    def feedback_arrays(self) -> _FeedbackArrays:
        """The feedback flags as numpy arrays, for the many per-group figures."""
        return _FeedbackArrays(
            open=self.fb_open.to_numpy(dtype=bool),
            overdue=self.fb_overdue.to_numpy(dtype=bool),
            closed=self.fb_closed.to_numpy(dtype=bool),
            closed_30d=self.fb_closed_30d.to_numpy(dtype=bool),
            days_overdue=self.days_overdue.to_numpy(dtype="float64"),
        )

    def dialogue_state(self) -> pd.Series:
        """held / upcoming / missed / unplanned for every dialogue round (module definitions)."""
        planned = _as_datetime64(_col(self.dl, "PlannedDate"))
        held = _as_datetime64(_col(self.dl, "HeldDate"))
        state = pd.Series("unplanned", index=self.dl.index, dtype=object)
        state[planned.notna() & (planned >= self.ref_ts)] = "upcoming"
        state[planned.notna() & (planned < self.ref_ts)] = "missed"
        state[held.notna()] = "held"
        return state


def _inputs(
    snapshots: Mapping[str, pd.DataFrame],
    reference: RollupReference,
    generated_at: dt.datetime,
    tz: ZoneInfo,
    sources: dict[int, RowSource] | None = None,
) -> _Inputs:
    ref_date = reference_date(generated_at, tz)
    kn = snapshots.get(KNOWLEDGE, pd.DataFrame()).reset_index(drop=True)
    dl = snapshots.get(DIALOGUES, pd.DataFrame()).reset_index(drop=True)
    fb = snapshots.get(FEEDBACK, pd.DataFrame()).reset_index(drop=True)
    return _Inputs(
        reference=reference,
        tz=tz,
        generated_at=generated_at,
        ref_date=ref_date,
        kn=kn,
        dl=dl,
        fb=fb,
        kn_current=current_knowledge_mask(kn, ref_date),
        fb_open=open_feedback_mask(fb),
        fb_overdue=overdue_mask(fb, ref_date),
        fb_closed=_col(fb, "Status").isin(CLOSED_STATUSES),
        sources={} if sources is None else sources,
    )


def _county_counts(
    codes: tuple[np.ndarray, dict[str, int]], mask: pd.Series | np.ndarray | None = None
) -> pd.Series:
    """How many rows of `mask` (default: every row) each county of the reference data has, by
    name, from the rows' county codes (see _codes): what `value_counts()` of the rows' counties
    gives `_count` for those counties, counted by np.bincount instead of hashing the names of
    100,000 rows again per figure."""
    values, code_of = codes
    known = values >= 0
    if mask is not None:
        known &= mask.to_numpy(dtype=bool) if isinstance(mask, pd.Series) else mask
    at = np.fromiter(code_of.values(), dtype=np.int64, count=len(code_of))
    counts = np.bincount(values[known], minlength=int(at.max()) + 1 if len(at) else 0)
    return pd.Series(counts[at], index=pd.Index(list(code_of), dtype=object))


def _count(series: pd.Series, county: str) -> int:
    return int(series.get(county, 0))


def _day(series: pd.Series, county: str) -> dt.date | None:
    value = series.get(county)
    return None if value is None or pd.isna(value) else pd.Timestamp(value).date()


def _int_or_none(value: object) -> int | None:
    if value is None or pd.isna(value):
        return None
    return int(value)  # type: ignore[call-overload]


def _overview(i: _Inputs) -> pd.DataFrame:
    """Översikt: one row per county (teams in reference order) with the headline figures."""
    kn, dl, fb = i.kn, i.dl, i.fb
    # knowledge
    created = pd.to_datetime(_col(kn, "Created"), errors="coerce", utc=True)
    recent = created.notna() & (
        created > pd.Timestamp(i.generated_at) - pd.Timedelta(days=RECENT_DAYS)
    )
    recent &= created <= pd.Timestamp(i.generated_at)
    strategic = i.kn_current & (_col(kn, "EntryType") == STRATEGIC_INPUT)
    current_counts = _county_counts(i.kn_county_codes, i.kn_current)
    strategic_counts = _county_counts(i.kn_county_codes, strategic)
    recent_counts = _county_counts(i.kn_county_codes, recent)

    # dialogues
    dl_county = _col(dl, "County")
    planned = _as_datetime64(_col(dl, "PlannedDate"))
    held = _as_datetime64(_col(dl, "HeldDate"))
    year = pd.to_numeric(_col(dl, "Year"), errors="coerce")
    latest = pd.DataFrame(
        {
            "county": dl_county,
            "year": year.fillna(-1),
            "planned": _date_key(planned, float("-inf")),
            "id": _ids(dl),
            "phase": _col(dl, "Phase"),
        }
    ).sort_values(["county", "year", "planned", "id"], kind="mergesort")
    current_phase = latest.groupby("county", sort=False)["phase"].last()
    upcoming = planned.notna() & held.isna() & (planned >= i.ref_ts)
    next_dialogue = planned[upcoming].groupby(dl_county[upcoming]).min()
    was_held = held.notna() & (held <= i.ref_ts)
    last_dialogue = held[was_held].groupby(dl_county[was_held]).max()

    # feedback
    fb_county = _col(fb, "County")
    fb_total_counts = _county_counts(i.fb_county_codes)
    fb_open_counts = _county_counts(i.fb_county_codes, i.fb_open)
    fb_overdue_counts = _county_counts(i.fb_county_codes, i.fb_overdue)
    fb_closed_counts = _county_counts(i.fb_county_codes, i.fb_closed)
    oldest = i.days_overdue.groupby(fb_county).max()

    rows = []
    for team in i.reference.teams:
        for c in i.reference.counties:
            if c.team != team:
                continue
            total = _count(fb_total_counts, c.name)
            closed = _count(fb_closed_counts, c.name)
            phase = current_phase.get(c.name)
            rows.append(
                {
                    "team": c.team,
                    "county": c.name,
                    "code": c.code,
                    "knowledge_current": _count(current_counts, c.name),
                    "strategic_inputs": _count(strategic_counts, c.name),
                    "added_30d": _count(recent_counts, c.name),
                    "current_phase": phase if isinstance(phase, str) else None,
                    "next_dialogue": _day(next_dialogue, c.name),
                    "last_dialogue": _day(last_dialogue, c.name),
                    "feedback_open": _count(fb_open_counts, c.name),
                    "feedback_overdue": _count(fb_overdue_counts, c.name),
                    "oldest_overdue_days": _int_or_none(oldest.get(c.name)),
                    "feedback_closed_share": (closed / total) if total else None,
                }
            )
    return pd.DataFrame(rows)


def _current_by_area(i: _Inputs) -> pd.DataFrame:
    """County and subject area of every current knowledge item."""
    return pd.DataFrame(
        {
            "county": _col(i.kn, "County")[i.kn_current],
            "area": _col(i.kn, "SubjectArea")[i.kn_current],
        }
    )


def _pair_counts(rows: np.ndarray, n_rows: int, columns: np.ndarray, n_columns: int) -> np.ndarray:
    """How many items have each (row code, column code): an n_rows × n_columns int64 matrix;
    an item with a code below 0 (not in the reference data, or missing) is not counted. What
    pd.crosstab reindexed to the reference gave, counted by np.bincount (crosstab's groupby
    and pivot cost a third of the knowledge tables)."""
    known = (rows >= 0) & (columns >= 0)
    cells = rows[known].astype(np.int64) * n_columns + columns[known]
    counts = np.bincount(cells, minlength=n_rows * n_columns)
    return counts.astype("int64").reshape(n_rows, n_columns)


def _matrix(i: _Inputs) -> pd.DataFrame:
    """Kunskapsmatris: every county × every subject area, zeros included."""
    cur = _current_by_area(i)
    counties, areas = list(i.county_names), list(i.reference.subject_areas)
    if len(cur):
        counts = _pair_counts(
            _codes(cur["county"], counties)[0],
            len(counties),
            _codes(cur["area"], areas)[0],
            len(areas),
        )
        # The axis names crosstab gave the table (the same frame as before, to the last detail).
        pivot = pd.DataFrame(
            counts,
            index=pd.Index(counties, name="county"),
            columns=pd.Index(areas, name="area"),
        )
    else:
        pivot = pd.DataFrame().reindex(index=counties, columns=areas, fill_value=0)
        pivot = pivot.fillna(0).astype("int64")
    matrix = pivot.reset_index(names="county")
    matrix.insert(0, "team", _mapped(matrix["county"], i.team_of))
    return matrix


def _feedback_detail(i: _Inputs) -> pd.DataFrame:
    """Every feedback item with its display values (shared by the open-feedback sheet and the
    per-department and per-county files), in snapshot order."""
    fb = i.fb
    fb_county = _col(fb, "County")
    due = i.due
    days_overdue = pd.Series([None] * len(fb), index=fb.index, dtype=object)
    if i.fb_overdue.any():
        days_overdue[i.fb_overdue] = (i.ref_ts - due[i.fb_overdue]).dt.days.astype(int).tolist()
    return pd.DataFrame(
        {
            "team": _mapped(fb_county, i.team_of),
            "county": fb_county,
            "title": _col(fb, "Title"),
            "receiving_department": _col(fb, "ReceivingDepartment"),
            "subject_area": _col(fb, "SubjectArea"),
            "status": _col(fb, "Status"),
            "dialogue": _col(fb, "Dialogue"),
            "dialogue_date": _dates(_col(fb, "DialogueDate")),
            "due_date": _dates(_col(fb, "DueDate")),
            "days_overdue": days_overdue,
            "owner": _col(fb, "Owner"),
            "feedback_text": _text(fb, "Feedback"),
            "action": _text(fb, "Action"),
            "modified": _local_naive(_col(fb, "Modified"), i.tz),
            "link": _col(fb, "_item_url"),
        }
    )


def _open_feedback(i: _Inputs, detail: pd.DataFrame) -> pd.DataFrame:
    """Återkoppling: open feedback, earliest due date first, then county and ID."""
    fb_open = i.fb_open
    return _sorted(
        detail[fb_open.to_numpy()],
        [
            (_date_key(i.due)[fb_open], True),
            (_order(_col(i.fb, "County"), i.county_names)[fb_open], True),
            (_ids(i.fb)[fb_open], True),
        ],
    )


def _dialogue_plan(i: _Inputs) -> pd.DataFrame:
    """Dialogplan: every dialogue round by county (reference order), year, planned date, ID."""
    dl = i.dl
    dl_county = _col(dl, "County")
    year = pd.to_numeric(_col(dl, "Year"), errors="coerce")
    detail = pd.DataFrame(
        {
            "team": _mapped(dl_county, i.team_of),
            "county": dl_county,
            "year": _none_if_nan(year.round().astype("Int64")) if len(dl) else year,
            "title": _col(dl, "Title"),
            "phase": _col(dl, "Phase"),
            "planned_date": _dates(_col(dl, "PlannedDate")),
            "held_date": _dates(_col(dl, "HeldDate")),
            "dialogue_state": i.dialogue_state(),
            "county_lead": _col(dl, "CountyLead"),
            "link": _col(dl, "_item_url"),
        }
    )
    return _sorted(
        detail,
        [
            (_order(dl_county, i.county_names), True),
            (year.fillna(-1), True),
            (_date_key(_as_datetime64(_col(dl, "PlannedDate"))), True),
            (_ids(dl), True),
        ],
    )


def _chart_feedback(i: _Inputs) -> pd.DataFrame:
    """Diagram: open in time, overdue (together: open) and closed feedback per county."""
    open_counts = _county_counts(i.fb_county_codes, i.fb_open)
    overdue_counts = _county_counts(i.fb_county_codes, i.fb_overdue)
    closed_counts = _county_counts(i.fb_county_codes, i.fb_closed)
    names = i.county_names
    return pd.DataFrame(
        {
            "county": list(names),
            "open_in_time": [_count(open_counts, c) - _count(overdue_counts, c) for c in names],
            "overdue": [_count(overdue_counts, c) for c in names],
            "closed": [_count(closed_counts, c) for c in names],
        }
    )


def _chart_knowledge(i: _Inputs) -> pd.DataFrame:
    """Diagram: current knowledge per subject area and team."""
    cur = _current_by_area(i)
    areas, teams = list(i.reference.subject_areas), list(i.reference.teams)
    if not len(cur):
        empty = pd.DataFrame().reindex(index=areas, columns=teams, fill_value=0)
        return empty.fillna(0).astype("int64").reset_index(names="subject_area")
    # Each item's team through its county's code (-1: a county not in the reference data).
    team_code = {name: n for n, name in enumerate(teams)}
    of_county = [team_code.get(c.team, -1) for c in i.reference.counties] + [-1]
    county_codes, _ = _codes(cur["county"], i.county_names)
    counts = _pair_counts(
        _codes(cur["area"], areas)[0],
        len(areas),
        np.asarray(of_county, dtype="int64")[county_codes],
        len(teams),
    )
    # "col_0": the name crosstab gave the unnamed team axis (the same frame as before).
    by_team = pd.DataFrame(counts, index=areas, columns=pd.Index(teams, name="col_0"))
    return by_team.reset_index(names="subject_area")


def _item_facts(
    snapshots: Mapping[str, pd.DataFrame], keys: Sequence[tuple[str, int] | None]
) -> list[tuple[object, object]]:
    """(the item's Title, its county) for each (list title, item ID) of `keys`, (None, None)
    where there is no such row. Looked up per list with an index over its IDs, not a dict of
    every snapshot row: the quality records are few, the snapshot rows many."""
    out: list[tuple[object, object]] = [(None, None)] * len(keys)
    wanted: dict[str, list[int]] = {}
    for n, key in enumerate(keys):
        if key is not None:
            wanted.setdefault(key[0], []).append(n)
    for title, positions in wanted.items():
        snap = snapshots.get(title)
        if snap is None or not len(snap) or "ID" not in snap.columns:
            continue
        index = pd.Index(_ids(snap).to_numpy())
        if not index.is_unique:  # the last row of an ID wins, as it always did
            keep = ~index.duplicated(keep="last")
            snap, index = snap[keep], index[keep]
        found = index.get_indexer([keys[n][1] for n in positions])  # type: ignore[index]
        # Only the rows asked for become Python values (not every row of a 100,000-item list).
        hits = found[found >= 0]
        names = _col(snap, "Title").iloc[hits].tolist()
        counties = _col(snap, "County").iloc[hits].tolist()
        k = 0
        for n, at in zip(positions, found.tolist(), strict=True):
            if at >= 0:
                out[n] = (names[k], counties[k])
                k += 1
    return out


def _quality(
    quality: pd.DataFrame | None,
    reference: RollupReference,
    snapshots: Mapping[str, pd.DataFrame],
) -> pd.DataFrame:
    """Datakvalitet: one row per data-quality record, by list, item, column and problem, with
    the column's display names, the item's title and county (so staff can find it without the
    link) and the offending value."""
    q = quality if quality is not None else pd.DataFrame()
    lists = _col(q, "list_title")
    columns = _col(q, "column")
    table = pd.DataFrame(
        {
            "list": lists,
            "item_id": pd.to_numeric(_col(q, "item_id"), errors="coerce"),
            "column_name": columns,
            "column_sv": [
                reference.column_title(str(lst), str(c), "sv") if c else None
                for lst, c in zip(lists, columns, strict=True)
            ],
            "column_en": [
                reference.column_title(str(lst), str(c), "en") if c else None
                for lst, c in zip(lists, columns, strict=True)
            ],
            "problem_sv": _col(q, "problem_sv"),
            "problem_en": _col(q, "problem_en"),
            "value": _col(q, "value").map(lambda v: None if _is_blank(v) else str(v)),
            "link": _col(q, "item_url"),
        }
    )
    table["item_id"] = _none_if_nan(table["item_id"].astype("Int64"))
    keys = [
        (str(lst), int(i)) if i is not None else None
        for lst, i in zip(table["list"], table["item_id"], strict=True)
    ]
    facts = _item_facts(snapshots, keys)
    table.insert(2, "title", [f[0] for f in facts])
    table.insert(3, "county", [f[1] for f in facts])
    return _sorted(
        table,
        [
            ("list", True),
            (pd.to_numeric(table["item_id"], errors="coerce").fillna(-1), True),
            (table["column_name"].fillna(""), True),
            (table["problem_sv"].fillna(""), True),
        ],
    )


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NA


def _local_time(value: dt.datetime | None, tz: ZoneInfo) -> dt.datetime | None:
    """An aware time as naive site-local wall-clock time to the second (Excel has no zones)."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(tz).replace(tzinfo=None, microsecond=0)


def _about_lists(
    snapshots: Mapping[str, pd.DataFrame], sync_info: Mapping[str, ListSyncInfo], tz: ZoneInfo
) -> pd.DataFrame:
    """Om rapporten: items and last synchronisation of the three lists, then any others."""
    rows = []
    for title in (KNOWLEDGE, DIALOGUES, FEEDBACK):
        si = sync_info.get(title)
        snap = snapshots.get(title)
        count_items = si.item_count if si else (len(snap) if snap is not None else 0)
        rows.append(
            {
                "list": title,
                "items": int(count_items),
                "last_synced": _local_time(si.last_synced if si else None, tz),
                "last_checked": _local_time(si.last_checked if si else None, tz),
            }
        )
    for title in sorted(set(sync_info) - {KNOWLEDGE, DIALOGUES, FEEDBACK}):
        si = sync_info[title]
        rows.append(
            {
                "list": title,
                "items": int(si.item_count),
                "last_synced": _local_time(si.last_synced, tz),
                "last_checked": _local_time(si.last_checked, tz),
            }
        )
    return pd.DataFrame(rows)


def _by_department(
    i: _Inputs, detail: pd.DataFrame, names: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """Återkoppling – {Avdelning}: all feedback addressed to each department of `names` (empty
    tables included), by county, open first, then due date and ID."""
    open_last = (~i.fb_open).astype(int)
    order = _sort_positions(
        detail,
        [
            (_order(_col(i.fb, "County"), i.county_names), True),
            (open_last, True),
            (_date_key(i.due), True),
            (_ids(i.fb), True),
        ],
    )
    dept = _col(i.fb, "ReceivingDepartment")
    return _split(detail, dept, names, list(detail.columns), order, sources=i.sources)


def _by_county(
    i: _Inputs, groups_of: pd.DataFrame, drop: Sequence[str], names: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """`groups_of` split by its county column into one table per county of `names` (empty
    tables included), without the columns in `drop`."""
    columns = [c for c in groups_of.columns if c not in drop]
    if not len(groups_of):
        return {county: _frame(columns) for county in names}
    return _split(groups_of, groups_of["county"], names, columns, sources=i.sources)


def _county_knowledge(i: _Inputs, names: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Länsbild → Kunskap: current knowledge by subject area (reference order), title and ID."""
    kn = i.current_kn
    detail = pd.DataFrame(
        {
            "county": _col(kn, "County"),
            "subject_area": _col(kn, "SubjectArea"),
            "title": _col(kn, "Title"),
            "entry_type": _col(kn, "EntryType"),
            "department": _col(kn, "Department"),
            "priority": _col(kn, "Priority"),
            "valid_until": _dates(_col(kn, "ValidUntil")),
            "owner": _col(kn, "Owner"),
            "description": _text(kn, "Description"),
            "modified": _local_naive(_col(kn, "Modified"), i.tz),
            "link": _col(kn, "_item_url"),
        }
    )
    order = _sort_positions(
        detail,
        [
            (_order(detail["subject_area"], i.reference.subject_areas), True),
            (detail["title"].fillna("").astype(str), True),
            (_ids(kn), True),
        ],
    )
    columns = [c for c in detail.columns if c != "county"]
    return _split(detail, detail["county"], names, columns, order, sources=i.sources)


def _county_feedback(
    i: _Inputs, detail: pd.DataFrame, names: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """Länsbild → Återkoppling: the county's feedback, open first, then due date and ID."""
    order = _sort_positions(
        detail,
        [
            ((~i.fb_open).astype(int), True),
            (_date_key(i.due), True),
            (_ids(i.fb), True),
        ],
    )
    columns = [c for c in detail.columns if c not in ("team", "county")]
    return _split(detail, detail["county"], names, columns, order, sources=i.sources)


def _headline(i: _Inputs, overview: pd.DataFrame, quality: pd.DataFrame) -> Headline:
    """The morning questions as single figures (definitions in the module docstring)."""
    days = i.days_overdue
    state = i.dialogue_state()
    planned = _as_datetime64(_col(i.dl, "PlannedDate"))
    ahead = [
        int(((state == "upcoming") & (planned <= i.ref_ts + pd.Timedelta(days=n))).sum())
        for n in UPCOMING_DAYS
    ]
    return Headline(
        reference_date=i.ref_date,
        feedback_open=int(i.fb_open.sum()),
        feedback_overdue=int(i.fb_overdue.sum()),
        overdue_over_30=int((days > OVERDUE_BANDS[0]).sum()),
        overdue_over_90=int((days > OVERDUE_BANDS[1]).sum()),
        oldest_overdue_days=_int_or_none(days.max()) if days.notna().any() else None,
        dialogues_next_30=ahead[0],
        dialogues_next_60=ahead[1],
        dialogues_missed=int((state == "missed").sum()),
        knowledge_added_30d=int(overview["added_30d"].sum()) if len(overview) else 0,
        quality_problems=len(quality),
    )


def _feedback_figures(i: _Inputs, mask: pd.Series | np.ndarray) -> dict[str, object]:
    """Open, in time, overdue (and its bands), oldest overdue and closed figures of `mask`'s items."""
    m = mask.to_numpy(dtype=bool) if isinstance(mask, pd.Series) else np.asarray(mask, dtype=bool)
    f = i.feedback_arrays
    days = f.days_overdue[m]
    known = days[~np.isnan(days)]
    open_n = int(f.open[m].sum())
    overdue_n = int(f.overdue[m].sum())
    return {
        "feedback_open": open_n,
        "open_in_time": open_n - overdue_n,
        "feedback_overdue": overdue_n,
        "overdue_over_30": int((known > OVERDUE_BANDS[0]).sum()),
        "overdue_over_90": int((known > OVERDUE_BANDS[1]).sum()),
        "oldest_overdue_days": int(known.max()) if len(known) else None,
        "closed": int(f.closed[m].sum()),
        "closed_30d": int(f.closed_30d[m].sum()),
    }


def _department_matrix(i: _Inputs) -> pd.DataFrame:
    """Översikt → department × status: one row per receiving department (reference order, then
    feedback with no department as `None`), the overdue items per team, and a total row
    (`department` "total", flagged by `is_total`)."""
    dept_missing = _col(i.fb, "ReceivingDepartment").isna().to_numpy(dtype=bool)
    dept_codes, dept_code = i.fb_department_codes
    team_codes, team_code = i.fb_team_codes
    overdue = i.feedback_arrays.overdue
    rows = []
    keys: list[str | None] = list(i.reference.departments)
    if dept_missing.any():
        keys.append(None)
    for key in keys:
        mask = dept_missing if key is None else (dept_codes == dept_code[key])
        row: dict[str, object] = {"department": key, "is_total": False}
        row.update(_feedback_figures(i, mask))
        for team in i.reference.teams:
            row[f"overdue:{team}"] = int((overdue & mask & (team_codes == team_code[team])).sum())
        rows.append(row)
    total: dict[str, object] = {"department": "total", "is_total": True}
    total.update(_feedback_figures(i, np.ones(len(i.fb), dtype=bool)))
    for team in i.reference.teams:
        total[f"overdue:{team}"] = int((overdue & (team_codes == team_code[team])).sum())
    rows.append(total)
    return pd.DataFrame(rows)


def _team_summary(i: _Inputs, overview: pd.DataFrame) -> pd.DataFrame:
    """Översikt → per team: the county table's figures summed per team, then a total row."""
    fb_team = _mapped(_col(i.fb, "County"), i.team_of)
    rows = []
    groups: list[tuple[str, pd.Series, pd.Series]] = [
        (t, overview["team"] == t, fb_team == t) for t in i.reference.teams
    ]
    all_fb = pd.Series(True, index=i.fb.index)
    all_ov = pd.Series(True, index=overview.index)
    for name, ov_mask, fb_mask in [*groups, ("total", all_ov, all_fb)]:
        figures = _feedback_figures(i, fb_mask)
        total_fb = int(fb_mask.sum()) if name == "total" else int((fb_mask & fb_team.notna()).sum())
        closed = int(figures["closed"])  # type: ignore[call-overload]
        rows.append(
            {
                "team": name,
                "is_total": name == "total",
                "knowledge_current": int(overview.loc[ov_mask, "knowledge_current"].sum()),
                "added_30d": int(overview.loc[ov_mask, "added_30d"].sum()),
                "feedback_open": figures["feedback_open"],
                "feedback_overdue": figures["feedback_overdue"],
                "oldest_overdue_days": figures["oldest_overdue_days"],
                "feedback_closed_share": (closed / total_fb) if total_fb else None,
            }
        )
    return pd.DataFrame(rows)


def _department_summary(i: _Inputs, names: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Återkoppling – {Avdelning} → Sammanfattning: per county (reference order) the open,
    overdue and closed feedback of each department of `names`, then a total row (`county`
    "total")."""
    dept_codes, dept_code = i.fb_department_codes
    county_codes, county_code = i.fb_county_codes
    out: dict[str, pd.DataFrame] = {}
    for d in names:
        mine = dept_codes == dept_code[d]
        rows = []
        for c in i.reference.counties:
            row: dict[str, object] = {"team": c.team, "county": c.name, "is_total": False}
            row.update(_feedback_figures(i, mine & (county_codes == county_code[c.name])))
            rows.append(row)
        total: dict[str, object] = {"team": None, "county": "total", "is_total": True}
        total.update(_feedback_figures(i, mine))
        rows.append(total)
        out[d] = pd.DataFrame(rows)
    return out


def _county_prep(
    i: _Inputs, overview: pd.DataFrame, names: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """Länsbild → Inför dialogen: one row of the county's figures for preparing its dialogue."""
    state = i.dialogue_state()
    missed = _col(i.dl, "County")[state == "missed"].value_counts()
    columns = [
        "current_phase",
        "last_dialogue",
        "next_dialogue",
        "dialogues_missed",
        "feedback_open",
        "feedback_overdue",
        "oldest_overdue_days",
        "knowledge_current",
        "added_30d",
    ]
    out: dict[str, pd.DataFrame] = {}
    wanted = set(names)
    for _, row in overview.iterrows():
        if str(row["county"]) not in wanted:
            continue
        values = {k: row[k] for k in columns if k in row.index}
        values["dialogues_missed"] = _count(missed, str(row["county"]))
        values["oldest_overdue_days"] = _int_or_none(row["oldest_overdue_days"])
        out[str(row["county"])] = pd.DataFrame([values], columns=columns)
    return out


def _county_recent_knowledge(i: _Inputs, names: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Länsbild → Inför dialogen: each county's most recently added current knowledge."""
    kn = i.current_kn
    stamp = pd.to_datetime(_col(kn, "Created"), errors="coerce", utc=True)
    order = _sort_positions(
        kn,
        [
            (_date_key(stamp.dt.tz_localize(None), float("-inf")), False),
            (_ids(kn), False),
        ],
    )
    # The first RECENT_KNOWLEDGE_ROWS of each county in that order are found from the county
    # codes alone; only those rows are made into the table (building it for every current item
    # and then keeping a hundred cost nine tenths of this). Rows of a county not in the
    # reference data have no table, as before.
    codes = _codes(_col(kn, "County"), i.county_names)[0][order]
    grouped = np.argsort(codes, kind="stable")
    sorted_codes = codes[grouped]
    rank = np.arange(len(codes)) - np.searchsorted(sorted_codes, sorted_codes, side="left")
    keep = np.zeros(len(codes), dtype=bool)
    keep[grouped] = (rank < RECENT_KNOWLEDGE_ROWS) & (sorted_codes >= 0)
    top_kn = kn.iloc[order[keep]]
    top = pd.DataFrame(
        {
            "county": _col(top_kn, "County"),
            "created": _local_naive(_col(top_kn, "Created"), i.tz),
            "subject_area": _col(top_kn, "SubjectArea"),
            "title": _col(top_kn, "Title"),
            "entry_type": _col(top_kn, "EntryType"),
            "department": _col(top_kn, "Department"),
            "link": _col(top_kn, "_item_url"),
        }
    ).reset_index(drop=True)
    return _by_county(i, top, ("county",), names)


def _log_unknown_counties(i: _Inputs) -> None:
    unknown = set(_col(i.dl, "County").dropna().unique())
    # The knowledge and feedback by the county codes the overview counts with (cached): only
    # the few rows of no known county are looked at, not every row's value again.
    for frame, (codes, _) in ((i.kn, i.kn_county_codes), (i.fb, i.fb_county_codes)):
        other = _col(frame, "County")[codes == -1]
        unknown |= set(other.dropna().unique())
    unknown -= set(i.county_names)
    if unknown:
        # Validation already lists each such row on Datakvalitet; this is for the operator's log.
        logger.info(
            "Rows with %d county value(s) not in the reference data are left out of the "
            "per-county tables (they are listed on Datakvalitet)",
            len(unknown),
        )


def _subset(i: _Inputs, kn_rows: np.ndarray | None, fb_rows: np.ndarray | None) -> _Inputs:
    """`i` restricted to some knowledge and feedback rows (boolean masks; None: all of them),
    every dialogue. The flags are row by row, so they are taken from `i`, not derived again."""

    def rows(frame: pd.DataFrame, mask: np.ndarray | None) -> pd.DataFrame:
        return frame if mask is None else frame[mask].reset_index(drop=True)

    def flags(series: pd.Series, mask: np.ndarray | None) -> pd.Series:
        return series if mask is None else series[mask].reset_index(drop=True)

    return dataclasses.replace(
        i,
        kn=rows(i.kn, kn_rows),
        fb=rows(i.fb, fb_rows),
        kn_current=flags(i.kn_current, kn_rows),
        fb_open=flags(i.fb_open, fb_rows),
        fb_overdue=flags(i.fb_overdue, fb_rows),
        fb_closed=flags(i.fb_closed, fb_rows),
    )


def _part(i: _Inputs, scope: Scope) -> _Inputs:
    """The inputs of the scope's per-county and per-department tables: the knowledge of its
    counties and the feedback of its counties or departments (every row any of those tables
    shows or counts), every dialogue. Each table of a county or department in the scope is then
    the same, row for row and dtype for dtype, as from all the rows: every value is derived from
    its own row, and the stable sorts keep the rows of a group in the same order."""
    kn_rows = _col(i.kn, "County").isin(list(scope.counties)).to_numpy(dtype=bool)
    fb_rows = _col(i.fb, "County").isin(list(scope.counties)).to_numpy(dtype=bool) | _col(
        i.fb, "ReceivingDepartment"
    ).isin(list(scope.departments)).to_numpy(dtype=bool)
    return _subset(i, kn_rows, fb_rows)


def _open_only(i: _Inputs) -> _Inputs:
    """The inputs restricted to the open feedback (the overview's Återkoppling sheet)."""
    return _subset(i, None, i.fb_open.to_numpy(dtype=bool))


def aggregate(
    snapshots: Mapping[str, pd.DataFrame],
    quality: pd.DataFrame | None,
    reference: RollupReference,
    sync_info: Mapping[str, ListSyncInfo] | None = None,
    *,
    site_url: str,
    generated_at: dt.datetime,
    time_zone: ZoneInfo | None = None,
    scope: Scope | None = None,
) -> RollupTables:
    """All rollup tables from the normalized snapshots (see the module docstring for
    definitions). With a `scope`, the per-county and per-department tables only of its counties
    and departments (each exactly as without one); the overview's tables are always complete."""
    tz = time_zone or ZoneInfo("Europe/Stockholm")
    # Only the columns the tables read (READ_COLUMNS): what scope.affected relies on.
    snapshots = read_columns(snapshots)
    i = _inputs(snapshots, reference, generated_at, tz)
    dialogue_plan = _dialogue_plan(i)
    overview = _overview(i)
    quality_table = _quality(quality, reference, snapshots)
    _log_unknown_counties(i)
    if scope is None:
        part = i
        counties: Sequence[str] = i.county_names
        departments: Sequence[str] = reference.departments
        feedback = part_feedback = _feedback_detail(i)
    else:
        unknown = (scope.counties - set(i.county_names)) | (
            scope.departments - set(reference.departments)
        )
        if unknown:
            raise ValueError(f"not in the reference data: {sorted(unknown)}")
        part = _part(i, scope)
        counties = [c for c in i.county_names if c in scope.counties]
        departments = [d for d in reference.departments if d in scope.departments]
        # The open feedback (the overview's sheet) and the scope's feedback, each derived from
        # its own rows only: the display values of every feedback item were most of this.
        opened = _open_only(i)
        feedback = _feedback_detail(opened)
        part_feedback = _feedback_detail(part)
    return RollupTables(
        reference=reference,
        generated_at=generated_at,
        generated_local=generated_at.astimezone(tz).replace(tzinfo=None, microsecond=0),
        reference_date=i.ref_date,
        time_zone=str(tz.key),
        site_url=site_url,
        overview=overview,
        matrix=_matrix(i),
        open_feedback=_open_feedback(i if scope is None else opened, feedback),
        dialogue_plan=dialogue_plan,
        chart_feedback=_chart_feedback(i),
        chart_knowledge=_chart_knowledge(i),
        quality=quality_table,
        about_lists=_about_lists(snapshots, dict(sync_info or {}), tz),
        headline=_headline(i, overview, quality_table),
        department_matrix=_department_matrix(i),
        team_summary=_team_summary(i, overview),
        by_department=_by_department(part, part_feedback, departments),
        department_summary=_department_summary(part, departments),
        county_prep=_county_prep(i, overview, counties),
        county_recent_knowledge=_county_recent_knowledge(part, counties),
        county_knowledge=_county_knowledge(part, counties),
        county_dialogues=_by_county(i, dialogue_plan, ("team", "county"), counties),
        county_feedback=_county_feedback(part, part_feedback, counties),
        row_sources=MappingProxyType(i.sources),
        scope=scope,
    )
