"""`--data DIR`: the backend survives restarts as one JSON snapshot, written atomically.

The snapshot is plain JSON with tagged values (dates, bytes, tuples, sets, the model's
dataclasses). Loading it never runs code from the file: a tagged object names a class that must
be one of the emulator's own model dataclasses, and is rebuilt field by field. (It used to be a
pickle, so a crafted data directory ran code at start-up; an old pickle snapshot is ignored.)

A background thread writes the snapshot at most every `interval` seconds after a change, and
once more on shutdown; a crash therefore loses at most the last interval. The snapshot is written
to a temporary file in the same directory and renamed over the old one, so a reader never sees a
half-written file.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import logging
import os
import tempfile
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from sp_emulator import filestore, model
from sp_emulator.model import Backend

logger = logging.getLogger(__name__)

SNAPSHOT_NAME = "sp-emulator-state.json"
#: The pickle snapshots of earlier versions: never loaded (a pickle can run code).
LEGACY_SNAPSHOT_NAME = "sp-emulator-state.pickle"
FORMAT_VERSION = 2

#: The only classes a snapshot may name: the backend's own dataclasses and enums (the list
#: model and the document-library store, whose recycled files and folders are kept too).
_ALLOWED: dict[str, type] = {
    f"{module.__name__}.{name}": obj
    for module in (model, filestore)
    for name, obj in vars(module).items()
    if isinstance(obj, type)
    and obj.__module__ == module.__name__
    and (dataclasses.is_dataclass(obj) or issubclass(obj, enum.Enum))
}


class SnapshotError(ValueError):
    """The snapshot file is not a snapshot this emulator wrote."""


def encode(value: Any) -> Any:
    """A JSON-ready form of `value`, with tags for what JSON lacks."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float) and not isinstance(value, enum.Enum):
        return value
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"__map__": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, set | frozenset):
        return {"__set__": [encode(v) for v in value], "frozen": isinstance(value, frozenset)}
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dt.datetime):
        return {"__datetime__": value.isoformat()}
    if isinstance(value, dt.date):
        return {"__date__": value.isoformat()}
    if isinstance(value, dt.time):
        return {"__time__": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"__timedelta__": value.total_seconds()}
    if isinstance(value, Decimal):
        return {"__decimal__": str(value)}
    if isinstance(value, filestore.StoredFolder):
        return {"__stored_folder__": _folder_tree(value)}
    if isinstance(value, filestore.StoredFile):
        return {"__stored_file__": _file_state(value)}
    name = f"{type(value).__module__}.{type(value).__qualname__}"
    if name in _ALLOWED and isinstance(value, enum.Enum):
        return {"__enum__": name, "value": encode(value.value)}
    if name in _ALLOWED and dataclasses.is_dataclass(value):
        return {
            "__obj__": name,
            "fields": {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    raise TypeError(f"cannot persist a {name}")


# A recycled file or folder (a recycle-bin entry's `stored`) is a detached subtree whose
# parent, library and files point back at each other: it is written as a tree, and its parent
# only by id, which is all a restore needs (it looks the live folder up by that id).
def _file_state(file: filestore.StoredFile) -> dict[str, Any]:
    return {
        "unique_id": file.unique_id,
        "name": file.name,
        "folder": file.folder.unique_id,
        "content": encode(file.content),
        "created": file.created,
        "modified": file.modified,
        "major": file.major,
        "etag_version": file.etag_version,
        "versions": encode(file.versions),
        "item_id": file.item_id,
    }


def _folder_tree(folder: filestore.StoredFolder) -> dict[str, Any]:
    return {
        "unique_id": folder.unique_id,
        "name": folder.name,
        "server_relative_url": folder.server_relative_url,
        "parent": folder.parent.unique_id if folder.parent is not None else None,
        "created": folder.created,
        "modified": folder.modified,
        "folders": [_folder_tree(f) for f in folder.folders.values()],
        "files": [_file_state(f) for f in folder.files.values()],
    }


def _folder_ref(unique_id: Any) -> filestore.StoredFolder:
    return filestore.StoredFolder(
        unique_id=str(unique_id),
        name="",
        server_relative_url="",
        library=None,
        parent=None,
        created=0.0,
        modified=0.0,
    )


def _decode_file(data: dict[str, Any], folder: filestore.StoredFolder) -> filestore.StoredFile:
    return filestore.StoredFile(
        unique_id=str(data["unique_id"]),
        name=str(data["name"]),
        folder=folder,
        content=decode(data["content"]),
        created=float(data["created"]),
        modified=float(data["modified"]),
        major=int(data["major"]),
        etag_version=int(data["etag_version"]),
        versions=list(decode(data["versions"])),
        item_id=data["item_id"],
    )


def _decode_folder(
    data: dict[str, Any], parent: filestore.StoredFolder | None
) -> filestore.StoredFolder:
    folder = filestore.StoredFolder(
        unique_id=str(data["unique_id"]),
        name=str(data["name"]),
        server_relative_url=str(data["server_relative_url"]),
        library=None,
        parent=parent
        if parent is not None
        else (_folder_ref(data["parent"]) if data["parent"] is not None else None),
        created=float(data["created"]),
        modified=float(data["modified"]),
    )
    for sub in data["folders"]:
        child = _decode_folder(sub, folder)
        folder.folders[child.name.lower()] = child
    for fd in data["files"]:
        stored = _decode_file(fd, folder)
        folder.files[stored.name.lower()] = stored
    return folder


def decode(value: Any) -> Any:
    """The inverse of `encode`; raises SnapshotError for anything it did not write."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__map__" in value:
        return {_hashable(decode(k)): decode(v) for k, v in value["__map__"]}
    if "__tuple__" in value:
        return tuple(decode(v) for v in value["__tuple__"])
    if "__set__" in value:
        items = {_hashable(decode(v)) for v in value["__set__"]}
        return frozenset(items) if value.get("frozen") else items
    if "__bytes__" in value:
        return base64.b64decode(value["__bytes__"])
    if "__datetime__" in value:
        return dt.datetime.fromisoformat(value["__datetime__"])
    if "__date__" in value:
        return dt.date.fromisoformat(value["__date__"])
    if "__time__" in value:
        return dt.time.fromisoformat(value["__time__"])
    if "__timedelta__" in value:
        return dt.timedelta(seconds=float(value["__timedelta__"]))
    if "__decimal__" in value:
        return Decimal(value["__decimal__"])
    if "__enum__" in value:
        return _allowed(value["__enum__"])(decode(value["value"]))
    if "__stored_folder__" in value:
        return _decode_folder(value["__stored_folder__"], None)
    if "__stored_file__" in value:
        data = value["__stored_file__"]
        return _decode_file(data, _folder_ref(data["folder"]))
    if "__obj__" in value:
        cls = _allowed(value["__obj__"])
        fields = value.get("fields")
        if not isinstance(fields, dict):
            raise SnapshotError(f"{value['__obj__']} without fields")
        # Rebuilt without calling __init__ or __post_init__: only data reaches the object.
        obj: object = object.__new__(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        for key, raw in fields.items():
            if key not in known:
                raise SnapshotError(f"{value['__obj__']} has no field {key!r}")
            object.__setattr__(obj, key, decode(raw))
        return obj
    if any(k.startswith("__") for k in value):
        raise SnapshotError(f"unknown tag in {sorted(value)[:3]}")
    return {k: decode(v) for k, v in value.items()}


def _allowed(name: Any) -> type:
    cls = _ALLOWED.get(str(name))
    if cls is None:
        raise SnapshotError(f"the snapshot names {name!r}, which is not an emulator model type")
    return cls


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


class Persistence:
    """Loads the snapshot at start and saves it after changes (debounced) and at stop."""

    def __init__(
        self,
        backend: Backend,
        data_dir: str | os.PathLike[str],
        *,
        interval: float = 0.5,
        auth: Any = None,
    ) -> None:
        self.backend = backend
        # Apps, grants, the identity header and the signing key live in the AuthService: saved
        # with the data so a restarted emulator still accepts the tokens its clients hold.
        self.auth = auth
        self.dir = Path(data_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / SNAPSHOT_NAME
        self.interval = interval
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self) -> bool:
        legacy = self.dir / LEGACY_SNAPSHOT_NAME
        if legacy.exists():
            logger.warning(
                "ignoring %s: pickle snapshots are no longer loaded (they can run code); "
                "the emulator starts empty and writes %s",
                legacy,
                SNAPSHOT_NAME,
            )
        if not self.path.exists():
            return False
        try:
            state = decode(json.loads(self.path.read_text(encoding="utf-8")))
        except (ValueError, TypeError, KeyError) as exc:
            raise SnapshotError(f"{self.path} is not an emulator snapshot: {exc}") from exc
        if not isinstance(state, dict) or state.get("version") != FORMAT_VERSION:
            logger.warning("ignoring emulator snapshot %s with unknown version", self.path)
            return False
        b = self.backend
        with b.lock:
            b.sites = state["sites"]
            b.change_number = state["change_number"]
            b.clock.offset = state.get("clock_offset", 0.0)
            b.extensions = state.get("extensions", {})
            files_state = state.get("files")
            if files_state is not None and b.files is not None and hasattr(b.files, "load_state"):
                b.files.load_state(files_state)
            auth_state = state.get("auth")
            if (
                auth_state is not None
                and self.auth is not None
                and hasattr(self.auth, "load_state")
            ):
                self.auth.load_state(auth_state)
            for site in b.sites.values():
                for lst in site.lists.values():
                    for item in lst.items.values():
                        item.cache = None
        logger.info("loaded emulator state from %s", self.path)
        return True

    def save(self) -> None:
        b = self.backend
        with b.lock:
            files_state = (
                b.files.to_state() if b.files is not None and hasattr(b.files, "to_state") else None
            )
            auth_state = (
                self.auth.to_state()
                if self.auth is not None and hasattr(self.auth, "to_state")
                else None
            )
            state = {
                "version": FORMAT_VERSION,
                "sites": b.sites,
                "change_number": b.change_number,
                "clock_offset": b.clock.offset,
                "extensions": b.extensions,
                "files": files_state,
                "auth": auth_state,
            }
            # Rendered JSON caches are derived data; drop them from the snapshot.
            caches = []
            for site in b.sites.values():
                for lst in site.lists.values():
                    for item in lst.items.values():
                        if item.cache is not None:
                            caches.append((item, item.cache))
                            item.cache = None
            try:
                data = json.dumps(encode(state), ensure_ascii=False).encode("utf-8")
            finally:
                for item, cache in caches:
                    item.cache = cache
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".snapshot-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def mark_dirty(self) -> None:
        self._dirty.set()

    def start(self) -> None:
        self.backend.on_change = self.mark_dirty
        self._thread = threading.Thread(
            target=self._run, name="sp-emulator-persistence", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._dirty.wait(0.5) and not self._stop.is_set():
                self._stop.wait(self.interval)
                self._dirty.clear()
                try:
                    self.save()
                except Exception:
                    logger.exception("could not write the emulator snapshot")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.backend.on_change = None
        self.save()
