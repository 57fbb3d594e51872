"""State store values, the StateStore protocol and what both implementations share.

A list's state is three things that must advance together: the snapshot rows, the data-quality
records and the checkpoint. Data files are written under generation-specific names first; then a
small manifest (`<site>/<list>/checkpoint.json`) naming them is replaced with a conditional write.
The manifest is the commit point: a process killed at any instant leaves either the old or the new
manifest, and both name files that exist.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import secrets
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

# The state errors live in the one error tree (sp_sync.errors); re-exported for older imports.
from sp_sync.errors import RunLockLostError as RunLockLostError
from sp_sync.errors import StateConflictError as StateConflictError
from sp_sync.errors import StateError
from sp_sync.i18n import Text

log = logging.getLogger(__name__)

MANIFEST_NAME = "checkpoint.json"
MANIFEST_FORMAT = 1
#: A manifest whose rows are a base generation's full rows file plus a delta (issue 14 goal 4).
#: Full manifests keep format 1, so a state compacted since is still read by older code.
DELTA_MANIFEST_FORMAT = 2
ROWS_FILE = "rows.parquet"
DELTA_FILE = "delta.parquet"
QUALITY_FILE = "quality.parquet"
#: Stray generations newer than the committed one are only removed after this long, because a
#: concurrent writer (one whose lock was lost) might still be about to commit them.
STRAY_GENERATION_AGE_SECONDS = 3600.0
#: Stray temp files (from a process killed mid-write) are removed after this long.
STRAY_TEMP_AGE_SECONDS = 600.0


_INVALID_KEY = Text(sv="Ogiltig tillståndsnyckel {key}.", en="Invalid state key {key}.")


def message(language: str, sv: str, en: str) -> str:
    """A message in `language` (the store's, from SP_SYNC_LANGUAGE, passed in by its owner)."""
    return Text(sv=sv, en=en).render(language)


def locked_message(language: str, name: str, since: str | None) -> str:
    """The sentence a second run sees when the lock is held."""
    when = since or message(language, "okänd tid", "an unknown time")
    return message(
        language,
        f"En annan sp-sync-körning håller låset på {name} sedan {when}; försök igen senare.",
        f"Another sp-sync run holds the lock on {name} since {when}; try again later.",
    )


@dataclass(frozen=True)
class SyncCheckpoint:
    """Where a list's sync stands: the bookmark the next run starts from."""

    change_token: str | None = None
    last_full_sync: dt.datetime | None = None
    last_sync: dt.datetime | None = None
    item_count: int = 0
    schema_version: str = ""
    list_id: str | None = None
    #: A full read interrupted by the time budget resumes after this item ID.
    resume_after_id: int | None = None
    #: Set by the store on commit: the generation of the data files this checkpoint describes.
    generation: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "change_token": self.change_token,
            "last_full_sync": _dt_to_json(self.last_full_sync),
            "last_sync": _dt_to_json(self.last_sync),
            "item_count": self.item_count,
            "schema_version": self.schema_version,
            "list_id": self.list_id,
            "resume_after_id": self.resume_after_id,
            "generation": self.generation,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SyncCheckpoint:
        return cls(
            change_token=doc.get("change_token"),
            last_full_sync=_dt_from_json(doc.get("last_full_sync")),
            last_sync=_dt_from_json(doc.get("last_sync")),
            item_count=int(doc.get("item_count", 0)),
            schema_version=str(doc.get("schema_version", "")),
            list_id=doc.get("list_id"),
            resume_after_id=doc.get("resume_after_id"),
            generation=int(doc.get("generation", 0)),
            extra=dict(doc.get("extra") or {}),
        )


@dataclass(frozen=True)
class ListState:
    """One list's committed state as read from the store."""

    checkpoint: SyncCheckpoint
    rows: pd.DataFrame
    quality: pd.DataFrame
    #: ETag/version of the manifest this was read from; pass it to `commit_list_state`.
    etag: str | None
    #: The full rows file as read (Parquet bytes), when read from the store: the base
    #: generation's when the state is base + delta. A compacting commit takes the unchanged
    #: rows' stored values from it (`frames.Reuse`) instead of converting every row again.
    rows_file: bytes | None = field(default=None, compare=False, repr=False)
    #: How the rows are stored (base file, delta), when read from the store: what an
    #: incremental commit needs to write only what changed (`Changes`, `sp_sync.state.delta`).
    stored: StoredRows | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, eq=False)
