"""The document-library backend: folders, files, upload sessions and versions.

State lives in a `FileStore` held by the backend (`backend.files`); every document library (a list
with BaseTemplate 101) gets a root folder through `create_library_root`, which `install` hooks
into `Backend.on_list_created`. The HTTP side (`responses/files.py`) walks the OData path and
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
    not_found,
    not_supported,
)
from sp_emulator.model import Item, RecycleBinEntry, new_guid

__all__ = [
    "FileStore",
    "StoredFile",
    "StoredFolder",
    "create_library_root",
    "install",
]

logger = logging.getLogger(__name__)

# SP.RecycleBinItemType of recycled files and folders (list items are 3).
RECYCLED_FILE = 1
RECYCLED_FOLDER = 5
# The hidden folder of form pages every document library has; not counted in ItemCount.
FORMS_FOLDER = "Forms"
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
        hidden = 1 if self.parent is None and FORMS_FOLDER.lower() in self.folders else 0
        return len(self.folders) + len(self.files) - hidden


@dataclass
class Library:
    site: str
    list_id: str
    title: str
    url_name: str  # web-relative URL of the root folder, e.g. "Shared Documents", "Lists/T"
    root: StoredFolder
    document_library: bool = True  # False: the root folder of a generic list


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
        self.web_roots: dict[str, StoredFolder] = {}  # site → the web's root folder

    def now(self) -> float:
        return self._clock()

    # ---- libraries --------------------------------------------------------------------------

    def create_library(
        self,
        site: str,
        site_path: str,
        list_id: str,
        title: str,
        url_name: str,
        *,
        document_library: bool = True,
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
        lib = Library(site.lower(), list_id.lower(), title, url_name, root, document_library)
        root.library = lib
        self.libraries[key] = lib
        self.folders_by_id[root.unique_id] = root
        return lib

    def libraries_of(self, site: str, *, lists: bool = False) -> list[Library]:
        """Document libraries of a site (with `lists=True` also the roots of generic lists)."""
        return [
            lib
            for (s, _), lib in self.libraries.items()
            if s == site.lower() and (lists or lib.document_library)
        ]

    def library_by_id(self, site: str, list_id: str) -> Library | None:
        return self.libraries.get((site.lower(), list_id.strip("{}").lower()))

    def default_library(self, site: str) -> Library | None:
        libs = self.libraries_of(site)
        for lib in libs:
            if lib.url_name.lower() == "shared documents":
                return lib
        return libs[0] if libs else None

    def web_root(self, site: str, site_path: str) -> StoredFolder:
        """The web's root folder: every list root hangs below it (`Lists/<name>` via `Lists`).

        List roots keep `parent=None` (they are the top of their library); `parent_of` finds
        the web-level folder that holds them.
        """
        key = site.lower()
        root = self.web_roots.get(key)
        if root is None:
            now = self.now()
            root = StoredFolder(
                str(uuid.uuid4()), "", site_path or "/", None, None, created=now, modified=now
            )
            self.web_roots[key] = root
        for lib in self.libraries_of(site, lists=True):
            holder = root
            parts = lib.url_name.split("/")
            for part in parts[:-1]:
                nxt = holder.folders.get(part.lower())
                if nxt is None:
                    nxt = StoredFolder(
                        str(uuid.uuid4()),
                        part,
                        f"{holder.server_relative_url.rstrip('/')}/{part}",
                        None,
                        holder,
                        created=root.created,
                        modified=root.created,
                    )
                    holder.folders[part.lower()] = nxt
                holder = nxt
            holder.folders.setdefault(parts[-1].lower(), lib.root)
        return root

    def parent_of(self, folder: StoredFolder, site: str, site_path: str) -> StoredFolder | None:
        """The parent folder; for a list root the web-level folder holding it (None: web root)."""
        if folder.parent is not None:
            return folder.parent
        root = self.web_root(site, site_path)
        if folder is root:
            return None
        pending = [root]
        while pending:
            holder = pending.pop()
            for child in holder.folders.values():
                if child is folder:
                    return holder
                if child.library is None:
                    pending.append(child)
        return None

    def drop_library(self, site: str, list_id: str) -> None:
        lib = self.libraries.pop((site.lower(), list_id.lower()), None)
        if lib is not None:
            self._forget(lib.root)

    def remember(self, folder: StoredFolder, library: Library | None) -> None:
        """Index a folder tree again (a restored folder) and tie it to its library."""
        self.folders_by_id[folder.unique_id] = folder
        folder.library = library
        for f in folder.files.values():
            self.files_by_id[f.unique_id] = f
        for sub in folder.folders.values():
            self.remember(sub, library)

    def _forget(self, folder: StoredFolder) -> None:
        self.folders_by_id.pop(folder.unique_id, None)
        for f in folder.files.values():
            self.files_by_id.pop(f.unique_id, None)
        for sub in folder.folders.values():
            self._forget(sub)

    # ---- resolution --------------------------------------------------------------------------

    def resolve_folder(self, site: str, site_path: str, url: str) -> StoredFolder | None:
        """Resolve a web- or server-relative folder URL (the site's own URL: the web root)."""
        parts = self._relative_parts(site_path, url)
        if parts is None:
            return None
        for lib in sorted(self.libraries_of(site, lists=True), key=lambda lb: -len(lb.url_name)):
            lib_parts = [p.lower() for p in lib.url_name.split("/")]
            if [p.lower() for p in parts[: len(lib_parts)]] == lib_parts:
                folder: StoredFolder | None = lib.root
                for name in parts[len(lib_parts) :]:
                    folder = folder.folders.get(name.lower()) if folder else None
                return folder
        # Not below a list: the web's root folder or a folder of its own (e.g. `Lists`).
        node: StoredFolder | None = self.web_root(site, site_path)
        for name in parts:
            node = node.folders.get(name.lower()) if node else None
        return node

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
                    "document_library": lib.document_library,
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
                ld["site"],
                ld["site_path"],
                ld["list_id"],
                ld["title"],
                ld["url_name"],
                document_library=ld.get("document_library", True),
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
    backend.on_list_created = create_library_root
    backend.on_restore_stored = restore_stored
    for site in list(getattr(backend, "sites", {}).values()):
        for lst in list(site.lists.values()):
            create_library_root(backend, site, lst)
    return store


def create_library_root(backend: Any, site: Any, lst: Any) -> None:
    """Called by the backend when a list is created: its root folder (libraries: with Forms).

    SharePoint gives every list a root folder (`Lists/<name>` for generic lists); document
    libraries also get the hidden `Forms` folder that holds their form pages.
    """
    store = backend.files
    if not isinstance(store, FileStore):
        store = install(backend)
    site_name = site if isinstance(site, str) else site.name
    site_path = f"/sites/{site_name}" if site_name else ""
    library = bool(getattr(lst, "is_library", False))
    url = lst.url_name if library else lst.server_relative_url(site_path)[len(site_path) + 1 :]
    existed = (site_name.lower(), lst.id.lower()) in store.libraries
    lib = store.create_library(
        site_name, site_path, lst.id, lst.title, url, document_library=library
    )
    if library and not existed:
        store.add_folder(lib.root, FORMS_FOLDER)


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


def folder_item(backend: Any, folder: StoredFolder, identity: Any) -> tuple[Any, Any, Any]:
    """(site, list, item) of a folder's list item, made on first use (caller holds the lock).

    SharePoint makes every folder a list item (FSObjType 1) whose columns clients read and set
    through `ListItemAllFields`. The emulator keeps that item beside the list's rows: its id
    comes from the list's id sequence, so it never collides with an item's, and `FileRef`/
    `FileLeafRef` follow the folder when it is moved or renamed."""
    lib = folder.library
    found = _backend_list(backend, lib) if lib is not None and folder.parent is not None else None
    if found is None:
        raise not_supported("ListItemAllFields of a list's root folder", status=400)
    site, lst = found
    items = lst.folder_items if lst.folder_items is not None else {}
    lst.folder_items = items
    item = items.get(folder.unique_id)
    if item is None:
        user = backend.app_user(site, identity)
        item = Item(
            id=lst.next_id,
            values={},
            created=folder.created,
            modified=folder.modified,
            author_id=user.id,
            editor_id=user.id,
            guid=new_guid(),
        )
        lst.next_id += 1
        items[folder.unique_id] = item
    url = folder.server_relative_url
    if item.values.get("FileRef") != url:
        item.values.update({"FileLeafRef": folder.name, "FileRef": url, "FSObjType": 1})
        item.cache = None
    return site, lst, item


def _walk_files(folder: StoredFolder) -> list[StoredFile]:
    out = list(folder.files.values())
    for sub in folder.folders.values():
        out.extend(_walk_files(sub))
    return out


def recycle(backend: Any, target: StoredFile | StoredFolder, identity: Any) -> str:
    """Move a file or folder (with the list items of its files) to the site's recycle bin."""
    store: FileStore = backend.files
    if isinstance(target, StoredFolder) and target.parent is None:
        raise file_conflict("Cannot delete the root folder of a list.")
    lib = target.folder.library if isinstance(target, StoredFile) else target.library
    found = _backend_list(backend, lib) if lib is not None else None
    files = [target] if isinstance(target, StoredFile) else _walk_files(target)
    items = []
    if found is not None:
        site, lst = found
        items = [lst.items[f.item_id] for f in files if f.item_id in lst.items]
        backend.remove_items(site, lst, items, backend.app_user(site, identity))
    if isinstance(target, StoredFile):
        store.delete_file(target)
        parent_url = target.folder.server_relative_url
        item_type = RECYCLED_FILE
    else:
        parent_url = target.parent.server_relative_url if target.parent else ""
        store.delete_folder(target)
        item_type = RECYCLED_FOLDER
    if found is None:
        return str(uuid.uuid4())
    site, lst = found
    entry = RecycleBinEntry(
        id=str(uuid.uuid4()),
        list_id=lst.id,
        item=None,
        deleted=backend.now(),
        title=target.name,
        item_type=item_type,
        leaf_name=target.name,
        dir_name=parent_url.lstrip("/"),
        stored=target,
        items=tuple(items),
    )
    return str(backend.add_recycle_entry(site, entry))


def restore_stored(backend: Any, site: Any, entry: RecycleBinEntry) -> None:
    """Put a recycled file or folder back where it was (the backend restores its items)."""
    store: FileStore = backend.files
    target = entry.stored
    held_by = target.folder if isinstance(target, StoredFile) else target.parent
    # The live folder by id: after a restart (`--data`) the entry holds a copy of it.
    parent = store.folders_by_id.get(held_by.unique_id) if held_by is not None else None
    if parent is None:
        raise invalid_argument(
            f"The folder {entry.dir_name} that held {entry.leaf_name} no longer exists."
        )
    if isinstance(target, StoredFile):
        target.folder = parent
    else:
        target.parent = parent
    key = target.name.lower()
    if key in parent.files or key in parent.folders:
        raise file_conflict(
            f"A file or folder with the name {parent.server_relative_url}/{target.name} "
            "already exists."
        )
    if isinstance(target, StoredFile):
        parent.files[key] = target
        store.files_by_id[target.unique_id] = target
    else:
        parent.folders[key] = target
        store.remember(target, parent.library)
    parent.modified = store.now()


# ============================================================================ copy and move


def _destination(store: FileStore, site: str, site_path: str, url: str) -> tuple[StoredFolder, str]:
    """(parent folder, leaf name) of a destination URL (server- or web-relative)."""
    parts = FileStore._relative_parts(site_path, url) or []
    if not parts:
        raise invalid_argument("The destination URL is not valid.")
    parent = store.resolve_folder(site, site_path, "/".join(parts[:-1]))
    if parent is None:
        raise not_found()
    _check_name(parts[-1])
    return parent, parts[-1]


def _free(parent: StoredFolder, name: str, overwrite: bool) -> StoredFile | None:
    """The file a copy or move may replace; a taken name without overwrite is an error."""
    key = name.lower()
    if key in parent.folders:
        raise file_conflict(
            f"A file or folder with the name {parent.server_relative_url}/{name} already exists."
        )
    existing = parent.files.get(key)
    if existing is not None and not overwrite:
        raise file_conflict(
            f"A file with the name {existing.server_relative_url.lstrip('/')} already exists."
        )
    return existing


def _place_file(store: FileStore, stored: StoredFile, parent: StoredFolder, name: str) -> None:
    stored.folder = parent
    stored.name = name
    parent.files[name.lower()] = stored
    parent.modified = store.now()
    store.files_by_id[stored.unique_id] = stored


def _refile_item(backend: Any, stored: StoredFile, old_lib: Library | None, identity: Any) -> None:
    """Keep the file's list item in step after a move (a new library gets a new item)."""
    new_lib = stored.folder.library
    if old_lib is not None and (new_lib is None or new_lib.list_id != old_lib.list_id):
        found = _backend_list(backend, old_lib)
        if found is not None and stored.item_id in found[1].items:
            site, lst = found
            backend.remove_items(site, lst, [lst.items[stored.item_id]], None)
        stored.item_id = None
        sync_item(backend, stored, identity, created=True)
        return
    found = _backend_list(backend, new_lib) if new_lib is not None else None
    if found is not None and stored.item_id in found[1].items:
        item = found[1].items[stored.item_id]
        item.values["FileLeafRef"] = stored.name
        item.values["FileRef"] = stored.server_relative_url
        item.cache = None


def copy_file(
    backend: Any,
    stored: StoredFile,
    site: str,
    site_path: str,
    url: str,
    *,
    overwrite: bool,
    identity: Any,
) -> StoredFile:
    store: FileStore = backend.files
    parent, name = _destination(store, site, site_path, url)
    if parent is stored.folder and name.lower() == stored.name.lower():
        raise invalid_argument("The source and the destination of a copy are the same.")
    existing = _free(parent, name, overwrite)
    if existing is not None:
        store._replace_content(existing, stored.content)
        sync_item(backend, existing, identity, created=False)
        return existing
    copy, _created = store.add_file(parent, name, stored.content, overwrite=False)
    sync_item(backend, copy, identity, created=True)
    return copy


def move_file(
    backend: Any,
    stored: StoredFile,
    site: str,
    site_path: str,
    url: str,
    *,
    overwrite: bool,
    identity: Any,
) -> StoredFile:
    store: FileStore = backend.files
    parent, name = _destination(store, site, site_path, url)
    if parent is stored.folder and name.lower() == stored.name.lower():
        return stored
    existing = _free(parent, name, overwrite)
    if existing is not None:
        recycle(backend, existing, identity)
    old_lib = stored.folder.library
    stored.folder.files.pop(stored.name.lower(), None)
    stored.folder.modified = store.now()
    _place_file(store, stored, parent, name)
    _refile_item(backend, stored, old_lib, identity)
    return stored


def _rebase(folder: StoredFolder, url: str) -> None:
    folder.server_relative_url = url
    for sub in folder.folders.values():
        _rebase(sub, f"{url}/{sub.name}")


def move_folder(
    backend: Any, folder: StoredFolder, site: str, site_path: str, url: str, identity: Any
) -> StoredFolder:
    """Move (or rename) a folder with its contents, within its library or to another library
    of the site; there its files get new list items (as a file's move does), the old ones go."""
    store: FileStore = backend.files
    if folder.parent is None:
        raise file_conflict("Cannot move the root folder of a list.")
    parent, name = _destination(store, site, site_path, url)
    old_lib, new_lib = folder.library, parent.library
    if (
        new_lib is not old_lib
        and (new_lib is None or not new_lib.document_library)
        and _walk_files(folder)
    ):
        raise not_supported("Moving files into a list that is not a document library", 400)
    node: StoredFolder | None = parent
    while node is not None:
        if node is folder:
            raise invalid_argument("A folder cannot be moved into itself.")
        node = node.parent
    _free(parent, name, overwrite=False)
    if name.lower() in parent.files:
        raise file_conflict(
            f"A file with the name {parent.server_relative_url}/{name} already exists."
        )
    folder.parent.folders.pop(folder.name.lower(), None)
    folder.parent = parent
    folder.name = name
    parent.folders[name.lower()] = folder
    _rebase(folder, f"{parent.server_relative_url}/{name}")
    if new_lib is not old_lib:
        _move_folder_items(backend, folder, old_lib)
        _relibrary(folder, new_lib)
    for f in _walk_files(folder):
        _refile_item(backend, f, old_lib, identity)
    return folder


def _relibrary(folder: StoredFolder, lib: Library | None) -> None:
    folder.library = lib
    for sub in folder.folders.values():
        _relibrary(sub, lib)


def _move_folder_items(backend: Any, folder: StoredFolder, old_lib: Library | None) -> None:
    """Folders leaving a library leave its folder items behind (the target makes new ones)."""
    found = _backend_list(backend, old_lib) if old_lib is not None else None
    if found is None or not found[1].folder_items:
        return
    stack = [folder]
    while stack:
        node = stack.pop()
        found[1].folder_items.pop(node.unique_id, None)
        stack.extend(node.folders.values())


def copy_folder(
    backend: Any, folder: StoredFolder, site: str, site_path: str, url: str, identity: Any
) -> StoredFolder:
    """Copy a folder and everything below it (new ids, new list items)."""
    store: FileStore = backend.files
    parent, name = _destination(store, site, site_path, url)
    if name.lower() in parent.folders or name.lower() in parent.files:
        raise file_conflict(
            f"A file or folder with the name {parent.server_relative_url}/{name} already exists."
        )

    def clone(src: StoredFolder, into: StoredFolder, as_name: str) -> StoredFolder:
        dst = store.add_folder(into, as_name)
        for f in list(src.files.values()):
            copy, _ = store.add_file(dst, f.name, f.content, overwrite=False)
            sync_item(backend, copy, identity, created=True)
        for sub in list(src.folders.values()):
            clone(sub, dst, sub.name)
        return dst

    return clone(folder, parent, name)
