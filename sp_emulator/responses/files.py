"""Responses for folders and files: the OData path walk, uploads, downloads and versions.

SharePoint resolves a files request segment by segment (`getFolderByServerRelativeUrl('…')/
Files/add(…)`, `GetFileById('…')/startUpload(…)`, …), so the route table (`sp_emulator/urls.py`)
sends every such path to `FileResponses.handle`, and a small navigator walks the segments and
calls the `FileStore` (`sp_emulator/filestore.py`), which owns the state and the rules.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from urllib.parse import quote

from sp_emulator import odata
from sp_emulator.errors import (
    SPError,
    argument_error,
    file_etag_mismatch,
    invalid_argument,
    invalid_operation,
    not_found,
    not_supported,
)
from sp_emulator.expand import expand_deferred
from sp_emulator.filestore import (
    UI_VERSION_STEP,
    FileStore,
    FileVersion,
    Library,
    StoredFile,
    StoredFolder,
    copy_file,
    copy_folder,
    folder_item,
    install,
    move_file,
    move_folder,
    recycle,
    sync_item,
)
from sp_emulator.http import Request, Response
from sp_emulator.responses.items import ItemResponses

# ============================================================================ request parsing

_QUOTED = r"'(?:[^']|'')*'"
_ARGS = rf"\((?:{_QUOTED}|[^)'])*\)"
_ROOTS = (
    r"(?:getfolderbyserverrelativeurl|getfolderbyserverrelativepath|getfolderbyid"
    r"|getfilebyserverrelativeurl|getfilebyserverrelativepath|getfilebyid|getfilebyurl)" + _ARGS
)
_EXPR = (
    rf"/_api/(?:web|site/rootweb)/(?P<expr>(?:{_ROOTS}"
    rf"|defaultdocumentlibrary/rootfolder|rootfolder|folders"
    rf"|lists(?:/getbytitle|/getbyid)?{_ARGS}/rootfolder"
    rf"|(?:getlist|getlistbytitle){_ARGS}/rootfolder))"
)
_TAIL_BODY = r"(?:/(?:[^/'(]|" + _QUOTED + r"|\((?:" + _QUOTED + r"|[^)'])*\))*)*"


def _split_segments(expr: str) -> list[tuple[str, str | None]]:
    """`a('x/y')/b/c(1)` → [("a", "'x/y'"), ("b", None), ("c", "1")] (quotes respected)."""
    out: list[tuple[str, str | None]] = []
    i, n = 0, len(expr)
    while i < n:
        if expr[i] == "/":
            i += 1
            continue
        m = re.match(r"[$\w.]+", expr[i:])
        if not m:
            raise invalid_argument(f"Invalid path segment at '{expr[i:]}'.")
        name = m.group(0)
        i += len(name)
        args: str | None = None
        if i < n and expr[i] == "(":
            depth_start = i + 1
            j = depth_start
            while j < n and expr[j] != ")":
                if expr[j] == "'":
                    j += 1
                    while j < n:
                        if expr[j] == "'" and j + 1 < n and expr[j + 1] == "'":
                            j += 2
                            continue
                        if expr[j] == "'":
                            break
                        j += 1
                j += 1
            args = expr[depth_start:j]
            i = j + 1
        out.append((name, args))
    return out


def _parse_value(raw: str, request: Request) -> Any:
    raw = raw.strip()
    if raw.startswith("@"):
        alias = request.query.get(raw)
        return _parse_value(alias, request) if alias is not None else None
    m = re.fullmatch(r"(?:guid)?'((?:[^']|'')*)'", raw, re.IGNORECASE)
    if m:
        return m.group(1).replace("''", "'")
    if raw.startswith("{"):
        # A parameter alias holding an SP.ResourcePath: @v={"DecodedUrl": "…"}.
        try:
            obj = json.loads(raw)
        except ValueError:
            return raw
        if isinstance(obj, dict):
            return next((v for k, v in obj.items() if k.lower() == "decodedurl"), obj)
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if re.fullmatch(r"-?\d+[lL]?", raw):
        return int(raw.rstrip("lL"))
    return raw


def _parse_args(args: str | None, request: Request) -> tuple[list[Any], dict[str, Any]]:
    """Positional and named (lower-cased) parameters of `op(a='x',b=1)` or `op('x')`."""
    positional: list[Any] = []
    named: dict[str, Any] = {}
    if not args:
        return positional, named
    for part in re.findall(rf"(?:[^,']|{_QUOTED})+", args):
        m = re.fullmatch(rf"\s*([\w.]+)\s*=\s*((?:{_QUOTED}|[^']).*?)\s*", part)
        if m and not part.strip().startswith("'"):
            named[m.group(1).lower()] = _parse_value(m.group(2), request)
        else:
            positional.append(_parse_value(part, request))
    return positional, named


def _first(positional: list[Any], named: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in named:
            return named[k]
    return positional[0] if positional else None


# ============================================================================ rendering


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _api(request: Request) -> str:
    return f"{request.site_url}/_api"


def _file_uri(request: Request, stored: StoredFile) -> str:
    path = stored.server_relative_url.replace("'", "''")
    return f"{_api(request)}/Web/GetFileByServerRelativePath(decodedurl='{quote(path, safe='/')}')"


def _folder_uri(request: Request, folder: StoredFolder) -> str:
    path = folder.server_relative_url.replace("'", "''")
    return (
        f"{_api(request)}/Web/GetFolderByServerRelativePath(decodedurl='{quote(path, safe='/')}')"
    )


def _file_props(stored: StoredFile) -> dict[str, Any]:
    ui = stored.major * UI_VERSION_STEP
    return {
        "CheckInComment": "",
        "CheckOutType": 2,  # None: files are never checked out in the emulator
        "ContentTag": f"{{{stored.unique_id.upper()}}},{stored.etag_version},{stored.major}",
        "CustomizedPageStatus": 0,
        "ETag": stored.etag,
        "Exists": True,
        "ExistsAllowThrowForPolicyFailures": True,
        "ExistsWithException": True,
        "IrmEnabled": False,
        "Length": str(len(stored.content)),
        "Level": 1,
        "LinkingUri": None,
        "LinkingUrl": "",
        "MajorVersion": stored.major,
        "MinorVersion": 0,
        "Name": stored.name,
        "ServerRelativeUrl": stored.server_relative_url,
        "TimeCreated": _iso(stored.created),
        "TimeLastModified": _iso(stored.modified),
        "Title": None,
        "UIVersion": ui,
        "UIVersionLabel": f"{stored.major}.0",
        "UniqueId": stored.unique_id,
    }


def _folder_props(folder: StoredFolder) -> dict[str, Any]:
    return {
        "Exists": True,
        "ExistsAllowThrowForPolicyFailures": True,
        "ExistsWithException": True,
        "IsWOPIEnabled": False,
        "ItemCount": folder.item_count,
        "Name": folder.name,
        "ProgID": None,
        "ServerRelativeUrl": folder.server_relative_url,
        "TimeCreated": _iso(folder.created),
        "TimeLastModified": _iso(folder.modified),
        "UniqueId": folder.unique_id,
        "WelcomePage": "",
    }


_FILE_NAV = (
    "Author",
    "CheckedOutByUser",
    "ListItemAllFields",
    "LockedByUser",
    "ModifiedBy",
    "Properties",
    "Versions",
)
_FOLDER_NAV = (
    "Files",
    "ListItemAllFields",
    "ParentFolder",
    "Properties",
    "StorageMetrics",
    "Folders",
)


def _entity(
    request: Request, type_name: str, uri: str, props: dict[str, Any], nav: tuple[str, ...]
) -> dict[str, Any]:
    fmt = request.odata_format
    links: dict[str, Any] = {"__metadata": {"id": uri, "uri": uri, "type": type_name}}
    for name in nav:
        links[name] = {"__deferred": {"uri": f"{uri}/{name}"}}
    expanded: dict[str, Any] = {}
    if "$expand" in request.query:
        # Inline what each named navigation property's own URL answers (or fail with its error).
        resolved = expand_deferred(request, links)
        expanded = {k: v for k, v in resolved.items() if k in nav and "__deferred" not in v}
    if fmt in ("verbose", "atom"):
        out = {**links, **expanded}
        out.update(props)
        return out
    light = {k: odata.to_light(v, fmt) for k, v in expanded.items()}
    if fmt == "minimalmetadata":
        return {
            "odata.type": type_name,
            "odata.id": uri,
            "odata.editLink": uri.split("/_api/", 1)[-1],
            **props,
            **light,
        }
    return {**props, **light}


def _select(request: Request, props: dict[str, Any]) -> dict[str, Any]:
    select = request.query.get("$select")
    if not select or select.strip() == "*":
        return props
    wanted = {s.strip().lower() for s in select.split(",") if s.strip()}
    return {k: v for k, v in props.items() if k.lower() in wanted}


def _content_type(request: Request) -> str:
    fmt = request.odata_format
    if fmt == "verbose":
        return "application/json;odata=verbose;charset=utf-8"
    return f"application/json;odata={fmt};streaming=true;charset=utf-8"


def _json(
    request: Request, payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    out = {"Content-Type": _content_type(request)}
    out.update(headers or {})
    return Response(status, out, json.dumps(payload, ensure_ascii=False).encode("utf-8"))


def _single(
    request: Request, entity: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    if request.odata_format == "atom":
        return odata.entity(request, entity, headers=headers)
    if request.odata_format == "verbose":
        return _json(request, {"d": entity}, headers=headers)
    if request.odata_format == "minimalmetadata":
        entity = {"odata.metadata": f"{_api(request)}/$metadata#SP.ApiData/@Element", **entity}
    return _json(request, entity, headers=headers)


def _collection(request: Request, entities: list[dict[str, Any]]) -> Response:
    if request.odata_format == "atom":
        return odata.collection(request, entities)
    if request.odata_format == "verbose":
        return _json(request, {"d": {"results": entities}})
    payload: dict[str, Any] = {"value": entities}
    if request.odata_format == "minimalmetadata":
        payload = {"odata.metadata": f"{_api(request)}/$metadata#SP.ApiData", **payload}
    return _json(request, payload)


def _scalar(request: Request, op_name: str, value: Any) -> Response:
    if request.odata_format == "atom":
        return odata.value(request, op_name, value)
    if request.odata_format == "verbose":
        return _json(request, {"d": {op_name: value}})
    return _json(request, {"value": value})


def _file_entity(request: Request, stored: StoredFile) -> dict[str, Any]:
    return _entity(
        request,
        "SP.File",
        _file_uri(request, stored),
        _select(request, _file_props(stored)),
        _FILE_NAV,
    )


def _folder_entity(request: Request, folder: StoredFolder) -> dict[str, Any]:
    return _entity(
        request,
        "SP.Folder",
        _folder_uri(request, folder),
        _select(request, _folder_props(folder)),
        _FOLDER_NAV,
    )


def _version_entity(request: Request, stored: StoredFile, v: FileVersion) -> dict[str, Any]:
    rel = stored.server_relative_url
    lib = stored.folder.library
    web_rel = rel
    if lib is not None:
        site_path = lib.root.server_relative_url[: -len(lib.url_name) - 1]
        web_rel = rel[len(site_path) + 1 :]
    uri = f"{_file_uri(request, stored)}/Versions(ID={v.version_id})"
    props = {
        "CheckInComment": "",
        "Created": _iso(v.created),
        "ID": v.version_id,
        "IsCurrentVersion": False,
        "Length": str(len(v.content)),
        "Size": len(v.content),
        "Url": f"_vti_history/{v.version_id}/{web_rel}",
        "VersionLabel": v.label,
    }
    return _entity(request, "SP.FileVersion", uri, props, ("CreatedBy",))


# ============================================================================ navigation


class _Navigator:
    """Walks the segments of a files/folders request and performs the final operation."""

    def __init__(self, backend: Any, request: Request, items: ItemResponses) -> None:
        self.backend = backend
        self.request = request
        self.items = items
        store = backend.files
        if not isinstance(store, FileStore):
            store = install(backend)
        self.store: FileStore = store

    # -- roots
    def _root(self, name: str, args: str | None) -> StoredFolder | StoredFile:
        req = self.request
        pos, named = _parse_args(args, req)
        low = name.lower()
        if low in ("getfolderbyserverrelativeurl", "getfolderbyserverrelativepath"):
            url = _first(pos, named, "decodedurl", "serverrelativeurl", "url", "path")
            folder = self.store.resolve_folder(req.site, req.site_path, str(url or ""))
            if folder is None:
                raise not_found()
            return folder
        if low in ("getfilebyserverrelativeurl", "getfilebyserverrelativepath", "getfilebyurl"):
            url = _first(pos, named, "decodedurl", "serverrelativeurl", "url", "fileurl")
            stored = self.store.resolve_file(req.site, req.site_path, str(url or ""))
            if stored is None:
                raise not_found()
            return stored
        if low == "getfilebyid":
            fid = str(_first(pos, named, "uniqueid", "id") or "").strip("{}").lower()
            stored = self.store.files_by_id.get(fid)
            if stored is None or (
                stored.folder.library and stored.folder.library.site != req.site.lower()
            ):
                raise not_found()
            return stored
        if low == "getfolderbyid":
            fid = str(_first(pos, named, "uniqueid", "id") or "").strip("{}").lower()
            folder = self.store.folders_by_id.get(fid)
            if folder is None or (folder.library and folder.library.site != req.site.lower()):
                raise not_found()
            return folder
        raise not_found()

    def resolve(
        self, expr: str
    ) -> tuple[StoredFolder | StoredFile | str, list[tuple[str, str | None]]]:
        """Resolve the addressing prefix; return (object, remaining segments)."""
        req = self.request
        segs = _split_segments(expr)
        head, args = segs[0]
        low = head.lower()
        rest = segs[1:]
        if low == "defaultdocumentlibrary":
            lib = self.store.default_library(req.site)
            if lib is None:
                raise not_found()
            return lib.root, rest[1:]
        if low == "rootfolder":
            return self.store.web_root(req.site, req.site_path), rest
        if low == "folders":
            return "webfolders", rest
        if low in ("getlist", "getlistbytitle"):
            value = str(_first(*_parse_args(args, req)) or "")
            if low == "getlistbytitle":
                found = self._library_by_title(value)
            else:
                site = self.backend.get_site(req.site)
                lst = site.list_by_url(value)
                found = self.store.library_by_id(req.site, lst.id) if lst is not None else None
            if found is None:
                raise not_found()
            return found.root, rest[1:]  # skip "RootFolder"
        if low == "lists":
            if args is not None:
                lib = self.store.library_by_id(req.site, str(_parse_value(args, req)))
                rest_after = rest
            else:
                op, op_args = rest[0]
                value = str(_first(*_parse_args(op_args, req)) or "")
                if op.lower() == "getbytitle":
                    lib = self._library_by_title(value)
                else:
                    lib = self.store.library_by_id(req.site, value)
                rest_after = rest[1:]
            if lib is None:
                raise argument_error(
                    f"List does not exist at site with URL '{req.site_url}'.", status=404
                )
            return lib.root, rest_after[1:]  # skip "RootFolder"
        return self._root(head, args), rest

    def _library_by_title(self, title: str) -> Library | None:
        req = self.request
        low = title.lower()
        # The model owns titles (they can be renamed); fall back to the title seen at creation.
        try:
            site = self.backend.get_site(req.site)
            lst = site.list_by_title(title)
            if lst is not None:
                return self.store.library_by_id(req.site, lst.id)
        except Exception:
            pass
        return next(
            (lb for lb in self.store.libraries_of(req.site, lists=True) if lb.title.lower() == low),
            None,
        )

    # -- dispatch
    def handle(self, expr: str, tail: str) -> Response:
        obj, rest = self.resolve(expr)
        rest += _split_segments(tail) if tail else []
        req = self.request
        # Walk sub-navigation: Folders('x'), Folders/GetByUrl('x'), Files('x'), Files/GetByUrl('x'), ParentFolder
        while rest:
            name, args = rest[0]
            low = name.lower()
            if obj == "webfolders":
                if args is not None or (
                    len(rest) > 1 and rest[1][0].lower() in ("getbyurl", "add")
                ):
                    if args is None:
                        op, op_args = rest[1]
                        if op.lower() == "add":
                            if req.method not in ("POST", "PUT"):
                                raise invalid_operation("Method not allowed.", 405)
                            return self._web_add_folder(
                                str(_first(*_parse_args(op_args, req)) or "")
                            )
                        rest = rest[1:]
                        args = op_args
                    url = str(_first(*_parse_args(args, req)) or "")
                    folder = self.store.resolve_folder(req.site, req.site_path, url)
                    if folder is None:
                        raise not_found()
                    obj = folder
                    rest = rest[1:]
                    continue
                raise not_found()
            if isinstance(obj, StoredFolder):
                if low in ("folders", "files") and args is not None:
                    child = self._child(obj, low, str(_first(*_parse_args(args, req)) or ""))
                    obj = child
                    rest = rest[1:]
                    continue
                if (
                    low in ("folders", "files")
                    and len(rest) > 1
                    and rest[1][0].lower() in ("getbyurl", "getbypath")
                ):
                    child = self._child(obj, low, str(_first(*_parse_args(rest[1][1], req)) or ""))
                    obj = child
                    rest = rest[2:]
                    continue
                if low == "parentfolder" and len(rest) > 1:
                    obj = self._parent(obj)
                    rest = rest[1:]
                    continue
                return self._folder_op(obj, rest)
            if isinstance(obj, StoredFile):
                return self._file_op(obj, rest)
            raise not_found()
        if isinstance(obj, StoredFolder):
            return self._folder_op(obj, [])
        if isinstance(obj, StoredFile):
            return self._file_op(obj, [])
        if obj == "webfolders" and req.method == "GET":
            return _collection(
                req, [_folder_entity(req, lib.root) for lib in self.store.libraries_of(req.site)]
            )
        if obj == "webfolders" and req.method == "POST":
            body = _json_body(req)
            return self._web_add_folder(str(body.get("ServerRelativeUrl") or body.get("Url") or ""))
        raise not_found()

    def _parent(self, folder: StoredFolder) -> StoredFolder:
        parent = self.store.parent_of(folder, self.request.site, self.request.site_path)
        if parent is None:
            raise not_supported("ParentFolder of the web's root folder", status=400)
        return parent

    def _child(self, folder: StoredFolder, kind: str, name: str) -> StoredFolder | StoredFile:
        key = name.strip("/").lower()
        if "/" in key:
            base = (
                self.store.resolve_folder(
                    self.request.site,
                    self.request.site_path,
                    f"{folder.server_relative_url}/{name.strip('/')}",
                )
                if kind == "folders"
                else self.store.resolve_file(
                    self.request.site,
                    self.request.site_path,
                    f"{folder.server_relative_url}/{name.strip('/')}",
                )
            )
            if base is None:
                raise not_found()
            return base
        found = folder.folders.get(key) if kind == "folders" else folder.files.get(key)
        if found is None:
            raise not_found()
        return found

    def _web_add_folder(self, url: str) -> Response:
        req = self.request
        parts = FileStore._relative_parts(req.site_path, url) or []
        with self.backend.lock:
            for lib in sorted(self.store.libraries_of(req.site), key=lambda lb: -len(lb.url_name)):
                lib_parts = [p.lower() for p in lib.url_name.split("/")]
                if [p.lower() for p in parts[: len(lib_parts)]] == lib_parts:
                    folder = lib.root
                    if parts[len(lib_parts) :]:
                        folder = self.store.add_folder(lib.root, "/".join(parts[len(lib_parts) :]))
                    self._touch()
                    return _single(req, _folder_entity(req, folder))
        raise not_found()

    def _touch(self) -> None:
        touch = getattr(self.backend, "touch", None)
        if callable(touch):
            touch()

    # -- folder operations
    def _folder_op(self, folder: StoredFolder, rest: list[tuple[str, str | None]]) -> Response:
        req = self.request
        method = req.method
        if not rest:
            if method == "GET":
                return _single(req, _folder_entity(req, folder))
            if method == "DELETE":
                with self.backend.lock:
                    recycle(self.backend, folder, req.identity)
                    self._touch()
                return Response(200, {"Content-Type": _content_type(req)}, b"")
            raise invalid_operation("The HTTP method is not allowed for this resource.", 405)
        name = rest[0][0]
        low = name.lower()
        sub = rest[1:]
        if low == "recycle" and method == "POST":
            with self.backend.lock:
                entry_id = recycle(self.backend, folder, req.identity)
                self._touch()
            return _scalar(req, "Recycle", entry_id)
        if low == "parentfolder" and not sub:
            return _single(req, _folder_entity(req, self._parent(folder)))
        if low == "listitemallfields" and not sub:
            with self.backend.lock:
                site, lst, item = folder_item(self.backend, folder, req.identity)
                if method == "GET":
                    return self.items.item_response(req, site, lst, item)
                if method in ("MERGE", "PATCH", "PUT"):
                    return self.items.update_response(req, site, lst, item)
            raise invalid_operation("The HTTP method is not allowed for this resource.", 405)
        if low == "folders":
            if not sub:
                if method == "GET":
                    return _collection(
                        req, [_folder_entity(req, f) for f in folder.folders.values()]
                    )
                if method == "POST":
                    body = _json_body(req)
                    url = str(body.get("ServerRelativeUrl") or body.get("Url") or "")
                    return self._add_folder(folder, url)
            elif sub[0][0].lower() in ("add", "addusingpath") and method == "POST":
                # Add('name') and AddUsingPath(DecodedUrl='…',Overwrite=…) both return the
                # folder; an existing folder comes back unchanged, as SharePoint does.
                pos, named = _parse_args(sub[0][1], req)
                target = _first(pos, named, "decodedurl", "url")
                if target is None:
                    target = _json_body(req).get("DecodedUrl")
                return self._add_folder(folder, str(target or ""))
        if low in ("moveto", "movetousingpath") and method == "POST" and not sub:
            pos, named = _parse_args(rest[0][1], req)
            body = {k.lower(): v for k, v in _json_body(req).items()}
            target = _first(pos, {**body, **named}, "newurl", "decodedurl")
            if not target:
                raise invalid_argument("The parameter newUrl is missing.")
            with self.backend.lock:
                move_folder(
                    self.backend, folder, req.site, req.site_path, str(target), req.identity
                )
                self._touch()
            return _scalar(req, rest[0][0], None)
        if low in ("addsubfolder", "addsubfolderusingpath") and method == "POST" and not sub:
            pos, named = _parse_args(rest[0][1], req)
            body = _json_body(req)
            leaf = _first(pos, named, "decodedurl", "leafname")
            leaf = leaf or body.get("DecodedUrl") or body.get("leafName")
            if not leaf:
                raise invalid_argument("The parameter DecodedUrl is missing.")
            with self.backend.lock:
                self.store.add_folder(folder, str(leaf))
                self._touch()
            return _scalar(req, rest[0][0], None)
        if low == "files":
            if not sub:
                if method == "GET":
                    return _collection(req, [_file_entity(req, f) for f in folder.files.values()])
            elif sub[0][0].lower() in ("add", "addusingpath") and method == "POST":
                return self._add_file(folder, sub[0][1])
        if low in ("itemcount", "name", "serverrelativeurl", "uniqueid") and method == "GET":
            props = _folder_props(folder)
            key = next(k for k in props if k.lower() == low)
            return _scalar(req, key, props[key])
        raise not_supported(f"SP.Folder/{name} ({method})", status=400)

    def _add_folder(self, parent: StoredFolder, url: str) -> Response:
        req = self.request
        target = url
        # Folders/Add accepts a name, a web-relative or a server-relative path.
        if "/" in url.strip("/") or url.startswith("/"):
            parts = FileStore._relative_parts(req.site_path, url) or []
            base = [
                p.lower()
                for p in FileStore._relative_parts(req.site_path, parent.server_relative_url) or []
            ]
            if [p.lower() for p in parts[: len(base)]] == base:
                target = "/".join(parts[len(base) :])
        with self.backend.lock:
            folder = self.store.add_folder(parent, target)
            self._touch()
        return _single(req, _folder_entity(req, folder))

    def _add_file(self, folder: StoredFolder, args: str | None) -> Response:
        req = self.request
        pos, named = _parse_args(args, req)
        name = _first(pos, named, "url", "decodedurl", "leafname")
        if not name:
            raise invalid_argument("The parameter url is missing.")
        overwrite_raw = named.get("overwrite", False)
        overwrite = (
            overwrite_raw
            if isinstance(overwrite_raw, bool)
            else str(overwrite_raw).lower() == "true"
        )
        name = str(name)
        if "/" in name:  # url may be a path below the folder, or server-relative
            parts = FileStore._relative_parts(req.site_path, name) or []
            if name.startswith("/"):
                parent = self.store.resolve_folder(
                    req.site, req.site_path, req.site_path + "/" + "/".join(parts[:-1])
                )
            else:
                parent = self.store.resolve_folder(
                    req.site, req.site_path, f"{folder.server_relative_url}/{'/'.join(parts[:-1])}"
                )
            if parent is None:
                raise not_found()
            folder, name = parent, parts[-1]
        with self.backend.lock:
            stored, created = self.store.add_file(folder, name, req.body, overwrite=overwrite)
            sync_item(self.backend, stored, req.identity, created=created)
            self._touch()
        return _single(req, _file_entity(req, stored), headers={"ETag": stored.etag})

    # -- file operations
    def _file_op(self, stored: StoredFile, rest: list[tuple[str, str | None]]) -> Response:
        req = self.request
        method = req.method
        if not rest:
            if method == "GET":
                return _single(req, _file_entity(req, stored), headers={"ETag": stored.etag})
            if method == "DELETE":
                self._check_if_match(stored)
                with self.backend.lock:
                    recycle(self.backend, stored, req.identity)
                    self._touch()
                return Response(200, {"Content-Type": _content_type(req)}, b"")
            raise invalid_operation("The HTTP method is not allowed for this resource.", 405)
        name, args = rest[0]
        low = name.lower()
        pos, named = _parse_args(args, req)
        if low == "listitemallfields" and len(rest) == 1:
            return self._list_item_all_fields(stored)
        if low in ("copyto", "copytousingpath", "moveto", "movetousingpath") and method == "POST":
            body = _json_body(req)
            params = {**{k.lower(): v for k, v in body.items()}, **named}
            target = _first(pos, params, "strnewurl", "newurl", "decodedurl")
            if not target:
                raise invalid_argument("The parameter newUrl is missing.")
            flags = params.get("flags", params.get("moveoperations", 0))
            overwrite = str(params.get("boverwrite", "")).lower() == "true" or (
                str(flags).isdigit() and int(flags) & 1 == 1
            )
            with self.backend.lock:
                op = copy_file if low.startswith("copy") else move_file
                op(
                    self.backend,
                    stored,
                    req.site,
                    req.site_path,
                    str(target),
                    overwrite=overwrite,
                    identity=req.identity,
                )
                self._touch()
            return _scalar(req, name, None)
        if low == "savebinarystream" and method == "POST":
            with self.backend.lock:
                self.store._replace_content(stored, req.body)
                sync_item(self.backend, stored, req.identity, created=False)
                self._touch()
            return _scalar(req, "SaveBinaryStream", None)
        if low in ("$value", "openbinarystream"):
            if method == "GET":
                return Response(
                    200,
                    {"Content-Type": "application/octet-stream", "ETag": stored.etag},
                    stored.content,
                )
            if method in ("PUT", "POST"):  # SaveBinaryStream
                with self.backend.lock:
                    self.store._replace_content(stored, req.body)
                    sync_item(self.backend, stored, req.identity, created=False)
                    self._touch()
                return Response(204, {"ETag": stored.etag}, b"")
        if low == "versions" and method == "GET":
            if len(rest) == 1:
                return _collection(req, [_version_entity(req, stored, v) for v in stored.versions])
            return self._version_op(stored, rest[1:], args)
        if low == "versions" and args is not None:
            return self._version_op(stored, [("getbyid", args), *rest[1:]], None)
        if (
            low in ("startupload", "continueupload", "finishupload", "cancelupload")
            and method == "POST"
        ):
            upload_id = str(_first(pos, named, "uploadid") or "")
            if not upload_id:
                body = _json_body(req)
                upload_id = str(body.get("uploadId") or body.get("uploadID") or "")
            if not upload_id:
                raise invalid_argument("The parameter uploadId is missing.")
            offset_raw = named.get("fileoffset")
            with self.backend.lock:
                if low == "startupload":
                    total = self.store.start_upload(stored, upload_id, req.body)
                    return _scalar(req, "StartUpload", str(total))
                if low == "cancelupload":
                    self.store.cancel_upload(stored, upload_id)
                    return _scalar(req, "CancelUpload", None)
                if offset_raw is None:
                    raise invalid_argument("The parameter fileOffset is missing.")
                offset = int(offset_raw)
                if low == "continueupload":
                    total = self.store.continue_upload(stored, upload_id, offset, req.body)
                    return _scalar(req, "ContinueUpload", str(total))
                self.store.finish_upload(stored, upload_id, offset, req.body)
                sync_item(self.backend, stored, req.identity, created=False)
                self._touch()
            return _single(req, _file_entity(req, stored), headers={"ETag": stored.etag})
        if low == "recycle" and method == "POST":
            with self.backend.lock:
                entry_id = recycle(self.backend, stored, req.identity)
                self._touch()
            return _scalar(req, "Recycle", entry_id)
        if (
            low in ("length", "name", "serverrelativeurl", "uniqueid", "timelastmodified")
            and method == "GET"
        ):
            props = _file_props(stored)
            key = next(k for k in props if k.lower() == low)
            return _scalar(req, key, props[key])
        raise not_supported(f"SP.File/{name} ({method})", status=400)

    def _list_item_all_fields(self, stored: StoredFile) -> Response:
        """The file's list item: read it (GET) or change its columns (MERGE/PATCH/PUT)."""
        req = self.request
        lib = stored.folder.library
        site = self.backend.get_site(req.site)
        lst = site.list_by_id(lib.list_id) if lib is not None else None
        item = lst.items.get(stored.item_id) if lst is not None and stored.item_id else None
        if lst is None or item is None:
            raise not_found()
        if req.method == "GET":
            return self.items.item_response(req, site, lst, item)
        if req.method in ("MERGE", "PATCH", "PUT"):
            return self.items.update_response(req, site, lst, item)
        raise invalid_operation("The HTTP method is not allowed for this resource.", 405)

    def _version_op(
        self, stored: StoredFile, rest: list[tuple[str, str | None]], _args: str | None
    ) -> Response:
        req = self.request
        pos, named = _parse_args(rest[0][1], req)
        vid = _first(pos, named, "id", "versionid")
        version = next((v for v in stored.versions if v.version_id == int(vid or -1)), None)
        if version is None:
            raise not_found()
        if len(rest) > 1 and rest[1][0].lower() in ("$value", "openbinarystream"):
            return Response(200, {"Content-Type": "application/octet-stream"}, version.content)
        return _single(req, _version_entity(req, stored, version))

    def _check_if_match(self, stored: StoredFile) -> None:
        wanted = (self.request.header("if-match") or "*").strip()
        if wanted in ("", "*") or wanted == stored.etag:
            return
        raise file_etag_mismatch(wanted, stored.etag)


