"""Responses for list items, the change log and the recycle bin.

Reading items is the hot path (the sync engine pages 5,000 items at a time): the rules (query
options, thresholds, paging, next links) are in `sp_emulator.item_query`; this module renders.
Item JSON is built once per item version and cached on the item, and a verbose page without
`$expand` is one string join of cached fragments. Routes are in `sp_emulator/urls.py`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from json.encoder import encode_basestring
from typing import Any
from urllib.parse import quote

from sp_emulator import odata
from sp_emulator.caml import CamlEnv, parse_view_xml, run_caml
from sp_emulator.errors import argument_error, invalid_argument, invalid_query, not_found
from sp_emulator.http import Request, Response
from sp_emulator.item_query import (
    SYSTEM_LOOKUPS_HIDDEN,
    SelectPlan,
    check_lookup_threshold,
    next_link,
    parse_item_query,
    parse_select_expand,
    plan_select,
    run_item_query,
)
from sp_emulator.model import (
    Attachment,
    Backend,
    Change,
    Field,
    Item,
    ItemVersion,
    RecycleBinEntry,
    Site,
    SPList,
    gc_paused,
    iso,
)
from sp_emulator.permissions import PermissionsBackend
from sp_emulator.responses.web import WebResponses
from sp_emulator.views import ViewsBackend


def _num(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return int(v)
    return v


# Navigation properties a single item lists but pages of items leave out: each costs ~150 bytes
# per item, and pages of 5,000 items are the hot path (sync engines select their columns).
PAGE_LESS_NAVIGATION = ("AttachmentFiles", "Versions")


def _deferred(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return {"__deferred": {"uri": f"{obj['__metadata']['uri']}/{name}"}}


def _etag(item: Item) -> str:
    return f'"{item.version}"'


# Column kinds `item_json` renders inline; every other kind goes through `_value_json`.
_PLAIN, _DATE, _LOOKUP, _USER, _OTHER = range(5)


@dataclass(frozen=True)
class _ItemLayout:
    """What `item_json` needs of a list's schema, resolved once per request (not per item)."""

    type_name: str
    content_type_id: str
    columns: tuple[tuple[str, str, int, Field], ...]  # internal name, JSON key, kind, field
    # `,"Key":` of each column (and `,"KeyId":`, `,"KeyStringId":` of lookups), pre-encoded.
    prefixes: tuple[tuple[str, str, str], ...] = ()
    # False when a column's key repeats another key: a dict keeps one, text would keep both.
    textable: bool = False


# Keys `item_json` writes besides the list's columns.
_FIXED_ITEM_KEYS = frozenset(
    {
        "__metadata",
        "FirstUniqueAncestorSecurableObject",
        "ParentList",
        "FileSystemObjectType",
        "Id",
        "ServerRedirectedEmbedUri",
        "ServerRedirectedEmbedUrl",
        "ContentTypeId",
        "ComplianceAssetId",
        "ID",
        "Modified",
        "Created",
        "AuthorId",
        "EditorId",
        "OData__UIVersionString",
        "Attachments",
        "GUID",
    }
)
_enc = encode_basestring  # JSON string literal, exactly as the encoder writes it (C)


def _enc_value(value: Any) -> str:
    """One JSON value exactly as `odata.dumps_text` writes it, without its per-call set-up."""
    t = type(value)
    if t is str:
        return _enc(value)
    if value is None:
        return "null"
    if t is int:
        return int.__repr__(value)
    if t is bool:
        return "true" if value else "false"
    return odata.dumps_text(value)


