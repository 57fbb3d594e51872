"""What a department digest and a failure notice say (pure: no clock, no I/O).

A digest is computed from the Dialogåterkoppling snapshot for one receiving department and one
window `(since, until]`:

* **new** — feedback items created in the window (any status), oldest first;
* **overdue** — open feedback whose due date is before the reference date (the calendar date of
  `until` in the site's time zone), oldest due date first, with the days overdue and the county;
* **due soon** — open feedback due on the reference date or within the next `due_soon_days`
  days, earliest first.

"Open" and "overdue" are the definitions of :mod:`sp_sync.report.tables`, so the mail and the
department's workbook never disagree. The failure notice is computed from a run summary (its
JSON form, as stored in the state store) and the lists whose data is older than the stale limit.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from sp_sync.report.tables import OPEN_STATUSES, reference_date

__all__ = [
    "DUE_SOON_DAYS",
    "EXCERPT_CHARS",
    "DepartmentDigest",
    "DigestItem",
    "FailureNotice",
    "StaleList",
    "build_digest",
    "build_failure_notice",
    "stale_lists",
]

#: Items falling due within this many days (from the reference date) are listed as due soon.
DUE_SOON_DAYS = 14
#: A new item shows this much of its feedback text, so the mail stays a one-minute read.
EXCERPT_CHARS = 240

# C0/C1 control characters other than tab and newline: never useful in a mail, and a CR/LF in a
# header-bound value is how header injection starts.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_text(value: Any) -> str:
    """A user value as plain one-piece text: None/NaN → "", control characters removed."""
    if value is None:
        return ""
    if isinstance(value, float) and value != value:
        return ""
    if value is pd.NA or value is pd.NaT:
        return ""
    return _CONTROL.sub("", str(value)).strip()


@dataclass(frozen=True)
class DigestItem:
    """One feedback item as a digest shows it. Text fields are raw user text (escape to render)."""

    item_id: int
    title: str
    county: str
    county_code: str
    status: str
    url: str
    subject_area: str = ""
    owner: str = ""
    excerpt: str = ""
    received: dt.date | None = None
    due_date: dt.date | None = None
    #: Days past the due date (overdue items), else None.
    days_overdue: int | None = None
    #: Days until the due date (due-soon items; 0 = due on the reference date), else None.
    days_left: int | None = None


@dataclass(frozen=True)
class DepartmentDigest:
    """The weekly digest of one department for the window `(since, until]`."""

    department: str
    department_label: str
    language: str
    since: dt.datetime
    until: dt.datetime
    reference_date: dt.date
    new: tuple[DigestItem, ...] = ()
    overdue: tuple[DigestItem, ...] = ()
    due_soon: tuple[DigestItem, ...] = ()
    workbook_url: str | None = None
    due_soon_days: int = DUE_SOON_DAYS

    @property
    def has_content(self) -> bool:
        """True when the department has anything to read (else no mail is sent)."""
        return bool(self.new or self.overdue or self.due_soon)


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df.columns:
        return df[name]
    return pd.Series([None] * len(df), index=df.index, dtype=object)


def _as_date(value: Any) -> dt.date | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _as_utc(value: Any) -> pd.Timestamp | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    if ts is pd.NaT:
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _safe_url(value: Any) -> str:
    """The item link when it is an http(s) URL; anything else (javascript:, data:) becomes ""."""
    text = clean_text(value)
    return text if re.match(r"^https?://[^\s\"'<>]+$", text, re.IGNORECASE) else ""


def _excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    text = re.sub(r"\s+", " ", clean_text(value))
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def build_digest(
    feedback: pd.DataFrame,
    department: str,
    *,
    since: dt.datetime,
    until: dt.datetime,
    time_zone: ZoneInfo,
    department_label: str | None = None,
    language: str = "sv",
    county_codes: Mapping[str, str] | None = None,
    workbook_url: str | None = None,
    due_soon_days: int = DUE_SOON_DAYS,
) -> DepartmentDigest:
    """The digest of `department` from the Dialogåterkoppling snapshot (see the module docstring).

    `since`/`until` must be timezone-aware; `until` is the cut-off of this digest and its date
    in `time_zone` the reference date for overdue and due-soon items.
    """
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be timezone-aware")
    ref = reference_date(until, time_zone)
    codes = county_codes or {}
    mine = feedback[_column(feedback, "ReceivingDepartment") == department]
    new: list[tuple[Any, DigestItem]] = []
    overdue: list[tuple[Any, DigestItem]] = []
    due_soon: list[tuple[Any, DigestItem]] = []
    since_utc = pd.Timestamp(since).tz_convert("UTC")
    until_utc = pd.Timestamp(until).tz_convert("UTC")
    for row in mine.to_dict("records"):
        county = clean_text(row.get("County"))
        created = _as_utc(row.get("Created"))
        due = _as_date(row.get("DueDate"))
        status = clean_text(row.get("Status"))
        item_id = int(row.get("ID") or 0)
        base = DigestItem(
            item_id=item_id,
            title=clean_text(row.get("Title")),
            county=county,
            county_code=clean_text(codes.get(county, "")),
            status=status,
            url=_safe_url(row.get("_item_url")),
            subject_area=clean_text(row.get("SubjectArea")),
            owner=clean_text(row.get("Owner")),
            excerpt=_excerpt(row.get("Feedback_text", row.get("Feedback"))),
            received=created.tz_convert(time_zone).date() if created is not None else None,
            due_date=due,
        )
        if created is not None and since_utc < created <= until_utc:
            new.append(((created, item_id), base))
        if status not in OPEN_STATUSES or due is None:
            continue
        days = (due - ref).days
        if days < 0:
            item = _replace(base, days_overdue=-days)
            overdue.append(((due, county, item_id), item))
        elif days <= due_soon_days:
            item = _replace(base, days_left=days)
            due_soon.append(((due, county, item_id), item))
    return DepartmentDigest(
        department=department,
        department_label=department_label or department,
        language="en" if language.lower().startswith("en") else "sv",
        since=since,
        until=until,
        reference_date=ref,
        new=tuple(i for _, i in sorted(new, key=lambda p: p[0])),
        overdue=tuple(i for _, i in sorted(overdue, key=lambda p: p[0])),
        due_soon=tuple(i for _, i in sorted(due_soon, key=lambda p: p[0])),
        workbook_url=_safe_url(workbook_url) or None,
        due_soon_days=due_soon_days,
    )


def _replace(item: DigestItem, **changes: Any) -> DigestItem:
    from dataclasses import replace

    return replace(item, **changes)


# --------------------------------------------------------------------------------------------
# Failure notice


@dataclass(frozen=True)
class StaleList:
    """A list whose data was last checked (synchronised) longer ago than the limit."""

    list_title: str
    last_sync: dt.datetime | None
    days: int | None  # None: never synchronised


@dataclass(frozen=True)
class FailureNotice:
    """The administrators' notice: what failed, what stayed stale, what to do."""

    site: str
    language: str
    status: str  # "failed", "partial" or "ok" (then only stale data is the problem)
    run_id: str = ""
    started: dt.datetime | None = None
    finished: dt.datetime | None = None
    errors: tuple[str, ...] = ()
    error_kinds: tuple[str, ...] = ()
    lists: tuple[str, ...] = ()  # one line per list from the summary
    stale: tuple[StaleList, ...] = ()
    stale_days: int = 0
    actions: tuple[str, ...] = field(default=())

    @property
    def needed(self) -> bool:
        """True when the night ended failed/partial or some list's data is stale."""
        return self.status in ("failed", "partial") or bool(self.stale)


