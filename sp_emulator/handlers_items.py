"""Handlers for list items, the change log and the recycle bin.

Reading items is the hot path (the sync engine pages 5,000 items at a time): item JSON is built
once per item version and cached on the item, the default ID order pages by bisection, and the
page is serialised with one `json.dumps`. Only `$filter` and non-ID `$orderby` walk the list.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from typing import Any
from urllib.parse import quote

from sp_emulator import odata
from sp_emulator.handlers_web import WebHandlers
from sp_emulator.http import Request, Response, Router
from sp_emulator.model import (
    LIST_VIEW_THRESHOLD,
    LOOKUP_COLUMN_THRESHOLD,
    UTC,
    Backend,
    Change,
    Field,
    Item,
    Site,
    SPError,
    SPList,
    argument_error,
    gc_paused,
    invalid_query,
    iso,
    throttled_lookups,
    throttled_lvt,
)
from sp_emulator.odata import GUID_RE, LIST_ADDR
from sp_emulator.query import (
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
SYSTEM_LOOKUPS_HIDDEN = frozenset({"FSObjType", "FileRef"})


def _num(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return int(v)
    return v


def _query_error(exc: QueryError) -> SPError:
    return invalid_query(str(exc))


def _etag(item: Item) -> str:
    return f'"{item.version}"'


class ItemHandlers:
    """Items, change log, recycle bin."""

    def __init__(self, backend: Backend, web: WebHandlers) -> None:
        self.backend = backend
        self.web = web

    # ---- rendering -----------------------------------------------------------------------

    def _value_json(self, site: Site, f: Field, value: Any, out: dict[str, Any]) -> None:
        t = f.type_as_string
        key = f.entity_name
        if f.is_lookup:
            if f.multi:
                ids = list(value or [])
                out[key + "Id"] = {"__metadata": {"type": "Collection(Edm.Int32)"}, "results": ids}
                if f.is_user:
                    out[key + "StringId"] = {
                        "__metadata": {"type": "Collection(Edm.String)"},
                        "results": [str(i) for i in ids],
                    }
            else:
                out[key + "Id"] = value
                if f.is_user:
                    out[key + "StringId"] = None if value is None else str(value)
            return
        if t == "MultiChoice":
            out[key] = {
                "__metadata": {"type": "Collection(Edm.String)"},
                "results": list(value or []),
            }
        elif t == "DateTime":
            out[key] = iso(value)
        elif t == "URL":
            out[key] = (
                None
                if value is None
                else {
                    "__metadata": {"type": "SP.FieldUrlValue"},
                    "Description": value.get("Description"),
                    "Url": value.get("Url"),
                }
            )
        elif t in ("Number", "Currency"):
            out[key] = _num(value)
        else:
            out[key] = value

    def item_json(self, request: Request, site: Site, lst: SPList, item: Item) -> dict[str, Any]:
        """The full verbose item (no `$select`), cached until the item or its list changes."""
        base = request.site_url
        cache = item.cache
        if cache is not None and cache.get("base") == base:
            return cache["d"]
        rel = f"Web/Lists(guid'{lst.id}')/Items({item.id})"
        uri = f"{base}/_api/{rel}"
        d: dict[str, Any] = {
            "__metadata": {
                "id": rel,
                "uri": uri,
                "etag": _etag(item),
                "type": lst.entity_type_full_name,
            },
            "FirstUniqueAncestorSecurableObject": {
                "__deferred": {"uri": uri + "/FirstUniqueAncestorSecurableObject"}
            },
            "ParentList": {"__deferred": {"uri": uri + "/ParentList"}},
            "FileSystemObjectType": 0,
            "Id": item.id,
            "ServerRedirectedEmbedUri": None,
            "ServerRedirectedEmbedUrl": "",
            "ContentTypeId": "0x0100" + lst.id.replace("-", "").upper()[:32],
        }
        for f in lst.fields:
            if f.built_in and f.internal_name != "Title" and f.internal_name != "FileLeafRef":
                continue
            self._value_json(site, f, item.values.get(f.internal_name), d)
        d.update(
            {
                "ComplianceAssetId": None,
                "ID": item.id,
                "Modified": iso(item.modified),
                "Created": iso(item.created),
                "AuthorId": item.author_id,
                "EditorId": item.editor_id,
                "OData__UIVersionString": item.ui_version,
                "Attachments": False,
                "GUID": item.guid,
            }
        )
        item.cache = {"base": base, "d": d}
        return d

    def _expanded(
        self, request: Request, site: Site, f: Field, ident: int | None, props: list[str]
    ) -> dict[str, Any]:
        if f.is_user:
            u = site.users.get(ident) if ident is not None else None
            md = {
                "id": f"{request.site_url}/_api/Web/GetUserById({ident})",
                "type": "SP.Data.UserInfoItem",
            }
            values = {
                "Id": ident,
                "ID": ident,
                "Title": u.title if u else None,
                "EMail": u.email if u else None,
                "Name": u.login_name if u else None,
                "LoginName": u.login_name if u else None,
                "UserName": (u.email if u else None),
            }
            wanted = props or ["Id", "Title"]
            out: dict[str, Any] = {"__metadata": md}
            for p in wanted:
                match = next((k for k in values if k.lower() == p.lower()), None)
                if match is None:
                    raise invalid_query(f"The field or property '{p}' does not exist.")
                out[match] = values[match] if u else None
            return out
        target = site.list_by_id(f.lookup_list)
        target_item = (
            target.items.get(ident) if (target is not None and ident is not None) else None
        )
        md = {
            "id": f"{ident}",
            "type": target.entity_type_full_name if target else "SP.Data.ListItem",
        }
        out = {"__metadata": md}
        for p in props or ["Id", "Title"]:
            if p.lower() in ("id", "ID".lower()):
                out["Id" if p == "Id" else p] = ident if target_item else None
                continue
            if target is None:
                out[p] = None
                continue
            tf = target.field_by_name(p)
            if tf is None:
                raise invalid_query(f"The field or property '{p}' does not exist.")
            out[tf.entity_name] = (
                self.backend.row(site, target, target_item).get(p) if target_item else None
            )
            if tf.type_as_string == "DateTime":
                out[tf.entity_name] = iso(out[tf.entity_name])
        return out

    def select_item(
        self, request: Request, site: Site, lst: SPList, item: Item, plan: _SelectPlan
    ) -> dict[str, Any]:
        full = self.item_json(request, site, lst, item)
        if plan.all:
            out = full
            if plan.expands:
                out = dict(full)
        else:
            out = {"__metadata": full["__metadata"]}
            for key in plan.keys:
                if key in full:
                    out[key] = full[key]
        for f, props in plan.expands:
            if f.internal_name == "Author":
                ident: Any = item.author_id
            elif f.internal_name == "Editor":
                ident = item.editor_id
            else:
                ident = item.values.get(f.internal_name)
            if f.multi:
                out[f.entity_name] = {
                    "results": [self._expanded(request, site, f, i, props) for i in (ident or [])]
                }
            else:
                out[f.entity_name] = self._expanded(request, site, f, ident, props)
        return out

    # ---- query planning ------------------------------------------------------------------

    def plan_select(self, lst: SPList, select: list[str], expand: list[str]) -> _SelectPlan:
        expand_fields: dict[str, tuple[Field, list[str]]] = {}
        for name in expand:
            f = lst.field_by_name(name)
            if f is None or not f.is_lookup:
                raise invalid_query(f"The field or property '{name}' does not exist.")
            expand_fields[f.internal_name] = (f, [])
        plan = _SelectPlan()
        if not select or "*" in select:
            plan.all = True
        system = {
            "id": "Id",
            "ID".lower(): "ID",
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
            "title": "Title",
        }
        for name in select:
            if name == "*":
                continue
            if "/" in name:
                base, prop = name.split("/", 1)
                f = lst.field_by_name(base)
                if f is None or not f.is_lookup:
                    raise invalid_query(f"The field or property '{base}' does not exist.")
                if f.internal_name not in expand_fields:
                    raise SPError(
                        400,
                        "-1, Microsoft.SharePoint.SPException",
                        f"The query to field '{base}' is not valid. The $select query string must specify the target fields and the $expand query string must contains {base}.",
                    )
                if prop != "*":
                    expand_fields[f.internal_name][1].append(prop)
                continue
            low = name.lower()
            if name == "Id":
                plan.keys.append("Id")
                continue
            if low in system and low != "title":
                plan.keys.append(system[low])
                continue
            f = lst.field_by_name(name)
            if f is None and name.endswith("StringId"):
                f = lst.field_by_name(name[:-8])
                if f is not None and f.is_user:
                    plan.keys.append(f.entity_name + "StringId")
                    continue
            if f is None and name.endswith("Id"):
                f = lst.field_by_name(name[:-2])
                if f is not None and f.is_lookup:
                    plan.keys.append(f.entity_name + "Id")
                    if f.is_user:
                        plan.keys.append(f.entity_name + "StringId")
                    continue
                f = None
            if f is None:
                raise invalid_query(f"The field or property '{name}' does not exist.")
            if f.is_lookup:
                if f.internal_name in expand_fields:
                    continue  # rendered as the expanded object
                plan.keys.append(f.entity_name + "Id")
                if f.is_user:
                    plan.keys.append(f.entity_name + "StringId")
                continue
            plan.keys.append(f.entity_name)
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
            if key in ("AuthorId", "EditorId"):
                base = key[:-2]
            f = lst.field_by_name(base)
            if f is not None and f.is_lookup:
                lookups.add(f.internal_name)
        plan.lookup_count = len(lookups)
        return plan

    def _check_columns(self, lst: SPList, names: set[str]) -> list[Field | None]:
        out: list[Field | None] = []
        for name in names:
            if name.lower() in ("id",):
                out.append(None)
                continue
            f = lst.field_by_name(name)
            if f is None and name.endswith("Id"):
                f = lst.field_by_name(name[:-2])
                if f is not None and not f.is_lookup:
                    f = None
            if f is None:
                raise SPError(
                    400,
                    "-2146232832, Microsoft.SharePoint.SPException",
                    f"Column '{name}' does not exist. It may have been deleted by another user.",
                )
            out.append(f)
        return out

    # ---- items ---------------------------------------------------------------------------

    def list_items(self, request: Request, m: re.Match[str]) -> Response:
        site, lst = self.web.resolve_list(request, m)
        q = request.query
        for key in q:
            if key.startswith("$") and key.lower() not in ITEM_QUERY_OPTIONS:
                raise invalid_query(
                    f"The query parameter '{key}' begins with a system-reserved '$' character but is not recognized."
                )
        try:
            select = parse_select(q.get("$select", ""))
            expand = parse_expand(q.get("$expand", ""))
            orderby = parse_orderby(q.get("$orderby", ""))
            expr = parse_filter(q["$filter"]) if q.get("$filter", "").strip() else None
            token = parse_skiptoken(q["$skiptoken"]) if q.get("$skiptoken", "").strip() else None
        except QueryError as exc:
            raise _query_error(exc) from exc
        top_raw = q.get("$top")
        if top_raw is None or top_raw == "":
            top = DEFAULT_PAGE
        else:
            try:
                top = int(top_raw)
            except ValueError as exc:
                raise invalid_query(
                    f"Invalid value '{top_raw}' for $top query option found."
                ) from exc
            if top < 0:
                raise invalid_query(f"Invalid value '{top_raw}' for $top query option found.")
        plan = self.plan_select(lst, select, expand)
        filter_fields = self._check_columns(lst, expr.columns()) if expr else []
        order_fields = self._check_columns(lst, {name for name, _ in orderby})
        if plan.lookup_count > LOOKUP_COLUMN_THRESHOLD:
            raise throttled_lookups()
        big = len(lst.items) > LIST_VIEW_THRESHOLD
        if big:
            if top > MAX_PAGE:
                raise throttled_lvt()
            if any(f is not None and not f.indexed for f in filter_fields + order_fields):
                raise throttled_lvt()

        with self.backend.lock:
            order_by_id = not orderby or (len(orderby) == 1 and orderby[0][0].lower() == "id")
            descending = bool(orderby) and orderby[0][1] and order_by_id
            after_id = int(token["p_ID"]) if token and token.get("p_ID") else None
            if expr is None and order_by_id:
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
                last = page[-1] if page else None
            else:
                rows = self._filtered(site, lst, expr)
                if (
                    big
                    and expr is not None
                    and not all(f is None for f in filter_fields)
                    and len(rows) > LIST_VIEW_THRESHOLD
                ):
                    raise throttled_lvt()
                if not order_by_id:
                    rows = self._sorted(site, lst, rows, orderby)
                elif descending:
                    rows.reverse()
                if after_id is not None:
                    if order_by_id:
                        rows = [
                            r for r in rows if (r.id < after_id if descending else r.id > after_id)
                        ]
                    else:
                        pos = next((i for i, r in enumerate(rows) if r.id == after_id), None)
                        if pos is not None:
                            rows = rows[pos + 1 :]
                        else:
                            rows = [r for r in rows if r.id > after_id]
                page = rows[:top]
                more = len(rows) > top
                last = page[-1] if page else None
            fast = request.odata_format == "verbose" and not plan.expands
            with gc_paused():
                if fast:
                    fragments = [self._fragment(request, site, lst, it, plan) for it in page]
                else:
                    out = [self.select_item(request, site, lst, it, plan) for it in page]
        next_url = None
        if more and last is not None and top > 0:
            next_url = self._next_link(request, site, lst, last, top, orderby, order_by_id)
        if fast:
            # Hot path: per-item JSON is cached as text, so a page is one join.
            tail = f',"__next":{odata.dumps(next_url).decode()}' if next_url else ""
            body = '{"d":{"results":[' + ",".join(fragments) + "]" + tail + "}}"
            return Response(
                200, {"Content-Type": odata.CONTENT_TYPES["verbose"]}, body.encode("utf-8")
            )
        return odata.collection(request, out, next_url, type_name=f"SP.ListData.{lst.entity_type}s")

    def _fragment(
        self, request: Request, site: Site, lst: SPList, item: Item, plan: _SelectPlan
    ) -> str:
        full = self.item_json(request, site, lst, item)
        cache = item.cache
        assert cache is not None
        key = "*" if plan.all else ",".join(plan.keys)
        texts = cache.setdefault("text", {})
        text = texts.get(key)
        if text is None:
            obj = self.select_item(request, site, lst, item, plan) if not plan.all else full
            text = odata.dumps_text(obj)
            if len(texts) < 8:
                texts[key] = text
        return text

    def _filtered(self, site: Site, lst: SPList, expr: Any) -> list[Item]:
        items = [lst.items[i] for i in lst.ids]
        if expr is None:
            return items
        id_set = expr.id_set()
        if id_set is not None:
            items = [lst.items[i] for i in sorted(id_set) if i in lst.items]
        else:
            lower = expr.id_lower_bound()
            if lower is not None:
                items = [lst.items[i] for i in lst.ids[bisect.bisect_left(lst.ids, lower) :]]
        try:
            return [it for it in items if expr.evaluate(self.backend.row(site, lst, it))]
        except QueryError as exc:
            raise _query_error(exc) from exc

    def _sorted(
        self, site: Site, lst: SPList, rows: list[Item], orderby: list[tuple[str, bool]]
    ) -> list[Item]:
        rows = sorted(rows, key=lambda r: r.id)
        for name, desc in reversed(orderby):

            def key(it: Item, name: str = name) -> tuple[int, Any]:
                v = self.backend.row(site, lst, it).get(name)
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

    def _next_link(
        self,
        request: Request,
        site: Site,
        lst: SPList,
        last: Item,
        top: int,
        orderby: list[tuple[str, bool]],
        order_by_id: bool,
    ) -> str:
        token = "Paged=TRUE"
        if not order_by_id:
            for name, _desc in orderby:
                if name.lower() == "id":
                    continue
                v = self.backend.row(site, lst, last).get(name)
                if isinstance(v, dt.datetime):
                    v = v.astimezone(UTC).strftime("%Y%m%d %H:%M:%S")
                token += f"&p_{name}={quote('' if v is None else str(v), safe='')}"
        token += f"&p_ID={last.id}"
        url = f"{request.site_url}/_api/Web/Lists(guid'{lst.id}')/Items?%24skiptoken={quote(token, safe='')}&%24top={top}"
        for opt in ("$select", "$filter", "$orderby", "$expand"):
            val = request.query.get(opt)
            if val:
                url += f"&%24{opt[1:]}={quote(val, safe='')}"
        return url

    # ---- single item ---------------------------------------------------------------------

    def _item(self, request: Request, m: re.Match[str]) -> tuple[Site, SPList, Item]:
        site, lst = self.web.resolve_list(request, m)
        return site, lst, self.backend.get_item(lst, int(m.group("iid")))

    def get_item(self, request: Request, m: re.Match[str]) -> Response:
        site, lst, item = self._item(request, m)
        q = request.query
        try:
            select = parse_select(q.get("$select", ""))
            expand = parse_expand(q.get("$expand", ""))
        except QueryError as exc:
            raise _query_error(exc) from exc
        plan = self.plan_select(lst, select, expand)
        if plan.lookup_count > LOOKUP_COLUMN_THRESHOLD:
            raise throttled_lookups()
        return odata.entity(
            request, self.select_item(request, site, lst, item, plan), headers={"ETag": _etag(item)}
        )

    def create_item(self, request: Request, m: re.Match[str]) -> Response:
        site, lst = self.web.resolve_list(request, m)
        body = odata.parse_json_body(request)
        user = self.backend.app_user(site, request.identity)
        item = self.backend.add_item(site, lst, body, user=user)
        return odata.entity(
            request,
            self.item_json(request, site, lst, item),
            status=201,
            headers={"ETag": _etag(item)},
        )

    def update_item(self, request: Request, m: re.Match[str]) -> Response:
        site, lst, item = self._item(request, m)
        body = odata.parse_json_body(request)
        user = self.backend.app_user(site, request.identity)
        self.backend.update_item(
            site, lst, item, body, if_match=request.header("if-match"), user=user
        )
        return odata.no_content({"ETag": _etag(item)})

    def delete_item(self, request: Request, m: re.Match[str]) -> Response:
        site, lst, item = self._item(request, m)
        user = self.backend.app_user(site, request.identity)
        self.backend.delete_item(site, lst, item, if_match=request.header("if-match"), user=user)
        return odata.empty_ok(request)

    def recycle_item(self, request: Request, m: re.Match[str]) -> Response:
        site, lst, item = self._item(request, m)
        user = self.backend.app_user(site, request.identity)
        entry = self.backend.delete_item(site, lst, item, user=user)
        return odata.value(request, "Recycle", entry)

    def parent_list(self, request: Request, m: re.Match[str]) -> Response:
        site, lst, _item = self._item(request, m)
        return odata.entity(request, self.web.list_json_selected(request, site, lst))

    # ---- recycle bin ---------------------------------------------------------------------

    def recycle_bin(self, request: Request, m: re.Match[str]) -> Response:
        site = self.web.site(request)
        rows = []
        for e in site.recycle_bin.values():
            uri = f"{request.site_url}/_api/Web/RecycleBin('{e.id}')"
            lst = site.list_by_id(e.list_id)
            rows.append(
                {
                    "__metadata": {"id": uri, "uri": uri, "type": "SP.RecycleBinItem"},
                    "Id": e.id,
                    "ItemType": 1,
                    "LeafName": f"{e.item.id}_.000",
                    "Title": e.title,
                    "DeletedDate": iso(e.deleted),
                    "DirName": lst.server_relative_url(site.path).lstrip("/") if lst else "",
                    "ItemState": 1,
                }
            )
        return odata.collection(request, rows, type_name="SP.ApiData.RecycleBinItems")

    def restore(self, request: Request, m: re.Match[str]) -> Response:
        site = self.web.site(request)
        self.backend.restore(
            site, m.group("rid"), user=self.backend.app_user(site, request.identity)
        )
        return odata.value(request, "Restore", None)

    # ---- change log ----------------------------------------------------------------------

    def change_json(self, request: Request, site: Site, lst: SPList, c: Change) -> dict[str, Any]:
        d: dict[str, Any] = {
            "__metadata": {
                "id": f"{request.site_url}/_api/SP.ChangeItem{c.number}",
                "uri": f"{request.site_url}/_api/SP.ChangeItem",
                "type": "SP.ChangeItem",
            },
            "ChangeToken": {
                "__metadata": {"type": "SP.ChangeToken"},
                "StringValue": f"1;3;{lst.id};{c.ticks};{c.number}",
            },
            "ChangeType": c.change_type,
            "SiteId": site.id,
            "Time": iso(c.time),
            "ItemId": c.item_id,
            "ListId": lst.id,
            "WebId": site.web_id,
        }
        if c.change_type != 3:
            d.update(
                {
                    "UniqueId": c.unique_id,
                    "FileSystemObjectType": 0,
                    "Hidden": lst.hidden,
                    "ListTemplate": lst.base_template,
                    "ListTitle": lst.title,
                    "Editor": c.editor,
                    "EditorEmailHint": c.editor_email or None,
                    "ServerRelativeUrl": "",
                    "IsRecycleBinOperation": c.change_type == 7,
                    "ContentTypeId": {
                        "__metadata": {"type": "SP.ContentTypeId"},
                        "StringValue": "0x0100" + lst.id.replace("-", "").upper()[:32],
                    },
                }
            )
        return d

    def _query(self, request: Request) -> dict[str, Any]:
        body = odata.parse_json_body(request)
        query = body.get("query")
        if not isinstance(query, dict):
            raise argument_error("Value cannot be null.\r\nParameter name: query")
        return query

    def list_changes(self, request: Request, m: re.Match[str]) -> Response:
        site, lst = self.web.resolve_list(request, m)
        changes = self.backend.get_changes([lst], self._query(request), "3", lst.id)
        return odata.collection(
            request,
            [self.change_json(request, site, lst, c) for c in changes],
            type_name="SP.ApiData.Changes",
        )

    def web_changes(self, request: Request, m: re.Match[str]) -> Response:
        site = self.web.site(request)
        lists = list(site.lists.values())
        changes = self.backend.get_changes(lists, self._query(request), "2", site.web_id)
        by_id = {lst.id: lst for lst in lists}
        rows = []
        for c in changes:
            d = self.change_json(request, site, by_id[c.list_id], c)
            d["ChangeToken"]["StringValue"] = f"1;2;{site.web_id};{c.ticks};{c.number}"
            rows.append(d)
        return odata.collection(request, rows, type_name="SP.ApiData.Changes")

    # ---- routes --------------------------------------------------------------------------

    def register(self, router: Router) -> None:
        L = LIST_ADDR
        forms = [
            r"/items\((?P<iid>\d+)\)",
            r"/items/getbyid\((?P<iid>\d+)\)",
            r"/getitembyid\((?P<iid>\d+)\)",
        ]
        router.add("GET", L + r"/items", self.list_items, "items.list")
        router.add("POST", L + r"/items", self.create_item, "items.create")
        for form in forms:
            router.add("GET", L + form, self.get_item, "items.get")
            router.add("MERGE", L + form, self.update_item, "items.update")
            router.add("PATCH", L + form, self.update_item, "items.update")
            router.add("PUT", L + form, self.update_item, "items.update")
            router.add("DELETE", L + form, self.delete_item, "items.delete")
            router.add(
                "POST", L + form + r"/deleteobject(?:\(\))?", self.delete_item, "items.delete"
            )
            router.add("POST", L + form + r"/recycle(?:\(\))?", self.recycle_item, "items.recycle")
            router.add("GET", L + form + r"/parentlist", self.parent_list, "lists.get")
        router.add("POST", L + r"/getchanges", self.list_changes, "changes.list")
        router.add("POST", r"/_api/web/getchanges", self.web_changes, "changes.web")
        router.add("GET", r"/_api/(?:web|site)/recyclebin", self.recycle_bin, "recyclebin.list")
        router.add(
            "POST",
            rf"/_api/(?:web|site)/recyclebin\('(?P<rid>{GUID_RE})'\)/restore(?:\(\))?",
            self.restore,
            "recyclebin.restore",
        )


class _SelectPlan:
    __slots__ = ("all", "expands", "keys", "lookup_count")

    def __init__(self) -> None:
        self.all = False
        self.keys: list[str] = []
        self.expands: list[tuple[Field, list[str]]] = []
        self.lookup_count = 0
