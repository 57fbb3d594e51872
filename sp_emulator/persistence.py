"""`--data DIR`: the backend survives restarts as one pickle snapshot, written atomically.

A background thread writes the snapshot at most every `interval` seconds after a change, and
once more on shutdown; a crash therefore loses at most the last interval. The snapshot is written
to a temporary file in the same directory and renamed over the old one, so a reader never sees a
half-written file.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import threading
from pathlib import Path
from typing import Any

from sp_emulator.model import Backend

logger = logging.getLogger(__name__)

SNAPSHOT_NAME = "sp-emulator-state.pickle"
FORMAT_VERSION = 1


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
        if not self.path.exists():
            return False
        with self.path.open("rb") as fh:
            state: dict[str, Any] = pickle.load(fh)
        if state.get("version") != FORMAT_VERSION:
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
                data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
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