def stale_lists(
    last_syncs: Mapping[str, dt.datetime | None], *, now: dt.datetime, stale_days: int
) -> tuple[StaleList, ...]:
    """Lists whose last sync is more than `stale_days` days before `now` (or never happened)."""
    out: list[StaleList] = []
    for title, last in sorted(last_syncs.items()):
        if last is None:
            out.append(StaleList(title, None, None))
            continue
        age = now - last
        if age > dt.timedelta(days=stale_days):
            out.append(StaleList(title, last, age.days))
    return tuple(out)


def _parse_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


# What the administrators can do, per error class name in the run summary (the error tree in
# sp_sync.errors); the first matching ancestor in this order wins.
_ACTIONS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("AuthenticationError", "PermissionDeniedError"),
        "Kontrollera appens behörighet: Sites.Selected och platsbehörigheten (sp-sync check visar "
        "vilken som saknas).",
        "Check the app's permission: Sites.Selected and the site grant (sp-sync check shows which "
        "one is missing).",
    ),
    (
        ("SettingsError", "SchemaError", "NotFoundError", "ConfigurationError", "DriftError"),
        "Rätta inställningen, schemafilen eller listan som felet nämner och kör sp-sync check.",
        "Fix the setting, schema file or list the error names, then run sp-sync check.",
    ),
    (
        ("ThrottledError", "TransientError", "RetryableError", "RunLockedError"),
        "Inget behöver göras om felet är tillfälligt: nästa körning fortsätter. Upprepas det, se "
        "Application Insights för strypning (429/503) eller avbrott.",
        "Nothing to do if it is temporary: the next run continues. If it repeats, look in "
        "Application Insights for throttling (429/503) or outages.",
    ),
    (
        ("UploadError",),
        "Arbetsboken kunde inte laddas upp; den förra versionen ligger kvar. Kontrollera "
        "dokumentbiblioteket och skrivbehörigheten.",
        "A workbook could not be uploaded; the previous version is intact. Check the document "
        "library and the write permission.",
    ),
)


