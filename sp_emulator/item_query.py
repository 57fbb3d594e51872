"""SharePoint's rules for reading list items: query options, thresholds, paging, next links.

This is backend code (moto's `models.py` side): it knows nothing about HTTP formats. The items
handler parses nothing itself; it hands the request's query options to `parse_item_query`, runs
`run_item_query` under the backend lock and renders the page it gets back.

Rules (sources in the emulator README, "Items"):
- pages of 100 items by default, `$top` up to 5,000 (more throttles on a big list);
- on a list above the 5,000-item list view threshold, a `$filter` or `$orderby` on a column that
  is not indexed, or an indexed filter still matching more than 5,000 rows, throttles;
- more than 12 lookup-type columns in one query throttles;
- `$skiptoken=Paged=TRUE&p_ID=N` (plus `p_<Field>=value` for another order) resumes after the
  row it names, and the next link repeats the original options with a new `$skiptoken`.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from sp_emulator.errors import (
    column_not_found,
    expand_required,
    invalid_query,
    throttled_lookups,
    throttled_lvt,
)
from sp_emulator.model import (
    LIST_VIEW_THRESHOLD,
    LOOKUP_COLUMN_THRESHOLD,
    UTC,
    Backend,
    Field,
    Item,
    Site,
    SPList,
)
from sp_emulator.query import (
    FilterExpr,
    QueryError,
    parse_expand,
    parse_filter,
    parse_orderby,
    parse_select,
    parse_skiptoken,
)

ITEM_QUERY_OPTIONS = frozenset(
    {
        "$select",
        "$filter",
        "$orderby",
        "$top",
        "$skiptoken",
        "$expand",
        "$skip",
        "$format",
        "$inlinecount",
    }
)
DEFAULT_PAGE = 100
MAX_PAGE = 5000
# File columns of libraries that SharePoint does not count against the lookup threshold.
SYSTEM_LOOKUPS_HIDDEN = frozenset({"FSObjType", "FileRef"})
# `$select` names that address system properties rather than fields.
_SYSTEM_PROPERTIES = {
    "id": "Id",
    "created": "Created",
    "modified": "Modified",
    "authorid": "AuthorId",
    "editorid": "EditorId",
    "guid": "GUID",
    "odata__uiversionstring": "OData__UIVersionString",
    "_uiversionstring": "OData__UIVersionString",
    "attachments": "Attachments",
    "filesystemobjecttype": "FileSystemObjectType",
    "contenttypeid": "ContentTypeId",
    "hasuniqueroleassignments": "HasUniqueRoleAssignments",
}


# Navigation properties of an item: `$expand` inlines them through `sp_emulator.expand`.
ITEM_NAVIGATION = (
    "AttachmentFiles",
    "FirstUniqueAncestorSecurableObject",
    "ParentList",
    "Versions",
)


@dataclass
class SelectPlan:
    """Which properties of each item to render, which lookups to expand, and the lookup count.

    `navigation` names the item navigation properties in `$expand`; they are inlined by the
    generic expansion after rendering, so such a page cannot use the cached-text fast path.
    """

    all: bool = False
    keys: list[str] = field(default_factory=list)
    expands: list[tuple[Field, list[str]]] = field(default_factory=list)
    navigation: list[str] = field(default_factory=list)
    lookup_count: int = 0


@dataclass(frozen=True)
class ItemQuery:
    """The parsed query options of one items request."""

    select: list[str]
    expand: list[str]
    orderby: list[tuple[str, bool]]
    filter: FilterExpr | None
    skiptoken: dict[str, str] | None
    top: int
    options: Mapping[str, str]  # the raw options, repeated in the next link


@dataclass(frozen=True)
class ItemPage:
    """One page of items and, when more follow, the `$skiptoken` of the next page."""

    items: list[Item]
    plan: SelectPlan
    skiptoken: str | None


def _query_error(exc: QueryError) -> Exception:
    return invalid_query(str(exc))


def parse_top(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE
    try:
        top = int(raw)
    except ValueError as exc:
        raise invalid_query(f"Invalid value '{raw}' for $top query option found.") from exc
    if top < 0:
        raise invalid_query(f"Invalid value '{raw}' for $top query option found.")
    return top


def parse_item_query(options: Mapping[str, str]) -> ItemQuery:
    """Parse and check the query options; an unknown `$` option is SharePoint's 400."""
    for key in options:
        if key.startswith("$") and key.lower() not in ITEM_QUERY_OPTIONS:
            raise invalid_query(
                f"The query parameter '{key}' begins with a system-reserved '$' character but is "
                "not recognized."
            )
    try:
        select = parse_select(options.get("$select", ""))
        expand = parse_expand(options.get("$expand", ""))
        orderby = parse_orderby(options.get("$orderby", ""))
        expr = parse_filter(options["$filter"]) if options.get("$filter", "").strip() else None
        token = (
            parse_skiptoken(options["$skiptoken"])
            if options.get("$skiptoken", "").strip()
            else None
        )
    except QueryError as exc:
        raise _query_error(exc) from exc
    return ItemQuery(select, expand, orderby, expr, token, parse_top(options.get("$top")), options)


