"""Jobs for the Functions app: fan-out, run requests, queue messages, run tracking, status.

The nightly timer and the on-demand HTTP trigger only *enqueue*: one message per site, so that
Azure Functions spreads the sites over instances. The queue trigger runs one message (a sync of
that site's lists, under the site's run lock) and records each list's outcome in a run document
in the state store with conditional writes (ETags). A list whose read ran out of time continues
in a new message (possibly on another instance); whichever job finishes the last list of a site
claims that site's rollup with a conditional write, so the rollup runs exactly once per site and
run, without a long-lived coordinator process.

Everything here is plain Python taking bytes and returning small answers, so the triggers in
`functions/` stay wiring and the whole flow is testable without the Functions host.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sp_sync.errors import (
    ConfigurationError,
    RetryableError,
    SettingsError,
    SpSyncError,
    StateConflictError,
)
from sp_sync.i18n import Text
from sp_sync.redact import redact_deep
from sp_sync.run import pipeline
from sp_sync.run.runtime import QueueSender, Runtime
from sp_sync.run.status import (
    ListStatus,
    RollupStatus,
    RunStatus,
    check_run_document,
    checked,
)
from sp_sync.settings import Settings, SiteConfig

if TYPE_CHECKING:  # the state package imports pandas; see runtime.py on deferred imports
    from sp_sync.state import StateStore

log = logging.getLogger(__name__)

# Error texts (issue 13 item 4): English in logs and run documents, either language on the CLI.
# A parse problem is our own English detail, quoted as it is in the Swedish text.
_UNREADABLE_MESSAGE = Text(
    sv="Jobbmeddelandet kan inte läsas: ”{problem}”", en="Unreadable job message: {problem}"
)
_NO_RUN_DOCUMENT = Text(
    sv="Körningsdokumentet {key} finns inte", en="Run document {key} does not exist"
)
_TOO_MANY_WRITERS = Text(
    sv="Kunde inte uppdatera {key}: för många samtidiga skrivare",
    en="Could not update {key}: too many concurrent writers",
)
_SITES_UNKNOWN = Text(sv="inte konfigurerade: {names}", en="not configured: {names}")
_LISTS_UNKNOWN = Text(
    sv="finns inte i listschemana: {names}", en="not in the list schemas: {names}"
)
_POISON_FAILED = Text(
    sv="{reason}; att flytta det till giftkön misslyckades ({kind}), "
    "värden försöker igen och flyttar det sedan dit",
    en="{reason}; moving it to the poison queue failed ({kind}), "
    "the host retries and then poisons it",
)
_ROLLUP_CLAIMED = Text(
    sv="Sammanställningen av {site} har tagits av ett annat anrop; "
    "kontrolleras igen när meddelandet levereras nästa gång",
    en="The rollup of {site} is claimed by another invocation; "
    "checking again when this message is delivered next",
)
_SITE_GONE = Text(
    sv="Webbplatsen {site} är inte konfigurerad längre", en="Site {site} is not configured any more"
)

#: How a handler gets its runtime: the triggers pass `Runtime.from_env`, tests a lambda. A
#: callable rather than a Runtime so that a wrong setting becomes the handler's answer (503, a
#: status report) instead of an exception in the trigger.
RuntimeLoader = Callable[[], Runtime]

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_DEQUEUE_COUNT",
    "MAX_REQUEST_BYTES",
    "Answer",
    "AzureQueueSender",
    "FanOut",
    "JobMessage",
    "QueueSender",
    "RuntimeLoader",
    "enqueue_scheduled_run",
    "handle_job_message",
    "handle_poison_message",
    "handle_run_request",
    "handle_status_request",
    "new_run_id",
    "parse_run_request",
    "plan_run",
    "start_run",
    "update_json",
]

MAX_REQUEST_BYTES = 16 * 1024
#: Queue messages are small JSON documents (a run id, a site, its list titles).
MAX_MESSAGE_BYTES = 64 * 1024
#: No valid request or message nests deeper than this (an object holding lists of strings).
MAX_JSON_DEPTH = 4
#: No number in a valid request or message has more digits than this (Python refuses to parse
#: integers over 4,300 digits with a ValueError, and nests recurse: both raised before).
MAX_NUMBER_DIGITS = 20
#: host.json's maxDequeueCount: the host moves a message to the poison queue after this many tries.
MAX_DEQUEUE_COUNT = 3
#: A list that keeps running out of time continues at most this many times; then it is recorded
#: as failed so that a site that is too slow for the budget cannot loop through the queue forever.
MAX_ATTEMPTS = 20
#: A rollup claim is a lease: the claiming invocation renews it every third of this while it
#: works, so a claim that is not renewed for this long belongs to an invocation that died
#: (timeout, host recycle, crash) and the next delivery for the site takes it over.
ROLLUP_LEASE_SECONDS = 120.0
#: How often (real seconds) the lease keeper of a running rollup looks at the clock; it renews
#: the lease every third of ROLLUP_LEASE_SECONDS by that clock.
LEASE_POLL_SECONDS = 1.0
#: After this many claims of one site's rollup in one run, the run gives up on it and records
#: the rollup as failed with the reason, instead of redoing a rollup that keeps dying.
MAX_ROLLUP_ATTEMPTS = 3
#: Every status a list or rollup entry of a run document can have (one set each, see item 7;
#: update_json refuses a document holding any other word).
LIST_STATUSES = frozenset(ListStatus)
ROLLUP_STATUSES = frozenset(RollupStatus)


# --------------------------------------------------------------------------------------------
# Messages


@dataclass(frozen=True)
class JobMessage:
    """One unit of work: sync `lists` of one site as part of run `run_id`."""

    run_id: str
    site_url: str
    lists: tuple[str, ...]
    full: bool = False
    attempt: int = 1  # > 1 when a run continues after its time budget

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": 1,
                "run_id": self.run_id,
                "site_url": self.site_url,
                "lists": list(self.lists),
                "full": self.full,
                "attempt": self.attempt,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_body(cls, body: bytes | str) -> JobMessage:
        """Parse and validate a queue message; ConfigurationError with the reason otherwise
        (invalid UTF-8, too large or deep, a field of the wrong type or out of bounds)."""
        try:
            doc = bounded_json(body, max_bytes=MAX_MESSAGE_BYTES)
            if not isinstance(doc, dict):
                raise ValueError("the message is not a JSON object")
            run_id, site_url, lists = doc.get("run_id"), doc.get("site_url"), doc.get("lists")
            attempt, full = doc.get("attempt", 1), doc.get("full", False)
            if not isinstance(run_id, str) or not re.fullmatch(r"[A-Za-z0-9-]{1,80}", run_id):
                raise ValueError("'run_id' is missing or not a run id")
            if not isinstance(site_url, str) or not 0 < len(site_url) <= 400:
                raise ValueError("'site_url' is missing or not a URL")
            if (
                not isinstance(lists, list)
                or not 0 < len(lists) <= 100
                or not all(isinstance(t, str) and 0 < len(t) <= 400 for t in lists)
            ):
                raise ValueError("'lists' must be a non-empty list of list titles")
            if not isinstance(full, bool):
                raise ValueError("'full' must be true or false")
            if (
                not isinstance(attempt, int)
                or isinstance(attempt, bool)
                or not 1 <= attempt <= MAX_ATTEMPTS
            ):
                raise ValueError(f"'attempt' must be a whole number from 1 to {MAX_ATTEMPTS}")
            return cls(run_id, site_url, tuple(lists), full, attempt)
        except ValueError as exc:
            raise ConfigurationError(_UNREADABLE_MESSAGE.fill(problem=exc)) from exc


def bounded_json(body: bytes | str, *, max_bytes: int) -> Any:
    """`json.loads` with limits on size, nesting depth and number length, so that a hostile
    body is a ValueError with a reason, never a RecursionError or a long parse."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    if len(raw) > max_bytes:
        raise ValueError(f"larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid JSON (not UTF-8 at byte {exc.start})") from None
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:  # the nesting depth, counted outside strings, before the parser recurses
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
        elif ch in "]}":
            depth -= 1

    def number(kind: type[int] | type[float]) -> Callable[[str], Any]:
        def parse(literal: str) -> Any:
            if len(literal.lstrip("-")) > MAX_NUMBER_DIGITS:
                raise ValueError(f"a number longer than {MAX_NUMBER_DIGITS} digits")
            return kind(literal)

        return parse

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON value")

    try:
        return json.loads(
            text,
            parse_int=number(int),
            parse_float=number(float),
            parse_constant=no_constants,
        )
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


