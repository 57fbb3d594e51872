"""Raw SharePoint item JSON → normalized snapshot rows (the contract in docs/design.md).

Pure functions: no I/O, no clock. The sync engine passes in everything that depends on the
site (its time zone, its users, lookup title maps built from target snapshots).

Shapes accepted: JSON light without metadata, as the client reads items (lookups/persons as
`<Name>Id` and, when expanded, `<Name>: {Title, EMail}`; multi-values as lists), and verbose JSON
as office365-rest-python-client 3.3.0 hands it back (`__metadata` dropped, multi-values possibly
`{"results": [...]}`); DateTime strings in UTC with a `Z`. Both normalise to identical rows
(tests/sync/test_light_format.py reads one list both ways).

A malformed value never raises: the row is kept, the value is kept when it can be represented
(else None/NaN) and a `DataQualityIssue` in Swedish and English is returned beside the frame.
"""

from __future__ import annotations

import functools
import html
import itertools
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from html.parser import HTMLParser
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from sp_sync.sync.quality import DataQualityIssue

logger = logging.getLogger(__name__)

#: SharePoint refuses a query touching more than 12 lookup-type columns (lookup, person,
#: managed metadata; Author/Editor included) with SPQueryThrottledException -2147024749.
LOOKUP_COLUMN_LIMIT = 12

LOOKUP_TYPES = frozenset({"person", "lookup", "multi_lookup"})


class _Column(Protocol):
    name: str
    type: str


@dataclass(frozen=True)
class SelectPlan:
    """The `$select`/`$expand` for a list and which lookup-type columns were expanded.

    Columns not in `expanded` are read as `<Name>Id` only; their titles come from the site
    users map (persons, Author/Editor) or from the target list's snapshot (lookups).
    """

    select: tuple[str, ...]
    expand: tuple[str, ...]
    expanded: frozenset[str]


def _lookup_show_field(col: Any) -> str:
    return str(getattr(col, "lookup_column", None) or "Title")


def plan_select(schema: Any, *, limit: int = LOOKUP_COLUMN_LIMIT) -> SelectPlan:
    """Build the `$select`/`$expand` for exactly the schema's columns.

    Author and Editor count against the 12-lookup limit like any person column. When expanding
    everything would exceed the limit, Author/Editor are the first to fall back to ids (the
    site users map resolves them without extra requests), then lookups in schema order from
    the end; persons fall back before lookups because they are resolvable from the users map.
    """
    columns = list(schema.columns)
    lookup_cols = [c.name for c in columns if c.type in LOOKUP_TYPES]
    persons = [c.name for c in columns if c.type == "person"]
    lookups = [c.name for c in columns if c.type in ("lookup", "multi_lookup")]
    # Preference order for expansion: lookups first (no other cheap source for their titles),
    # then persons, then Author/Editor.
    candidates = lookups + persons + ["Author", "Editor"]
    expanded = frozenset(candidates[:limit])
    if len(candidates) > limit:
        logger.info(
            "List %s has %d lookup-type columns (limit %d); %d resolved from ids",
            getattr(schema, "title", "?"),
            len(lookup_cols) + 2,
            limit,
            len(candidates) - limit,
        )

    select: list[str] = ["ID", "Created", "Modified", "OData__UIVersionString"]
    expand: list[str] = []
    for who in ("Author", "Editor"):
        select.append(f"{who}Id")
        if who in expanded:
            select.append(f"{who}/Title")
            expand.append(who)
    for col in columns:
        name = col.name
        if name == "ID":
            continue
        if col.type == "person":
            select.append(f"{name}Id")
            if name in expanded:
                select.extend([f"{name}/Title", f"{name}/EMail"])
                expand.append(name)
        elif col.type in ("lookup", "multi_lookup"):
            select.append(f"{name}Id")
            if name in expanded:
                select.append(f"{name}/{_lookup_show_field(col)}")
                expand.append(name)
        else:
            select.append(name)
    # De-duplicate while keeping order (Title may be both a schema column and a default).
    return SelectPlan(tuple(dict.fromkeys(select)), tuple(dict.fromkeys(expand)), expanded)


def select_and_expand(schema: Any) -> tuple[list[str], list[str]]:
    """`(select, expand)` for exactly the schema's columns plus the system columns."""
    plan = plan_select(schema)
    return list(plan.select), list(plan.expand)