def parse_select_expand(options: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """`$select` and `$expand` of a single-item request."""
    try:
        return parse_select(options.get("$select", "")), parse_expand(options.get("$expand", ""))
    except QueryError as exc:
        raise _query_error(exc) from exc


def plan_select(lst: SPList, select: list[str], expand: list[str]) -> SelectPlan:
    """Resolve `$select`/`$expand` against the list's fields and count the lookups touched."""
    expand_fields: dict[str, tuple[Field, list[str]]] = {}
    navigation: list[str] = []
    nav_names = {n.lower(): n for n in ITEM_NAVIGATION}
    for name in expand:
        if name.split("/")[0].lower() in nav_names:
            navigation.append(nav_names[name.split("/")[0].lower()])
            continue
        f = lst.field_by_name(name)
        if f is None or not f.is_lookup:
            raise invalid_query(f"The field or property '{name}' does not exist.")
        expand_fields[f.internal_name] = (f, [])
    plan = SelectPlan(navigation=navigation)
    if not select or "*" in select:
        plan.all = True
    for name in select:
        if name == "*":
            continue
        if "/" in name:
            base, prop = name.split("/", 1)
            f = lst.field_by_name(base)
            if f is None or not f.is_lookup:
                raise invalid_query(f"The field or property '{base}' does not exist.")
            if f.internal_name not in expand_fields:
                raise expand_required(base)
            if prop != "*":
                expand_fields[f.internal_name][1].append(prop)
            continue
        low = name.lower()
        if low in nav_names:
            plan.keys.append(nav_names[low])
            continue
        if name == "Id":
            plan.keys.append("Id")
            continue
        if low == "id":
            plan.keys.append("ID")
            continue
        if low in _SYSTEM_PROPERTIES:
            plan.keys.append(_SYSTEM_PROPERTIES[low])
            continue
        plan.keys.extend(_field_key(lst, name, expand_fields))
    plan.expands = list(expand_fields.values())
    # The lookup threshold counts every lookup-type column the query touches.
    lookups: set[str] = {f.internal_name for f, _ in plan.expands}
    if plan.all:
        lookups |= {
            f.internal_name
            for f in lst.fields
            if f.is_lookup and f.internal_name not in SYSTEM_LOOKUPS_HIDDEN
        }
    for key in plan.keys:
        base = key[:-8] if key.endswith("StringId") else key[:-2] if key.endswith("Id") else key
        f = lst.field_by_name(base)
        if f is not None and f.is_lookup:
            lookups.add(f.internal_name)
    plan.lookup_count = len(lookups)
    return plan


def _field_key(
    lst: SPList, name: str, expand_fields: Mapping[str, tuple[Field, list[str]]]
) -> list[str]:
    """The rendered property names a selected field name stands for."""
    f = lst.field_by_name(name)
    if f is None and name.endswith("StringId"):
        f = lst.field_by_name(name[:-8])
        if f is not None and f.is_user:
            return [f.entity_name + "StringId"]
    if f is None and name.endswith("Id"):
        f = lst.field_by_name(name[:-2])
        if f is not None and f.is_lookup:
            return [f.entity_name + "Id"] + ([f.entity_name + "StringId"] if f.is_user else [])
        f = None
    if f is None:
        raise invalid_query(f"The field or property '{name}' does not exist.")
    if f.internal_name in SYSTEM_LOOKUPS_HIDDEN:
        return [f.internal_name]  # FileRef and FSObjType read as plain values
    if f.is_lookup:
        if f.internal_name in expand_fields:
            return []  # rendered as the expanded object
        return [f.entity_name + "Id"] + ([f.entity_name + "StringId"] if f.is_user else [])
    return [f.entity_name]


def check_columns(lst: SPList, names: set[str]) -> list[Field | None]:
    """The fields a filter or order names (None for ID); an unknown column is SharePoint's 400."""
    out: list[Field | None] = []
    for name in names:
        if name.lower() == "id":
            out.append(None)
            continue
        f = lst.field_by_name(name)
        if f is None and name.endswith("Id"):
            f = lst.field_by_name(name[:-2])
            if f is not None and not f.is_lookup:
                f = None
        if f is None:
            raise column_not_found(name)
        out.append(f)
    return out


def check_lookup_threshold(plan: SelectPlan) -> None:
    if plan.lookup_count > LOOKUP_COLUMN_THRESHOLD:
        raise throttled_lookups()


def run_item_query(backend: Backend, site: Site, lst: SPList, q: ItemQuery) -> ItemPage:
    """Apply the thresholds, filter, order and page; the caller holds `backend.lock`."""
    plan = plan_select(lst, q.select, q.expand)
    filter_fields = check_columns(lst, q.filter.columns()) if q.filter else []
    order_fields = check_columns(lst, {name for name, _ in q.orderby})
    check_lookup_threshold(plan)
    big = len(lst.items) > LIST_VIEW_THRESHOLD
    if big:
        if q.top > MAX_PAGE:
            raise throttled_lvt()
        if any(f is not None and not f.indexed for f in filter_fields + order_fields):
            raise throttled_lvt()
    top = q.top
    orderby = q.orderby
    order_by_id = not orderby or (len(orderby) == 1 and orderby[0][0].lower() == "id")
    descending = bool(orderby) and orderby[0][1] and order_by_id
    after_id = int(q.skiptoken["p_ID"]) if q.skiptoken and q.skiptoken.get("p_ID") else None
    if q.filter is None and order_by_id:
        # Hot path: the default ID order pages by bisection over the sorted ids.
        ids = lst.ids
        if descending:
            stop = len(ids) if after_id is None else bisect.bisect_left(ids, after_id)
            start = max(0, stop - top)
            page_ids = list(reversed(ids[start:stop]))
            more = start > 0
        else:
            start = 0 if after_id is None else bisect.bisect_right(ids, after_id)
            page_ids = ids[start : start + top]
            more = start + top < len(ids)
        page = [lst.items[i] for i in page_ids]
    elif q.filter is not None and order_by_id and all(f is None for f in filter_fields):
        # Keyset paging (`ID gt last`, `$orderby=ID`, what sync engines send): walk the ids
        # from the paging position and stop after one match past the page.
        page, more = _id_page(backend, site, lst, q.filter, top, after_id, descending=descending)
    else:
        rows = _filtered(backend, site, lst, q.filter)
        if (
            big
            and q.filter is not None
            and not all(f is None for f in filter_fields)
            and len(rows) > LIST_VIEW_THRESHOLD
        ):
            raise throttled_lvt()
        if not order_by_id:
            rows = _sorted(backend, site, lst, rows, orderby)
        elif descending:
            rows.reverse()
        if after_id is not None:
            rows = _after(rows, after_id, order_by_id=order_by_id, descending=descending)
        page = rows[:top]
        more = len(rows) > top
    token = None
    if more and page and top > 0:
        token = next_skiptoken(backend, site, lst, page[-1], orderby, order_by_id=order_by_id)
    return ItemPage(page, plan, token)


def _after(rows: list[Item], after_id: int, *, order_by_id: bool, descending: bool) -> list[Item]:
    if order_by_id:
        return [r for r in rows if (r.id < after_id if descending else r.id > after_id)]
    pos = next((i for i, r in enumerate(rows) if r.id == after_id), None)
    if pos is not None:
        return rows[pos + 1 :]
    # The row named by p_ID was deleted between pages: resume at the next higher ID.
    return [r for r in rows if r.id > after_id]


def _candidate_ids(lst: SPList, expr: FilterExpr | None) -> tuple[list[int], int]:
    """The sorted ids a filter can match, and the index of the first one its ID lower bound
    allows (rows below a bound cannot match, see `FilterExpr.id_lower_bound`)."""
    if expr is None:
        return lst.ids, 0
    id_set = expr.id_set()
    if id_set is not None:
        return sorted(i for i in id_set if i in lst.items), 0
    lower = expr.id_lower_bound()
    return lst.ids, 0 if lower is None else bisect.bisect_left(lst.ids, lower)


def _id_page(
    backend: Backend,
    site: Site,
    lst: SPList,
    expr: FilterExpr,
    top: int,
    after_id: int | None,
    *,
    descending: bool,
) -> tuple[list[Item], bool]:
    """The page `_filtered` + `_after` + `[:top]` would give in ID order, and whether more rows
    match, for a filter on ID alone.

    It evaluates the filter only from the paging position until one row past the page, so a
    page costs the same on a list of 1,000,000 items as on one of 100,000 (evaluating every
    remaining row made a keyset read of n rows cost n²/10,000 evaluations). This is exact
    only because the filter names ID alone: every row's ID is an int, so `evaluate` raises
    for every row or for none, and stopping early cannot hide an error.
    """
    ids, lo = _candidate_ids(lst, expr)
    hi = len(ids)
    probe = lo if lo < hi else None  # a row the full evaluation would have looked at
    upper = expr.id_upper_bound()
    if upper is not None:
        hi = bisect.bisect_right(ids, upper, lo, hi)
    if after_id is not None:
        if descending:
            hi = bisect.bisect_left(ids, after_id, lo, hi)
        else:
            lo = bisect.bisect_right(ids, after_id, lo, hi)
    page: list[Item] = []
    items = lst.items
    try:
        for k in range(hi - 1, lo - 1, -1) if descending else range(lo, hi):
            it = items[ids[k]]
            if expr.evaluate(backend.row(site, lst, it)):
                page.append(it)
                if len(page) > top:
                    break
        if probe is not None and hi <= lo:
            # Nothing was evaluated: still surface the type error (a 400) the full
            # evaluation would have raised on any row.
            expr.evaluate(backend.row(site, lst, items[ids[probe]]))
    except QueryError as exc:
        raise _query_error(exc) from exc
    return page[:top], len(page) > top


def _filtered(backend: Backend, site: Site, lst: SPList, expr: FilterExpr | None) -> list[Item]:
    # Only the candidates are materialised: building every item first cost O(list) per page.
    ids, lo = _candidate_ids(lst, expr)
    items = [lst.items[i] for i in ids[lo:]] if lo else [lst.items[i] for i in ids]
    if expr is None:
        return items
    try:
        return [it for it in items if expr.evaluate(backend.row(site, lst, it))]
    except QueryError as exc:
        raise _query_error(exc) from exc


def _sorted(
    backend: Backend, site: Site, lst: SPList, rows: list[Item], orderby: list[tuple[str, bool]]
) -> list[Item]:
    rows = sorted(rows, key=lambda r: r.id)
    for name, desc in reversed(orderby):

        def key(it: Item, name: str = name) -> tuple[int, Any]:
            v = backend.row(site, lst, it).get(name)
            if isinstance(v, list):
                v = ";".join(str(x) for x in v)
            if isinstance(v, str):
                v = v.lower()
            if isinstance(v, dt.datetime):
                v = v.timestamp()
            # Empty values sort first ascending, as in SharePoint views.
            return (0, 0) if v is None else (1, v)

        try:
            rows.sort(key=key, reverse=desc)
        except TypeError:
            rows.sort(key=lambda it, k=key: (k(it)[0], str(k(it)[1])), reverse=desc)  # type: ignore[misc]
    return rows


def next_skiptoken(
    backend: Backend,
    site: Site,
    lst: SPList,
    last: Item,
    orderby: list[tuple[str, bool]],
    *,
    order_by_id: bool,
) -> str:
    """`Paged=TRUE[&p_<Field>=value…]&p_ID=<last id>`, SharePoint's paging position."""
    token = "Paged=TRUE"
    if not order_by_id:
        for name, _desc in orderby:
            if name.lower() == "id":
                continue
            v = backend.row(site, lst, last).get(name)
            if isinstance(v, dt.datetime):
                v = v.astimezone(UTC).strftime("%Y%m%d %H:%M:%S")
            token += f"&p_{name}={quote('' if v is None else str(v), safe='')}"
    return token + f"&p_ID={last.id}"


def next_link(site_url: str, lst: SPList, q: ItemQuery, skiptoken: str) -> str:
    """The absolute next link SharePoint sends: the list by GUID, new `$skiptoken`, same options."""
    url = (
        f"{site_url}/_api/Web/Lists(guid'{lst.id}')/Items"
        f"?%24skiptoken={quote(skiptoken, safe='')}&%24top={q.top}"
    )
    for opt in ("$select", "$filter", "$orderby", "$expand"):
        val = q.options.get(opt)
        if val:
            url += f"&%24{opt[1:]}={quote(val, safe='')}"
    return url


# ---- lists and fields: `$filter` over their properties -------------------------------------

T = TypeVar("T")


def filter_objects(
    objs: list[T], text: str | None, row: Callable[[T], Mapping[str, Any]]
) -> list[T]:
    """Apply a `$filter` to lists or fields, evaluated over the properties `row` exposes."""
    if not text:
        return objs
    try:
        expr = parse_filter(text)
        return [o for o in objs if expr.evaluate(row(o))]
    except QueryError as exc:
        raise _query_error(exc) from exc


def list_filter_row(lst: SPList) -> Mapping[str, Any]:
    return {
        "Title": lst.title,
        "Hidden": lst.hidden,
        "BaseTemplate": lst.base_template,
        "Id": lst.id,
        "ItemCount": len(lst.items),
    }


def field_filter_row(f: Field) -> Mapping[str, Any]:
    return {
        "Hidden": f.hidden,
        "ReadOnlyField": f.read_only,
        "InternalName": f.internal_name,
        "Title": f.title,
        "TypeAsString": f.type_as_string,
        "FieldTypeKind": f.kind,
        "CanBeDeleted": f.can_be_deleted,
        "Sealed": f.sealed,
        "Indexed": f.indexed,
        "StaticName": f.internal_name,
        "EntityPropertyName": f.entity_name,
    }