class AzureQueueSender:
    """Sends base64-encoded messages, the encoding the queue trigger expects by default."""

    def __init__(self, connection_string: str, queue_name: str) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.queue import QueueClient

        # Connect and read timeouts: a hung storage endpoint cannot hang the trigger.
        self._client = QueueClient.from_connection_string(
            connection_string, queue_name, connection_timeout=10, read_timeout=60
        )
        try:
            self._client.create_queue()
        except ResourceExistsError:
            pass

    def send(self, text: str) -> None:
        # surrogateescape: a malformed message moved to the poison queue keeps its exact
        # bytes (see `_message_text`); valid text encodes as plain UTF-8.
        raw = text.encode("utf-8", "surrogateescape")
        self._client.send_message(base64.b64encode(raw).decode("ascii"))


# --------------------------------------------------------------------------------------------
# Run documents: runs/<run_id>.json, updated with conditional writes


def _run_key(run_id: str) -> str:
    return f"runs/{run_id}.json"


def _summary_key(site_name: str) -> str:
    return f"summaries/{site_name}/last.json"


def update_json(
    store: StateStore, key: str, change: Callable[[dict[str, Any]], Any]
) -> dict[str, Any]:
    """Read-modify-write with If-Match, retried on conflicts: concurrent jobs never clobber."""
    for _ in range(50):
        doc, etag = store.read_json(key)
        if doc is None:
            raise ConfigurationError(_NO_RUN_DOCUMENT.fill(key=key))
        change(doc)
        check_run_document(doc)  # a status outside its set is never stored
        try:
            store.write_json(key, doc, expected_etag=etag)
            return doc
        except StateConflictError:
            continue
    raise RetryableError(_TOO_MANY_WRITERS.fill(key=key))


