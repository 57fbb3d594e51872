"""CAML queries for `List/GetItems`: the `<View>` XML other clients send instead of OData.

Backend code, like `item_query.py`: it parses a `ViewXml`, evaluates its `<Where>` on the
backend's row views, orders by `<OrderBy>`, applies `<RowLimit>` and the
`ListItemCollectionPosition` paging info (`Paged=TRUE&p_ID=N`), and applies the list view
threshold. Schema: https://learn.microsoft.com/en-us/sharepoint/dev/schema/where-element-query

Relative values need the request's context (`CamlEnv`: emulator time, the site's time zone,
the calling principal and the site groups):
- `<Today OffsetDays="n"/>` (also the older `Offset`) is the site's local date plus n days;
  compared by date unless the `<Value>` has `IncludeTimeValue="TRUE"`, then as local midnight.
  `<Now/>` is the current time.
  https://learn.microsoft.com/en-us/sharepoint/dev/schema/today-element-query
- `<Membership Type="…">` on a person column: `CurrentUserGroups` (a group the caller belongs
  to), `SPGroup` with `ID` (a user in that group), `SPWeb.Groups` (any site group),
  `SPWeb.AllUsers` (any user, not a group).
  https://learn.microsoft.com/en-us/sharepoint/dev/schema/membership-element-query
- `<DateRangesOverlap>` with a start and an end column (and `RecurrenceID`, which the emulator
  has no recurrences for) and `<Today/>`, `<Week/>` (Monday first, the Swedish sites'
  `FirstDayOfWeek`), `<Month/>` (the month widened to whole weeks, the "month view" SharePoint
  uses) or `<Now/>` (now to two years ahead): items whose range touches the period.
  https://learn.microsoft.com/en-us/sharepoint/dev/schema/daterangesoverlap-element-query;
  month view and Now as observed: https://blog.kodono.info/wordpress/2018/07/09/sharepoint-daterangesoverlap-value,
  https://www.sharepointnadeem.com/2015/05/sharepoint-recurring-calendar-events.html
Elements the emulator does not evaluate (`<Year/>` in DateRangesOverlap, whose observed
behaviour contradicts its documentation, `SPWeb.Users` membership, recurrence expansion) answer
"not supported by the emulator" rather than being ignored.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sp_emulator.errors import column_not_found, invalid_query, not_supported, throttled_lvt
from sp_emulator.model import LIST_VIEW_THRESHOLD, UTC, Backend, Field, Item, Site, SPList
from sp_emulator.query import parse_skiptoken

Predicate = Callable[[Mapping[str, Any]], bool]
COMPARISONS = {"eq", "neq", "gt", "geq", "lt", "leq", "contains", "beginswith"}


@dataclass(frozen=True)
class CamlEnv:
    """What relative CAML values are evaluated against: one request's context."""

    now: dt.datetime  # emulator time, aware
    tz: dt.tzinfo  # the site's time zone (Today, Week, Month are local)
    user_id: int | None = None  # the calling principal's site user id
    groups: Mapping[int, Sequence[int]] = field(default_factory=dict)  # group id → user ids

    def today(self) -> dt.date:
        return self.now.astimezone(self.tz).date()

    def midnight(self, day: dt.date) -> dt.datetime:
        return dt.datetime(day.year, day.month, day.day, tzinfo=self.tz)


@dataclass(frozen=True)
class _Day:
    """A `<Today/>` value compared by date: a column's value matches on the same local day."""

    day: dt.date
    tz: dt.tzinfo


@dataclass(frozen=True)
class CamlQuery:
    where: Predicate | None
    where_fields: list[Field | None]
    order: list[tuple[str, bool]]
    row_limit: int | None
    view_fields: list[str]
    recursive: bool = False  # Scope Recursive/RecursiveAll: include items in sub-folders


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def _field(lst: SPList, el: ET.Element) -> tuple[str, Field | None, bool]:
    """(name, field or None for ID, lookup by id) of a `<FieldRef>`."""
    ref = next((c for c in el if _local(c.tag) == "fieldref"), None)
    if ref is None or not ref.get("Name"):
        raise invalid_query("The query is not valid: a comparison needs a FieldRef with a Name.")
    name = str(ref.get("Name"))
    by_id = (ref.get("LookupId") or "").upper() == "TRUE"
    if name.lower() == "id":
        return "ID", None, False
    f = lst.field_by_name(name)
    if f is None:
        raise column_not_found(name)
    return name, f, by_id