# --------------------------------------------------------------------------- rich text


# Paragraph-level elements are separated by a blank line, line-level ones by a line break.
_PARAGRAPH_TAGS = frozenset(
    {
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "blockquote",
        "pre",
        "section",
        "article",
        "header",
        "footer",
    }
)
_LINE_TAGS = frozenset({"div", "br", "li", "tr", "ul", "ol", "hr", "dd", "dt", "dl"})
_DROP_TAGS = frozenset({"script", "style", "head", "title"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._drop_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_TAGS:
            self._drop_depth += 1
        elif tag in _PARAGRAPH_TAGS:
            self.parts.append("\n\n")
        elif tag in _LINE_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _LINE_TAGS or tag in _PARAGRAPH_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP_TAGS:
            self._drop_depth = max(0, self._drop_depth - 1)
        elif tag in _PARAGRAPH_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._drop_depth:
            self.parts.append(data)


_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u200b]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")


@functools.lru_cache(maxsize=8192)
def _html_to_text_cached(value: str) -> str:
    return _html_to_text(value)


def html_to_text(value: str | None) -> str | None:
    """Rich-text HTML → plain text: block elements become line breaks, entities are unescaped,
    scripts and styles dropped, runs of spaces collapsed."""
    if value is None:
        return None
    if "<" not in value:
        # Plain text (or only entities): the common case for non-rich notes, kept cheap.
        return html.unescape(value).strip() if "&" in value else value.strip()
    # Boilerplate HTML repeats a lot (templates, copied text); short values are cached.
    if len(value) <= 2048:
        return _html_to_text_cached(value)
    return _html_to_text(value)


def _html_to_text(value: str) -> str:
    parser = _TextExtractor()
    try:
        parser.feed(value)
        parser.close()
    except Exception:  # html.parser is lenient; this is only a last resort
        return re.sub(r"<[^>]*>", "", value)
    text = "".join(parser.parts)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()


# --------------------------------------------------------------------------- helpers


def _results(value: Any) -> list[Any] | None:
    """A multi-value in any of the shapes SharePoint/office365 produce → list, or None."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, Mapping):
        inner = value.get("results")
        if isinstance(inner, list | tuple):
            return list(inner)
        return None
    return None


def _texts(items: Sequence[Mapping[str, Any]], name: str, issues: _Issues) -> list[Any]:
    """A text column's values; a non-text value is kept as text and flagged, never dropped."""
    vals: list[Any] = []
    for pos, it in enumerate(items):
        v = it.get(name)
        if v is not None and not isinstance(v, str):
            issues.add(
                pos,
                name,
                "Fel typ av värde (väntade text).",
                "Wrong type of value (expected text).",
                v,
            )
            v = _as_str(v)
        vals.append(v)
    return vals


def _as_str(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    if isinstance(value, dict):
        # A property office365 could not flatten (deferred, unexpanded entity): no value.
        for key in ("Title", "Value", "Label"):
            if isinstance(value.get(key), str):
                return str(value[key])
        return None
    return str(value)


def _expanded_field(value: Any, field: str) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get(field)
    props = getattr(value, "properties", None)
    if isinstance(props, Mapping):
        return props.get(field)
    return None


def _to_int(value: Any) -> int | None:
    if type(value) is int:
        return value
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return int(f) if f.is_integer() else None


#: Numbers the snapshot and the workbooks can hold: finite, and below 2**63 in magnitude so that
#: whole-number columns (År) convert to 64-bit integers (Excel's own limit, ~1e308, is higher).
_MAX_MAGNITUDE = float(2**63)


def _representable(num: float) -> bool:
    return math.isfinite(num) and abs(num) < _MAX_MAGNITUDE


def _version(value: Any) -> int:
    """`OData__UIVersionString` "3.0" → 3 (the major version; lists have no minor versions)."""
    if value is None:
        return 0
    try:
        return int(str(value).split(".", 1)[0])
    except ValueError:
        return 0


_MULTI_CHOICE_LEGACY = re.compile(r";#")


@dataclass
class _Issues:
    list_title: str
    ids: list[int]
    urls: list[str]
    items: list[DataQualityIssue]

    def add(self, pos: int, column: str, problem_sv: str, problem_en: str, value: Any) -> None:
        shown = (
            value if value is None or isinstance(value, str | int | float | bool) else repr(value)
        )
        if isinstance(shown, str) and len(shown) > 200:
            shown = shown[:200] + "…"
        self.items.append(
            DataQualityIssue(
                list_title=self.list_title,
                item_id=self.ids[pos],
                item_url=self.urls[pos],
                column=column,
                problem_sv=problem_sv,
                problem_en=problem_en,
                value=None if shown is None else str(shown),
            )
        )


def _parse_utc(raw: Sequence[Any], column: str, issues: _Issues) -> pd.Series:
    """Strings in UTC → aware UTC timestamps; unparsable values become NaT with an issue."""
    texts = pd.Series([v if isinstance(v, str) else None for v in raw], dtype=object)
    parsed = pd.to_datetime(texts, utc=True, errors="coerce", format="ISO8601")
    present = pd.Series(list(raw), dtype=object).notna().to_numpy()
    bad = present & parsed.isna().to_numpy()
    for pos in np.flatnonzero(bad):
        issues.add(int(pos), column, "Ogiltigt datum/tid.", "Invalid date/time.", raw[int(pos)])
    # Microsecond resolution: SharePoint accepts dates up to 8900-12-31, far past the year 2262
    # where nanosecond timestamps end; one such item must not fail the whole list.
    return parsed.astype("datetime64[us, UTC]")


def _dates_in_zone(utc: pd.Series, tz: ZoneInfo) -> list[date | None]:
    """Midnight-in-site-zone (expressed in UTC) → the calendar date in the site's zone."""
    local = utc.dt.tz_convert(tz)
    out: list[date | None] = [None] * len(local)
    mask = local.notna().to_numpy()
    if mask.any():
        # One `date` object per distinct day: a column of a million dates holds a few thousand.
        shared: dict[date, date] = {}
        dates = local[mask].dt.date.tolist()
        for pos, d in zip(np.flatnonzero(mask), dates, strict=True):
            out[int(pos)] = shared.setdefault(d, d)
    return out


def _shared(values: list[Any]) -> list[Any]:
    """The same values with one object per distinct text: choice values, names and e-mails
    repeat on most rows, and the JSON decoder makes a new string for every cell."""
    seen: dict[Any, Any] = {}
    return [v if v is None else seen.setdefault(v, v) for v in values]


# --------------------------------------------------------------------------- main entry


def normalize_page(
    items: Sequence[Mapping[str, Any]],
    schema: Any,
    *,
    tz: ZoneInfo,
    site_url: str,
    list_url: str,
    users: Mapping[int, Any] | None = None,
    lookup_titles: Mapping[str, Mapping[int, str]] | None = None,
    check_choices: bool = False,
) -> tuple[pd.DataFrame, list[DataQualityIssue]]:
    """Normalize raw items to one row each, per the snapshot contract in docs/design.md.

    `users` maps site user ids to objects with `title` and `email` (`sp_sync.sharepoint.SiteUser`);
    `lookup_titles` maps a lookup column name to `{target id: target title}` and is used when
    the column was not expanded (or to override stale expanded titles). With `check_choices`
    a value outside the column's choices is reported here (the validation module normally
    does it, so it is off by default to avoid reporting a problem twice).
    """
    users = users or {}
    lookup_titles = lookup_titles or {}
    title = str(getattr(schema, "title", ""))
    n = len(items)
    raw_ids = [_to_int(it.get("ID", it.get("Id"))) for it in items]
    ids = [i if i is not None else -1 for i in raw_ids]
    base = f"{site_url.rstrip('/')}/Lists/{list_url}/DispForm.aspx?ID="
    urls = [f"{base}{i}" for i in ids]
    issues = _Issues(title, ids, urls, [])
    for pos, rid in enumerate(raw_ids):
        if rid is None:
            issues.add(pos, "ID", "Objektet saknar ID.", "The item has no ID.", None)

    data: dict[str, Any] = {"ID": pd.array(ids, dtype="int64")}
    data["Created"] = _parse_utc([it.get("Created") for it in items], "Created", issues)
    data["Modified"] = _parse_utc([it.get("Modified") for it in items], "Modified", issues)
    for who in ("Author", "Editor"):
        data[who] = _person_names(items, who, users)[0]
    data["_item_url"] = pd.Series(urls, dtype=object)
    data["_version"] = pd.array(
        [_version(it.get("OData__UIVersionString")) for it in items], dtype="int64"
    )

    for col in schema.columns:
        name = col.name
        ctype = col.type
        if name in ("ID",):
            continue
        if ctype in ("text", "choice"):
            vals = _texts(items, name, issues)
            if ctype == "choice" and check_choices:
                allowed = set(_choice_names(col))
                for pos, v in enumerate(vals):
                    if v is not None and v != "" and v not in allowed:
                        issues.add(pos, name, f"Okänt val: {v}.", f"Unknown choice: {v}.", v)
            data[name] = pd.Series(_shared(vals) if ctype == "choice" else vals, dtype=object)
        elif ctype == "note":
            vals = _texts(items, name, issues)
            data[name] = pd.Series(vals, dtype=object)
            data[f"{name}_text"] = pd.Series([html_to_text(v) for v in vals], dtype=object)
        elif ctype == "multi_choice":
            lists: list[list[str]] = []
            allowed = set(_choice_names(col)) if check_choices else set()
            for pos, it in enumerate(items):
                v = it.get(name)
                if isinstance(v, str):
                    # Legacy ";#a;#b;#" form.
                    parts = [p for p in _MULTI_CHOICE_LEGACY.split(v) if p]
                    lists.append(parts)
                    continue
                got = _results(v)
                if got is None:
                    issues.add(
                        pos,
                        name,
                        "Fel typ av värde (väntade flerval).",
                        "Wrong type of value (expected multiple choice).",
                        v,
                    )
                    got = []
                strs = [str(x) for x in got if x is not None]
                if check_choices:
                    for s in strs:
                        if s not in allowed:
                            issues.add(pos, name, f"Okänt val: {s}.", f"Unknown choice: {s}.", s)
                lists.append(strs)
            data[name] = pd.Series(lists, dtype=object)
        elif ctype == "number":
            nums = np.full(n, np.nan)
            for pos, it in enumerate(items):
                v = it.get(name)
                if v is None:
                    continue
                if isinstance(v, bool):
                    nums[pos] = float(v)
                    issues.add(
                        pos,
                        name,
                        "Fel typ av värde (väntade tal).",
                        "Wrong type of value (expected a number).",
                        v,
                    )
                    continue
                try:
                    num = float(v)
                except (TypeError, ValueError, OverflowError):
                    issues.add(
                        pos,
                        name,
                        "Fel typ av värde (väntade tal).",
                        "Wrong type of value (expected a number).",
                        v,
                    )
                    continue
                if not _representable(num):
                    # inf/NaN, or beyond what a 64-bit integer or an Excel cell holds: one such
                    # value must not stop a night; the row stays, the cell is left empty.
                    issues.add(
                        pos,
                        name,
                        "Talet kan inte visas i rapporterna (för stort eller inget tal); "
                        "cellen lämnas tom.",
                        "The number cannot be shown in the reports (too large or not a "
                        "number); the cell is left empty.",
                        v,
                    )
                    continue
                nums[pos] = num
                if not isinstance(v, int | float):
                    issues.add(
                        pos, name, "Talet var lagrat som text.", "The number was stored as text.", v
                    )
            data[name] = pd.Series(nums, dtype="float64")
        elif ctype == "boolean":
            bools: list[bool | None] = []
            for pos, it in enumerate(items):
                v = it.get(name)
                if v is None or isinstance(v, bool):
                    bools.append(v)
                elif isinstance(v, int | float) and v in (0, 1):
                    bools.append(bool(v))
                elif isinstance(v, str) and v.strip().lower() in (
                    "true",
                    "false",
                    "1",
                    "0",
                    "yes",
                    "no",
                    "ja",
                    "nej",
                ):
                    bools.append(v.strip().lower() in ("true", "1", "yes", "ja"))
                else:
                    issues.add(
                        pos,
                        name,
                        "Fel typ av värde (väntade ja/nej).",
                        "Wrong type of value (expected yes/no).",
                        v,
                    )
                    bools.append(None)
            data[name] = pd.Series(bools, dtype=object)
        elif ctype == "date":
            utc = _parse_utc([it.get(name) for it in items], name, issues)
            data[name] = pd.Series(_dates_in_zone(utc, tz), dtype=object)
        elif ctype == "datetime":
            utc = _parse_utc([it.get(name) for it in items], name, issues)
            data[name] = utc
            data[f"{name}_local"] = utc.dt.tz_convert(tz)
        elif ctype == "person":
            names, emails, pids = _person_names(items, name, users)
            data[f"{name}Id"] = pd.array(pids, dtype="Int64")
            data[name] = names
            data[f"{name}_email"] = emails
        elif ctype == "lookup":
            show = _lookup_show_field(col)
            mapping = lookup_titles.get(name)
            lids: list[int | None] = []
            titles: list[str | None] = []
            for pos, it in enumerate(items):
                raw_id = it.get(f"{name}Id")
                lid = _to_int(raw_id)
                if raw_id is not None and lid is None:
                    issues.add(pos, name, "Ogiltigt uppslags-ID.", "Invalid lookup id.", raw_id)
                lids.append(lid)
                t = _as_str(_expanded_field(it.get(name), show))
                if mapping is not None and lid is not None:
                    t = mapping.get(lid, t)
                titles.append(t if lid is not None else None)
            data[f"{name}Id"] = pd.array(lids, dtype="Int64")
            data[name] = pd.Series(titles, dtype=object)
        elif ctype == "multi_lookup":
            show = _lookup_show_field(col)
            mapping = lookup_titles.get(name)
            id_lists: list[list[int]] = []
            title_lists: list[list[str]] = []
            for pos, it in enumerate(items):
                raw_ids_v = it.get(f"{name}Id")
                got = _results(raw_ids_v)
                if got is None:
                    issues.add(
                        pos, name, "Ogiltiga uppslags-ID:n.", "Invalid lookup ids.", raw_ids_v
                    )
                    got = []
                these = [x for x in (_to_int(g) for g in got) if x is not None]
                exp = _results(it.get(name)) or []
                exp_titles = [_as_str(_expanded_field(e, show)) for e in exp]
                if mapping is not None:
                    tl = [mapping.get(i) for i in these]
                    # Fall back to the expanded title when the target snapshot lacks the id.
                    tl = [
                        t if t is not None else (exp_titles[k] if k < len(exp_titles) else None)
                        for k, t in enumerate(tl)
                    ]
                else:
                    tl = exp_titles if len(exp_titles) == len(these) else [None] * len(these)
                id_lists.append(these)
                title_lists.append([t if t is not None else "" for t in tl])
            data[f"{name}Id"] = pd.Series(id_lists, dtype=object)
            data[name] = pd.Series(title_lists, dtype=object)
        elif ctype == "url":
            links: list[str | None] = []
            descs: list[str | None] = []
            for pos, it in enumerate(items):
                v = it.get(name)
                if v is None:
                    links.append(None)
                    descs.append(None)
                elif isinstance(v, Mapping):
                    links.append(_as_str(v.get("Url")))
                    descs.append(_as_str(v.get("Description")))
                elif isinstance(v, str):
                    # "url, description" is SharePoint's text form of a URL value.
                    url, _, desc = v.partition(", ")
                    links.append(url or None)
                    descs.append(desc or None)
                else:
                    issues.add(
                        pos,
                        name,
                        "Fel typ av värde (väntade länk).",
                        "Wrong type of value (expected a link).",
                        v,
                    )
                    links.append(None)
                    descs.append(None)
            data[name] = pd.Series(links, dtype=object)
            data[f"{name}_description"] = pd.Series(descs, dtype=object)
        else:
            # Unknown type: keep the raw value so nothing is lost.
            data[name] = pd.Series([it.get(name) for it in items], dtype=object)

    frame = pd.DataFrame({k: _reindexed(v) for k, v in data.items()})
    return frame, issues.items


def _reindexed(value: Any) -> Any:
    if isinstance(value, pd.Series):
        return value.reset_index(drop=True)
    return value


def _choice_names(col: Any) -> list[str]:
    out = []
    for c in getattr(col, "choices", None) or []:
        out.append(c if isinstance(c, str) else str(getattr(c, "name", c)))
    return out


def _person_names(
    items: Sequence[Mapping[str, Any]], name: str, users: Mapping[int, Any]
) -> tuple[pd.Series, pd.Series, list[int | None]]:
    names: list[str | None] = []
    emails: list[str | None] = []
    pids: list[int | None] = []
    id_key = f"{name}Id"
    for it in items:
        raw = it.get(id_key)
        pid = raw if type(raw) is int else _to_int(raw)
        exp = it.get(name)
        t = _as_str(_expanded_field(exp, "Title"))
        e = _expanded_field(exp, "EMail")
        if pid is not None and (t is None or e is None):
            user = users.get(pid)
            if user is not None:
                t = t if t is not None else getattr(user, "title", None)
                e = e if e is not None else getattr(user, "email", None)
        pids.append(pid)
        names.append(t if pid is not None or t is not None else None)
        emails.append(str(e) if e else None)
    return (
        pd.Series(_shared(names), dtype=object),
        pd.Series(_shared(emails), dtype=object),
        pids,
    )


def apply_lookup_titles(
    rows: pd.DataFrame, schema: Any, lookup_titles: Mapping[str, Mapping[int, str]]
) -> pd.DataFrame:
    """Re-resolve lookup titles of all rows from target snapshots (titles change on the target
    without any change event on the rows that point at it). Returns a new frame."""
    out = rows.copy()
    for col in schema.columns:
        mapping = lookup_titles.get(col.name)
        if mapping is None or f"{col.name}Id" not in out.columns:
            continue
        if col.type == "lookup":
            ids = out[f"{col.name}Id"]
            out[col.name] = pd.Series(
                [None if pd.isna(i) else mapping.get(int(i)) for i in ids],
                index=out.index,
                dtype=object,
            )
        elif col.type == "multi_lookup":
            id_lists = out[f"{col.name}Id"].to_numpy(dtype=object)
            titles = out[col.name].to_numpy(dtype=object) if col.name in out.columns else None
            redo = _multi_titles_to_redo(id_lists, titles, mapping)
            if redo is None:
                values = np.empty(len(id_lists), dtype=object)
                positions: Any = range(len(id_lists))
            else:
                assert titles is not None
                # A row whose titles are already current keeps its list (the same object).
                values = titles.copy()
                positions = np.flatnonzero(redo).tolist()
            for p in positions:
                values[p] = [mapping.get(int(i)) or "" for i in (id_lists[p] or [])]
            out[col.name] = pd.Series(values, index=out.index, dtype=object)
    return out


def _multi_titles_to_redo(
    id_lists: np.ndarray, titles: np.ndarray | None, mapping: Mapping[int, str]
) -> np.ndarray | None:
    """The rows of a multi-lookup column whose titles are not exactly what resolving their ids
    through `mapping` gives (`[mapping.get(id) or "" for id in ids]`): a list of `str` of the
    same length, equal element by element. None: resolve every row.

    Most rows of a large list point at targets whose titles did not change; finding them by
    an exploded, vectorised comparison costs a fraction of rebuilding every row's list."""
    if titles is None or not len(id_lists):
        return None

    def shaped(ids: Any, names: Any) -> bool:
        if type(names) is not list:
            return False
        if ids is None:
            return not names
        return type(ids) is list and len(ids) == len(names)

    ok = np.fromiter(map(shaped, id_lists, titles), dtype=bool, count=len(id_lists))
    rows = np.flatnonzero(ok)
    lengths = np.fromiter((len(titles[r]) for r in rows), dtype=np.int64, count=len(rows))
    flat_ids = list(itertools.chain.from_iterable(id_lists[r] or () for r in rows))
    flat_titles = list(itertools.chain.from_iterable(titles[r] for r in rows))
    if set(map(type, flat_ids)) - {int} or set(map(type, flat_titles)) - {str}:
        return None  # ids or titles of other types: the row-by-row rule decides
    redo = ~ok
    if flat_ids:
        try:
            # As objects: ids none of which the map holds map to a float column of NaN,
            # which pandas will not fill with text much longer.
            current = pd.Series(flat_ids, dtype="int64").map(mapping).astype(object).fillna("")
        except (OverflowError, ValueError, TypeError):
            return None
        same = current.to_numpy(dtype=object) == np.asarray(flat_titles, dtype=object)
        owner = np.repeat(rows, lengths)
        bad = np.bincount(owner[~same], minlength=len(id_lists)).astype(bool)
        redo |= bad
    return redo


def lookup_title_map(target_rows: pd.DataFrame, column: str = "Title") -> dict[int, str]:
    """`{ID: title}` from a target list's snapshot."""
    if target_rows is None or target_rows.empty or column not in target_rows.columns:
        return {}
    return {
        int(i): (str(t) if t is not None and not (isinstance(t, float) and np.isnan(t)) else "")
        for i, t in zip(target_rows["ID"].tolist(), target_rows[column].tolist(), strict=True)
    }