@dataclass(frozen=True)
class FanOut:
    run_id: str
    messages: list[JobMessage]


def plan_run(
    runtime: Runtime,
    *,
    sites: Sequence[str] | None = None,
    lists: Sequence[str] | None = None,
    full: bool = False,
    run_id: str | None = None,
) -> FanOut:
    """One message per site. `sites` are site names or URLs from the configuration."""
    schema_lists = list(runtime.schemas.lists)
    configured = runtime.settings.sites
    chosen = configured
    if sites:
        wanted = {s.rstrip("/").lower() for s in sites}
        chosen = [
            s for s in configured if s.name.lower() in wanted or s.url.rstrip("/").lower() in wanted
        ]
        unknown = (
            wanted - {s.name.lower() for s in chosen} - {s.url.rstrip("/").lower() for s in chosen}
        )
        if unknown:
            raise SettingsError("sites", _SITES_UNKNOWN.fill(names=", ".join(sorted(unknown))))
    run_id = run_id or new_run_id(runtime.now())
    messages: list[JobMessage] = []
    for site in chosen:
        site_lists = list(site.lists) or schema_lists
        if lists:
            missing = [t for t in lists if t not in schema_lists]
            if missing:
                raise SettingsError("lists", _LISTS_UNKNOWN.fill(names=", ".join(missing)))
            site_lists = [t for t in site_lists if t in lists]
        if site_lists:
            messages.append(JobMessage(run_id, site.url, tuple(site_lists), full))
    return FanOut(run_id, messages)


def new_run_id(now: dt.datetime) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


def start_run(fan: FanOut, *, trigger: str, runtime: Runtime) -> FanOut:
    """Create the run document, then enqueue every message (document first: jobs update it)."""
    store = runtime.store
    sites: dict[str, Any] = {}
    for m in fan.messages:
        entry = sites.setdefault(
            m.site_url, {"lists": {}, "rollup": {"status": RollupStatus.WAITING}}
        )
        for title in m.lists:
            entry["lists"][title] = {"status": ListStatus.QUEUED}
    doc = {
        "run_id": fan.run_id,
        "trigger": trigger,
        "created_at": runtime.now().isoformat(),
        "sites": sites,
    }
    check_run_document(doc)
    store.write_json(_run_key(fan.run_id), doc, create_only=True)
    sender = runtime.queue
    for m in fan.messages:
        sender.send(m.to_json())
    log.info("Run %s: %d job(s) enqueued (%s)", fan.run_id, len(fan.messages), trigger)
    return fan