def _env(env: CamlEnv | None, what: str) -> CamlEnv:
    if env is None:
        raise not_supported(f"CAML {what} here", status=400)
    return env


def _typed(value_el: ET.Element, f: Field | None, env: CamlEnv | None = None) -> Any:
    """The Python value of a `<Value Type="…">` element."""
    children = list(value_el)
    if children:
        rel = children[0]
        tag = _local(rel.tag)
        if len(children) == 1 and tag == "today":
            e = _env(env, "<Today/>")
            raw = rel.get("OffsetDays") or rel.get("Offset") or "0"
            try:
                day = e.today() + dt.timedelta(days=int(raw))
            except ValueError as exc:
                raise invalid_query(f"The value '{raw}' of OffsetDays is not a number.") from exc
            if (value_el.get("IncludeTimeValue") or "").upper() == "TRUE":
                return e.midnight(day)
            return _Day(day, e.tz)
        if len(children) == 1 and tag == "now":
            return _env(env, "<Now/>").now
        raise not_supported(f"CAML <{rel.tag}> in a Value", status=400)
    text = (value_el.text or "").strip()
    kind = (value_el.get("Type") or "Text").lower()
    if kind in ("integer", "counter", "lookup", "user") or (f is None and kind != "text"):
        try:
            return int(text)
        except ValueError:
            return text
    if kind in ("number", "currency"):
        try:
            return float(text)
        except ValueError as exc:
            raise invalid_query(f"The value '{text}' is not a number.") from exc
    if kind == "boolean":
        return text in ("1", "true", "TRUE", "True")
    if kind == "datetime":
        try:
            d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise invalid_query(f"The value '{text}' is not a date.") from exc
        return d if d.tzinfo else d.replace(tzinfo=UTC)
    return text


def _comparable(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    return value


def _compare(op: str, left: Any, right: Any) -> bool:
    if isinstance(left, list):
        return (
            any(_compare(op, v, right) for v in left)
            if op != "neq"
            else all(_compare(op, v, right) for v in left)
        )
    if left is None:
        return op == "neq"
    if isinstance(right, _Day):
        if not isinstance(left, dt.datetime):
            return False
        left, right = left.astimezone(right.tz).date(), right.day
    elif isinstance(left, dt.datetime) and isinstance(right, dt.datetime):
        pass
    elif isinstance(right, str) or isinstance(left, str):
        left, right = str(left), str(right)
    elif isinstance(left, bool) or isinstance(right, bool):
        left, right = bool(left), bool(right)
    a, b = _comparable(left), _comparable(right)
    try:
        return {
            "eq": lambda: a == b,
            "neq": lambda: a != b,
            "gt": lambda: a > b,
            "geq": lambda: a >= b,
            "lt": lambda: a < b,
            "leq": lambda: a <= b,
            "contains": lambda: str(b) in str(a),
            "beginswith": lambda: str(a).startswith(str(b)),
        }[op]()
    except TypeError:
        return False


def _predicate(
    lst: SPList, el: ET.Element, used: list[Field | None], env: CamlEnv | None = None
) -> Predicate:
    tag = _local(el.tag)
    children = list(el)
    if tag in ("and", "or"):
        if len(children) < 2:
            raise invalid_query(f"The query is not valid: <{el.tag}> needs two conditions.")
        parts = [_predicate(lst, c, used, env) for c in children]
        if tag == "and":
            return lambda row: all(p(row) for p in parts)
        return lambda row: any(p(row) for p in parts)
    if tag in ("isnull", "isnotnull"):
        name, f, by_id = _field(lst, el)
        used.append(f)
        key = f"{f.internal_name}Id" if f is not None and f.is_lookup else name
        want_null = tag == "isnull"
        return lambda row: (row.get(key) in (None, "", [])) is want_null
    if tag in COMPARISONS:
        name, f, by_id = _field(lst, el)
        used.append(f)
        value_el = next((c for c in el if _local(c.tag) == "value"), None)
        if value_el is None:
            raise invalid_query(f"The query is not valid: <{el.tag}> needs a Value.")
        key = f"{f.internal_name}Id" if f is not None and f.is_lookup and by_id else name
        value = _typed(value_el, f, env)
        return lambda row: _compare(tag, row.get(key), value)
    if tag == "in":
        name, f, by_id = _field(lst, el)
        used.append(f)
        values_el = next((c for c in el if _local(c.tag) == "values"), None)
        values = [_typed(v, f, env) for v in (values_el if values_el is not None else [])]
        key = f"{f.internal_name}Id" if f is not None and f.is_lookup and by_id else name
        return lambda row: any(_compare("eq", row.get(key), v) for v in values)
    if tag == "membership":
        return _membership(lst, el, used, env)
    if tag == "daterangesoverlap":
        return _overlap(lst, el, used, env)
    raise not_supported(f"CAML <{el.tag}>", status=400)


def _ids(value: Any) -> list[int]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int)]
    return [value] if isinstance(value, int) else []