def _json_body(request: Request) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        data = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if isinstance(data, dict) and "parameters" in data and isinstance(data["parameters"], dict):
        data = data["parameters"]
    return data if isinstance(data, dict) else {}


# ============================================================================ entry point

# The path shapes that reach `FileResponses.handle` (used by the route table in urls.py).
FILE_PATH = _EXPR + rf"(?P<tail>{_TAIL_BODY})"
FILE_DOWNLOAD_PATH = _EXPR + rf"(?P<tail>{_TAIL_BODY}/\$value)"
FILE_UPLOAD_PATH = (
    _EXPR
    + rf"(?P<tail>{_TAIL_BODY}/(?:startupload|continueupload|finishupload|cancelupload){_ARGS})"
)
FILE_ADD_PATH = _EXPR + rf"(?P<tail>{_TAIL_BODY}/files/add\w*{_ARGS})"


def _path_of(value: Any) -> str:
    """A URL from MoveCopyUtil's `srcUrl`/`destUrl` (absolute) or `srcPath` ({DecodedUrl})."""
    if isinstance(value, dict):
        value = next((v for k, v in value.items() if k.lower() == "decodedurl"), "")
    text = str(value or "")
    if "://" in text:
        text = "/" + text.split("://", 1)[1].split("/", 1)[-1]
    return text