class StoredRows:
    """How a committed state's rows are stored: a base generation's full rows file and the
    rows of the state that are not verbatim rows of it (the delta, empty for a full state).

    The state's rows are the base rows whose ID is not in `dropped`, in base order, with the
    delta rows put at their positions."""

    base_directory: str
    base_sha256: str
    #: IDs of the base file's rows, in its order.
    base_ids: np.ndarray
    #: Base IDs whose row is not the base file's verbatim (edited, deleted, re-titled).
    dropped: np.ndarray
    #: IDs of the rows held in the delta file.
    delta_ids: np.ndarray
    #: (column, dtype) of the rows, in order: a delta is only written for the same columns.
    dtypes: tuple[tuple[str, str], ...]


@dataclass(frozen=True, eq=False)
class Changes:
    """What an incremental commit changed relative to the state it read (`since`):
    `fresh_ids`, the IDs fetched, added or deleted tonight; `changed_rows`, per column, the
    rows of the new frame (a boolean mask by position) whose cell may differ although the row
    is not fresh (lookup titles re-resolved). Every other cell equals the stored state's."""

    since: StoredRows
    fresh_ids: frozenset[int]
    changed_rows: Mapping[str, np.ndarray] = field(default_factory=dict)
    #: The base rows file as read (`ListState.rows_file`): a compacting commit takes the
    #: unchanged rows' stored values from it.
    base_file: bytes | None = field(default=None, repr=False)


@runtime_checkable
class RunLock(Protocol):
    """A held run lock. Renews itself in the background until released."""

    name: str

    def check(self) -> None:
        """Raise RunLockLostError if the lock expired or was taken over."""
        ...