def _membership(
    lst: SPList, el: ET.Element, used: list[Field | None], env: CamlEnv | None
) -> Predicate:
    kind = (el.get("Type") or "").lower()
    _name, f, _by_id = _field(lst, el)
    if f is None or not f.is_user:
        raise invalid_query("The query is not valid: Membership needs a person or group column.")
    used.append(f)
    e = _env(env, "<Membership>")
    key = f"{f.internal_name}Id"
    groups = e.groups
    if kind == "currentusergroups":
        mine = {gid for gid, members in groups.items() if e.user_id in members}
        return lambda row: any(i in mine for i in _ids(row.get(key)))
    if kind == "spgroup":
        try:
            members = set(groups.get(int(el.get("ID") or ""), ()))
        except ValueError as exc:
            raise invalid_query("The query is not valid: Membership SPGroup needs an ID.") from exc
        return lambda row: any(i in members for i in _ids(row.get(key)))
    if kind == "spweb.groups":
        return lambda row: any(i in groups for i in _ids(row.get(key)))
    if kind == "spweb.allusers":
        return lambda row: any(i not in groups for i in _ids(row.get(key)))
    raise not_supported(f"CAML Membership Type='{el.get('Type')}'", status=400)


def _overlap(
    lst: SPList, el: ET.Element, used: list[Field | None], env: CamlEnv | None
) -> Predicate:
    refs = [c for c in el if _local(c.tag) == "fieldref"]
    value_el = next((c for c in el if _local(c.tag) == "value"), None)
    if len(refs) < 2 or value_el is None or len(list(value_el)) != 1:
        raise invalid_query(
            "The query is not valid: DateRangesOverlap needs a start and an end FieldRef and a Value."
        )
    names: list[str] = []
    for ref in refs[:2]:
        f = lst.field_by_name(str(ref.get("Name") or ""))
        if f is None:
            raise column_not_found(str(ref.get("Name")))
        used.append(f)
        names.append(f.internal_name)
    e = _env(env, "<DateRangesOverlap>")
    period = _local(next(iter(value_el)).tag)
    today = e.today()
    if period == "today":
        start, end = e.midnight(today), e.midnight(today + dt.timedelta(days=1))
    elif period == "week":
        monday = today - dt.timedelta(days=today.weekday())
        start, end = e.midnight(monday), e.midnight(monday + dt.timedelta(days=7))
    elif period == "month":
        first = today.replace(day=1)
        after = (first + dt.timedelta(days=32)).replace(day=1)
        first -= dt.timedelta(days=first.weekday())
        after += dt.timedelta(days=(7 - after.weekday()) % 7)
        start, end = e.midnight(first), e.midnight(after)
    elif period == "now":
        start = e.now
        # Two years on; 29 February has no such day, so 730 days then.
        end = (
            start.replace(year=start.year + 2)
            if not (start.month == 2 and start.day == 29)
            else start + dt.timedelta(days=730)
        )
    else:
        raise not_supported(f"CAML <{period.capitalize()}/> in DateRangesOverlap", status=400)
    first_name, last_name = names

    def overlaps(row: Mapping[str, Any]) -> bool:
        begins = row.get(first_name)
        ends = row.get(last_name) or begins
        if not isinstance(begins, dt.datetime) or not isinstance(ends, dt.datetime):
            return False
        return begins < end and ends >= start

    return overlaps