def enqueue_scheduled_run(*, load_runtime: RuntimeLoader) -> FanOut:
    """The nightly timer's work: one job per configured site."""
    runtime = load_runtime()
    return start_run(plan_run(runtime), trigger="timer", runtime=runtime)


# --------------------------------------------------------------------------------------------
# HTTP: run requests and status


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


_ALLOWED_KEYS = {"sites", "lists", "mode"}


def parse_run_request(body: bytes, content_type: str | None) -> dict[str, Any]:
    """Validate an on-demand run request. Raises ValueError with a sentence for the caller."""
    if len(body) > MAX_REQUEST_BYTES:
        raise _RequestError(413, f"The request body is larger than {MAX_REQUEST_BYTES} bytes.")
    if body.strip() == b"":
        return {"sites": None, "lists": None, "full": False}
    if content_type and "json" not in content_type.lower():
        raise _RequestError(415, "Send the request as application/json.")
    try:
        doc = bounded_json(body, max_bytes=MAX_REQUEST_BYTES)
    except ValueError as exc:
        raise _RequestError(400, f"The body is not acceptable: {exc}.") from exc
    if not isinstance(doc, dict):
        raise _RequestError(400, "The body must be a JSON object.")
    unknown = set(doc) - _ALLOWED_KEYS
    if unknown:
        raise _RequestError(
            400,
            f"Unknown field(s): {', '.join(sorted(unknown))}. Allowed: sites, lists, mode.",
        )
    out: dict[str, Any] = {"sites": None, "lists": None, "full": False}
    for key in ("sites", "lists"):
        value = doc.get(key)
        if value is None:
            continue
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v.strip() and len(v) <= 400 for v in value)
            or len(value) > 100
        ):
            raise _RequestError(400, f"'{key}' must be a non-empty list of names (strings).")
        out[key] = [v.strip() for v in value]
    mode = doc.get("mode", "incremental")
    if mode not in ("incremental", "full"):
        raise _RequestError(400, "'mode' must be 'incremental' or 'full'.")
    out["full"] = mode == "full"
    return out


class _RequestError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def handle_run_request(
    body: bytes, content_type: str | None, url: str, *, load_runtime: RuntimeLoader
) -> Answer:
    try:
        request = parse_run_request(body, content_type)
    except _RequestError as exc:
        return Answer(exc.status, {"error": str(exc)})
    try:
        runtime = load_runtime()
        fan = plan_run(
            runtime, sites=request["sites"], lists=request["lists"], full=request["full"]
        )
        if not fan.messages:
            return Answer(400, {"error": "Nothing to run: no site or list matched."})
        start_run(fan, trigger="http", runtime=runtime)
    except SettingsError as exc:
        status = 400 if exc.setting in ("sites", "lists") else 503
        return Answer(status, {"error": str(exc)})
    except SpSyncError as exc:
        return Answer(503, {"error": str(exc)})
    base = url.split("/api/", 1)[0] if "/api/" in url else url.rstrip("/")
    return Answer(
        202,
        {
            "run_id": fan.run_id,
            "jobs": len(fan.messages),
            "status_url": f"{base}/api/status/runs/{fan.run_id}",
        },
    )


def handle_status_request(run_id: str | None, *, load_runtime: RuntimeLoader) -> Answer:
    # Settings (the schedule included) are validated as a whole: when they load, they are ok.
    config: dict[str, Any] = {"ok": True}
    try:
        runtime = load_runtime()
    except SpSyncError as exc:
        return Answer(200, {"configuration": {"ok": False, "problem": str(exc)}})
    settings = runtime.settings
    try:
        store = runtime.store
        if run_id is not None:
            if not re.fullmatch(r"[A-Za-z0-9-]{1,80}", run_id):
                return Answer(400, {"error": "Invalid run id."})
            doc, _ = store.read_json(_run_key(run_id))
            if doc is None:
                return Answer(404, {"error": f"No run {run_id}."})
            return Answer(200, redact_deep({"configuration": config, "run": doc}))
        busy, stalled = _sites_in_progress(store, runtime.now())
        sites = {}
        for site in settings.sites:
            summary, _ = store.read_json(_summary_key(site.name))
            sites[site.name] = {
                "url": site.url,
                "last_run": summary,
                "in_progress": site.url in busy,
            }
            if site.url in stalled:
                sites[site.name]["stalled_rollup"] = stalled[site.url]
    except SpSyncError as exc:
        return Answer(200, {"configuration": {"ok": False, "problem": str(exc)}})
    return Answer(200, redact_deep({"configuration": config, "sites": sites}))