def build_failure_notice(
    summary: Mapping[str, Any] | None,
    *,
    site: str,
    stale: Sequence[StaleList] = (),
    stale_days: int = 0,
    language: str = "sv",
) -> FailureNotice:
    """The notice for a run summary (`RunSummary.to_dict()` form, or None when no run finished)."""
    lang = "en" if language.lower().startswith("en") else "sv"
    doc = dict(summary or {})
    status = str(doc.get("status") or ("failed" if summary is None else "ok"))
    errors: list[str] = []
    kinds: list[str] = []

    def add_error(err: Any, where: str = "") -> None:
        prefix = f"{where}: " if where else ""
        if isinstance(err, Mapping):
            errors.append(prefix + clean_text(err.get("message") or err))
            kinds.append(clean_text(err.get("error") or ""))
        elif err:
            errors.append(prefix + clean_text(err))

    # Two shapes reach here: a RunSummary (CLI, `run_pipeline`) with `errors` and `lists` as a
    # list, and the Functions run document with `error`, `rollup` and `lists` by title.
    for err in doc.get("errors") or ():
        add_error(err)
    add_error(doc.get("error"))
    rollup = doc.get("rollup")
    if isinstance(rollup, Mapping):
        for err in rollup.get("errors") or ():
            add_error(err)
    lists: list[str] = []
    unit = "rader" if lang == "sv" else "rows"
    entries = doc.get("lists") or ()
    if isinstance(entries, Mapping):
        for title, state in entries.items():
            state = state if isinstance(state, Mapping) else {}
            lists.append(f"{clean_text(title)}: {clean_text(state.get('status'))}")
            add_error(state.get("error"), clean_text(title))
        entries = rollup.get("lists") or () if isinstance(rollup, Mapping) else ()
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        name = clean_text(entry.get("list"))
        line = f"{name}: {clean_text(entry.get('mode'))}, {entry.get('rows')} {unit}"
        if entry.get("continues_next_run"):
            line += ", fortsätter nästa körning" if lang == "sv" else ", continues next run"
        lists.append(line)
    actions: list[str] = []
    for names, sv, en in _ACTIONS:
        if any(k in names for k in kinds):
            actions.append(en if lang == "en" else sv)
    if status == "failed" and summary is None:
        actions.append(
            "Ingen körning har avslutats: kontrollera att funktionsappen körs och se dess loggar."
            if lang == "sv"
            else "No run has finished: check that the Function app runs and look at its logs."
        )
    if any(line for line in lists if "fortsätter" in line or "continues" in line):
        actions.append(
            "En lista fortsätter nästa körning (tidsbudgeten räckte inte); inget behöver göras."
            if lang == "sv"
            else "A list continues in the next run (the time budget ran out); nothing to do."
        )
    if stale:
        actions.append(
            "Data i listorna ovan har inte kontrollerats på länge: kör sp-sync run --site "
            f"{site} eller kontrollera schemat för nattkörningen."
            if lang == "sv"
            else "The lists above have not been checked for a long time: run sp-sync run --site "
            f"{site} or check the nightly schedule."
        )
    if not actions and status in ("failed", "partial"):
        actions.append(
            "Kör sp-sync status och sp-sync run -v för detaljer."
            if lang == "sv"
            else "Run sp-sync status and sp-sync run -v for details."
        )
    return FailureNotice(
        site=site,
        language=lang,
        status=status,
        run_id=clean_text(doc.get("run_id")),
        started=_parse_time(doc.get("started")),
        finished=_parse_time(doc.get("finished")),
        errors=tuple(errors),
        error_kinds=tuple(kinds),
        lists=tuple(lists),
        stale=tuple(stale),
        stale_days=stale_days,
        actions=tuple(actions),
    )
