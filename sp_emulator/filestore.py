"""The document-library backend: folders, files, upload sessions and versions.

State lives in a `FileStore` held by the backend (`backend.files`); every document library (a list
with BaseTemplate 101) gets a root folder through `create_library_root`, which `install` hooks
into `Backend.on_library_created`. The HTTP side (`responses/files.py`) walks the OData path and
calls the store; nothing here knows about requests.

Content is kept as `bytes` (a 10 MB upload is one object); an upload session collects chunks in a
`bytearray` and replaces the file's content only on `finishUpload` (File.StartUpload, https://learn.microsoft.com/en-us/previous-versions/office/sharepoint-server/dn760924(v=office.15)).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sp_emulator.errors import (
    file_conflict,
    invalid_argument,
    invalid_operation,
)

__all__ = [
    "FileStore",
    "StoredFile",
    "StoredFolder",
    "create_library_root",
    "install",
]

logger = logging.getLogger(__name__)

# A UIVersion is major * 512 + minor, as SharePoint stores it.
UI_VERSION_STEP = 512


def _http_date(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%d %b %Y %H:%M:%S -0000")


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
            raise invalid_argument("Value does not fall within the expected range.")
        folder = parent
        for n in names:
            _check_name(n)
            existing = folder.folders.get(n.lower())
            if existing is None:
                if n.lower() in folder.files:
                    raise file_conflict(
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
            raise file_conflict("Cannot delete the root folder of a list.")
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
                raise file_conflict(
                    f"A file with the name {existing.server_relative_url.lstrip('/')} already exists. "
                    f"It was last modified by SHAREPOINT\\app on {_http_date(existing.modified)}.",
                )
            self._replace_content(existing, bytes(content))
            return existing, False
        if name.lower() in folder.folders:
            raise file_conflict(
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
            )  # StartUpload is idempotent for the same id and stream (File.StartUpload, https://learn.microsoft.com/en-us/previous-versions/office/sharepoint-server/dn760924(v=office.15))
        self.sessions[key] = UploadSession(key, stored.unique_id, bytearray(chunk), self.now())
        return len(chunk)

    def _session(self, stored: StoredFile, upload_id: str) -> UploadSession:
        session = self.sessions.get(upload_id.lower())
        if session is None or session.file_id != stored.unique_id:
            raise invalid_operation(
                f"The upload session with id {upload_id} was not found or has already completed.",
            )
        return session

    @staticmethod
    def _check_offset(session: UploadSession, offset: int) -> None:
        if offset != len(session.data):
            raise invalid_argument(
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
        raise invalid_argument(
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


def sync_item(backend: Any, stored: StoredFile, identity: Any, *, created: bool) -> None:
    """Mirror a file as a list item in its library (ItemCount, change log), when the model allows."""
    lib = stored.folder.library
    if lib is None:
        return
    found = _backend_list(backend, lib)
    if found is None:
        return
    site, lst = found
    try:
        user = backend.app_user(site, identity)
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


def drop_item(backend: Any, stored: StoredFile, identity: Any) -> None:
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
        backend.delete_item(site, lst, item, user=backend.app_user(site, identity), recycle=True)
    except Exception:
        logger.debug("could not delete list item of %s", stored.server_relative_url, exc_info=True)
