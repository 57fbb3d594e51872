"""BlobStateStore: state in an Azure Blob Storage container (the Functions app).

Blobs are uploaded atomically (a reader sees the old blob or the new one), data blobs get unique
generation names and are written create-only, and the manifest is replaced with `If-Match` on the
ETag the caller read (or `If-None-Match: *` for a list's first commit). The run lock is a 60 s
lease on a lock blob, renewed by a background thread; every state write first renews it, so a run
that lost its lease cannot write.

Every storage call (reads, writes, listings, lease renewals) is bounded by the run's deadline
(`bind_deadline`, issue 11 item 4): each attempt's connect and read timeouts are cut to the time
left (never below MIN_REQUEST_TIMEOUT, as SharePoint's requests), and the SDK's retries stop once
the backoff would end past the deadline. A commit cut short this way never deletes generation
files the manifest may already name: a timed-out manifest write may have landed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import pandas as pd
from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineRequest
from azure.storage.blob import BlobLeaseClient, BlobServiceClient, ContainerClient, ExponentialRetry

from sp_sync.errors import (
    PermissionDeniedError,
    RunLockedError,
    SettingsError,
    SpSyncError,
    StateError,
    ThrottledError,
    TransientError,
)
from sp_sync.i18n import Text, log_text
from sp_sync.redact import register_secret
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
from sp_sync.state.frames import frame_to_parquet
from sp_sync.state.hooks import crash_point

log = logging.getLogger(__name__)

_LOCK_DIR = ".locks"
#: (connect, read) seconds of one storage call when the run has time to spare.
DEFAULT_TIMEOUT = (10.0, 60.0)
#: The least time a storage call is given when little or nothing of the run's budget is left;
#: the same floor as SharePoint's requests (sp_sync.sharepoint.client.MIN_REQUEST_TIMEOUT, not
#: imported: that would pull office365 into every store user; a test checks they agree).
MIN_REQUEST_TIMEOUT = 5.0
#: The timeout of the lease release once the run's deadline has passed (seconds). A lease
#: that is not released expires by itself within its 15–60 s duration, so the release is a
#: courtesy to the next run and is not worth another full request timeout.
LATE_RELEASE_TIMEOUT = 1.0
#: How long a release waits for the renewal thread once the deadline has passed: the thread
#: is a daemon and stops by itself at its next wake-up (or when its hung call times out).
LATE_JOIN_SECONDS = 0.05
#: The storage SDK's retry waits as configured below (initial 1 s, base 2): before retry n
#: (n = 1, 2, 3; the SDK counts the attempt before it sleeps) it waits 1 + 2**n seconds, so
#: about 3, 5 and 9 s, each with up to 3 s of jitter either way. A store built with a smaller
#: `retry_backoff_scale` keeps the same number of retries and the same shape, scaled down.
DEFAULT_RETRY_BACKOFF_SCALE = 1.0


def bounded_timeout(
    connect: float, read: float, deadline: float | None, *, now: float | None = None
) -> tuple[float, float]:
    """(connect, read) seconds for one storage call: cut to the time left until the run's
    deadline (`time.monotonic()`), never below MIN_REQUEST_TIMEOUT."""
    if deadline is None:
        return connect, read
    left = max(MIN_REQUEST_TIMEOUT, deadline - (time.monotonic() if now is None else now))
    return min(connect, left), min(read, left)


class BudgetRetry(ExponentialRetry):
    """The SDK's exponential retry, bounded by the run's deadline.

    azure-core's requests transport takes `connection_timeout`/`read_timeout` from each
    attempt's context options (per-operation keywords), so they are set before the first attempt
    and again after every backoff, from the time then left. A retry whose backoff would end past
    the deadline is not made: the last error (or answer) goes to the caller, which ends the run
    "retry later". Retry options: https://learn.microsoft.com/azure/storage/blobs/storage-retry-policy-python
    """

    def __init__(
        self,
        deadline: Callable[[], float | None],
        *,
        connection_timeout: float,
        read_timeout: float,
        cap: Callable[[], float | None] = lambda: None,
        backoff_scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._deadline = deadline
        self._scale = backoff_scale
        self._cap = cap
        self._connect = float(connection_timeout)
        self._read = float(read_timeout)

    def _bound(self, request: PipelineRequest[Any]) -> None:
        connect, read = bounded_timeout(self._connect, self._read, self._deadline())
        cap = self._cap()
        if cap is not None:  # a call that may be short (a late lease release), floor or not
            connect, read = min(connect, cap), min(read, cap)
        request.context.options["connection_timeout"] = connect
        request.context.options["read_timeout"] = read

    def configure_retries(self, request: PipelineRequest[Any]) -> dict[str, Any]:
        settings: dict[str, Any] = super().configure_retries(request)
        settings["sp_sync_request"] = request
        self._bound(request)
        return settings

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        # The SDK's schedule (initial + base**count, jittered) scaled; its parameters are ints.
        return float(super().get_backoff_time(settings)) * self._scale

    def increment(
        self,
        settings: dict[str, Any],
        request: Any,
        response: Any = None,
        error: AzureError | None = None,
    ) -> bool:
        if not super().increment(settings, request, response, error):
            return False
        deadline = self._deadline()
        if deadline is not None and time.monotonic() + self.get_backoff_time(settings) >= deadline:
            log.debug("No storage retry: the run's time budget is spent")
            return False
        return True

    def sleep(self, settings: dict[str, Any], transport: Any) -> None:
        super().sleep(settings, transport)
        self._bound(settings["sp_sync_request"])


# Warnings a person may read on the command line: English in logs, the CLI shows the language.
# The Azure SDK's error name or code is quoted as it is.
_CANNOT_LIST_OLD = Text(
    sv="Kunde inte lista gamla generationer under {prefix}: {kind}",
    en="Could not list old generations under {prefix}: {kind}",
)
_CANNOT_DELETE = Text(sv="Kunde inte ta bort {name}: {kind}", en="Could not delete {name}: {kind}")
_LEASE_LOST = Text(
    sv="Lånet (lease) på körlåset {name} förlorades ({code})",
    en="The lease on the run lock {name} was lost ({code})",
)
_CANNOT_RENEW = Text(
    sv="Kunde inte förnya körlåset {name}: {code}", en="Could not renew the run lock {name}: {code}"
)


class BlobStateStore:
    """State in a blob container; blob names `<prefix><site>/<list>/…`."""

    def __init__(
        self,
        connection_string: str,
        container: str,
        prefix: str = "",
        *,
        retry_total: int = 3,
        retry_backoff_scale: float = DEFAULT_RETRY_BACKOFF_SCALE,
        connection_timeout: float = DEFAULT_TIMEOUT[0],
        read_timeout: float = DEFAULT_TIMEOUT[1],
        language: str = "sv",
    ) -> None:
        self.container_name = container
        #: The language of this store's error messages (SP_SYNC_LANGUAGE, passed in).
        self.language = language
        # The account key must never reach a log line, even through a library's message.
        for part in connection_string.split(";"):
            name, _, value = part.partition("=")
            if name.strip().lower() in ("accountkey", "sharedaccesssignature"):
                register_secret(value.strip())
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        #: When the current run must end (`time.monotonic()`), or None: see bind_deadline.
        self._deadline: Callable[[], float | None] = lambda: None
        #: The run's deadline when a call past it timed out or lost its connection: the account
        #: is not answering and that run is out of time, so each later call of the run would
        #: cost one more timeout for nothing (see `_refuse_if_unanswered`).
        self._unanswered: float | None = None
        #: A cap on every call's timeouts below the floor (the late lease release), or None.
        self._cap: float | None = None
        try:
            service = BlobServiceClient.from_connection_string(
                connection_string,
                retry_policy=BudgetRetry(
                    lambda: self._deadline(),
                    cap=lambda: self._cap,
                    backoff_scale=retry_backoff_scale,
                    connection_timeout=connection_timeout,
                    read_timeout=read_timeout,
                    initial_backoff=1,
                    increment_base=2,
                    retry_total=retry_total,
                ),
                connection_timeout=connection_timeout,
                read_timeout=read_timeout,
            )
        except (ValueError, AzureError):
            # `from None`: the parser's message may quote the connection string, key included.
            raise StateError(
                base.message(
                    self.language,
                    "Anslutningssträngen till Azure Storage är ogiltig.",
                    "The Azure Storage connection string is invalid.",
                )
            ) from None
        self._account = service.account_name or "?"
        self._container: ContainerClient = service.get_container_client(container)
        self._container_ready = False
        self._held: dict[str, BlobRunLock] = {}

    def __repr__(self) -> str:
        return f"BlobStateStore(account={self._account!r}, container={self.container_name!r})"

    @property
    def where(self) -> str:
        return f"{self._account}/{self.container_name}"

    def bind_deadline(self, deadline: Callable[[], float | None]) -> None:
        """Bound every later storage call by `deadline()` (the run's, `time.monotonic()`; None:
        unbounded). The runtime binds the deadline of its latest run: a store shared by two
        concurrent runs gives the older one the newer's (later) deadline, never a shorter one."""
        self._deadline = deadline
        self._unanswered = None

    def past_deadline(self) -> bool:
        """Whether the bound run's deadline has passed."""
        deadline = self._deadline()
        return deadline is not None and time.monotonic() >= deadline

    def _gave_up(self) -> bool:
        """Past the deadline of the run in which a call went unanswered past its deadline (a
        later run, with its own deadline, tries the account again)."""
        deadline = self._deadline()
        if self._unanswered is None or self._unanswered != deadline:
            return False
        return self.past_deadline()

    def _refuse_if_unanswered(self, name: str) -> None:
        """Past the deadline, after a call that the account did not answer, make no further
        call: it could only time out again (one floor each: the failed commit, the checks,
        the summary, the lock's renewal would add up to several). Nothing is lost: an
        uncommitted list is read again next run, from its last committed change token."""
        if self._gave_up():
            raise TransientError(
                base.message(
                    self.language,
                    f"Azure Storage ({base.redact(self.where)}/{name}) svarar inte och "
                    "körningens tid är slut; körningen fortsätter nästa gång.",
                    f"Azure Storage ({base.redact(self.where)}/{name}) is not answering and the "
                    "run is out of time; the run continues next time.",
                )
            )

    def _note(self, exc: AzureError) -> None:
        """Remember an unanswered call past the deadline (a timeout or a lost connection)."""
        if isinstance(exc, (ServiceRequestError, ServiceResponseError)) and self.past_deadline():
            self._unanswered = self._deadline()

    # --- list state ------------------------------------------------------------------------

    def read_list_state(self, site: str, list_key: str) -> ListState | None:
        prefix = self.prefix + base.list_prefix(site, list_key)
        where = f"{site} / {list_key}"
        for _attempt in range(3):
            got = self._download(f"{prefix}/{MANIFEST_NAME}")
            if got is None:
                return None
            raw, etag = got
            manifest = Manifest.from_bytes(
                raw, f"{self.where}/{prefix}/{MANIFEST_NAME}", self.language
            )
            rows = self._download(f"{prefix}/{manifest.rows_directory}/{ROWS_FILE}")
            delta = (
                self._download(f"{prefix}/{manifest.directory}/{DELTA_FILE}")
                if manifest.base_directory is not None
                else None
            )
            quality = self._download(f"{prefix}/{manifest.directory}/{QUALITY_FILE}")
            state = state_from_files(
                manifest,
                rows[0] if rows else None,
                delta[0] if delta else None,
                quality[0] if quality else None,
                etag,
            )
            if state is not None:
                return state
            again = self._download(f"{prefix}/{MANIFEST_NAME}")
            if again is not None and again[1] == etag:
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
        self._ensure_container()
        self._check_locks()
        where = f"{site} / {list_key}"
        prefix = self.prefix + base.list_prefix(site, list_key)
        manifest_name = f"{prefix}/{MANIFEST_NAME}"
        current = self._download(manifest_name)
        if (current[1] if current else None) != expected_etag:
            raise base.conflict_error(self.language, where)
        previous = (
            Manifest.from_bytes(current[0], manifest_name, self.language) if current else None
        )

        rows_view, delta_view = rows_to_write(rows, changes)
        # The SDK uploads bytes (one copy of the file, as frame_to_parquet made before).
        rows_bytes = bytes(rows_view)
        delta_bytes = bytes(delta_view) if delta_view is not None else None
        del rows_view, delta_view
        quality_bytes = frame_to_parquet(quality)
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
        gen = f"{prefix}/{manifest.directory}"
        first = DELTA_FILE if delta_bytes is not None else ROWS_FILE
        generation_files = [f"{gen}/{first}", f"{gen}/{QUALITY_FILE}"]
        try:
            if delta_bytes is not None:
                self._upload(generation_files[0], delta_bytes, create_only=True)
                crash_point("after-delta")
            else:
                self._upload(generation_files[0], rows_bytes, create_only=True)
                crash_point("after-rows")
            self._upload(generation_files[1], quality_bytes, create_only=True)
            crash_point("after-quality")
            self._check_locks()
            crash_point("before-manifest")
        except SpSyncError:
            self._delete_quietly(generation_files)
            raise
        try:
            new_etag = self._upload(
                manifest_name,
                manifest.to_bytes(),
                create_only=expected_etag is None,
                etag=expected_etag,
                where=where,
            )
        except SpSyncError as exc:
            landed = self._manifest_landed(exc, manifest_name, manifest.directory)
            if landed is not None:
                # An earlier attempt of this write landed and its answer was lost; the SDK's
                # retry then met our own manifest (412/409). The commit is done.
                new_etag = landed
            else:
                if not _may_have_landed(exc):
                    self._delete_quietly(generation_files)
                # Otherwise (timed out, connection dropped, 5xx) the manifest may name these
                # files now: leave them. If it does not, the next commit's cleanup removes them
                # (their generation number is never above the next committed one).
                raise
        crash_point("after-manifest")
        self._cleanup(prefix, manifest)
        log.debug("Committed state of %s generation %d", where, manifest.generation)
        return new_etag

    def _manifest_landed(self, exc: SpSyncError, name: str, directory: str) -> str | None:
        """The manifest's etag if it names `directory` after a conflicting write (a retry of
        a write that had landed), else None. Only asked after a conflict: the account answered,
        so the one read is quick; after a timeout the run ends without another wait."""
        if not isinstance(exc, base.StateConflictError):
            return None
        try:
            current = self._download(name)
        except SpSyncError:
            return None
        if current is None:
            return None
        try:
            doc = json.loads(current[0].decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None
        return current[1] if isinstance(doc, dict) and doc.get("directory") == directory else None

    def _cleanup(self, prefix: str, manifest: Manifest) -> None:
        now = dt.datetime.now(dt.UTC)
        dirs: dict[str, list[str]] = {}
        ages: dict[str, float] = {}
        try:
            for blob in self._container.list_blobs(name_starts_with=f"{prefix}/g"):
                rest = blob.name[len(prefix) + 1 :]
                folder = rest.split("/", 1)[0]
                dirs.setdefault(folder, []).append(blob.name)
                age = (now - blob.last_modified).total_seconds()
                ages[folder] = min(ages.get(folder, age), age)
        except AzureError as exc:
            self._note(exc)
            text = _CANNOT_LIST_OLD.fill(prefix=prefix, kind=type(exc).__name__)
            log.warning("%s", text.en, extra=log_text(text))
            return
        for folder in base.generations_to_delete(list(ages.items()), manifest):
            crash_point("mid-cleanup")
            self._delete_quietly(dirs[folder])

    # --- JSON documents --------------------------------------------------------------------

    def read_json(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        got = self._download(self.prefix + base.check_key(key))
        if got is None:
            return None, None
        try:
            doc = json.loads(got[0].decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateError(
                base.message(
                    self.language, f"Dokumentet {key} är skadat.", f"The document {key} is corrupt."
                )
            ) from exc
        return doc, got[1]

    def write_json(
        self,
        key: str,
        doc: dict[str, Any],
        *,
        expected_etag: str | None = None,
        create_only: bool = False,
    ) -> str:
        self._ensure_container()
        self._check_locks()
        data = json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True, default=str).encode()
        return self._upload(
            self.prefix + base.check_key(key),
            data,
            create_only=create_only,
            etag=expected_etag,
            where=key,
        )

    def delete_json(self, key: str) -> None:
        self._check_locks()
        self._delete_quietly([self.prefix + base.check_key(key)])

    def list_keys(self, prefix: str) -> list[str]:
        self._refuse_if_unanswered(prefix)
        try:
            names = [
                b.name[len(self.prefix) :]
                for b in self._container.list_blobs(name_starts_with=self.prefix + prefix)
            ]
        except ResourceNotFoundError as exc:
            if self._container_ready and _error_code(exc) == "ContainerNotFound":
                self._raise(exc, "list")
            return []
        except AzureError as exc:
            self._raise(exc, "list")
        return sorted(n for n in names if not n.startswith(f"{_LOCK_DIR}/"))

    # --- locks -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str, *, ttl_seconds: float = 60) -> Iterator[BlobRunLock]:
        """Hold the run lock `name` (a renewed lease on a lock blob) for the `with` block."""
        self._ensure_container()
        run_lock = BlobRunLock(self, name, ttl_seconds)
        run_lock.acquire()
        self._held[name] = run_lock
        try:
            yield run_lock
        finally:
            self._held.pop(name, None)
            run_lock.release()

    def _check_locks(self) -> None:
        self._refuse_if_unanswered(_LOCK_DIR)
        for held in list(self._held.values()):
            held.check(renew=True)

    # --- blob helpers ----------------------------------------------------------------------

    def _ensure_container(self) -> None:
        if self._container_ready:
            return
        try:
            self._container.create_container()
        except ResourceExistsError:
            pass
        except AzureError as exc:
            self._raise(exc, "create-container")
        self._container_ready = True

    def _download(self, name: str) -> tuple[bytes, str] | None:
        self._refuse_if_unanswered(name)
        try:
            downloader = self._container.download_blob(name)
            data = downloader.readall()
        except ResourceNotFoundError as exc:
            if self._container_ready and _error_code(exc) == "ContainerNotFound":
                # The container this store created or found is gone: its state went with it.
                # Saying "no state" would start over silently; name it instead.
                self._raise(exc, name)
            return None
        except AzureError as exc:
            self._raise(exc, name)
        return data, str(downloader.properties.etag)

    def _upload(
        self,
        name: str,
        data: bytes,
        *,
        create_only: bool = False,
        etag: str | None = None,
        where: str | None = None,
    ) -> str:
        kwargs: dict[str, Any] = {}
        if create_only:
            kwargs["overwrite"] = False
        else:
            kwargs["overwrite"] = True
            if etag is not None:
                kwargs["etag"] = etag
                kwargs["match_condition"] = MatchConditions.IfNotModified
        self._refuse_if_unanswered(name)
        try:
            result = self._container.get_blob_client(name).upload_blob(data, **kwargs)
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise base.conflict_error(self.language, where or name) from exc
        except ResourceNotFoundError as exc:
            if etag is not None:  # If-Match on a blob that was deleted meanwhile
                raise base.conflict_error(self.language, where or name) from exc
            self._raise(exc, name)
        except HttpResponseError as exc:
            if exc.status_code == 412:
                raise base.conflict_error(self.language, where or name) from exc
            self._raise(exc, name)
        except AzureError as exc:
            self._raise(exc, name)
        return str(result["etag"])

    def _delete_quietly(self, names: list[str]) -> None:
        for name in names:
            if self._gave_up():
                # Left for the next commit's cleanup (generation files are never above the
                # next committed generation): a delete now would only time out.
                return
            with contextlib.suppress(ResourceNotFoundError):
                try:
                    self._container.delete_blob(name)
                except AzureError as exc:
                    if isinstance(exc, ResourceNotFoundError):
                        raise
                    self._note(exc)
                    text = _CANNOT_DELETE.fill(name=name, kind=type(exc).__name__)
                    log.warning("%s", text.en, extra=log_text(text))

    def _raise(self, exc: AzureError, name: str) -> NoReturn:
        self._note(exc)
        raise azure_error(exc, f"{self.where}/{name}", self.language) from exc


class BlobRunLock:
    """A lease on `<prefix>.locks/<name>.lock`, renewed every third of its duration."""

    def __init__(self, store: BlobStateStore, name: str, ttl_seconds: float) -> None:
        self.name = name
        # Blob leases last 15–60 s.
        self.duration = int(min(60, max(15, round(ttl_seconds))))
        self.interval = self.duration / 3
        self._store = store
        self._blob = store._container.get_blob_client(
            f"{store.prefix}{_LOCK_DIR}/{base.site_key(name)}.lock"
        )
        self._lease = BlobLeaseClient(self._blob)
        self._stop = threading.Event()
        self._lost = False
        #: Set when the lock was lost because its container was deleted (named, not "locked").
        self._gone: AzureError | None = None
        self._last_renewal = 0.0
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        try:
            with contextlib.suppress(ResourceExistsError):
                self._blob.upload_blob(b"", overwrite=False)
            try:
                self._lease.acquire(lease_duration=self.duration)
            except (ResourceExistsError, HttpResponseError) as exc:
                if getattr(exc, "status_code", None) != 409:
                    raise
                since = None
                with contextlib.suppress(AzureError):
                    since = self._blob.get_blob_properties().metadata.get("acquired_at")
                raise RunLockedError(
                    base.locked_message(self._store.language, self.name, since)
                ) from None
            self._last_renewal = time.monotonic()
            with contextlib.suppress(AzureError):
                self._blob.set_blob_metadata(
                    {
                        "acquired_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                        "host": socket.gethostname(),
                        "pid": str(os.getpid()),
                    },
                    lease=self._lease,
                )
        except AzureError as exc:
            raise azure_error(
                exc, f"{self._store.where}/{self._blob.blob_name}", self._store.language
            ) from exc
        self._thread = threading.Thread(
            target=self._renew_loop, name=f"sp-sync-lease-{self.name}", daemon=True
        )
        self._thread.start()

    def _renew(self) -> None:
        with self._guard:
            if self._lost:
                return
            try:
                self._lease.renew()
                self._last_renewal = time.monotonic()
            except HttpResponseError as exc:
                if _error_code(exc) == "ContainerNotFound":
                    # Not taken by another run: the container (state and lock) was deleted.
                    self._gone = exc
                if exc.status_code in (409, 412, 404):
                    self._lost = True
                    text = _LEASE_LOST.fill(name=self.name, code=getattr(exc, "error_code", None))
                    log.error("%s", text.en, extra=log_text(text))
                    return
                text = _CANNOT_RENEW.fill(name=self.name, code=getattr(exc, "error_code", None))
                log.warning("%s", text.en, extra=log_text(text))
            except AzureError as exc:
                self._store._note(exc)
                text = _CANNOT_RENEW.fill(name=self.name, code=type(exc).__name__)
                log.warning("%s", text.en, extra=log_text(text))
            if time.monotonic() - self._last_renewal >= self.duration:
                self._lost = True

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._renew()
            if self._lost:
                return

    def check(self, *, renew: bool = False) -> None:
        """Raise RunLockLostError if the lease was lost; `renew=True` proves it with a renewal."""
        if renew and not self._lost:
            self._renew()
        if self._gone is not None:
            self._lost = True
            raise azure_error(
                self._gone, f"{self._store.where}/{self._blob.blob_name}", self._store.language
            )
        if self._lost or time.monotonic() - self._last_renewal >= self.duration:
            self._lost = True
            raise RunLockLostError(
                base.message(
                    self._store.language,
                    f"Körningen förlorade låset på {self.name}; den avbryts utan att skriva mer.",
                    f"The run lost its lock on {self.name}; it stops without writing more.",
                )
            )

    def release(self) -> None:
        """Stop renewing and release the lease. Past the deadline this costs at most
        LATE_RELEASE_TIMEOUT: the renewal thread (a daemon, possibly inside a hung renewal) is
        not waited for, and the release gets a short timeout and no retry; a lease left
        behind expires within its duration, which is safe (issue 11 item 4)."""
        self._stop.set()
        late = self._store.past_deadline()
        if self._thread is not None:
            self._thread.join(timeout=LATE_JOIN_SECONDS if late else 5)
        if self._lost:
            return
        if not late:
            with contextlib.suppress(AzureError):
                self._lease.release()
            return
        self._store._cap = LATE_RELEASE_TIMEOUT
        try:
            with contextlib.suppress(AzureError):
                self._lease.release()
        finally:
            self._store._cap = None


def _may_have_landed(exc: SpSyncError) -> bool:
    """Whether a failed write may still have been applied: anything but an answer refusing it
    (a conflict or another 4xx) or a request that never left (ServiceRequestError)."""
    if isinstance(exc, base.StateConflictError):
        return False
    cause = exc.__cause__
    if isinstance(cause, ServiceRequestError):
        return False
    status = getattr(cause, "status_code", None)
    return not (isinstance(status, int) and 400 <= status < 500)


def _error_code(exc: AzureError) -> str | None:
    raw = getattr(exc, "error_code", None)
    return str(getattr(raw, "value", raw)) if raw else None


def azure_error(exc: AzureError, where: str, language: str) -> SpSyncError:
    """Map an Azure SDK exception to sp-sync's error tree, without secrets in the message."""
    where = base.redact(where)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return TransientError(
            base.message(
                language,
                f"Azure Storage ({where}) kunde inte nås; försök igen senare.",
                f"Azure Storage ({where}) could not be reached; try again later.",
            )
        )
    status = getattr(exc, "status_code", None)
    raw_code = getattr(exc, "error_code", None)
    # The SDK gives a StorageErrorCode enum or a plain string; the service's word either way.
    code = str(getattr(raw_code, "value", raw_code)) if raw_code else None
    if code in ("ContainerNotFound", "ContainerBeingDeleted"):
        # Deleted during the run (the store creates it before its first write): the next run
        # creates it again and, its state gone with it, reads every list in full.
        return TransientError(
            base.message(
                language,
                f"Behållaren i Azure Storage finns inte längre ({where}, {code}); nästa "
                "körning skapar den igen och läser alla listor från början.",
                f"The Azure Storage container no longer exists ({where}, {code}); the next run "
                "creates it again and reads every list in full.",
            ),
            status=status,
            code=code,
        )
    if code in ("InvalidResourceName", "OutOfRangeInput") and where.endswith("/create-container"):
        return SettingsError(
            "SP_SYNC_STATE_CONTAINER",
            Text(
                sv=f"Azure Storage godtar inte behållarnamnet ({where}, {code}): 3–63 tecken, "
                "gemener, siffror och bindestreck",
                en=f"Azure Storage refuses the container name ({where}, {code}): 3-63 "
                "characters, lower-case letters, digits and hyphens",
            ),
        )
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return PermissionDeniedError(
            base.message(
                language,
                f"Azure Storage nekade åtkomst till {where}; kontrollera anslutningssträngen eller identitetens behörighet.",
                f"Azure Storage refused access to {where}; check the connection string or the identity's permissions.",
            ),
            status=status,
            code=code,
        )
    if status in (429, 503):
        return ThrottledError(
            base.message(
                language,
                f"Azure Storage är överbelastat ({where}); försök igen senare.",
                f"Azure Storage is busy ({where}); try again later.",
            ),
            status=status,
            code=code,
        )
    if status is not None and status >= 500:
        return TransientError(
            base.message(
                language,
                f"Azure Storage svarade med fel {status} ({where}); försök igen senare.",
                f"Azure Storage answered with error {status} ({where}); try again later.",
            ),
            status=status,
            code=code,
        )
    return StateError(
        base.message(
            language,
            f"Azure Storage-åtgärden på {where} misslyckades ({status or ''} {code or type(exc).__name__}).",
            f"The Azure Storage operation on {where} failed ({status or ''} {code or type(exc).__name__}).",
        ),
        status=status,
        code=code,
    )