class StateStore(Protocol):
    """Where snapshots, checkpoints, run documents and run locks live."""

    def read_list_state(self, site: str, list_key: str) -> ListState | None:
        """The committed state of a list, or None when it was never synced."""
        ...

    def commit_list_state(
        self,
        site: str,
        list_key: str,
        rows: pd.DataFrame,
        quality: pd.DataFrame,
        checkpoint: SyncCheckpoint,
        *,
        expected_etag: str | None,
        changes: Changes | None = None,
    ) -> str:
        """Make rows + quality + checkpoint the list's state atomically; return the new etag.

        `expected_etag` is the etag of the state the caller read (None: the list has no state
        yet). Raises StateConflictError when the manifest changed since. `changes` (optional)
        says which rows changed since the state read: the store then writes only those (a
        delta over the base rows file, `sp_sync.state.delta`) or, when compacting, converts
        only those; what a later read returns is the same either way.
        """
        ...

    def read_json(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        """(document, etag), or (None, None) when missing."""
        ...

    def write_json(
        self,
        key: str,
        doc: dict[str, Any],
        *,
        expected_etag: str | None = None,
        create_only: bool = False,
    ) -> str:
        """Write a JSON document, conditionally; return its new etag."""
        ...

    def delete_json(self, key: str) -> None:
        """Delete a JSON document; succeeds if it is already gone."""
        ...

    def lock(self, name: str, *, ttl_seconds: float = 60) -> AbstractContextManager[RunLock]:
        """Hold the run lock `name`; raises RunLockedError when another run holds it."""
        ...

    def list_keys(self, prefix: str) -> list[str]:
        """Keys of stored objects under `prefix` (sorted)."""
        ...


# --- keys and names ------------------------------------------------------------------------

_SAFE = re.compile(r"[^a-z0-9.\-]+")
_KEY_SEGMENT = re.compile(r"^[A-Za-z0-9._\-]+$")


def _slug(text: str) -> str:
    """A lower-case ASCII path segment; a short hash is added when information was lost."""
    folded = text.strip().lower()
    ascii_text = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode()
    slug = _SAFE.sub("-", ascii_text).strip("-.")
    if slug != folded or not slug:
        digest = hashlib.sha256(folded.encode()).hexdigest()[:8]
        slug = f"{slug}-{digest}" if slug else digest
    return slug


def site_key(site: str) -> str:
    """A safe path segment for a site: host plus the site path, e.g. `contoso.sharepoint.com_sites_team`.

    The port is left out on purpose: the state belongs to the site, not to how it was reached.
    """
    text = site.strip()
    if "://" in text:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
        path = [p for p in parts.path.split("/") if p]
        segments = [host, *path]
    else:
        segments = [p for p in text.split("/") if p]
    if not segments:
        raise StateError(
            Text(sv="En webbplatsnyckel kan inte vara tom.", en="A site key cannot be empty.")
        )
    return "_".join(_slug(s) for s in segments)


def list_key_segment(list_key: str) -> str:
    """A safe path segment for a list key (title or URL name)."""
    if not list_key.strip():
        raise StateError(
            Text(sv="En listnyckel kan inte vara tom.", en="A list key cannot be empty.")
        )
    return _slug(list_key)


def check_key(key: str) -> str:
    """Validate a document key: relative, '/'-separated, safe segments; returns it unchanged."""
    segments = key.split("/")
    if (
        not key
        or key.startswith("/")
        or any(not s or s in (".", "..") or not _KEY_SEGMENT.match(s) for s in segments)
    ):
        raise StateError(_INVALID_KEY.fill(key=repr(key)))
    return key


def list_prefix(site: str, list_key: str) -> str:
    return f"{site_key(site)}/{list_key_segment(list_key)}"


def new_generation_dir(generation: int) -> str:
    """A generation's folder name; the random part keeps two racing writers from sharing files."""
    return f"g{generation}-{secrets.token_hex(4)}"


_GEN_DIR = re.compile(r"^g(\d+)-[0-9a-f]+$")


def generation_of(dir_name: str) -> int | None:
    m = _GEN_DIR.match(dir_name)
    return int(m.group(1)) if m else None


# --- manifest ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """The commit record: which files hold the list's state and what the checkpoint says."""

    site: str
    list_key: str
    generation: int
    directory: str  # generation folder name, relative to the list prefix
    rows_sha256: str
    quality_sha256: str
    previous_directory: str | None
    committed_at: dt.datetime
    checkpoint: SyncCheckpoint
    #: A delta state: the generation folder whose full rows file (`rows_sha256`) the delta
    #: file in `directory` applies to. None: the full rows file is in `directory`.
    base_directory: str | None = None
    delta_sha256: str | None = None
    #: The base folder of the previous manifest (a reader may still be reading it).
    previous_base_directory: str | None = None

    @property
    def rows_directory(self) -> str:
        """The folder holding the full rows file this state's rows start from."""
        return self.base_directory or self.directory

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {
            "format": MANIFEST_FORMAT if self.base_directory is None else DELTA_MANIFEST_FORMAT,
            "site": self.site,
            "list_key": self.list_key,
            "generation": self.generation,
            "directory": self.directory,
            "rows": f"{self.rows_directory}/{ROWS_FILE}",
            "quality": f"{self.directory}/{QUALITY_FILE}",
            "rows_sha256": self.rows_sha256,
            "quality_sha256": self.quality_sha256,
            "previous_directory": self.previous_directory,
            "committed_at": _dt_to_json(self.committed_at),
            "checkpoint": self.checkpoint.to_json(),
        }
        if self.base_directory is not None:
            doc["base_directory"] = self.base_directory
            doc["delta"] = f"{self.directory}/{DELTA_FILE}"
            doc["delta_sha256"] = self.delta_sha256
        if self.previous_base_directory is not None:
            doc["previous_base_directory"] = self.previous_base_directory
        return json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, where: str, language: str = "sv") -> Manifest:
        try:
            doc = json.loads(data.decode("utf-8"))
            if doc.get("format") not in (MANIFEST_FORMAT, DELTA_MANIFEST_FORMAT):
                raise ValueError(f"unknown format {doc.get('format')!r}")
            committed = _dt_from_json(doc["committed_at"])
            assert committed is not None
            base_directory = None
            delta_sha256 = None
            if doc["format"] == DELTA_MANIFEST_FORMAT:
                base_directory = str(doc["base_directory"])
                delta_sha256 = str(doc["delta_sha256"])
            return cls(
                site=doc["site"],
                list_key=doc["list_key"],
                generation=int(doc["generation"]),
                directory=doc["directory"],
                rows_sha256=doc["rows_sha256"],
                quality_sha256=doc["quality_sha256"],
                previous_directory=doc.get("previous_directory"),
                committed_at=committed,
                checkpoint=SyncCheckpoint.from_json(doc["checkpoint"]),
                base_directory=base_directory,
                delta_sha256=delta_sha256,
                previous_base_directory=doc.get("previous_base_directory"),
            )
        except (ValueError, KeyError, TypeError, AssertionError, UnicodeDecodeError) as exc:
            raise StateError(
                message(
                    language,
                    f"Tillståndsfilen {where} är skadad och kan inte läsas.",
                    f"The state manifest {where} is corrupt and cannot be read.",
                )
            ) from exc