class FileResponses:
    """Folders and files; `backend.files` is created on first use if missing."""

    def __init__(self, backend: Any, items: ItemResponses) -> None:
        self.backend = backend
        self.items = items
        if not isinstance(getattr(backend, "files", None), FileStore):
            install(backend)

    def move_copy_util(self, request: Request, match: re.Match[str]) -> Response:
        """SP.MoveCopyUtil.CopyFile/MoveFile/CopyFolder/MoveFolder (and …ByPath)."""
        op = match.group("op").lower().removesuffix("bypath")
        body = _json_body(request)
        low = {k.lower(): v for k, v in body.items()}
        src = _path_of(low.get("srcurl") or low.get("srcpath"))
        dest = _path_of(low.get("desturl") or low.get("destpath"))
        # …ByPath takes `overwrite`; CopyFile/MoveFile replace an existing file.
        overwrite = bool(low.get("overwrite", op in ("copyfile", "movefile")))
        store: FileStore = self.backend.files
        with self.backend.lock:
            if op in ("copyfile", "movefile"):
                stored = store.resolve_file(request.site, request.site_path, src)
                if stored is None:
                    raise not_found()
                fn = copy_file if op == "copyfile" else move_file
                fn(
                    self.backend,
                    stored,
                    request.site,
                    request.site_path,
                    dest,
                    overwrite=overwrite,
                    identity=request.identity,
                )
            elif op in ("copyfolder", "movefolder"):
                folder = store.resolve_folder(request.site, request.site_path, src)
                if folder is None:
                    raise not_found()
                fold = copy_folder if op == "copyfolder" else move_folder
                fold(self.backend, folder, request.site, request.site_path, dest, request.identity)
            else:
                raise not_supported(f"SP.MoveCopyUtil.{match.group('op')}", status=400)
            self.backend.touch()
        return odata.value(request, match.group("op"), None)

    def handle(self, request: Request, match: re.Match[str]) -> Response:
        try:
            return _Navigator(self.backend, request, self.items).handle(
                match.group("expr"), match.group("tail") or ""
            )
        except SPError as exc:
            return odata.error(request, exc)
        except ValueError as exc:
            return odata.error(request, invalid_argument(str(exc)))
