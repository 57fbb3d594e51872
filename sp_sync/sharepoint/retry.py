"""The one retry policy for SharePoint traffic (singer-sdk style: one place classifies).

`classify()` looks at a failed attempt (an HTTP status with SharePoint's error code and headers,
or a connection failure) and returns a `RetryDecision`; `RetryPolicy` holds the limits and the
injectable clock/sleep. The loop that uses both lives in `client.ClientCore._execute`, around
whole `execute_query` calls, because office365 raises on the status before any urllib3-level
retry could see the response body (and a threshold error is a 500 that must *not* be retried).

Rules (issue 4, Microsoft's throttling guidance):
- 429 / 503: wait `Retry-After` (seconds or an HTTP date), or `RateLimit-Reset` when larger.
- 502, 504, 500 without a known fatal SharePoint code, dropped/refused connections and timeouts:
  exponential backoff with full jitter.
- never retried: threshold errors (-2147024860, -2147024749), expired change tokens
  (-2146233086), 400, 403, 404, 412 and the rest of 4xx; 401 renews the token once.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: SharePoint hresults that are answers, not accidents: retrying cannot change them.
THRESHOLD_HRESULTS = frozenset({"-2147024860", "-2147024749"})
CHANGE_TOKEN_HRESULTS = frozenset({"-2146233086"})
FATAL_500_HRESULTS = THRESHOLD_HRESULTS | CHANGE_TOKEN_HRESULTS

THROTTLE_STATUSES = frozenset({429, 503})
TRANSIENT_STATUSES = frozenset({500, 502, 504, 408})
GATEWAY_STATUSES = frozenset({502, 504})


class RetryAction(enum.Enum):
    WAIT_RETRY_AFTER = "wait_retry_after"  # throttled: the server said how long
    BACKOFF = "backoff"  # transient: exponential backoff with jitter
    RENEW_TOKEN = "renew_token"  # 401: renew the token once, then retry
    GIVE_UP = "give_up"  # an answer that a retry cannot change


@dataclass(frozen=True)
class RetryDecision:
    action: RetryAction
    #: Seconds the server asked for (WAIT_RETRY_AFTER); None when it gave no hint.
    server_wait: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    """Limits for retrying one SharePoint operation.

    `sleep` and `clock` are injectable so tests can run without real waiting; `clock` must be
    monotonic and is the same clock as the client's `deadline`.
    """

    max_attempts: int = 8
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    #: Used for a 429/503 that carries neither Retry-After nor RateLimit-Reset.
    default_throttle_wait: float = 5.0
    #: Upper bound on the total seconds one operation may spend waiting.
    max_total_wait: float = 600.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)
    rng: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for the n-th failed attempt (1-based)."""
        cap = min(self.backoff_max, self.backoff_base * (2 ** max(0, attempt - 1)))
        return cap * self.rng()

    def wait_for(self, decision: RetryDecision, attempt: int) -> float:
        if decision.action is RetryAction.WAIT_RETRY_AFTER:
            if decision.server_wait is not None:
                return max(0.0, decision.server_wait)
            return self.default_throttle_wait
        if decision.action is RetryAction.BACKOFF:
            return self.backoff(attempt)
        return 0.0


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header: delta-seconds or an HTTP date. None if absent/bad."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def server_wait(headers: Mapping[str, str]) -> float | None:
    """The larger of `Retry-After` and `RateLimit-Reset` (both seconds), None when neither."""
    lowered = {k.lower(): v for k, v in headers.items()}
    retry_after = parse_retry_after(lowered.get("retry-after"))
    reset: float | None = None
    raw_reset = lowered.get("ratelimit-reset")
    if raw_reset is not None:
        try:
            reset = max(0.0, float(raw_reset.strip()))
        except ValueError:
            reset = None
    candidates = [v for v in (retry_after, reset) if v is not None]
    return max(candidates) if candidates else None


def classify_status(
    status: int, hresult: str | None, headers: Mapping[str, str], error_type: str | None = None
) -> RetryDecision:
    """Decide what to do about an HTTP error response. The only place that does so."""
    # The status decides first: SPO's 429/503 bodies may carry the SPQueryThrottledException
    # type too (reference §2.1), and those are real throttling, not the list view threshold.
    if status in THROTTLE_STATUSES:
        return RetryDecision(RetryAction.WAIT_RETRY_AFTER, server_wait(headers), "throttled")
    if status in GATEWAY_STATUSES:  # proxies and load balancers: the body is not SharePoint's
        return RetryDecision(RetryAction.BACKOFF, reason=f"HTTP {status}")
    if hresult in THRESHOLD_HRESULTS or (error_type and "SPQueryThrottledException" in error_type):
        return RetryDecision(RetryAction.GIVE_UP, reason="list view threshold")
    if status == 401:
        return RetryDecision(RetryAction.RENEW_TOKEN, reason="token refused")
    if status in TRANSIENT_STATUSES:
        if status == 500 and hresult in FATAL_500_HRESULTS:
            return RetryDecision(RetryAction.GIVE_UP, reason=f"SharePoint error {hresult}")
        return RetryDecision(RetryAction.BACKOFF, reason=f"HTTP {status}")
    return RetryDecision(RetryAction.GIVE_UP, reason=f"HTTP {status}")


def classify_connection_error() -> RetryDecision:
    """Dropped, refused and timed-out connections are retried with backoff."""
    return RetryDecision(RetryAction.BACKOFF, reason="connection failed")