def _sites_in_progress(
    store: StateStore, now: dt.datetime
) -> tuple[set[str], dict[str, dict[str, Any]]]:
    """Sites with unfinished work in one of the recent run documents (each read once), and
    sites whose rollup claim expired (its invocation died; the next delivery takes it over)."""
    busy: set[str] = set()
    stalled: dict[str, dict[str, Any]] = {}
    for key in sorted(store.list_keys("runs/"))[-20:]:
        doc, _ = store.read_json(key)
        for site_url, entry in (doc or {}).get("sites", {}).items():
            rollup = entry["rollup"]
            expired = rollup["status"] == RollupStatus.CLAIMED and _lease_expired(rollup, now)
            waiting = rollup["status"] == RollupStatus.WAITING and not any(
                v["status"] == ListStatus.FAILED for v in entry["lists"].values()
            )
            if waiting or (rollup["status"] == RollupStatus.CLAIMED and not expired):
                busy.add(site_url)
            elif expired:
                stalled[site_url] = {
                    "run_id": (doc or {}).get("run_id"),
                    "claimed_at": rollup.get("at"),
                    "lease_until": rollup.get("lease_until"),
                }
    return busy, stalled


# --------------------------------------------------------------------------------------------
# Queue: running one job, coordinating the rollup, poison messages


def handle_job_message(
    body: bytes | str, *, dequeue_count: int = 1, load_runtime: RuntimeLoader
) -> str:
    """Run one job. Retryable failures raise (the host retries, then poisons the message);
    failures a retry cannot fix are recorded and the message is completed; a message that
    cannot be read at all goes to the poison queue at once (see `_poison_at_once`)."""
    try:
        msg = JobMessage.from_body(body)
    except ConfigurationError as exc:
        return _poison_at_once(body, exc, load_runtime)
    runtime = load_runtime()
    settings = runtime.settings
    # The invocation's budget: a rollup that follows the sync in this invocation gets what is
    # left of it, not a budget of its own (the invocation would otherwise run for two budgets
    # and meet the host's function timeout).
    not_after = time.monotonic() + settings.time_budget_seconds
    store = runtime.store
    key = _run_key(msg.run_id)
    doc, _ = store.read_json(key)
    if doc is None or msg.site_url not in doc.get("sites", {}):
        log.error("Dropped a job for run %s: the run document is missing", msg.run_id)
        return f"dropped: no run {msg.run_id} for {msg.site_url}"
    try:
        site = _site_for(settings, msg.site_url)
    except ConfigurationError as exc:
        log.error("Dropped a job for run %s: %s", msg.run_id, exc)
        return f"dropped: {exc}"

    def mark(titles: Sequence[str], status: ListStatus, **extra: Any) -> None:
        status = checked(ListStatus, status)

        def change(doc: dict[str, Any]) -> None:
            for title in titles:
                entry = doc["sites"][msg.site_url]["lists"][title]
                if status in (ListStatus.RUNNING, ListStatus.CONTINUES, ListStatus.DONE):
                    entry.pop("error", None)  # an earlier attempt's error no longer applies
                entry.update({"status": status, **extra})

        update_json(store, key, change)

    lists_now = doc["sites"][msg.site_url]["lists"]
    if dequeue_count > 1 and all(
        lists_now.get(t, {}).get("status") in (ListStatus.DONE, ListStatus.FAILED)
        for t in msg.lists
    ):
        # A redelivery after the invocation died past its sync (e.g. during the rollup): the
        # lists are committed, so only the rollup is left to take over.
        return _finish_or_retry(runtime, key, msg, site, dequeue_count, not_after=not_after)
    mark(msg.lists, ListStatus.RUNNING, attempt=msg.attempt, dequeue_count=dequeue_count)
    try:
        result = pipeline.run_sync_job(runtime, site, msg.lists, full=msg.full, not_after=not_after)
    except RetryableError as exc:
        if dequeue_count >= MAX_DEQUEUE_COUNT:
            mark(msg.lists, ListStatus.FAILED, error=exc.details())
            return _maybe_finish_site(runtime, key, msg.site_url, site, not_after=not_after)
        mark(msg.lists, ListStatus.RETRYING, error=exc.details())
        raise
    except SpSyncError as exc:
        mark(msg.lists, ListStatus.FAILED, error=exc.details())
        log.error("Job for %s failed: %s", msg.site_url, exc)
        return _maybe_finish_site(runtime, key, msg.site_url, site, not_after=not_after)

    continuing: list[str] = []
    for r in result.lists:
        if r.continues_next_run:
            continuing.append(r.list)
            mark([r.list], ListStatus.CONTINUES, result=r.to_dict())
        else:
            mark([r.list], ListStatus.DONE, result=r.to_dict())
    for err in result.errors:
        title = str(err.get("list", ""))
        if title in msg.lists:
            mark([title], ListStatus.FAILED, error=dict(err))
    if continuing and msg.attempt >= MAX_ATTEMPTS:
        mark(
            continuing,
            ListStatus.FAILED,
            error={
                "error": "TimeBudgetExceeded",
                "message": f"still not finished after {msg.attempt} time budgets; "
                "raise SP_SYNC_TIME_BUDGET_SECONDS or the function timeout",
            },
        )
        continuing = []
    if continuing:
        cont = JobMessage(msg.run_id, msg.site_url, tuple(continuing), False, msg.attempt + 1)
        runtime.queue.send(cont.to_json())
        log.info("Run %s: %s continue in a new job", msg.run_id, ", ".join(continuing))
    return _finish_or_retry(runtime, key, msg, site, dequeue_count, not_after=not_after)