def _item_layout(request: Request, lst: SPList) -> _ItemLayout:
    key = f"item-layout:{lst.id}"
    found = request.context.get(key)
    if found is None:
        columns = []
        for f in lst.fields:
            if f.built_in and f.internal_name != "Title" and f.internal_name != "FileLeafRef":
                continue
            t = f.type_as_string
            if f.is_lookup:
                kind = _OTHER if f.multi else (_USER if f.is_user else _LOOKUP)
            elif t == "DateTime":
                kind = _DATE
            elif t in ("MultiChoice", "URL", "Number", "Currency"):
                kind = _OTHER
            else:
                kind = _PLAIN
            columns.append((f.internal_name, f.entity_name, kind, f))
        keys = [k + suffix for _i, k, _k, _f in columns for suffix in ("", "Id", "StringId")]
        found = _ItemLayout(
            lst.entity_type_full_name,
            "0x0100" + lst.id.replace("-", "").upper()[:32],
            tuple(columns),
            tuple(
                (f",{_enc(k)}:", f",{_enc(k + 'Id')}:", f",{_enc(k + 'StringId')}:")
                for _i, k, _k, _f in columns
            ),
            len(set(keys)) == len(keys) and not set(keys) & _FIXED_ITEM_KEYS,
        )
        request.context[key] = found
    return found


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
        if cache is not None and cache.get("base") == base and "d" in cache:
            return cache["d"]
        layout = _item_layout(request, lst)
        rel = f"Web/Lists(guid'{lst.id}')/Items({item.id})"
        uri = f"{base}/_api/{rel}"
        d: dict[str, Any] = {
            "__metadata": {
                "id": rel,
                "uri": uri,
                "etag": _etag(item),
                "type": layout.type_name,
            },
            "FirstUniqueAncestorSecurableObject": {
                "__deferred": {"uri": uri + "/FirstUniqueAncestorSecurableObject"}
            },
            "ParentList": {"__deferred": {"uri": uri + "/ParentList"}},
            "FileSystemObjectType": 1 if item.values.get("FSObjType") == 1 else 0,
            "Id": item.id,
            "ServerRedirectedEmbedUri": None,
            "ServerRedirectedEmbedUrl": "",
            "ContentTypeId": layout.content_type_id,
        }
        values = item.values
        # The field loop is the hot path of a cold page: kinds are resolved once per request
        # (`_item_layout`), and the common kinds are rendered inline; the rest as `_value_json`.
        for internal, key, kind, f in layout.columns:
            value = values.get(internal)
            if kind == _PLAIN:
                d[key] = value
            elif kind == _DATE:
                d[key] = None if value is None else iso(value)
            elif kind == _LOOKUP:
                d[key + "Id"] = value
            elif kind == _USER:
                d[key + "Id"] = value
                d[key + "StringId"] = None if value is None else str(value)
            else:
                self._value_json(site, f, value, d)
        d.update(
            {
                "ComplianceAssetId": None,
                "ID": item.id,
                "Modified": iso(item.modified),
                "Created": iso(item.created),
                "AuthorId": item.author_id,
                "EditorId": item.editor_id,
                "OData__UIVersionString": item.ui_version,
                "Attachments": bool(item.attachments),
                "GUID": item.guid,
            }
        )
        if cache is not None and cache.get("base") == base:
            cache["d"] = d
        else:
            item.cache = {"base": base, "d": d}
        return d

    def item_text(self, request: Request, site: Site, lst: SPList, item: Item) -> str:
        """`odata.dumps_text(item_json(…))` written directly as text: the cold page path.

        A cold page of 5,000 items spent most of its time building each item's dict and then
        encoding it; writing the same JSON from pre-encoded pieces takes a third of that.
        The output is byte-identical (`test_sp_paging` compares both renderings)."""
        layout = _item_layout(request, lst)
        if not layout.textable:
            return odata.dumps_text(self.item_json(request, site, lst, item))
        rel = f"Web/Lists(guid'{lst.id}')/Items({item.id})"
        uri = f"{request.site_url}/_api/{rel}"
        ident = int.__repr__(item.id)
        values = item.values
        parts = [
            '{"__metadata":{"id":',
            _enc(rel),
            ',"uri":',
            _enc(uri),
            ',"etag":',
            _enc(_etag(item)),
            ',"type":',
            _enc(layout.type_name),
            '},"FirstUniqueAncestorSecurableObject":{"__deferred":{"uri":',
            _enc(uri + "/FirstUniqueAncestorSecurableObject"),
            '}},"ParentList":{"__deferred":{"uri":',
            _enc(uri + "/ParentList"),
            '}},"FileSystemObjectType":',
            "1" if values.get("FSObjType") == 1 else "0",
            ',"Id":',
            ident,
            ',"ServerRedirectedEmbedUri":null,"ServerRedirectedEmbedUrl":"","ContentTypeId":',
            _enc(layout.content_type_id),
        ]
        add = parts.append
        for (internal, _key, kind, f), (p_key, p_id, p_string_id) in zip(
            layout.columns, layout.prefixes, strict=True
        ):
            value = values.get(internal)
            if kind == _PLAIN:
                add(p_key)
                add(_enc_value(value))
            elif kind == _DATE:
                add(p_key)
                add("null" if value is None else _enc(str(iso(value))))
            elif kind == _LOOKUP:
                add(p_id)
                add(_enc_value(value))
            elif kind == _USER:
                add(p_id)
                add(_enc_value(value))
                add(p_string_id)
                add("null" if value is None else _enc(str(value)))
            else:
                rendered: dict[str, Any] = {}
                self._value_json(site, f, value, rendered)
                for k, v in rendered.items():
                    add(f",{_enc(k)}:")
                    add(odata.dumps_text(v))
        add(',"ComplianceAssetId":null,"ID":')
        add(ident)
        add(',"Modified":')
        add(_enc(str(iso(item.modified))))
        add(',"Created":')
        add(_enc(str(iso(item.created))))
        add(',"AuthorId":')
        add(_enc_value(item.author_id))
        add(',"EditorId":')
        add(_enc_value(item.editor_id))
        add(',"OData__UIVersionString":')
        add(_enc(item.ui_version))
        add(',"Attachments":')
        add("true" if item.attachments else "false")
        add(',"GUID":')
        add(_enc_value(item.guid))
        add("}")
        return "".join(parts)

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
            if plan.expands or plan.navigation:
                out = dict(full)
        else:
            out = {"__metadata": full["__metadata"]}
            for key in plan.keys:
                if key in full:
                    out[key] = full[key]
                elif key == "HasUniqueRoleAssignments":
                    out[key] = PermissionsBackend(self.backend).has_unique(site, lst, item.id)
                elif key in SYSTEM_LOOKUPS_HIDDEN:
                    # Built-in file columns left out of the full item: FileRef is the URL.
                    out[key] = item.values.get(key)
        for name in plan.navigation + [k for k in plan.keys if k in PAGE_LESS_NAVIGATION]:
            out[name] = _deferred(full, name)  # inlined by the expansion when `$expand` names it
        for f, props in plan.expands:
            if f.internal_name == "Author":
                ident: Any = item.author_id
            elif f.internal_name == "Editor":
                ident = item.editor_id
            else:
                ident = item.values.get(f.internal_name)
            if f.multi:
                out[f.entity_name] = {
                    "results": [
                        self._expanded_once(request, site, f, i, props) for i in (ident or [])
                    ]
                }
            else:
                out[f.entity_name] = self._expanded_once(request, site, f, ident, props)
        return out

    def _light_item(
        self,
        request: Request,
        site: Site,
        lst: SPList,
        item: Item,
        plan: SelectPlan,
        memo: dict[int, Any],
    ) -> dict[str, Any]:
        """`to_light(select_item(…), "nometadata")` in one pass, for pages without navigation
        properties: no intermediate verbose dict, and each expanded person or lookup converted
        once per page. `memo` maps ids of objects that live through the request (cached item
        dicts, `_expanded_once` answers) to their light form."""
        full = self.item_json(request, site, lst, item)
        if plan.all:
            out: dict[str, Any] = odata.to_light(full, "nometadata", memo)
        else:
            out = {}
            for key in plan.keys:
                if key in full:
                    value = full[key]
                    if isinstance(value, (dict, list)):
                        value = odata.to_light(value, "nometadata", memo)
                        if value is odata.DROP:
                            continue
                    out[key] = value
                elif key == "HasUniqueRoleAssignments":
                    out[key] = PermissionsBackend(self.backend).has_unique(site, lst, item.id)
                elif key in SYSTEM_LOOKUPS_HIDDEN:
                    out[key] = item.values.get(key)
            for key in plan.keys:
                if key in PAGE_LESS_NAVIGATION:
                    out.pop(key, None)  # deferred links, which JSON light leaves out
        for f, props in plan.expands:
            if f.internal_name == "Author":
                ident: Any = item.author_id
            elif f.internal_name == "Editor":
                ident = item.editor_id
            else:
                ident = item.values.get(f.internal_name)
            if f.multi:
                out[f.entity_name] = [
                    self._light_expanded(request, site, f, i, props, memo) for i in (ident or [])
                ]
            else:
                out[f.entity_name] = self._light_expanded(request, site, f, ident, props, memo)
        return out

    def _light_expanded(
        self,
        request: Request,
        site: Site,
        f: Field,
        ident: Any,
        props: list[str],
        memo: dict[int, Any],
    ) -> Any:
        expanded = self._expanded_once(request, site, f, ident, props)
        if not (ident is None or type(ident) is int):
            return odata.to_light(expanded, "nometadata")  # not remembered: no stable id
        found = memo.get(id(expanded), odata.DROP)
        if found is odata.DROP:
            found = memo[id(expanded)] = odata.to_light(expanded, "nometadata", memo)
        return found

    def _expanded_once(
        self, request: Request, site: Site, f: Field, ident: Any, props: list[str]
    ) -> dict[str, Any]:
        """`_expanded`, remembered for the request: a page of 5,000 items names the same few
        people and lookup targets over and over (the answer is only read, never changed)."""
        if not (ident is None or type(ident) is int):
            return self._expanded(request, site, f, ident, props)
        memo = request.context.setdefault("expanded", {})
        key = (f.is_user, None if f.is_user else f.lookup_list, ident, tuple(props))
        found = memo.get(key)
        if found is None:
            found = memo[key] = self._expanded(request, site, f, ident, props)
        return found

    # ---- items ---------------------------------------------------------------------------

    def list_items(self, request: Request, m: Any) -> Response:
        site, lst = self.web.resolve_list(request, m)
        query = parse_item_query(request.query)
        fast = request.odata_format == "verbose"
        with self.backend.lock:
            page = run_item_query(self.backend, site, lst, query)
            fast = fast and not page.plan.expands and not page.plan.navigation
            # nometadata (what sync engines read) is written straight in its light form.
            light = request.odata_format == "nometadata" and not page.plan.navigation
            with gc_paused():
                if fast:
                    fragments = [
                        self._fragment(request, site, lst, it, page.plan) for it in page.items
                    ]
                elif light:
                    memo: dict[int, Any] = {}
                    rows = [
                        self._light_item(request, site, lst, it, page.plan, memo)
                        for it in page.items
                    ]
                else:
                    out = [self.select_item(request, site, lst, it, page.plan) for it in page.items]
        next_url = (
            next_link(request.site_url, lst, query, page.skiptoken) if page.skiptoken else None
        )
        if light:
            payload: dict[str, Any] = {"value": rows}
            if next_url:
                payload["odata.nextLink"] = next_url
            return Response(
                200, {"Content-Type": odata.CONTENT_TYPES["nometadata"]}, odata.dumps(payload)
            )
        if fast:
            # Hot path: per-item JSON is cached as text, so a page is one join.
            tail = f',"__next":{odata.dumps(next_url).decode()}' if next_url else ""
            body = '{"d":{"results":[' + ",".join(fragments) + "]" + tail + "}}"
            return Response(
                200, {"Content-Type": odata.CONTENT_TYPES["verbose"]}, body.encode("utf-8")
            )
        return odata.collection(
            request,
            out,
            next_url,
            type_name=f"SP.ListData.{lst.entity_type}s",
            # Lookups are expanded by `select_item`; only navigation properties are left.
            expanded=not page.plan.navigation,
        )

    def caml_items(self, request: Request, m: Any) -> Response:
        """POST …/GetItems with a CamlQuery: the items, rendered as a normal item page."""
        site, lst = self.web.resolve_list(request, m)
        body = odata.parse_json_body(request)
        query = body.get("query")
        if not isinstance(query, dict):
            raise argument_error("Value cannot be null.\r\nParameter name: query")
        position = query.get("ListItemCollectionPosition") or {}
        paging = position.get("PagingInfo") if isinstance(position, dict) else None
        select, expand = parse_select_expand(request.query)
        env = self.caml_env(request, site)
        with self.backend.lock:
            caml = parse_view_xml(lst, str(query.get("ViewXml") or "<View/>"), env)
            plan = plan_select(lst, select, expand)
            check_lookup_threshold(plan)
            items = run_caml(self.backend, site, lst, caml, paging)
            with gc_paused():
                out = [self.select_item(request, site, lst, it, plan) for it in items]
        return odata.collection(request, out, type_name=f"SP.ListData.{lst.entity_type}s")

    def caml_env(self, request: Request, site: Site) -> CamlEnv:
        """The context relative CAML values (`<Today/>`, `<Membership>`) are evaluated in."""
        security = PermissionsBackend(self.backend).security(site)
        return CamlEnv(
            now=dt.datetime.fromtimestamp(self.backend.now(), dt.UTC),
            tz=site.tz,
            user_id=self.backend.app_user(site, request.identity).id,
            groups={g.id: list(g.users) for g in security.groups.values()},
        )

    def render_list_data(self, request: Request, m: Any) -> Response:
        """POST …/RenderListDataAsStream for simple views: rows of display strings.

        SharePoint answers a plain JSON object (`Row`, `FirstRow`, `LastRow`, `RowLimit`,
        `NextHref`) whatever the Accept header. Values follow its shapes: text as is, numbers
        and dates as strings (UTC ISO with `DatesInUtc`, otherwise the site's local time), people
        as `[{id, title, email}]`, lookups as `[{lookupId, lookupValue}]`.
        """
        site, lst = self.web.resolve_list(request, m)
        body = odata.parse_json_body(request)
        params = body.get("parameters", body)
        if not isinstance(params, dict):
            params = {}
        overrides = body.get("overrideParameters") or {}
        view_id = (overrides.get("ViewId") if isinstance(overrides, dict) else None) or (
            request.query.get("View")
        )
        paging = params.get("Paging") or request.query.get("Paging")
        in_utc = bool(params.get("DatesInUtc"))
        env = self.caml_env(request, site)
        with self.backend.lock:
            # The base view: `overrideParameters.ViewId` or `?View={guid}` (what PnPjs and the
            # list UI send), else the default view. Without a `ViewXml` its query, row limit
            # and fields apply; a `ViewXml` replaces them.
            # https://learn.microsoft.com/en-us/previous-versions/office/sharepoint-server/dn775902(v=office.15)
            views = ViewsBackend(self.backend)
            base = (
                views.find(lst, view_id=str(view_id)) if view_id else views.find(lst, default=True)
            )
            view_xml = str(params.get("ViewXml") or "") or views.view_xml(base)
            caml = parse_view_xml(lst, view_xml, env)
            limit = caml.row_limit or base.row_limit
            names = caml.view_fields or list(base.fields)
            items = run_caml(self.backend, site, lst, replace(caml, row_limit=limit + 1), paging)
            more = len(items) > limit
            items = items[:limit]
            rows = [self._render_row(site, lst, it, names, in_utc) for it in items]
        first = 1
        payload: dict[str, Any] = {
            "Row": rows,
            "FirstRow": first,
            "LastRow": first + len(rows) - 1,
            "RowLimit": limit,
            "FilterLink": "?",
            "ForceNoHierarchy": "1",
        }
        if more and items:
            payload["NextHref"] = f"?Paged=TRUE&p_ID={items[-1].id}&PageFirstRow={limit + 1}"
        # A plain object (no `d` envelope) in every JSON format, typed like other answers.
        fmt = request.odata_format
        ctype = odata.CONTENT_TYPES[fmt if fmt != "atom" else "minimalmetadata"]
        return Response(200, {"Content-Type": ctype}, odata.dumps(payload))

    def _render_row(
        self, site: Site, lst: SPList, item: Item, names: list[str], in_utc: bool
    ) -> dict[str, Any]:
        alias = {"LinkTitle": "Title", "LinkTitleNoMenu": "Title", "LinkFilename": "FileLeafRef"}
        row: dict[str, Any] = {"ID": str(item.id), "UniqueId": "{" + item.guid.upper() + "}"}
        if lst.is_library:
            row["FileRef"] = item.values.get("FileRef")
            row["FileLeafRef"] = item.values.get("FileLeafRef")
        view = self.backend.row(site, lst, item)
        for name in names:
            key = alias.get(name, name)
            if key in ("DocIcon", "Edit"):
                continue
            f = lst.field_by_name(key)
            if key in ("Author", "Editor") or (f is not None and f.is_user):
                ids = (
                    [item.author_id if key == "Author" else item.editor_id]
                    if f is None or f.built_in
                    else item.values.get(f.internal_name)
                )
                ids = ids if isinstance(ids, list) else ([ids] if ids is not None else [])
                users = [site.users[i] for i in ids if i in site.users]
                row[name] = [{"id": str(u.id), "title": u.title, "email": u.email} for u in users]
                continue
            value = view.get(key) if f is not None or key in ("Created", "Modified") else None
            if f is not None and f.is_lookup:
                ids = item.values.get(f.internal_name)
                ids = ids if isinstance(ids, list) else ([ids] if ids is not None else [])
                titles = value if isinstance(value, list) else [value]
                row[name] = [
                    {"lookupId": i, "lookupValue": "" if t is None else str(t)}
                    for i, t in zip(ids, titles, strict=False)
                ]
                continue
            row[name] = self._display(site, value, in_utc)
        return row

    @staticmethod
    def _display(site: Site, value: Any, in_utc: bool) -> Any:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "Ja" if value else "Nej"
        if isinstance(value, dt.datetime):
            if in_utc:
                return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return value.astimezone(site.tz).strftime("%Y-%m-%d %H:%M")
        if isinstance(value, float):
            return str(int(value)) if value.is_integer() else str(value).replace(".", ",")
        if isinstance(value, list):
            return [str(v) for v in value]
        return str(value)

    def _fragment(
        self, request: Request, site: Site, lst: SPList, item: Item, plan: SelectPlan
    ) -> str:
        base = request.site_url
        cache = item.cache
        if cache is None or cache.get("base") != base:
            cache = item.cache = {"base": base}
        key = "*" if plan.all else ",".join(plan.keys)
        texts = cache.setdefault("text", {})
        text = texts.get(key)
        if text is None:
            if plan.all:
                text = self.item_text(request, site, lst, item)
            else:
                text = odata.dumps_text(self.select_item(request, site, lst, item, plan))
            if len(texts) < 8:
                texts[key] = text
        return text

    # ---- single item ---------------------------------------------------------------------

    def _item(self, request: Request, m: Any) -> tuple[Site, SPList, Item]:
        site, lst = self.web.resolve_list(request, m)
        return site, lst, self.backend.get_item(lst, int(m.group("iid")))

    def get_item(self, request: Request, m: Any) -> Response:
        site, lst, item = self._item(request, m)
        return self.item_response(request, site, lst, item)

    def item_response(self, request: Request, site: Site, lst: SPList, item: Item) -> Response:
        """One item with the request's `$select`/`$expand` (also a file's ListItemAllFields)."""
        select, expand = parse_select_expand(request.query)
        plan = plan_select(lst, select, expand)
        check_lookup_threshold(plan)
        obj = self.select_item(request, site, lst, item, plan)
        if plan.all:
            obj = dict(obj)
            for name in PAGE_LESS_NAVIGATION:
                obj.setdefault(name, _deferred(obj, name))
        return odata.entity(request, obj, headers={"ETag": _etag(item)})

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
        return self.update_response(request, site, lst, item)

    def update_response(self, request: Request, site: Site, lst: SPList, item: Item) -> Response:
        """MERGE/PUT of an item's values (also a file's ListItemAllFields)."""
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

    # ---- versions, system updates -------------------------------------------------------

    def _versions(self, item: Item) -> list[ItemVersion]:
        """Every version of the item, oldest first, the current one last."""
        current = ItemVersion(item.major, item.values, item.modified, item.editor_id)
        return [*(item.history or []), current]

    def version_json(
        self, request: Request, site: Site, lst: SPList, item: Item, v: ItemVersion
    ) -> dict[str, Any]:
        vid = v.major * 512
        base = f"{request.site_url}/_api/Web/Lists(guid'{lst.id}')/Items({item.id})"
        uri = f"{base}/Versions({vid})"
        d: dict[str, Any] = {
            "__metadata": {"id": uri, "uri": uri, "type": "SP.ListItemVersion"},
            "CreatedBy": {"__deferred": {"uri": f"{uri}/CreatedBy"}},
            "Fields": {"__deferred": {"uri": f"{uri}/Fields"}},
        }
        for f in lst.fields:
            if f.built_in and f.internal_name != "Title":
                continue
            self._value_json(site, f, v.values.get(f.internal_name), d)
        d.update(
            {
                "Created": iso(v.modified),
                "IsCurrentVersion": v.major == item.major,
                "VersionId": vid,
                "VersionLabel": f"{v.major}.0",
                "EditorId": v.editor_id,
            }
        )
        return d

    def item_versions(self, request: Request, m: Any) -> Response:
        site, lst, item = self._item(request, m)
        rows = [
            self.version_json(request, site, lst, item, v)
            for v in reversed(self._versions(item))  # newest first, as SharePoint lists them
        ]
        return odata.collection(request, rows, type_name="SP.ApiData.ListItemVersions")

    def item_version(self, request: Request, m: Any) -> Response:
        site, lst, item = self._item(request, m)
        g = m.groupdict()
        vid = g.get("vid") or g.get("vid2")
        if g.get("vlabel"):
            wanted = str(g["vlabel"])
        elif vid and int(vid) % 512 == 0:
            wanted = f"{int(vid) // 512}.0"
        else:
            wanted = ""
        found = next((v for v in self._versions(item) if f"{v.major}.0" == wanted), None)
        if found is None:
            raise invalid_argument("Version does not exist.", status=404)
        return odata.entity(request, self.version_json(request, site, lst, item, found))

    def system_update(self, request: Request, m: Any) -> Response:
        return self._update_mode(request, m, "system")

    def overwrite_version(self, request: Request, m: Any) -> Response:
        return self._update_mode(request, m, "overwrite")

    def _update_mode(self, request: Request, m: Any, mode: str) -> Response:
        site, lst, item = self._item(request, m)
        body = odata.parse_json_body(request)
        user = self.backend.app_user(site, request.identity)
        self.backend.update_item_mode(site, lst, item, body, user=user, mode=mode)
        return odata.no_content({"ETag": _etag(item)})

    def validate_update(self, request: Request, m: Any) -> Response:
        site, lst, item = self._item(request, m)
        body = odata.parse_json_body(request)
        form = body.get("formValues") or []
        if isinstance(form, dict):
            form = form.get("results", [])
        results = self.backend.validate_update(
            site,
            lst,
            item,
            [f for f in form if isinstance(f, dict)],
            new_document_update=bool(body.get("bNewDocumentUpdate")),
            user=self.backend.app_user(site, request.identity),
        )
        return odata.value(request, "ValidateUpdateListItem", {"results": results})

    # ---- attachments ----------------------------------------------------------------------

    def attachment_json(
        self, request: Request, site: Site, lst: SPList, item: Item, a: Attachment
    ) -> dict[str, Any]:
        base = f"{request.site_url}/_api/Web/Lists(guid'{lst.id}')/Items({item.id})"
        uri = f"{base}/AttachmentFiles('{quote(a.name.replace(chr(39), chr(39) * 2))}')"
        url = f"{lst.server_relative_url(site.path)}/Attachments/{item.id}/{a.name}"
        return {
            "__metadata": {"id": uri, "uri": uri, "type": "SP.Attachment"},
            "FileName": a.name,
            "FileNameAsPath": {"__metadata": {"type": "SP.ResourcePath"}, "DecodedUrl": a.name},
            "ServerRelativePath": {"__metadata": {"type": "SP.ResourcePath"}, "DecodedUrl": url},
            "ServerRelativeUrl": url,
        }

    def attachments(self, request: Request, m: Any) -> Response:
        site, lst, item = self._item(request, m)
        rows = [
            self.attachment_json(request, site, lst, item, a)
            for a in (item.attachments or {}).values()
        ]
        return odata.collection(request, rows, type_name="SP.ApiData.Attachments")

    def add_attachment(self, request: Request, m: Any) -> Response:
        site, lst, item = self._item(request, m)
        name = odata.unquote_literal(m.group("aname") or "") or odata.alias_path(
            request, m.group("aalias") or ""
        )
        a = self.backend.add_attachment(
            site, lst, item, name, request.body, user=self.backend.app_user(site, request.identity)
        )
        return odata.entity(request, self.attachment_json(request, site, lst, item, a))

    def _attachment(self, request: Request, m: Any) -> tuple[Site, SPList, Item, Attachment]:
        site, lst, item = self._item(request, m)
        name = odata.unquote_literal(m.group("afile"))
        found = (item.attachments or {}).get(name.lower())
        if found is None:
            raise not_found()
        return site, lst, item, found

    def attachment(self, request: Request, m: Any) -> Response:
        site, lst, item, a = self._attachment(request, m)
        return odata.entity(request, self.attachment_json(request, site, lst, item, a))

    def attachment_content(self, request: Request, m: Any) -> Response:
        _site, _lst, _item, a = self._attachment(request, m)
        return Response(200, {"Content-Type": "application/octet-stream"}, a.content)

    def delete_attachment(self, request: Request, m: Any) -> Response:
        site, lst, item, a = self._attachment(request, m)
        user = self.backend.app_user(site, request.identity)
        self.backend.delete_attachment(site, lst, item, a.name, user=user)
        return odata.empty_ok(request)

    # ---- recycle bin ---------------------------------------------------------------------

    def recycle_bin_entry(self, request: Request, entry: RecycleBinEntry) -> dict[str, Any]:
        uri = f"{request.site_url}/_api/Web/RecycleBin('{entry.id}')"
        return {
            "__metadata": {"id": uri, "uri": uri, "type": "SP.RecycleBinItem"},
            "Id": entry.id,
            "ItemType": entry.item_type,
            "ItemState": 1,  # first-stage recycle bin
            "LeafName": entry.leaf_name,
            "Title": entry.title,
            "DeletedDate": iso(entry.deleted),
            "DirName": entry.dir_name,
        }

    def recycle_bin(self, request: Request, m: Any) -> Response:
        site = self.web.site(request)
        rows = [self.recycle_bin_entry(request, e) for e in site.recycle_bin.values()]
        return odata.collection(request, rows, type_name="SP.ApiData.RecycleBinItems")

    def recycle_bin_item(self, request: Request, m: Any) -> Response:
        site = self.web.site(request)
        entry = site.recycle_bin.get(m.group("rid").lower())
        if entry is None:
            raise invalid_argument("Value does not fall within the expected range.", status=404)
        return odata.entity(request, self.recycle_bin_entry(request, entry))

    def purge(self, request: Request, m: Any) -> Response:
        """Delete one recycle-bin entry for good (its file or folder goes with it)."""
        site = self.web.site(request)
        self.backend.purge(site, [m.group("rid")])
        return odata.empty_ok(request)

    def purge_all(self, request: Request, m: Any) -> Response:
        site = self.web.site(request)
        self.backend.purge(site, list(site.recycle_bin))
        return odata.value(request, "DeleteAll", None)

    def restore(self, request: Request, m: Any) -> Response:
        site = self.web.site(request)
        self.backend.restore(
            site, m.group("rid"), user=self.backend.app_user(site, request.identity)
        )
        return odata.value(request, "Restore", None)

    # ---- change log ----------------------------------------------------------------------

    def change_json(
        self, request: Request, site: Site, lst: SPList | None, c: Change, token: str
    ) -> dict[str, Any]:
        """SP.ChangeItem, SP.ChangeList or SP.ChangeField; `token` is its scope's token."""
        common: dict[str, Any] = {
            "ChangeToken": {"__metadata": {"type": "SP.ChangeToken"}, "StringValue": token},
            "ChangeType": c.change_type,
            "SiteId": site.id,
            "Time": iso(c.time),
        }
        uri = f"{request.site_url}/_api/SP.Change{c.number}"
        if c.kind == "list":
            return {
                "__metadata": {"id": uri, "uri": uri, "type": "SP.ChangeList"},
                **common,
                "BaseTemplate": lst.base_template if lst else 0,
                "Editor": c.editor,
                "Hidden": lst.hidden if lst else False,
                "IsRecycleBinOperation": False,
                "ListId": c.list_id,
                "RootFolderUrl": lst.server_relative_url(site.path) if lst else "",
                "Title": lst.title if lst else "",
                "WebId": site.web_id,
            }
        if c.kind == "field":
            return {
                "__metadata": {"id": uri, "uri": uri, "type": "SP.ChangeField"},
                **common,
                "FieldId": c.field_id,
                "WebId": site.web_id,
            }
        assert lst is not None
        d: dict[str, Any] = {
            "__metadata": {
                "id": f"{request.site_url}/_api/SP.ChangeItem{c.number}",
                "uri": f"{request.site_url}/_api/SP.ChangeItem",
                "type": "SP.ChangeItem",
            },
            "ChangeToken": {"__metadata": {"type": "SP.ChangeToken"}, "StringValue": token},
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
        own = [c for c in site.changes if c.list_id == lst.id]
        changes = self.backend.get_changes([lst], self._query(request), "3", lst.id, own)
        rows = [
            self.change_json(request, site, lst, c, f"1;3;{lst.id};{c.ticks};{c.number}")
            for c in changes
        ]
        return odata.collection(request, rows, type_name="SP.ApiData.Changes")

    def web_changes(self, request: Request, m: Any) -> Response:
        site = self.web.site(request)
        return self._scope_changes(request, site, "2", site.web_id)

    def site_changes(self, request: Request, m: Any) -> Response:
        site = self.web.site(request)
        return self._scope_changes(request, site, "1", site.id)

    def _scope_changes(self, request: Request, site: Site, scope: str, scope_id: str) -> Response:
        """Changes of every list of the web (one web per site), with web- or site-scope tokens."""
        lists = list(site.lists.values())
        query = self._query(request)
        changes = self.backend.get_changes(lists, query, scope, scope_id, site.changes)
        rows = [
            self.change_json(
                request,
                site,
                site.lists.get(c.list_id),
                c,
                f"1;{scope};{scope_id};{c.ticks};{c.number}",
            )
            for c in changes
        ]
        return odata.collection(request, rows, type_name="SP.ApiData.Changes")
