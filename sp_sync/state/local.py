"""LocalStateStore: the embedded default, a directory (`.sp-sync/state`).

Durability: every file is written to a temp name in the same folder, flushed and fsynced, renamed
over the target with os.replace and the folder fsynced. The manifest is compared and replaced under
an flock mutex (released by the kernel if the process dies), so the compare-and-swap is atomic
between processes on this machine. The run lock is a separate lock file created with O_EXCL and
kept fresh by a heartbeat thread touching its mtime.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from sp_sync.errors import LocalDiskError, RunLockedError, StateError, TransientError
from sp_sync.state import base
from sp_sync.state.base import (
    DELTA_FILE,
    MANIFEST_NAME,
    QUALITY_FILE,
    ROWS_FILE,
    Changes,
    ListState,
    Manifest,
    RunLockLostError,
    SyncCheckpoint,
)
from sp_sync.state.delta import rows_to_write, state_from_files
from sp_sync.state.frames import frame_to_parquet_view
from sp_sync.state.hooks import crash_point

log = logging.getLogger(__name__)

_TMP_PREFIX = ".tmp-"
_LOCK_DIR = ".locks"

# Tokens of locks held by this process: a lock file naming our own pid but an unknown token was
# left by an earlier process that had the same pid (containers restart with small pids).
_LIVE_TOKENS: set[str] = set()
_LIVE_TOKENS_GUARD = threading.Lock()


def _etag(data: bytes) -> str:
    return base.sha256(data)[:32]


class LocalStateStore:
    """State in a local directory; see the module docstring for the durability rules."""

    def __init__(self, root: Path | str, *, language: str = "sv") -> None:
        self.root = Path(root)
        #: The language of this store's error messages (SP_SYNC_LANGUAGE, passed in).
        self.language = language
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / _LOCK_DIR).mkdir(exist_ok=True)
        except OSError as exc:
            raise _os_error(exc, self.root, self.language) from exc
        self._held: dict[str, LocalRunLock] = {}

    def __repr__(self) -> str:
        return f"LocalStateStore({str(self.root)!r})"

    # --- list state ------------------------------------------------------------------------

    def read_list_state(self, site: str, list_key: str) -> ListState | None:
        folder = self.root / base.list_prefix(site, list_key)
        where = f"{site} / {list_key}"
        for _attempt in range(3):
            raw = _read_or_none(folder / MANIFEST_NAME, self.language)
            if raw is None:
                return None
            manifest = Manifest.from_bytes(raw, str(folder / MANIFEST_NAME), self.language)
            gen_dir = folder / manifest.directory
            rows = _read_or_none(folder / manifest.rows_directory / ROWS_FILE, self.language)
            delta = (
                _read_or_none(gen_dir / DELTA_FILE, self.language)
                if manifest.base_directory is not None
                else None
            )
            quality = _read_or_none(gen_dir / QUALITY_FILE, self.language)
            state = state_from_files(manifest, rows, delta, quality, _etag(raw))
            if state is not None:
                return state
            # Files gone: a newer commit may have cleaned them up after we read the manifest.
            if _read_or_none(folder / MANIFEST_NAME, self.language) == raw:
                raise base.corrupt_error(self.language, where)
        raise base.corrupt_error(self.language, where)

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
        self._check_locks()
        where = f"{site} / {list_key}"
        folder = self.root / base.list_prefix(site, list_key)
        manifest_path = folder / MANIFEST_NAME
        current_raw = _read_or_none(manifest_path, self.language)
        _compare(current_raw, expected_etag, where, self.language)
        previous = (
            Manifest.from_bytes(current_raw, str(manifest_path), self.language)
            if current_raw
            else None
        )

        # Views of Arrow's buffers: the snapshot's file is hashed and written without a copy.
        rows_bytes, delta_bytes = rows_to_write(rows, changes)
        quality_bytes = frame_to_parquet_view(quality)
        manifest = base.build_manifest(
            site,
            list_key,
            previous,
            checkpoint,
            rows_bytes,
            quality_bytes,
            delta_bytes=delta_bytes,
            base=changes.since if changes is not None and delta_bytes is not None else None,
        )
        data = manifest.to_bytes()
        gen_dir = folder / manifest.directory
        try:
            gen_dir.mkdir(parents=True)
            _fsync_dir(folder)
            if delta_bytes is not None:
                _write_durably(gen_dir / DELTA_FILE, delta_bytes)
                crash_point("after-delta")
            else:
                _write_durably(gen_dir / ROWS_FILE, rows_bytes)
                crash_point("after-rows")
            _write_durably(gen_dir / QUALITY_FILE, quality_bytes)
            crash_point("after-quality")
            with self._mutex():
                _compare(
                    _read_or_none(manifest_path, self.language), expected_etag, where, self.language
                )
                crash_point("before-manifest")
                _write_durably(manifest_path, data)
                crash_point("after-manifest")
        except base.StateConflictError:
            _remove_tree(gen_dir)
            raise
        except OSError as exc:
            _remove_tree(gen_dir)
            raise _os_error(exc, folder, self.language) from exc
        self._cleanup(folder, manifest)
        log.debug("Committed state of %s generation %d", where, manifest.generation)
        return _etag(data)

    def _cleanup(self, folder: Path, manifest: Manifest) -> None:
        now = time.time()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        dirs = [(e.name, now - e.stat().st_mtime) for e in entries if e.is_dir()]
        for name in base.generations_to_delete(dirs, manifest):
            crash_point("mid-cleanup")
            _remove_tree(folder / name)
        _remove_stray_temps(folder, now)

    # --- JSON documents --------------------------------------------------------------------

    def read_json(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        path = self.root / base.check_key(key)
        raw = _read_or_none(path, self.language)
        if raw is None:
            return None, None
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateError(
                base.message(
                    self.language, f"Dokumentet {key} är skadat.", f"The document {key} is corrupt."
                )
            ) from exc
        return doc, _etag(raw)

    def write_json(
        self,
        key: str,
        doc: dict[str, Any],
        *,
        expected_etag: str | None = None,
        create_only: bool = False,
    ) -> str:
        self._check_locks()
        path = self.root / base.check_key(key)
        data = json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True, default=str).encode()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._mutex():
                current = _read_or_none(path, self.language)
                if create_only and current is not None:
                    raise base.conflict_error(self.language, key)
                if expected_etag is not None and (
                    current is None or _etag(current) != expected_etag
                ):
                    raise base.conflict_error(self.language, key)
                _write_durably(path, data)
        except OSError as exc:
            raise _os_error(exc, path, self.language) from exc
        return _etag(data)

    def delete_json(self, key: str) -> None:
        self._check_locks()
        path = self.root / base.check_key(key)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def list_keys(self, prefix: str) -> list[str]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if d != _LOCK_DIR]
            rel_dir = Path(dirpath).relative_to(self.root)
            for name in filenames:
                if name.startswith(_TMP_PREFIX):
                    continue
                key = (rel_dir / name).as_posix()
                if key.startswith(prefix):
                    out.append(key)
        return sorted(out)

    # --- locks -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str, *, ttl_seconds: float = 60) -> Iterator[LocalRunLock]:
        """Hold the run lock `name` (a lock file with a heartbeat) for the `with` block."""
        run_lock = LocalRunLock(self, name, ttl_seconds)
        run_lock.acquire()
        self._held[name] = run_lock
        try:
            yield run_lock
        finally:
            self._held.pop(name, None)
            run_lock.release()

    def _check_locks(self) -> None:
        for held in list(self._held.values()):
            held.check()

    @contextlib.contextmanager
    def _mutex(self) -> Iterator[None]:
        """A short critical section shared by every process using this directory."""
        try:
            fd = os.open(self.root / _LOCK_DIR / ".mutex", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _os_error(exc, self.root / _LOCK_DIR, self.language) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock


class LocalRunLock:
    """A lock file `<root>/.locks/<name>.lock` holding pid, host, start time and a token."""

    def __init__(self, store: LocalStateStore, name: str, ttl_seconds: float) -> None:
        self.name = name
        self.ttl_seconds = float(ttl_seconds)
        self.path = store.root / _LOCK_DIR / f"{base.site_key(name)}.lock"
        self.token = secrets.token_hex(16)
        self._store = store
        self._stop = threading.Event()
        self._lost = False
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        info = {
            "token": self.token,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "acquired_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "ttl_seconds": self.ttl_seconds,
        }
        data = json.dumps(info).encode()
        with self._store._mutex():
            try:
                self._create(data)
            except FileExistsError:
                holder = _read_lock_info(self.path)
                if not self._is_stale(holder):
                    raise RunLockedError(
                        base.locked_message(
                            self._store.language, self.name, holder.get("acquired_at")
                        )
                    ) from None
                log.warning(
                    "Taking over the stale run lock on %s (held by pid %s on %s since %s)",
                    self.name,
                    holder.get("pid"),
                    holder.get("host"),
                    holder.get("acquired_at"),
                )
                self.path.unlink()
                self._create(data)
            except OSError as exc:
                raise _os_error(exc, self.path.parent, self._store.language) from exc
        with _LIVE_TOKENS_GUARD:
            _LIVE_TOKENS.add(self.token)
        self._thread = threading.Thread(
            target=self._heartbeat, name=f"sp-sync-lock-{self.name}", daemon=True
        )
        self._thread.start()

    def _create(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            # E.g. ENOSPC after the create: an empty lock file would block every run until
            # its ttl ran out. Nothing else can hold it yet (we are inside the mutex).
            os.close(fd)
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise
        os.close(fd)

    def _is_stale(self, holder: dict[str, Any]) -> bool:
        if not holder.get("token"):
            # Lock files are written whole inside the mutex, so one without a token (empty or
            # cut short) was left by a process that failed while writing it: nobody holds it.
            return True
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return True
        pid = holder.get("pid")
        same_host = holder.get("host") == socket.gethostname()
        if same_host and isinstance(pid, int):
            if pid == os.getpid():
                with _LIVE_TOKENS_GUARD:
                    return holder.get("token") not in _LIVE_TOKENS
            # A run killed on this machine (SIGKILL, a closed laptop lid, an OOM kill) left its
            # lock behind: its process is gone, so the rerun need not wait for the ttl.
            if not _pid_alive(pid):
                return True
        # The holder's ttl governs: its heartbeat runs at a third of it.
        ttl = float(holder.get("ttl_seconds") or self.ttl_seconds)
        if age <= ttl:
            return False
        # Past the ttl: another host cannot be checked (a silent heartbeat is all we have);
        # on this host the pid is alive but the heartbeat stopped, e.g. a frozen process.
        return not same_host or not isinstance(pid, int) or not _pid_alive(pid)

    def _heartbeat(self) -> None:
        interval = max(0.05, min(self.ttl_seconds / 3, 20.0))
        while not self._stop.wait(interval):
            if _read_lock_info(self.path).get("token") != self.token:
                self._lost = True
                log.error("The run lock on %s was taken over by another run", self.name)
                return
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def check(self) -> None:
        """Raise RunLockLostError if the lock file no longer carries this run's token."""
        if self._lost or _read_lock_info(self.path).get("token") != self.token:
            self._lost = True
            raise RunLockLostError(
                base.message(
                    self._store.language,
                    f"Körningen förlorade låset på {self.name}; den avbryts utan att skriva mer.",
                    f"The run lost its lock on {self.name}; it stops without writing more.",
                )
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with _LIVE_TOKENS_GUARD:
            _LIVE_TOKENS.discard(self.token)
        with self._store._mutex():
            if _read_lock_info(self.path).get("token") == self.token:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()


# --- file helpers ------------------------------------------------------------------------------


def _read_or_none(path: Path, language: str) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    except OSError as exc:
        raise _os_error(exc, path, language) from exc


def _compare(current: bytes | None, expected_etag: str | None, where: str, language: str) -> None:
    actual = _etag(current) if current is not None else None
    if actual != expected_etag:
        raise base.conflict_error(language, where)


def _write_durably(path: Path, data: bytes | memoryview) -> None:
    """Temp file + fsync + os.replace + fsync of the folder: the target is old or new, never half."""
    tmp = path.with_name(f"{_TMP_PREFIX}{secrets.token_hex(4)}-{path.name}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        half = len(data) // 2
        _write_all(fd, memoryview(data)[:half])
        crash_point("mid-write")
        _write_all(fd, memoryview(data)[half:])
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _write_all(fd: int, view: memoryview) -> None:
    # os.write may write less than asked (a signal, a nearly full disk): continue until all is.
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_tree(folder: Path) -> None:
    if not folder.exists():
        return
    for child in folder.iterdir():
        with contextlib.suppress(OSError):
            child.unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()


def _remove_stray_temps(folder: Path, now: float) -> None:
    for path in [folder, *[p for p in folder.iterdir() if p.is_dir()]]:
        for child in path.glob(f"{_TMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                if now - child.stat().st_mtime > base.STRAY_TEMP_AGE_SECONDS:
                    child.unlink()


def _read_lock_info(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed child nobody has reaped yet still answers signal 0: treat zombies as dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


#: Disk trouble a retry cannot fix: named, with the directory, under its own exit code.
_DISK_CAUSES = {
    errno.ENOSPC: ("disken är full", "the disk is full"),
    errno.EDQUOT: ("diskkvoten är slut", "the disk quota is used up"),
    errno.EROFS: ("filsystemet är skrivskyddat", "the file system is read-only"),
    errno.EACCES: ("behörighet saknas", "permission denied"),
    errno.EPERM: ("behörighet saknas", "permission denied"),
}


def _os_error(exc: OSError, where: Path, language: str) -> StateError | TransientError:
    cause = _DISK_CAUSES.get(exc.errno or 0)
    if cause is not None:
        folder = where if where.is_dir() or not where.suffix else where.parent
        return LocalDiskError(
            base.message(
                language,
                f"Tillståndskatalogen {folder} kan inte skrivas: {cause[0]}. Inget sparat "
                "tillstånd har förlorats; åtgärda katalogen och kör igen.",
                f"The state directory {folder} cannot be written: {cause[1]}. No committed "
                "state was lost; fix the directory and run again.",
            )
        )
    if exc.errno in (errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.ETIMEDOUT):
        return TransientError(
            base.message(
                language,
                f"Tillståndskatalogen {where} svarar inte just nu; försök igen.",
                f"The state folder {where} is busy; try again.",
            )
        )
    return StateError(
        base.message(
            language,
            f"Tillståndskatalogen {where} kan inte användas: {exc.strerror}.",
            f"The state folder {where} cannot be used: {exc.strerror}.",
        )
    )
