"""Document libraries: folders, files, simple and chunked uploads, downloads and versions.

State lives in a `FileStore` held by the backend (`backend.files`); every document library (a list
with BaseTemplate 101) gets a root folder through `create_library_root`, which `install` hooks
into `Backend.on_library_created`. One route table entry per kind of request feeds a small
navigator that walks the OData path the way SharePoint resolves it
(`getFolderByServerRelativeUrl('…')/Files/add(…)`, `GetFileById('…')/startUpload(…)`, …).

Content is kept as `bytes` (a 10 MB upload is one object); an upload session collects chunks in a
`bytearray` and replaces the file's content only on `finishUpload` [doc:D11].
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .http import Request, Response, Router

__all__ = [
    "FileStore",
    "StoredFile",
    "StoredFolder",
    "create_library_root",
    "install",
    "register_routes",
]

logger = logging.getLogger(__name__)

NOT_FOUND_CODE = "-2147024894, System.IO.FileNotFoundException"
SP_EXCEPTION_CODE = "-2130575257, Microsoft.SharePoint.SPException"
ARGUMENT_CODE = "-2147024809, System.ArgumentException"
INVALID_OP_CODE = "-1, System.InvalidOperationException"
# A UIVersion is major * 512 + minor, as SharePoint stores it.
UI_VERSION_STEP = 512


class FileError(Exception):
    """A SharePoint error raised by the file store (status, "<hresult>, <type>", message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _not_found() -> FileError:
    return FileError(404, NOT_FOUND_CODE, "File Not Found.")


@dataclass(frozen=True)
class FileVersion:
    """A previous version of a file, kept when the file is overwritten."""

    version_id: int  # UIVersion: major * 512
    label: str
    created: float
    content: bytes


@dataclass
class StoredFile:
    unique_id: str
    name: str
    folder: StoredFolder
    content: bytes
    created: float
    modified: float
    major: int = 1
    etag_version: int = 1  # grows on every content or metadata change
    versions: list[FileVersion] = field(default_factory=list)
    item_id: int | None = None

    @property
    def server_relative_url(self) -> str:
        return f"{self.folder.server_relative_url}/{self.name}"

    @property
    def etag(self) -> str:
        return f'"{{{self.unique_id.upper()}}},{self.etag_version}"'


@dataclass
class StoredFolder:
    unique_id: str
    name: str
    server_relative_url: str
    library: Library | None
    parent: StoredFolder | None
    created: float
    modified: float
    folders: dict[str, StoredFolder] = field(default_factory=dict)  # lower-case name → folder
    files: dict[str, StoredFile] = field(default_factory=dict)  # lower-case name → file

    @property
    def item_count(self) -> int:
        return len(self.folders) + len(self.files)


@dataclass
class Library:
    site: str
    list_id: str
    title: str
    url_name: str  # web-relative URL of the root folder, e.g. "Shared Documents"
    root: StoredFolder


@dataclass
class UploadSession:
    upload_id: str
    file_id: str
    data: bytearray
    started: float


class FileStore:
    """All libraries, folders, files and upload sessions (guarded by the backend's lock)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.libraries: dict[tuple[str, str], Library] = {}  # (site, list id) → library
        self.files_by_id: dict[str, StoredFile] = {}
        self.folders_by_id: dict[str, StoredFolder] = {}
        self.sessions: dict[str, UploadSession] = {}

    def now(self) -> float:
        return self._clock()

    # ---- libraries --------------------------------------------------------------------------

    def create_library(
        self, site: str, site_path: str, list_id: str, title: str, url_name: str
    ) -> Library:
        key = (site.lower(), list_id.lower())
        if key in self.libraries:
            return self.libraries[key]
        now = self.now()
        root = StoredFolder(
            unique_id=str(uuid.uuid4()),
            name=url_name.split("/")[-1],
            server_relative_url=f"{site_path}/{url_name}",
            library=None,
            parent=None,
            created=now,
            modified=now,
        )
        lib = Library(site.lower(), list_id.lower(), title, url_name, root)
        root.library = lib
        self.libraries[key] = lib
        self.folders_by_id[root.unique_id] = root
        return lib

    def libraries_of(self, site: str) -> list[Library]:
        return [lib for (s, _), lib in self.libraries.items() if s == site.lower()]

    def library_by_id(self, site: str, list_id: str) -> Library | None:
        return self.libraries.get((site.lower(), list_id.strip("{}").lower()))

    def default_library(self, site: str) -> Library | None:
        libs = self.libraries_of(site)
        for lib in libs:
            if lib.url_name.lower() == "shared documents":
                return lib
        return libs[0] if libs else None

    def drop_library(self, site: str, list_id: str) -> None:
        lib = self.libraries.pop((site.lower(), list_id.lower()), None)
        if lib is not None:
            self._forget(lib.root)

    def _forget(self, folder: StoredFolder) -> None:
        self.folders_by_id.pop(folder.unique_id, None)
        for f in folder.files.values():
            self.files_by_id.pop(f.unique_id, None)
        for sub in folder.folders.values():
            self._forget(sub)

    # ---- resolution --------------------------------------------------------------------------

    def resolve_folder(self, site: str, site_path: str, url: str) -> StoredFolder | None:
        """Resolve a web- or server-relative folder URL ('' = none; not the web root)."""
        parts = self._relative_parts(site_path, url)
        if parts is None:
            return None
        for lib in sorted(self.libraries_of(site), key=lambda lb: -len(lb.url_name)):
            lib_parts = [p.lower() for p in lib.url_name.split("/")]
            if [p.lower() for p in parts[: len(lib_parts)]] == lib_parts:
                folder: StoredFolder | None = lib.root
                for name in parts[len(lib_parts) :]:
                    folder = folder.folders.get(name.lower()) if folder else None
                return folder
        return None

    def resolve_file(self, site: str, site_path: str, url: str) -> StoredFile | None:
        parts = self._relative_parts(site_path, url)
        if not parts or len(parts) < 2:
            return None
        folder = self.resolve_folder(site, site_path, "/".join(parts[:-1]))
        return folder.files.get(parts[-1].lower()) if folder else None

    @staticmethod
    def _relative_parts(site_path: str, url: str) -> list[str] | None:
        u = url.replace("\\", "/").strip()
        if re.match(r"https?://", u, re.IGNORECASE):
            u = "/" + u.split("/", 3)[3] if u.count("/") >= 3 else "/"
        if u.startswith("/"):
            if site_path and not (u.lower() + "/").startswith(site_path.lower() + "/"):
                return None
            u = u[len(site_path) :]
        parts = [p for p in u.split("/") if p]
        return parts

    # ---- folders -------------------------------------------------------------------------------

    def add_folder(self, parent: StoredFolder, name: str) -> StoredFolder:
        """Create a sub-folder (SharePoint's Folders/Add returns an existing one unchanged)."""
        names = [n for n in name.replace("\\", "/").split("/") if n]
        if not names:
            raise FileError(400, ARGUMENT_CODE, "Value does not fall within the expected range.")
        folder = parent
        for n in names:
            _check_name(n)
            existing = folder.folders.get(n.lower())
            if existing is None:
                if n.lower() in folder.files:
                    raise FileError(
                        400,
                        SP_EXCEPTION_CODE,
                        f"A file or folder with the name {folder.server_relative_url}/{n} already exists.",
                    )
                now = self.now()
                existing = StoredFolder(
                    unique_id=str(uuid.uuid4()),
                    name=n,
                    server_relative_url=f"{folder.server_relative_url}/{n}",
                    library=folder.library,
                    parent=folder,
                    created=now,
                    modified=now,
                )
                folder.folders[n.lower()] = existing
                folder.modified = now
                self.folders_by_id[existing.unique_id] = existing
            folder = existing
        return folder

    def delete_folder(self, folder: StoredFolder) -> None:
        if folder.parent is None:
            raise FileError(400, SP_EXCEPTION_CODE, "Cannot delete the root folder of a list.")
        folder.parent.folders.pop(folder.name.lower(), None)
        self._forget(folder)

    # ---- files ---------------------------------------------------------------------------------

    def add_file(
        self, folder: StoredFolder, name: str, content: bytes, *, overwrite: bool
    ) -> tuple[StoredFile, bool]:
        """Add or overwrite a file; returns (file, created). Overwrite keeps the old version."""
        _check_name(name)
        now = self.now()
        existing = folder.files.get(name.lower())
        if existing is not None:
            if not overwrite:
                raise FileError(
                    400,
                    SP_EXCEPTION_CODE,
                    f"A file with the name {existing.server_relative_url.lstrip('/')} already exists. "
                    f"It was last modified by SHAREPOINT\\app on {_http_date(existing.modified)}.",
                )
            self._replace_content(existing, bytes(content))
            return existing, False
        if name.lower() in folder.folders:
            raise FileError(
                400,
                SP_EXCEPTION_CODE,
                f"A file or folder with the name {folder.server_relative_url}/{name} already exists.",
            )
        stored = StoredFile(
            unique_id=str(uuid.uuid4()),
            name=name,
            folder=folder,
            content=bytes(content),
            created=now,
            modified=now,
        )
        folder.files[name.lower()] = stored
        folder.modified = now
        self.files_by_id[stored.unique_id] = stored
        return stored, True

    def _replace_content(self, stored: StoredFile, content: bytes) -> None:
        stored.versions.append(
            FileVersion(
                stored.major * UI_VERSION_STEP, f"{stored.major}.0", stored.modified, stored.content
            )
        )
        stored.major += 1
        stored.etag_version += 1
        stored.content = content
        stored.modified = self.now()

    def delete_file(self, stored: StoredFile) -> None:
        stored.folder.files.pop(stored.name.lower(), None)
        stored.folder.modified = self.now()
        self.files_by_id.pop(stored.unique_id, None)
        for sid in [s for s, sess in self.sessions.items() if sess.file_id == stored.unique_id]:
            self.sessions.pop(sid, None)

    # ---- chunked uploads -------------------------------------------------------------------------

    def start_upload(self, stored: StoredFile, upload_id: str, chunk: bytes) -> int:
        key = upload_id.lower()
        session = self.sessions.get(key)
        if (
            session is not None
            and session.file_id == stored.unique_id
            and bytes(session.data) == chunk
        ):
            return len(
                session.data
            )  # StartUpload is idempotent for the same id and stream [doc:D11]
        self.sessions[key] = UploadSession(key, stored.unique_id, bytearray(chunk), self.now())
        return len(chunk)

    def _session(self, stored: StoredFile, upload_id: str) -> UploadSession:
        session = self.sessions.get(upload_id.lower())
        if session is None or session.file_id != stored.unique_id:
            raise FileError(
                400,
                INVALID_OP_CODE,
                f"The upload session with id {upload_id} was not found or has already completed.",
            )
        return session

    @staticmethod
    def _check_offset(session: UploadSession, offset: int) -> None:
        if offset != len(session.data):
            raise FileError(
                400,
                ARGUMENT_CODE,
                f"The file offset {offset} does not match the number of bytes received so far "
                f"({len(session.data)}).",
            )

    def continue_upload(self, stored: StoredFile, upload_id: str, offset: int, chunk: bytes) -> int:
        session = self._session(stored, upload_id)
        self._check_offset(session, offset)
        session.data.extend(chunk)
        return len(session.data)

    def finish_upload(
        self, stored: StoredFile, upload_id: str, offset: int, chunk: bytes
    ) -> StoredFile:
        session = self._session(stored, upload_id)
        self._check_offset(session, offset)
        session.data.extend(chunk)
        del self.sessions[session.upload_id]
        self._replace_content(stored, bytes(session.data))
        return stored

    def cancel_upload(self, stored: StoredFile, upload_id: str) -> None:
        self._session(stored, upload_id)
        del self.sessions[upload_id.lower()]

    # ---- persistence --------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """JSON-serialisable state (content base64-encoded)."""

        def folder_state(folder: StoredFolder) -> dict[str, Any]:
            return {
                "unique_id": folder.unique_id,
                "name": folder.name,
                "created": folder.created,
                "modified": folder.modified,
                "folders": [folder_state(f) for f in folder.folders.values()],
                "files": [
                    {
                        "unique_id": f.unique_id,
                        "name": f.name,
                        "content": base64.b64encode(f.content).decode("ascii"),
                        "created": f.created,
                        "modified": f.modified,
                        "major": f.major,
                        "etag_version": f.etag_version,
                        "item_id": f.item_id,
                        "versions": [
                            {
                                "version_id": v.version_id,
                                "label": v.label,
                                "created": v.created,
                                "content": base64.b64encode(v.content).decode("ascii"),
                            }
                            for v in f.versions
                        ],
                    }
                    for f in folder.files.values()
                ],
            }

        return {
            "libraries": [
                {
                    "site": lib.site,
                    "list_id": lib.list_id,
                    "title": lib.title,
                    "url_name": lib.url_name,
                    "site_path": lib.root.server_relative_url[: -len(lib.url_name) - 1],
                    "root": folder_state(lib.root),
                }
                for lib in self.libraries.values()
            ]
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.libraries.clear()
        self.files_by_id.clear()
        self.folders_by_id.clear()
        self.sessions.clear()

        def fill(folder: StoredFolder, data: dict[str, Any]) -> None:
            folder.unique_id = data["unique_id"]
            folder.created = data["created"]
            folder.modified = data["modified"]
            self.folders_by_id[folder.unique_id] = folder
            for fd in data["files"]:
                stored = StoredFile(
                    unique_id=fd["unique_id"],
                    name=fd["name"],
                    folder=folder,
                    content=base64.b64decode(fd["content"]),
                    created=fd["created"],
                    modified=fd["modified"],
                    major=fd["major"],
                    etag_version=fd["etag_version"],
                    item_id=fd.get("item_id"),
                    versions=[
                        FileVersion(
                            v["version_id"],
                            v["label"],
                            v["created"],
                            base64.b64decode(v["content"]),
                        )
                        for v in fd["versions"]
                    ],
                )
                folder.files[stored.name.lower()] = stored
                self.files_by_id[stored.unique_id] = stored
            for sd in data["folders"]:
                sub = StoredFolder(
                    unique_id=sd["unique_id"],
                    name=sd["name"],
                    server_relative_url=f"{folder.server_relative_url}/{sd['name']}",
                    library=folder.library,
                    parent=folder,
                    created=sd["created"],
                    modified=sd["modified"],
                )
                folder.folders[sub.name.lower()] = sub
                fill(sub, sd)

        for ld in state.get("libraries", []):
            lib = self.create_library(
                ld["site"], ld["site_path"], ld["list_id"], ld["title"], ld["url_name"]
            )
            fill(lib.root, ld["root"])


def _check_name(name: str) -> None:
    # SharePoint Online rejects these characters in file and folder names.
    if not name or any(c in name for c in '"*:<>?/\\|') or name in (".", ".."):
        raise FileError(
            400,
            ARGUMENT_CODE,
            f"The file or folder name '{name}' contains characters that are not permitted.",
        )


# ============================================================================ backend integration


def install(backend: Any) -> FileStore:
    """Give `backend` a FileStore, hook library creation, and add roots for existing libraries."""
    store = backend.files if isinstance(getattr(backend, "files", None), FileStore) else None
    if store is None:
        store = FileStore(backend.now)
        backend.files = store
    backend.on_library_created = create_library_root
    for site in list(getattr(backend, "sites", {}).values()):
        for lst in list(site.lists.values()):
            if getattr(lst, "is_library", False):
                create_library_root(backend, site, lst)
    return store


def create_library_root(backend: Any, site: Any, lst: Any) -> None:
    """Called by the backend when a document library (BaseTemplate 101) is created."""
    store = backend.files
    if not isinstance(store, FileStore):
        store = install(backend)
    site_name = site if isinstance(site, str) else site.name
    site_path = f"/sites/{site_name}" if site_name else ""
    store.create_library(site_name, site_path, lst.id, lst.title, lst.url_name)


def _backend_list(backend: Any, lib: Library) -> tuple[Any, Any] | None:
    """(site, SPList) of a library in the backend model, or None when it is gone or not reachable."""
    try:
        site = backend.get_site(lib.site)
        lst = site.list_by_id(lib.list_id)
    except Exception:
        return None
    return (site, lst) if lst is not None else None


def _sync_item(backend: Any, stored: StoredFile, request: Request, *, created: bool) -> None:
    """Mirror a file as a list item in its library (ItemCount, change log), when the model allows."""
    lib = stored.folder.library
    if lib is None:
        return
    found = _backend_list(backend, lib)
    if found is None:
        return
    site, lst = found
    try:
        user = backend.app_user(site, request.identity)
        if created or stored.item_id is None or stored.item_id not in lst.items:
            item = backend.add_item(site, lst, {"FileLeafRef": stored.name}, user=user)
            item.values["FileRef"] = stored.server_relative_url
            item.values["FSObjType"] = 0
            stored.item_id = item.id
        else:
            item = lst.items[stored.item_id]
            backend.update_item(site, lst, item, {}, if_match=None, user=user)
    except Exception:  # the model may refuse file columns; the file itself is still stored
        logger.debug(
            "could not mirror file %s as a list item", stored.server_relative_url, exc_info=True
        )


def _drop_item(backend: Any, stored: StoredFile, request: Request) -> None:
    lib = stored.folder.library
    if lib is None or stored.item_id is None:
        return
    found = _backend_list(backend, lib)
    if found is None:
        return
    site, lst = found
    item = lst.items.get(stored.item_id)
    if item is None:
        return
    try:
        backend.delete_item(
            site, lst, item, user=backend.app_user(site, request.identity), recycle=True
        )
    except Exception:
        logger.debug("could not delete list item of %s", stored.server_relative_url, exc_info=True)


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
    rf"|lists(?:/getbytitle|/getbyid)?{_ARGS}/rootfolder))"
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
            raise FileError(400, ARGUMENT_CODE, f"Invalid path segment at '{expr[i:]}'.")
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


def _http_date(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%d %b %Y %H:%M:%S -0000")


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
    if fmt == "verbose":
        out: dict[str, Any] = {"__metadata": {"id": uri, "uri": uri, "type": type_name}}
        for name in nav:
            out[name] = {"__deferred": {"uri": f"{uri}/{name}"}}
        out.update(props)
        return out
    if fmt == "minimalmetadata":
        return {
            "odata.type": type_name,
            "odata.id": uri,
            "odata.editLink": uri.split("/_api/", 1)[-1],
            **props,
        }
    return dict(props)


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
    if request.odata_format == "verbose":
        return _json(request, {"d": entity}, headers=headers)
    if request.odata_format == "minimalmetadata":
        entity = {"odata.metadata": f"{_api(request)}/$metadata#SP.ApiData/@Element", **entity}
    return _json(request, entity, headers=headers)


def _collection(request: Request, entities: list[dict[str, Any]]) -> Response:
    if request.odata_format == "verbose":
        return _json(request, {"d": {"results": entities}})
    payload: dict[str, Any] = {"value": entities}
    if request.odata_format == "minimalmetadata":
        payload = {"odata.metadata": f"{_api(request)}/$metadata#SP.ApiData", **payload}
    return _json(request, payload)


def _scalar(request: Request, op_name: str, value: Any) -> Response:
    if request.odata_format == "verbose":
        return _json(request, {"d": {op_name: value}})
    return _json(request, {"value": value})


def _error(request: Request, exc: FileError) -> Response:
    err = {"code": exc.code, "message": {"lang": "en-US", "value": exc.message}}
    key = "error" if request.odata_format == "verbose" else "odata.error"
    return _json(request, {key: err}, status=exc.status)


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

    def __init__(self, backend: Any, request: Request) -> None:
        self.backend = backend
        self.request = request
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
                raise _not_found()
            return folder
        if low in ("getfilebyserverrelativeurl", "getfilebyserverrelativepath", "getfilebyurl"):
            url = _first(pos, named, "decodedurl", "serverrelativeurl", "url", "fileurl")
            stored = self.store.resolve_file(req.site, req.site_path, str(url or ""))
            if stored is None:
                raise _not_found()
            return stored
        if low == "getfilebyid":
            fid = str(_first(pos, named, "uniqueid", "id") or "").strip("{}").lower()
            stored = self.store.files_by_id.get(fid)
            if stored is None or (
                stored.folder.library and stored.folder.library.site != req.site.lower()
            ):
                raise _not_found()
            return stored
        if low == "getfolderbyid":
            fid = str(_first(pos, named, "uniqueid", "id") or "").strip("{}").lower()
            folder = self.store.folders_by_id.get(fid)
            if folder is None or (folder.library and folder.library.site != req.site.lower()):
                raise _not_found()
            return folder
        raise _not_found()

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
                raise _not_found()
            return lib.root, rest[1:]
        if low == "rootfolder":
            return "webroot", rest
        if low == "folders":
            return "webfolders", rest
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
                raise FileError(
                    404,
                    "-1, System.ArgumentException",
                    f"List does not exist at site with URL '{req.site_url}'.",
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
            (lb for lb in self.store.libraries_of(req.site) if lb.title.lower() == low), None
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
            if obj == "webroot":
                if low == "folders":
                    obj = "webfolders"
                    rest = rest[1:]
                    continue
                raise _not_found()
            if obj == "webfolders":
                if args is not None or (
                    len(rest) > 1 and rest[1][0].lower() in ("getbyurl", "add")
                ):
                    if args is None:
                        op, op_args = rest[1]
                        if op.lower() == "add":
                            if req.method not in ("POST", "PUT"):
                                raise FileError(405, INVALID_OP_CODE, "Method not allowed.")
                            return self._web_add_folder(
                                str(_first(*_parse_args(op_args, req)) or "")
                            )
                        rest = rest[1:]
                        args = op_args
                    url = str(_first(*_parse_args(args, req)) or "")
                    folder = self.store.resolve_folder(req.site, req.site_path, url)
                    if folder is None:
                        raise _not_found()
                    obj = folder
                    rest = rest[1:]
                    continue
                raise _not_found()
            if isinstance(obj, StoredFolder):
                if low in ("folders", "files") and args is not None:
                    child = self._child(obj, low, str(_first(*_parse_args(args, req)) or ""))
                    obj = child
                    rest = rest[1:]
                    continue
                if (
                    low in ("folders", "files")
                    and len(rest) > 1
                    and rest[1][0].lower() == "getbyurl"
                ):
                    child = self._child(obj, low, str(_first(*_parse_args(rest[1][1], req)) or ""))
                    obj = child
                    rest = rest[2:]
                    continue
                if low == "parentfolder" and len(rest) > 1:
                    if obj.parent is None:
                        raise _not_found()
                    obj = obj.parent
                    rest = rest[1:]
                    continue
                return self._folder_op(obj, rest)
            if isinstance(obj, StoredFile):
                return self._file_op(obj, rest)
            raise _not_found()
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
        raise _not_found()

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
                raise _not_found()
            return base
        found = folder.folders.get(key) if kind == "folders" else folder.files.get(key)
        if found is None:
            raise _not_found()
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
        raise _not_found()

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
                    self.store.delete_folder(folder)
                    self._touch()
                return Response(200, {"Content-Type": _content_type(req)}, b"")
            raise FileError(
                405, INVALID_OP_CODE, "The HTTP method is not allowed for this resource."
            )
        name = rest[0][0]
        low = name.lower()
        sub = rest[1:]
        if low == "recycle" and method == "POST":
            with self.backend.lock:
                self.store.delete_folder(folder)
                self._touch()
            return _scalar(req, "Recycle", str(uuid.uuid4()))
        if low == "parentfolder" and not sub:
            if folder.parent is None:
                raise _not_found()
            return _single(req, _folder_entity(req, folder.parent))
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
            elif sub[0][0].lower() == "add" and method == "POST":
                return self._add_folder(folder, str(_first(*_parse_args(sub[0][1], req)) or ""))
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
        raise FileError(
            400,
            ARGUMENT_CODE,
            f'The expression "{name}" is not supported on SP.Folder in the emulator.',
        )

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
            raise FileError(400, ARGUMENT_CODE, "The parameter url is missing.")
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
                raise _not_found()
            folder, name = parent, parts[-1]
        with self.backend.lock:
            stored, created = self.store.add_file(folder, name, req.body, overwrite=overwrite)
            _sync_item(self.backend, stored, req, created=created)
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
                    _drop_item(self.backend, stored, req)
                    self.store.delete_file(stored)
                    self._touch()
                return Response(200, {"Content-Type": _content_type(req)}, b"")
            raise FileError(
                405, INVALID_OP_CODE, "The HTTP method is not allowed for this resource."
            )
        name, args = rest[0]
        low = name.lower()
        pos, named = _parse_args(args, req)
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
                    _sync_item(self.backend, stored, req, created=False)
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
                raise FileError(400, ARGUMENT_CODE, "The parameter uploadId is missing.")
            offset_raw = named.get("fileoffset")
            with self.backend.lock:
                if low == "startupload":
                    total = self.store.start_upload(stored, upload_id, req.body)
                    return _scalar(req, "StartUpload", str(total))
                if low == "cancelupload":
                    self.store.cancel_upload(stored, upload_id)
                    return _scalar(req, "CancelUpload", None)
                if offset_raw is None:
                    raise FileError(400, ARGUMENT_CODE, "The parameter fileOffset is missing.")
                offset = int(offset_raw)
                if low == "continueupload":
                    total = self.store.continue_upload(stored, upload_id, offset, req.body)
                    return _scalar(req, "ContinueUpload", str(total))
                self.store.finish_upload(stored, upload_id, offset, req.body)
                _sync_item(self.backend, stored, req, created=False)
                self._touch()
            return _single(req, _file_entity(req, stored), headers={"ETag": stored.etag})
        if low == "recycle" and method == "POST":
            with self.backend.lock:
                _drop_item(self.backend, stored, req)
                self.store.delete_file(stored)
                self._touch()
            return _scalar(req, "Recycle", str(uuid.uuid4()))
        if (
            low in ("length", "name", "serverrelativeurl", "uniqueid", "timelastmodified")
            and method == "GET"
        ):
            props = _file_props(stored)
            key = next(k for k in props if k.lower() == low)
            return _scalar(req, key, props[key])
        raise FileError(
            400,
            ARGUMENT_CODE,
            f'The expression "{name}" is not supported on SP.File in the emulator.',
        )

    def _version_op(
        self, stored: StoredFile, rest: list[tuple[str, str | None]], _args: str | None
    ) -> Response:
        req = self.request
        pos, named = _parse_args(rest[0][1], req)
        vid = _first(pos, named, "id", "versionid")
        version = next((v for v in stored.versions if v.version_id == int(vid or -1)), None)
        if version is None:
            raise _not_found()
        if len(rest) > 1 and rest[1][0].lower() in ("$value", "openbinarystream"):
            return Response(200, {"Content-Type": "application/octet-stream"}, version.content)
        return _single(req, _version_entity(req, stored, version))

    def _check_if_match(self, stored: StoredFile) -> None:
        wanted = (self.request.header("if-match") or "*").strip()
        if wanted in ("", "*") or wanted == stored.etag:
            return
        raise FileError(
            412,
            "-2147024809, System.ArgumentException",
            f"The request ETag value '{wanted}' does not match the object's ETag value '{stored.etag}'.",
        )


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


# ============================================================================ routes


def register_routes(router: Router, backend: Any) -> None:
    """Add the folder and file routes; `backend.files` is created on first use if missing."""
    if not isinstance(getattr(backend, "files", None), FileStore):
        install(backend)

    def handler(request: Request, match: re.Match[str]) -> Response:
        try:
            return _Navigator(backend, request).handle(
                match.group("expr"), match.group("tail") or ""
            )
        except FileError as exc:
            return _error(request, exc)
        except ValueError as exc:
            return _error(request, FileError(400, ARGUMENT_CODE, str(exc)))

    up = r"/(?:startupload|continueupload|finishupload|cancelupload)" + _ARGS
    tail = _TAIL_BODY
    router.add("GET", _EXPR + rf"(?P<tail>{tail}/\$value)", handler, "files.download")
    router.add("POST", _EXPR + rf"(?P<tail>{tail}{up})", handler, "files.upload_chunk")
    router.add("POST", _EXPR + rf"(?P<tail>{tail}/files/add\w*{_ARGS})", handler, "files.add")
    router.add("*", _EXPR + rf"(?P<tail>{tail})", handler, "files.entity")
