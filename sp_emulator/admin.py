"""Observation and fault injection: `emu.faults`, statistics, the request journal, digests.

Everything here is reachable from Python (`emu.faults.inject(...)`) and over HTTP under
`/_emulator/` (see `register_admin_routes`). Admin requests are never counted or journaled, and
each admin route is O(1) apart from reading the journal, so tests can poll them freely.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sp_emulator.http import Request, Response, Router
from sp_emulator.model import Clock, SPError, field_from_properties, field_from_schema_xml

if TYPE_CHECKING:
    from sp_emulator.server import EmulatorApp

JOURNAL_SIZE = 20_000


@dataclass
class FaultRule:
    """One injected behaviour. `count=None` means until cleared."""

    kind: str  # "status" | "latency" | "drop"
    count: int | None = 1
    status: int = 429
    method: str | None = None
    path: re.Pattern[str] | None = None
    retry_after: int | None = 1
    ratelimit: bool = False
    probability: float | None = None
    batch: bool | None = None  # True: only $batch sub-requests; False: only top-level; None: both
    seconds: float = 0.0
    hits: int = 0

    def matches(self, method: str, path: str, is_batch_sub: bool) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        if self.batch is not None and self.batch != is_batch_sub:
            return False
        return not (self.path is not None and self.path.search(path) is None)


class Faults:
    """Fault injection rules applied to every SharePoint request (and `$batch` sub-request)."""

    def __init__(self, *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self.rules: list[FaultRule] = []
        self.rng = random.Random(seed)
        self.injected = 0
        self.on_expire_digests: Callable[[], None] = lambda: None
        self.on_expire_tokens: Callable[[], None] = lambda: None

    def _add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def inject(
        self,
        status: int = 429,
        count: int | None = 1,
        method: str | None = None,
        path: str | None = None,
        retry_after: int | None = 1,
        ratelimit: bool = False,
        probability: float | None = None,
        batch: bool | None = None,
    ) -> FaultRule:
        """Answer the next `count` matching requests with `status` (429/503) and `Retry-After`.

        `path` is a regular expression searched in the decoded server-relative path
        (`/sites/x/_api/web/lists/...`); `probability` makes only that share of matching
        requests fail (seeded RNG); `batch=True` targets only `$batch` sub-requests.
        """
        return self._add(
            FaultRule(
                "status",
                count,
                status,
                method,
                re.compile(path, re.I) if path else None,
                retry_after,
                ratelimit,
                probability,
                batch,
            )
        )

    def latency(
        self,
        seconds: float,
        path: str | None = None,
        count: int | None = None,
        method: str | None = None,
    ) -> FaultRule:
        """Delay matching requests by `seconds` (all of them unless `count` is given)."""
        return self._add(
            FaultRule(
                "latency",
                count,
                0,
                method,
                re.compile(path, re.I) if path else None,
                None,
                False,
                None,
                None,
                seconds,
            )
        )

    def drop_connection(
        self, count: int = 1, path: str | None = None, method: str | None = None
    ) -> FaultRule:
        """Send headers and half of the body of the next matching responses, then close the socket."""
        return self._add(
            FaultRule(
                "drop",
                count,
                0,
                method,
                re.compile(path, re.I) if path else None,
                None,
                False,
                None,
                False,
            )
        )

    def expire_digests(self) -> None:
        """Invalidate every issued form digest: the next request carrying one gets 403."""
        self.on_expire_digests()

    def expire_tokens(self) -> None:
        """Invalidate every issued bearer token (delegates to the auth service)."""
        self.on_expire_tokens()

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def take(
        self, method: str, path: str, is_batch_sub: bool
    ) -> tuple[float, FaultRule | None, bool]:
        """(latency seconds, status rule to answer with, drop connection) for one request."""
        if not self.rules:
            return 0.0, None, False
        delay, status_rule, drop = 0.0, None, False
        with self._lock:
            for rule in self.rules:
                if not rule.matches(method, path, is_batch_sub):
                    continue
                if rule.kind == "latency":
                    delay += rule.seconds
                elif rule.kind == "drop" and not drop:
                    drop = True
                elif rule.kind == "status" and status_rule is None:
                    if rule.probability is not None and self.rng.random() >= rule.probability:
                        continue
                    status_rule = rule
                else:
                    continue
                rule.hits += 1
                if rule.count is not None:
                    rule.count -= 1
            self.rules = [r for r in self.rules if r.count is None or r.count > 0]
            if status_rule is not None or drop:
                self.injected += 1
        return delay, status_rule, drop

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "kind": r.kind,
                    "count": r.count,
                    "status": r.status,
                    "method": r.method,
                    "path": r.path.pattern if r.path else None,
                    "retry_after": r.retry_after,
                    "probability": r.probability,
                    "batch": r.batch,
                    "seconds": r.seconds,
                    "hits": r.hits,
                }
                for r in self.rules
            ]


def throttle_response(rule: FaultRule, fmt: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Status, headers and error payload of an injected 429/503."""
    headers: dict[str, str] = {}
    if rule.retry_after is not None:
        headers["Retry-After"] = str(rule.retry_after)
    if rule.ratelimit:
        headers["RateLimit-Limit"] = "1200"
        headers["RateLimit-Remaining"] = "0"
        headers["RateLimit-Reset"] = str(rule.retry_after or 1)
    text = (
        "The request has been throttled. Too many requests."
        if rule.status == 429
        else "The server is currently unable to handle the request due to a temporary overloading (Server Too Busy)."
    )
    key = "error" if fmt == "verbose" else "odata.error"
    return (
        rule.status,
        headers,
        {
            key: {
                "code": "-2147024860, Microsoft.SharePoint.SPServerTooBusyException"
                if rule.status == 503
                else "-2147024860, Microsoft.SharePoint.SPRequestThrottledException",
                "message": {"lang": "en-US", "value": text},
            }
        },
    )


