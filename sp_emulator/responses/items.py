"""Responses for list items, the change log and the recycle bin.

Reading items is the hot path (the sync engine pages 5,000 items at a time): the rules (query
options, thresholds, paging, next links) are in `sp_emulator.item_query`; this module renders.
Item JSON is built once per item version and cached on the item, and a verbose page without
`$expand` is one string join of cached fragments. Routes are in `sp_emulator/urls.py`.
"""

from __future__ import annotations

from typing import Any

from sp_emulator import odata
from sp_emulator.errors import argument_error, invalid_query
from sp_emulator.http import Request, Response
from sp_emulator.item_query import (
    SelectPlan,
    check_lookup_threshold,
    next_link,
    parse_item_query,
    parse_select_expand,
    plan_select,
    run_item_query,
)
from sp_emulator.model import (
    Backend,
    Change,
    Field,
    Item,
    Site,
    SPList,
    gc_paused,
    iso,
)
from sp_emulator.responses.web import WebResponses


def _num(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return int(v)
    return v


def _etag(item: Item) -> str:
    return f'"{item.version}"'


class ItemResponses:
    """Items, change log, recycle bin."""

    def __init__(self, backend: Backend, web: WebResponses) -> None:
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
        self, request: Request, site: Site, lst: SPList, item: Item, plan: SelectPlan
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

    # ---- items ---------------------------------------------------------------------------

    def list_items(self, request: Request, m: Any) -> Response:
        site, lst = self.web.resolve_list(request, m)
        query = parse_item_query(request.query)
        fast = request.odata_format == "verbose"
        with self.backend.lock:
            page = run_item_query(self.backend, site, lst, query)
            fast = fast and not page.plan.expands
            with gc_paused():
                if fast:
                    fragments = [
                        self._fragment(request, site, lst, it, page.plan) for it in page.items
                    ]
                else:
                    out = [self.select_item(request, site, lst, it, page.plan) for it in page.items]
        next_url = (
            next_link(request.site_url, lst, query, page.skiptoken) if page.skiptoken else None
        )
        if fast:
            # Hot path: per-item JSON is cached as text, so a page is one join.
            tail = f',"__next":{odata.dumps(next_url).decode()}' if next_url else ""
            body = '{"d":{"results":[' + ",".join(fragments) + "]" + tail + "}}"
            return Response(
                200, {"Content-Type": odata.CONTENT_TYPES["verbose"]}, body.encode("utf-8")
            )
        return odata.collection(request, out, next_url, type_name=f"SP.ListData.{lst.entity_type}s")

    def _fragment(
        self, request: Request, site: Site, lst: SPList, item: Item, plan: SelectPlan
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

    # ---- single item ---------------------------------------------------------------------

    def _item(self, request: Request, m: Any) -> tuple[Site, SPList, Item]:
        site, lst = self.web.resolve_list(request, m)
        return site, lst, self.backend.get_item(lst, int(m.group("iid")))

    def get_item(self, request: Request, m: Any) -> Response:
        site, lst, item = self._item(request, m)
        select, expand = parse_select_expand(request.query)
        plan = plan_select(lst, select, expand)
        check_lookup_threshold(plan)
        return odata.entity(
            request, self.select_item(request, site, lst, item, plan), headers={"ETag": _etag(item)}
        )

    def create_item(self, request: Request, m: Any) -> Response:
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

    def update_item(self, request: Request, m: Any) -> Response:
        site, lst, item = self._item(request, m)
        body = odata.parse_json_body(request)
        user = self.backend.app_user(site, request.identity)
        self.backend.update_item(
            site, lst, item, body, if_match=request.header("if-match"), user=user
        )
        return odata.no_content({"ETag": _etag(item)})

    def delete_item(self, request: Request, m: Any) -> Response:
        site, lst, item = self._item(request, m)
        user = self.backend.app_user(site, request.identity)
        self.backend.delete_item(site, lst, item, if_match=request.header("if-match"), user=user)
        return odata.empty_ok(request)

    def recycle_item(self, request: Request, m: Any) -> Response:
        site, lst, item = self._item(request, m)
        user = self.backend.app_user(site, request.identity)
        entry = self.backend.delete_item(site, lst, item, user=user)
        return odata.value(request, "Recycle", entry)

    def parent_list(self, request: Request, m: Any) -> Response:
        site, lst, _item = self._item(request, m)
        return odata.entity(request, self.web.list_json_selected(request, site, lst))

    # ---- recycle bin ---------------------------------------------------------------------

    def recycle_bin(self, request: Request, m: Any) -> Response:
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

    def restore(self, request: Request, m: Any) -> Response:
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

    def list_changes(self, request: Request, m: Any) -> Response:
        site, lst = self.web.resolve_list(request, m)
        changes = self.backend.get_changes([lst], self._query(request), "3", lst.id)
        return odata.collection(
            request,
            [self.change_json(request, site, lst, c) for c in changes],
            type_name="SP.ApiData.Changes",
        )

    def web_changes(self, request: Request, m: Any) -> Response:
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