def _poison_at_once(body: bytes | str, reason: ConfigurationError, load: RuntimeLoader) -> str:
    """A message no retry can make readable goes to the poison queue now, with the reason
    logged, and the invocation completes: the host neither retries it nor poisons it later.
    When the poison queue cannot be reached, raise: the host's retries then end in the same
    poison queue, so the message is never lost."""
    log.error("Poison job message (not retried, moved to the poison queue): %s", reason)
    try:
        load().poison_queue.send(_message_text(body))
    except Exception as exc:
        log.error("Could not move the malformed job message to the poison queue: %s", exc)
        raise RetryableError(
            _POISON_FAILED.fill(reason=reason.as_text(), kind=type(exc).__name__)
        ) from exc
    return f"poisoned: {reason}"


def _message_text(body: bytes | str) -> str:
    """The message as text that encodes back to its exact bytes (invalid UTF-8 included)."""
    if isinstance(body, str):
        return body
    return bytes(body).decode("utf-8", "surrogateescape")


def _finish_or_retry(
    runtime: Runtime,
    key: str,
    msg: JobMessage,
    site: SiteConfig,
    dequeue_count: int,
    *,
    not_after: float | None = None,
) -> str:
    """Finish the site; when another invocation's claim on the rollup is still live, ask the
    host to deliver this message again later, so that a claim whose invocation died is taken
    over by this message once the lease runs out (and not left "claimed" for ever)."""
    outcome = _maybe_finish_site(runtime, key, msg.site_url, site, not_after=not_after)
    if outcome == _BUSY and dequeue_count < MAX_DEQUEUE_COUNT:
        raise RetryableError(_ROLLUP_CLAIMED.fill(site=msg.site_url))
    return outcome


_BUSY = "synced; the site's rollup is running in another invocation"


def _lease_expired(rollup: dict[str, Any], now: dt.datetime) -> bool:
    until = rollup.get("lease_until")
    if not until:  # a claim from before leases existed: its own time plus one lease
        at = rollup.get("at")
        if not at:
            return True
        until = (
            dt.datetime.fromisoformat(at) + dt.timedelta(seconds=ROLLUP_LEASE_SECONDS)
        ).isoformat()
    return dt.datetime.fromisoformat(str(until)) <= now


