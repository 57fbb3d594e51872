"""Observation and fault injection: `emu.faults`, statistics, the request journal, digests.

This layer knows HTTP requests only as (method, path) pairs and nothing about sites, lists or
the app: the server consults it around every SharePoint request. Everything here is reachable
from Python (`emu.faults.inject(...)`) and over HTTP under `/_emulator/` (`admin/routes.py`).
"""

from __future__ import annotations

import random
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sp_emulator.clock import Clock
from sp_emulator.errors import throttling_code

JOURNAL_SIZE = 20_000


@dataclass
class FaultRule:
    """One injected behaviour. `count=None` means until cleared."""

    kind: str  # "status" | "latency" | "drop" | "html"
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
    #: A probability rule leaves a request (same method and path) alone once that many of its
    #: answers in a row failed, whatever failed them (see Faults.note_answer). None: no limit.
    max_streak: int | None = None

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
        #: Failed answers in a row per request ("METHOD path"); a success forgets the request.
        self.failed_in_a_row: dict[str, int] = {}
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
        max_streak: int | None = None,
    ) -> FaultRule:
        """Answer the next `count` matching requests with `status` (429/503) and `Retry-After`.

        `path` is a regular expression searched in the decoded server-relative path
        (`/sites/x/_api/web/lists/...`); `probability` makes only that share of matching
        requests fail (seeded RNG); `batch=True` targets only `$batch` sub-requests;
        `max_streak` (with `probability`) spares a request (method and path) whose last
        `max_streak` answers all failed, for any reason: a random storm then never spends a
        client's whole retry budget on one request by chance.
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
                max_streak=max_streak,
            )
        )

    def sign_in_page(
        self,
        count: int | None = 1,
        path: str | None = None,
        method: str | None = None,
        batch: bool | None = False,
    ) -> FaultRule:
        """Answer the next matching requests 200 with an HTML sign-in page instead of JSON.

        Not SharePoint behaviour: what a proxy or captive portal between a client and
        SharePoint sends, so a client's handling of an answer that is not JSON can be tested.
        `batch=True` puts the page in `$batch` parts instead (a body damaged on the way).
        """
        return self._add(
            FaultRule(
                "html",
                count,
                200,
                method,
                re.compile(path, re.I) if path else None,
                None,
                batch=batch,
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
                elif rule.kind in ("status", "html") and status_rule is None:
                    if rule.probability is not None:
                        if self.rng.random() >= rule.probability:
                            continue
                        streak = self.failed_in_a_row.get(f"{method.upper()} {path}", 0)
                        if rule.max_streak is not None and streak >= rule.max_streak:
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

    def note_answer(self, method: str, path: str, status: int) -> None:
        """Count a request's failed answers in a row (for `max_streak`); the server calls it."""
        key = f"{method.upper()} {path}"
        with self._lock:
            if status >= 400:
                self.failed_in_a_row[key] = self.failed_in_a_row.get(key, 0) + 1
            else:
                self.failed_in_a_row.pop(key, None)

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
                    "max_streak": r.max_streak,
                    "hits": r.hits,
                }
                for r in self.rules
            ]


SIGN_IN_PAGE = (
    b"<!DOCTYPE html><html><head><title>Sign in to your account</title></head>"
    b'<body><form method="post" action="/login">Sign in</form></body></html>'
)


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
                "code": throttling_code(rule.status),
                "message": {"lang": "en-US", "value": text},
            }
        },
    )


class Stats:
    """Counters of served SharePoint requests (admin requests excluded) and the journal;
    `routes` also counts the managed-identity endpoint's requests (`identity.*`)."""

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

    def count_route(self, route: str) -> None:
        """Count one request of a route outside SharePoint (the managed-identity endpoint) in
        `routes` only."""
        with self._lock:
            self.routes[route] = self.routes.get(route, 0) + 1

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


__all__ = ["JOURNAL_SIZE", "Digests", "FaultRule", "Faults", "Stats", "throttle_response"]