class Stats:
    """Counters of served SharePoint requests (admin requests excluded) and the journal."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.routes: dict[str, int] = {}
        self.bytes_sent = 0
        self.bytes_received = 0
        self.journal: deque[dict[str, Any]] = deque(maxlen=JOURNAL_SIZE)

    def record(self, entry: dict[str, Any], sent: int, received: int) -> None:
        with self._lock:
            self.requests += 1
            route = entry.get("route") or "unknown"
            self.routes[route] = self.routes.get(route, 0) + 1
            self.bytes_sent += sent
            self.bytes_received += received
            self.journal.append(entry)

    def snapshot(self, faults_injected: int) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "routes": dict(self.routes),
                "bytes_sent": self.bytes_sent,
                "bytes_received": self.bytes_received,
                "faults_injected": faults_injected,
            }

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.routes = {}
            self.bytes_sent = 0
            self.bytes_received = 0
            self.journal.clear()

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.journal)


class Digests:
    """Form digests handed out by `/_api/contextinfo` and checked when a request sends one."""

    TIMEOUT = 1800

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._issued: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self) -> str:
        now = self.clock.now()
        stamp = time.strftime("%d %b %Y %H:%M:%S -0000", time.gmtime(now))
        value = "0x" + secrets.token_hex(64).upper() + "," + stamp
        with self._lock:
            if len(self._issued) > 10_000:
                self._issued.clear()
            self._issued[value] = now
        return value

    def valid(self, value: str) -> bool:
        with self._lock:
            issued = self._issued.get(value)
        return issued is not None and self.clock.now() - issued < self.TIMEOUT

    def expire_all(self) -> None:
        with self._lock:
            self._issued.clear()


# ---------------------------------------------------------------------------------------------
# Admin HTTP API


def _json_response(payload: Any, status: int = 200) -> Response:
    return Response(
        status,
        {"Content-Type": "application/json; charset=utf-8"},
        json.dumps(payload, ensure_ascii=False).encode("utf-8"),
    )


def _body(request: Request) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    data = json.loads(request.body)
    return data if isinstance(data, dict) else {}


def register_admin_routes(router: Router, app: EmulatorApp) -> None:
    """Routes under `/_emulator/` (no token needed)."""
    backend = app.backend

    def stats(request: Request, m: re.Match[str]) -> Response:
        return _json_response(app.stats())

    def stats_reset(request: Request, m: re.Match[str]) -> Response:
        app.reset_stats()
        return _json_response({"ok": True})

    def journal(request: Request, m: re.Match[str]) -> Response:
        return _json_response(app.journal())

    def faults_get(request: Request, m: re.Match[str]) -> Response:
        return _json_response(app.faults.describe())

    def faults_add(request: Request, m: re.Match[str]) -> Response:
        b = _body(request)
        kind = b.get("kind", "status")
        if kind == "latency":
            app.faults.latency(
                float(b.get("seconds", 0)),
                path=b.get("path"),
                count=b.get("count"),
                method=b.get("method"),
            )
        elif kind == "drop":
            app.faults.drop_connection(
                int(b.get("count", 1)), path=b.get("path"), method=b.get("method")
            )
        else:
            app.faults.inject(
                status=int(b.get("status", 429)),
                count=b.get("count", 1),
                method=b.get("method"),
                path=b.get("path"),
                retry_after=b.get("retry_after", 1),
                ratelimit=bool(b.get("ratelimit")),
                probability=b.get("probability"),
                batch=b.get("batch"),
            )
        return _json_response({"ok": True, "faults": app.faults.describe()}, 201)

    def faults_clear(request: Request, m: re.Match[str]) -> Response:
        app.faults.clear()
        return _json_response({"ok": True})

    def expire_digests(request: Request, m: re.Match[str]) -> Response:
        app.faults.expire_digests()
        return _json_response({"ok": True})

    def expire_tokens(request: Request, m: re.Match[str]) -> Response:
        app.faults.expire_tokens()
        return _json_response({"ok": True})

    def reset(request: Request, m: re.Match[str]) -> Response:
        b = _body(request)
        app.reset(sites=b.get("sites"))
        return _json_response({"ok": True, "sites": sorted(s.name for s in backend.sites.values())})

    def sites_get(request: Request, m: re.Match[str]) -> Response:
        return _json_response(
            [
                {"name": s.name, "url": f"{request.base_url}{s.path}", "id": s.id}
                for s in backend.sites.values()
            ]
        )

    def sites_add(request: Request, m: re.Match[str]) -> Response:
        b = _body(request)
        if not b.get("name"):
            return _json_response({"error": "name required"}, 400)
        site = backend.create_site(str(b["name"]), b.get("title"))
        return _json_response(
            {"name": site.name, "url": f"{request.base_url}{site.path}", "id": site.id}, 201
        )

    def seed(request: Request, m: re.Match[str]) -> Response:
        b = _body(request)
        try:
            result = seed_list(app, b)
        except SPError as exc:
            return _json_response({"error": exc.message, "code": exc.code}, exc.status)
        return _json_response(result, 201)

    def clock_get(request: Request, m: re.Match[str]) -> Response:
        return _json_response({"now": backend.clock.now(), "offset": backend.clock.offset})

    def clock_post(request: Request, m: re.Match[str]) -> Response:
        b = _body(request)
        backend.clock.advance(float(b.get("advance", 0)))
        return _json_response({"now": backend.clock.now(), "offset": backend.clock.offset})

    def token(request: Request, m: re.Match[str]) -> Response:
        b = _body(request)
        tok = app.issue_token(app_id=b.get("app_id"), lifetime=int(b.get("lifetime", 3600)))
        return _json_response(
            {
                "access_token": tok,
                "token_type": "Bearer",
                "expires_in": int(b.get("lifetime", 3600)),
            }
        )

    def grant(request: Request, m: re.Match[str]) -> Response:
        b = _body(request)
        app.grant(str(b["app_id"]), str(b["site"]), b.get("right"))
        return _json_response({"ok": True})

    add = router.add
    add("GET", r"/_emulator/stats", stats, "admin.stats")
    add("POST", r"/_emulator/stats/reset", stats_reset, "admin.stats.reset")
    add("GET", r"/_emulator/journal", journal, "admin.journal")
    add("GET", r"/_emulator/faults", faults_get, "admin.faults")
    add("POST", r"/_emulator/faults", faults_add, "admin.faults.add")
    add("POST", r"/_emulator/faults/clear", faults_clear, "admin.faults.clear")
    add("POST", r"/_emulator/digests/expire", expire_digests, "admin.digests.expire")
    add("POST", r"/_emulator/tokens/expire", expire_tokens, "admin.tokens.expire")
    add("POST", r"/_emulator/reset", reset, "admin.reset")
    add("GET", r"/_emulator/sites", sites_get, "admin.sites")
    add("POST", r"/_emulator/sites", sites_add, "admin.sites.add")
    add("POST", r"/_emulator/seed", seed, "admin.seed")
    add("GET", r"/_emulator/clock", clock_get, "admin.clock")
    add("POST", r"/_emulator/clock", clock_post, "admin.clock.advance")
    add("POST", r"/_emulator/token", token, "admin.token")
    add("POST", r"/_emulator/grants", grant, "admin.grant")


def seed_list(app: EmulatorApp, spec: dict[str, Any]) -> dict[str, Any]:
    """Create (or reuse) a list with fields and bulk items from a JSON spec.

    `{"site": "x", "list": "Uppgifter", "template": 100, "description": "",
      "fields": [{"SchemaXml": "<Field …/>"} | {"Title": "Status", "FieldTypeKind": 6, …}],
      "items": [{"Title": "…", "Status": "Ny"}, …]}`
    """
    backend = app.backend
    site = (
        backend.get_site(str(spec.get("site", "")))
        if backend.site_exists(str(spec.get("site", "")))
        else backend.create_site(str(spec.get("site", "")))
    )
    title = str(spec["list"])
    lst = site.list_by_title(title) or backend.create_list(
        site, title, str(spec.get("description", "")), int(spec.get("template", 100))
    )
    for fspec in spec.get("fields", []):
        f = (
            field_from_schema_xml(fspec["SchemaXml"])
            if "SchemaXml" in fspec
            else field_from_properties(fspec)
        )
        if lst.field_by_name(f.internal_name) is None:
            backend.add_field(site, lst, f, unique_name="SchemaXml" not in fspec)
    ids = backend.bulk_add_items(site, title, spec.get("items", []))
    return {
        "list_id": lst.id,
        "item_ids": ids[:1000],
        "added": len(ids),
        "entity_type": lst.entity_type_full_name,
        "fields": [f.internal_name for f in lst.fields],
    }


__all__ = [
    "Digests",
    "FaultRule",
    "Faults",
    "Stats",
    "register_admin_routes",
    "seed_list",
    "throttle_response",
]