class _LeaseKeeper:
    """Renews a rollup claim's lease in the background while the rollup runs (a heartbeat):
    every third of the lease by the runtime's clock, so that a rollup that legitimately takes
    longer than one lease keeps its claim instead of being taken over. It looks at the clock
    every LEASE_POLL_SECONDS of real time (an injected clock is honoured, see the tests)."""

    def __init__(self, runtime: Runtime, key: str, site_url: str, token: str) -> None:
        self._runtime = runtime
        self._key = key
        self._site_url = site_url
        self._token = token
        self._renewed_at = runtime.now()
        self._poll = LEASE_POLL_SECONDS
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rollup-lease", daemon=True)

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            now = self._runtime.now()
            if (now - self._renewed_at).total_seconds() < ROLLUP_LEASE_SECONDS / 3:
                continue
            until = (now + dt.timedelta(seconds=ROLLUP_LEASE_SECONDS)).isoformat()

            def renew(doc: dict[str, Any]) -> None:
                rollup = doc["sites"][self._site_url]["rollup"]
                if (
                    rollup.get("status") == RollupStatus.CLAIMED
                    and rollup.get("token") == self._token
                ):
                    rollup["lease_until"] = until  # noqa: B023 - used before the next loop

            try:
                update_json(self._runtime.store, self._key, renew)
                self._renewed_at = now
            except SpSyncError as exc:  # the next look tries again; the lease is generous
                log.warning("Could not renew the rollup lease: %s", exc)


def _maybe_finish_site(
    runtime: Runtime, key: str, site_url: str, site: SiteConfig, *, not_after: float | None = None
) -> str:
    """Claim and run the site's rollup when every list job is finished (exactly once); the
    rollup ends by `not_after` (`time.monotonic()`), the invocation's deadline, when given.

    The claim is a lease renewed while the rollup runs; a claim whose lease ran out (its
    invocation died) is taken over by whichever delivery for the site comes next, up to
    MAX_ROLLUP_ATTEMPTS claims, after which the rollup is recorded as failed with the reason."""
    store = runtime.store
    outcome = ""
    token = uuid.uuid4().hex
    now = runtime.now()

    def claim(doc: dict[str, Any]) -> None:
        nonlocal outcome
        entry = doc["sites"][site_url]
        states = [v["status"] for v in entry["lists"].values()]
        rollup = entry["rollup"]
        outcome = ""
        if not all(s in (ListStatus.DONE, ListStatus.FAILED) for s in states):
            return
        status = rollup["status"]
        if status == RollupStatus.CLAIMED and not _lease_expired(rollup, now):
            outcome = "busy"
            return
        if status not in (RollupStatus.WAITING, RollupStatus.CLAIMED):
            return
        attempts = int(rollup.get("attempts", 0))
        if attempts >= MAX_ROLLUP_ATTEMPTS:
            entry["rollup"] = {
                "status": RollupStatus.FAILED,
                "attempts": attempts,
                "error": {
                    "error": "RollupAbandoned",
                    "message": f"the rollup was claimed {attempts} times and never finished "
                    f"(last claim at {rollup.get('at')}); the workbooks show the previous data",
                },
            }
            outcome = "gave_up"
            return
        entry["rollup"] = {
            "status": RollupStatus.CLAIMED,
            "at": now.isoformat(),
            "lease_until": (now + dt.timedelta(seconds=ROLLUP_LEASE_SECONDS)).isoformat(),
            "token": token,
            "attempts": attempts + 1,
            **({"took_over_from": rollup.get("at")} if status == RollupStatus.CLAIMED else {}),
        }
        outcome = "claimed"

    doc = update_json(store, key, claim)
    entry = doc["sites"][site_url]
    if outcome == "busy":
        return _BUSY
    if outcome == "gave_up":
        details = dict(entry["rollup"]["error"])
        _write_site_summary(
            store,
            site,
            doc,
            {"status": RunStatus.FAILED, "error": details, "lists": entry["lists"]},
        )
        log.error("Run %s: rollup of %s abandoned: %s", doc["run_id"], site_url, details)
        return f"rollup failed: {details['message']}"
    if outcome != "claimed":
        return "synced; rollup waits for the site's other lists"
    failed = [t for t, v in entry["lists"].items() if v["status"] == ListStatus.FAILED]
    try:
        with _LeaseKeeper(runtime, key, site_url, token):
            summary = pipeline.run_rollup_job(
                runtime, site, failed_lists=failed, not_after=not_after
            )
    except RetryableError:
        # E.g. another run's rollup of this site holds the run lock: give the claim back
        # (its attempt still counts) and let the host deliver the message again.
        def release(d: dict[str, Any]) -> None:
            rollup = d["sites"][site_url]["rollup"]
            if rollup.get("token") == token:
                d["sites"][site_url]["rollup"] = {
                    "status": RollupStatus.WAITING,
                    "attempts": rollup.get("attempts", 1),
                }

        update_json(store, key, release)
        raise
    except pipeline.RollupSupersededError as exc:
        # A newer run published this site while this rollup ran (or stalled): the site keeps
        # the newer workbooks, this run says so and is not retried. Its summary is not the
        # site's last run (the newer run's is).
        details = exc.details()
        update_json(
            store,
            key,
            lambda d: d["sites"][site_url].update(
                {"rollup": {"status": RollupStatus.SUPERSEDED, "error": details}}
            ),
        )
        log.warning("Run %s: rollup of %s superseded: %s", doc["run_id"], site_url, exc)
        return f"rollup superseded: {exc}"
    except SpSyncError as exc:
        details = exc.details()
        update_json(
            store,
            key,
            lambda d: d["sites"][site_url].update(
                {"rollup": {"status": RollupStatus.FAILED, "error": details}}
            ),
        )
        _write_site_summary(
            store,
            site,
            doc,
            {"status": RunStatus.FAILED, "error": details, "lists": entry["lists"]},
        )
        pipeline.after_run_notice(runtime, site)
        return f"rollup failed: {exc}"
    result = summary.to_dict()
    update_json(
        store,
        key,
        lambda d: d["sites"][site_url].update(
            {"rollup": {"status": RollupStatus.DONE, "summary": result}}
        ),
    )
    _write_site_summary(
        store,
        site,
        doc,
        {
            "status": RunStatus.PARTIAL if failed else RunStatus.OK,
            "lists": entry["lists"],
            "rollup": result,
        },
    )
    pipeline.after_run_notice(runtime, site)
    return "synced; site rollup done"


