"""CAML queries for `List/GetItems`: the `<View>` XML other clients send instead of OData.

Backend code, like `item_query.py`: it parses a `ViewXml`, evaluates its `<Where>` on the
backend's row views, orders by `<OrderBy>`, applies `<RowLimit>` and the
`ListItemCollectionPosition` paging info (`Paged=TRUE&p_ID=N`), and applies the list view
threshold. Elements the emulator does not evaluate (e.g. `<Today/>` offsets, `<Membership>`,
`<DateRangesOverlap>`, `Scope="Recursive"` folders) answer "not supported by the emulator"
rather than being ignored. Schema: https://learn.microsoft.com/en-us/sharepoint/dev/schema/where-element-query
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sp_emulator.errors import column_not_found, invalid_query, not_supported, throttled_lvt
from sp_emulator.model import LIST_VIEW_THRESHOLD, UTC, Backend, Field, Item, Site, SPList
from sp_emulator.query import parse_skiptoken

Predicate = Callable[[Mapping[str, Any]], bool]
COMPARISONS = {"eq", "neq", "gt", "geq", "lt", "leq", "contains", "beginswith"}


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


def _typed(value_el: ET.Element, f: Field | None) -> Any:
    """The Python value of a `<Value Type="…">` element."""
    if any(True for _ in value_el):
        raise not_supported(f"CAML <{_local(next(iter(value_el)).tag)}> in a Value", status=400)
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
    if isinstance(left, dt.datetime) and isinstance(right, dt.datetime):
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


def _predicate(lst: SPList, el: ET.Element, used: list[Field | None]) -> Predicate:
    tag = _local(el.tag)
    children = list(el)
    if tag in ("and", "or"):
        if len(children) < 2:
            raise invalid_query(f"The query is not valid: <{el.tag}> needs two conditions.")
        parts = [_predicate(lst, c, used) for c in children]
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
        value = _typed(value_el, f)
        return lambda row: _compare(tag, row.get(key), value)
    if tag == "in":
        name, f, by_id = _field(lst, el)
        used.append(f)
        values_el = next((c for c in el if _local(c.tag) == "values"), None)
        values = [_typed(v, f) for v in (values_el if values_el is not None else [])]
        key = f"{f.internal_name}Id" if f is not None and f.is_lookup and by_id else name
        return lambda row: any(_compare("eq", row.get(key), v) for v in values)
    raise not_supported(f"CAML <{el.tag}>", status=400)


def parse_view_xml(lst: SPList, view_xml: str) -> CamlQuery:
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
                    where = _predicate(lst, conds[0], used)
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