def parse_view_xml(lst: SPList, view_xml: str, env: CamlEnv | None = None) -> CamlQuery:
    """Parse a `<View>` (or a bare `<Query>`); unknown elements are refused, never ignored."""
    try:
        root = ET.fromstring(view_xml or "<View/>")
    except ET.ParseError as exc:
        raise invalid_query(f"The query is not valid: {exc}.") from exc
    if _local(root.tag) == "query":
        view = ET.Element("View")
        view.append(root)
        root = view
    if _local(root.tag) != "view":
        raise invalid_query("The query is not valid: the root element must be <View>.")
    # office365 3.3.0 writes the enum's repr ("ViewScope.RecursiveAll"): keep the last part.
    scope = (root.get("Scope") or "").rsplit(".", 1)[-1].lower()
    if scope not in ("", "defaultvalue", "filesonly", "recursive", "recursiveall"):
        raise not_supported(f"CAML View Scope='{root.get('Scope')}'", status=400)
    where: Predicate | None = None
    used: list[Field | None] = []
    order: list[tuple[str, bool]] = []
    row_limit: int | None = None
    view_fields: list[str] = []
    for child in root:
        tag = _local(child.tag)
        if tag == "query":
            for part in child:
                ptag = _local(part.tag)
                if ptag == "where":
                    conds = list(part)
                    if len(conds) != 1:
                        raise invalid_query("The query is not valid: <Where> takes one condition.")
                    where = _predicate(lst, conds[0], used, env)
                elif ptag == "orderby":
                    for ref in part:
                        name = ref.get("Name") or ""
                        if name.lower() != "id" and lst.field_by_name(name) is None:
                            raise column_not_found(name)
                        asc = (ref.get("Ascending") or "TRUE").upper() != "FALSE"
                        order.append(("ID" if name.lower() == "id" else name, not asc))
                else:
                    raise not_supported(f"CAML <{part.tag}> in a Query", status=400)
        elif tag == "rowlimit":
            try:
                row_limit = int((child.text or "").strip())
            except ValueError as exc:
                raise invalid_query("The query is not valid: RowLimit must be a number.") from exc
        elif tag == "viewfields":
            view_fields = [str(ref.get("Name")) for ref in child if ref.get("Name")]
        else:
            raise not_supported(f"CAML <{child.tag}> in a View", status=400)
    return CamlQuery(where, used, order, row_limit, view_fields, scope.startswith("recursive"))


def run_caml(
    backend: Backend, site: Site, lst: SPList, q: CamlQuery, paging_info: str | None
) -> list[Item]:
    """The items a CAML query returns (caller holds the backend lock)."""
    big = len(lst.items) > LIST_VIEW_THRESHOLD
    if big and any(f is not None and not f.indexed for f in q.where_fields):
        raise throttled_lvt()
    rows = [lst.items[i] for i in lst.ids]
    if not q.recursive and lst.is_library:
        # The default scope is the root folder: files in sub-folders are left out.
        root = lst.server_relative_url(site.path).lower()
        rows = [
            it
            for it in rows
            if str(it.values.get("FileRef") or "").lower().rsplit("/", 1)[0] in ("", root)
        ]
    if q.where is not None:
        where = q.where
        rows = [it for it in rows if where(backend.row(site, lst, it))]
        if big and len(rows) > LIST_VIEW_THRESHOLD:
            raise throttled_lvt()
    for name, desc in reversed(q.order):

        def key(it: Item, name: str = name) -> tuple[int, Any]:
            v = it.id if name == "ID" else backend.row(site, lst, it).get(name)
            if isinstance(v, str):
                v = v.casefold()
            return (0, 0) if v is None else (1, v)

        rows.sort(key=key, reverse=desc)
    if paging_info:
        after = parse_skiptoken(paging_info).get("p_ID")
        if after:
            pos = next((i for i, it in enumerate(rows) if it.id == int(after)), None)
            rows = rows[pos + 1 :] if pos is not None else [r for r in rows if r.id > int(after)]
    if q.row_limit is not None:
        if big and q.row_limit > LIST_VIEW_THRESHOLD:
            raise throttled_lvt()
        rows = rows[: q.row_limit]
    elif big:
        raise throttled_lvt()
    return rows