def _write_site_summary(
    store: StateStore,
    site: SiteConfig,
    doc: dict[str, Any],
    body: dict[str, Any],
    *,
    attempt: int = 0,
) -> None:
    """The site's "last run", unless a newer run (by creation time) already wrote it: an
    older run that finishes late never replaces what a newer run recorded."""
    key = _summary_key(site.name)
    current, etag = store.read_json(key)
    created = str(doc.get("created_at") or "")
    if current is not None and str(current.get("created_at") or "") > created:
        log.warning(
            "Run %s finished after the newer run %s; its summary is not stored as the last run",
            doc["run_id"],
            current.get("run_id"),
        )
        return
    record = {"run_id": doc["run_id"], "created_at": created, **body}
    record["status"] = checked(RunStatus, record.get("status"))
    try:
        if etag is None:
            store.write_json(key, record, create_only=True)
        else:
            store.write_json(key, record, expected_etag=etag)
    except StateConflictError:  # someone wrote in between: decide again against their record
        if attempt < 10:
            _write_site_summary(store, site, doc, body, attempt=attempt + 1)


def handle_poison_message(body: bytes | str, *, load_runtime: RuntimeLoader) -> str:
    """A message the host gave up on: record it as failed so the run can finish and report."""
    try:
        msg = JobMessage.from_body(body)
    except ConfigurationError as exc:
        return f"unreadable poison message dropped: {exc}"
    runtime = load_runtime()
    settings = runtime.settings
    store = runtime.store
    key = _run_key(msg.run_id)

    def change(doc: dict[str, Any]) -> None:
        for title in msg.lists:
            entry = doc["sites"][msg.site_url]["lists"][title]
            if entry["status"] not in (ListStatus.DONE, ListStatus.FAILED):
                entry.update(
                    {
                        "status": ListStatus.FAILED,
                        "error": {"message": "gave up after repeated failures"},
                    }
                )

    try:
        update_json(store, key, change)
    except (ConfigurationError, KeyError):
        return f"poison message for unknown run {msg.run_id}"
    try:
        site = _site_for(settings, msg.site_url)
    except ConfigurationError as exc:
        return f"poison message for a site no longer configured: {exc}"
    try:
        return _maybe_finish_site(runtime, key, msg.site_url, site)
    except RetryableError as exc:  # nothing retries a poison message: the next run rolls up
        log.error("Run %s: the rollup of %s could not start: %s", msg.run_id, msg.site_url, exc)
        return f"rollup not started: {exc}"


def _site_for(settings: Settings, site_url: str) -> SiteConfig:
    for site in settings.sites:
        if site.url.rstrip("/") == site_url.rstrip("/"):
            return site
    raise ConfigurationError(_SITE_GONE.fill(site=site_url))
