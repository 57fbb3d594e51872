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
from sp_sync.run import pipeline
from sp_sync.run.runtime import QueueSender, Runtime
from sp_sync.settings import Settings, SiteConfig

if TYPE_CHECKING:  # the state package imports pandas; see runtime.py on deferred imports
    from sp_sync.state import StateStore

log = logging.getLogger(__name__)

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
#: host.json's maxDequeueCount: the host moves a message to the poison queue after this many tries.
MAX_DEQUEUE_COUNT = 3
#: A list that keeps running out of time continues at most this many times; then it is recorded
#: as failed so that a site that is too slow for the budget cannot loop through the queue forever.
MAX_ATTEMPTS = 20


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
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        try:
            doc = json.loads(text)
            return cls(
                run_id=str(doc["run_id"]),
                site_url=str(doc["site_url"]),
                lists=tuple(str(t) for t in doc["lists"]),
                full=bool(doc.get("full", False)),
                attempt=int(doc.get("attempt", 1)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"Unreadable job message: {exc}") from exc


class AzureQueueSender:
    """Sends base64-encoded messages, the encoding the queue trigger expects by default."""

    def __init__(self, connection_string: str, queue_name: str) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.queue import QueueClient

        self._client = QueueClient.from_connection_string(connection_string, queue_name)
        try:
            self._client.create_queue()
        except ResourceExistsError:
            pass

    def send(self, text: str) -> None:
        self._client.send_message(base64.b64encode(text.encode("utf-8")).decode("ascii"))


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
            raise ConfigurationError(f"Run document {key} does not exist")
        change(doc)
        try:
            store.write_json(key, doc, expected_etag=etag)
            return doc
        except StateConflictError:
            continue
    raise RetryableError(f"Could not update {key}: too many concurrent writers")


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
            raise SettingsError("sites", f"not configured: {', '.join(sorted(unknown))}")
    run_id = run_id or new_run_id(runtime.now())
    messages: list[JobMessage] = []
    for site in chosen:
        site_lists = list(site.lists) or schema_lists
        if lists:
            missing = [t for t in lists if t not in schema_lists]
            if missing:
                raise SettingsError("lists", f"not in the list schemas: {', '.join(missing)}")
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
        entry = sites.setdefault(m.site_url, {"lists": {}, "rollup": {"status": "waiting"}})
        for title in m.lists:
            entry["lists"][title] = {"status": "queued"}
    doc = {
        "run_id": fan.run_id,
        "trigger": trigger,
        "created_at": runtime.now().isoformat(),
        "sites": sites,
    }
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
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _RequestError(400, f"The body is not valid JSON: {exc}") from exc
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
            return Answer(200, {"configuration": config, "run": doc})
        busy = _sites_in_progress(store)
        sites = {}
        for site in settings.sites:
            summary, _ = store.read_json(_summary_key(site.name))
            sites[site.name] = {
                "url": site.url,
                "last_run": summary,
                "in_progress": site.url in busy,
            }
    except SpSyncError as exc:
        return Answer(200, {"configuration": {"ok": False, "problem": str(exc)}})
    return Answer(200, {"configuration": config, "sites": sites})


def _sites_in_progress(store: StateStore) -> set[str]:
    """Sites with unfinished work in one of the recent run documents (each read once)."""
    busy: set[str] = set()
    for key in sorted(store.list_keys("runs/"))[-20:]:
        doc, _ = store.read_json(key)
        for site_url, entry in (doc or {}).get("sites", {}).items():
            if entry["rollup"]["status"] in ("waiting", "claimed") and not any(
                v["status"] == "failed" for v in entry["lists"].values()
            ):
                busy.add(site_url)
    return busy


# --------------------------------------------------------------------------------------------
# Queue: running one job, coordinating the rollup, poison messages


def handle_job_message(
    body: bytes | str, *, dequeue_count: int = 1, load_runtime: RuntimeLoader
) -> str:
    """Run one job. Retryable failures raise (the host retries, then poisons the message);
    failures a retry cannot fix are recorded and the message is completed."""
    try:
        msg = JobMessage.from_body(body)
    except ConfigurationError as exc:
        # A retry cannot make it readable: complete the message instead of poisoning it.
        log.error("Dropped a job message: %s", exc)
        return f"dropped: {exc}"
    runtime = load_runtime()
    settings = runtime.settings
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

    def mark(titles: Sequence[str], status: str, **extra: Any) -> None:
        def change(doc: dict[str, Any]) -> None:
            for title in titles:
                entry = doc["sites"][msg.site_url]["lists"][title]
                if status in ("running", "continues", "done"):
                    entry.pop("error", None)  # an earlier attempt's error no longer applies
                entry.update({"status": status, **extra})

        update_json(store, key, change)

    mark(msg.lists, "running", attempt=msg.attempt, dequeue_count=dequeue_count)
    try:
        result = pipeline.run_sync_job(runtime, site, msg.lists, full=msg.full)
    except RetryableError as exc:
        if dequeue_count >= MAX_DEQUEUE_COUNT:
            mark(msg.lists, "failed", error=exc.details())
            return _maybe_finish_site(runtime, key, msg.site_url, site)
        mark(msg.lists, "retrying", error=exc.details())
        raise
    except SpSyncError as exc:
        mark(msg.lists, "failed", error=exc.details())
        log.error("Job for %s failed: %s", msg.site_url, exc)
        return _maybe_finish_site(runtime, key, msg.site_url, site)

    continuing: list[str] = []
    for r in result.lists:
        if r.continues_next_run:
            continuing.append(r.list)
            mark([r.list], "continues", result=r.to_dict())
        else:
            mark([r.list], "done", result=r.to_dict())
    for err in result.errors:
        title = str(err.get("list", ""))
        if title in msg.lists:
            mark([title], "failed", error=dict(err))
    if continuing and msg.attempt >= MAX_ATTEMPTS:
        mark(
            continuing,
            "failed",
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
    return _maybe_finish_site(runtime, key, msg.site_url, site)


def _maybe_finish_site(runtime: Runtime, key: str, site_url: str, site: SiteConfig) -> str:
    """Claim and run the site's rollup when every list job is finished (exactly once)."""
    store = runtime.store
    claimed = False

    def claim(doc: dict[str, Any]) -> None:
        nonlocal claimed
        entry = doc["sites"][site_url]
        states = [v["status"] for v in entry["lists"].values()]
        claimed = False
        if entry["rollup"]["status"] == "waiting" and all(s in ("done", "failed") for s in states):
            entry["rollup"] = {"status": "claimed", "at": runtime.now().isoformat()}
            claimed = True

    doc = update_json(store, key, claim)
    if not claimed:
        return "synced; rollup waits for the site's other lists"
    entry = doc["sites"][site_url]
    failed = [t for t, v in entry["lists"].items() if v["status"] == "failed"]
    try:
        summary = pipeline.run_rollup_job(runtime, site, failed_lists=failed)
    except SpSyncError as exc:
        details = exc.details()
        update_json(
            store,
            key,
            lambda d: d["sites"][site_url].update(
                {"rollup": {"status": "failed", "error": details}}
            ),
        )
        store.write_json(
            _summary_key(site.name),
            {
                "run_id": doc["run_id"],
                "status": "failed",
                "error": details,
                "lists": entry["lists"],
            },
        )
        pipeline.after_run_notice(runtime, site)
        return f"rollup failed: {exc}"
    result = summary.to_dict()
    update_json(
        store,
        key,
        lambda d: d["sites"][site_url].update({"rollup": {"status": "done", "summary": result}}),
    )
    store.write_json(
        _summary_key(site.name),
        {
            "run_id": doc["run_id"],
            "status": "partial" if failed else "ok",
            "lists": entry["lists"],
            "rollup": result,
        },
    )
    pipeline.after_run_notice(runtime, site)
    return "synced; site rollup done"


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
            if entry["status"] not in ("done", "failed"):
                entry.update(
                    {"status": "failed", "error": {"message": "gave up after repeated failures"}}
                )

    try:
        update_json(store, key, change)
    except (ConfigurationError, KeyError):
        return f"poison message for unknown run {msg.run_id}"
    try:
        site = _site_for(settings, msg.site_url)
    except ConfigurationError as exc:
        return f"poison message for a site no longer configured: {exc}"
    return _maybe_finish_site(runtime, key, msg.site_url, site)


def _site_for(settings: Settings, site_url: str) -> SiteConfig:
    for site in settings.sites:
        if site.url.rstrip("/") == site_url.rstrip("/"):
            return site
    raise ConfigurationError(f"Site {site_url} is not configured any more")