def build_manifest(
    site: str,
    list_key: str,
    previous: Manifest | None,
    checkpoint: SyncCheckpoint,
    rows_bytes: bytes | memoryview,
    quality_bytes: bytes | memoryview,
    now: dt.datetime | None = None,
    *,
    delta_bytes: bytes | memoryview | None = None,
    base: StoredRows | None = None,
) -> Manifest:
    """The manifest of the next generation. With `delta_bytes` the rows are `base`'s full rows
    file plus that delta (`rows_bytes` is then not written and may be empty)."""
    generation = (previous.generation if previous else 0) + 1
    delta = delta_bytes is not None and base is not None
    return Manifest(
        site=site,
        list_key=list_key,
        generation=generation,
        directory=new_generation_dir(generation),
        rows_sha256=base.base_sha256 if delta and base else sha256(rows_bytes),
        quality_sha256=sha256(quality_bytes),
        previous_directory=previous.directory if previous else None,
        committed_at=now or dt.datetime.now(dt.UTC),
        checkpoint=replace(checkpoint, generation=generation),
        base_directory=base.base_directory if delta and base else None,
        delta_sha256=sha256(delta_bytes) if delta_bytes is not None and delta else None,
        previous_base_directory=previous.base_directory if previous else None,
    )


def generations_to_delete(
    names_with_age: Iterator[tuple[str, float]] | list[tuple[str, float]], manifest: Manifest
) -> list[str]:
    """Generation folders that can go after `manifest` committed.

    Keep the committed and the previous generation (a reader may still be reading it), and the
    base generation whose full rows file either of them applies its delta to. Older or
    equal-numbered folders can never be committed any more (their writer's expected etag is
    stale). Newer ones may belong to a concurrent writer, so only remove them when old.
    """
    keep = {
        manifest.directory,
        manifest.previous_directory,
        manifest.base_directory,
        manifest.previous_base_directory,
    }
    out = []
    for name, age in names_with_age:
        gen = generation_of(name)
        if gen is None or name in keep:
            continue
        if gen <= manifest.generation or age > STRAY_GENERATION_AGE_SECONDS:
            out.append(name)
    return out


def sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def corrupt_error(language: str, where: str) -> StateError:
    return StateError(
        message(
            language,
            f"Tillståndet för {where} är skadat: en datafil saknas eller stämmer inte med manifestet.",
            f"The state of {where} is corrupt: a data file is missing or does not match the manifest.",
        )
    )


def conflict_error(language: str, where: str) -> StateConflictError:
    return StateConflictError(
        message(
            language,
            f"Tillståndet för {where} ändrades av en annan körning under tiden; inget skrevs över.",
            f"The state of {where} was changed by another run meanwhile; nothing was overwritten.",
        )
    )


def _dt_to_json(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise StateError(
            Text(
                sv="Tider i en kontrollpunkt måste ha en tidszon.",
                en="Checkpoint times must be timezone-aware.",
            )
        )
    return value.isoformat()


def _dt_from_json(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def redact(text: str) -> str:
    """Mask account keys, SAS signatures and registered secrets (delegates to sp_sync.redact)."""
    from sp_sync import redact as redaction

    return redaction.redact(text)
