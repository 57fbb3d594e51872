"""The one retry policy for SharePoint traffic (Azure SDK's `RetryPolicy`, singer-sdk's one classifier).

`RetryPolicy.run(operation)` owns the loop: it calls `operation()`, reads a failure
(`failure_facts`), decides with `classify()` whether it is worth another attempt, waits
(`Retry-After` seconds or HTTP date, `RateLimit-Reset`, backoff with full jitter and a cap) and
stops at the attempt limit, the total-wait limit or the caller's deadline. Clock, sleep and random
are injected, so the loop is tested without a client or a server (tests/sharepoint/test_retry*.py).
`ClientCore._execute` hands it one callable per operation and maps a `RetryStopped` to
sp_sync.errors. The loop runs around whole `execute_query` calls, because office365 raises on the
status before any urllib3-level retry could see the response body (and a threshold error is a 500
that must *not* be retried).

Rules (issue 4, Microsoft's throttling guidance):
- 429 / 503: wait `Retry-After` (seconds or an HTTP date), or `RateLimit-Reset` when larger;
  5 s when the server gave neither.
- 502, 504, 500 without a known fatal SharePoint code, dropped/refused connections and timeouts:
  exponential backoff with full jitter (0.5 s doubling, capped at 30 s).
- never retried: threshold errors (-2147024860, -2147024749), expired change tokens
  (-2146233086), 400, 403, 404, 412 and the rest of 4xx; 401 renews the token once.
- at most 8 attempts and 600 s of waiting per operation, and never a wait past the deadline.
"""

from __future__ import annotations

import enum
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, TypeVar

import requests

from sp_sync.i18n import Text, log_text, seconds_text

log = logging.getLogger(__name__)

# The retry warning and the limits that end the loop, for people: the log line itself stays
# English (the Functions app's logs), the command line shows the `Text` in its language.
_RETRY_WARNING = Text(
    sv="{what}: {reason} (försök {attempt}); försöker igen om {wait}",
    en="{what}: {reason} (attempt {attempt}); retrying in {wait}",
)
_REASONS = {
    "throttled": Text(sv="strypt", en="throttled"),
    "connection failed": Text(sv="anslutningen misslyckades", en="connection failed"),
    "token refused": Text(sv="token nekad", en="token refused"),
    "list view threshold": Text(sv="listvyns tröskel", en="list view threshold"),
    "answer not JSON": Text(sv="svaret var inte JSON", en="the answer was not JSON"),
}
_RETRY_LIMIT = Text(sv="gränsen för antal försök nåddes", en="the retry limit was reached")
_WAIT_LIMIT = Text(sv="gränsen för total väntetid nåddes", en="the total wait limit was reached")
_PAST_DEADLINE = Text(
    sv="att vänta {wait} till skulle passera körningens tidsgräns",
    en="waiting {wait} more would pass the run's deadline",
)


def _sentence_start(value: str | Text) -> Text:
    text = value if isinstance(value, Text) else Text(sv=value, en=value)
    return Text(sv=text.sv[:1].upper() + text.sv[1:], en=text.en[:1].upper() + text.en[1:])


def _english(value: str | Text) -> str:
    return value.en if isinstance(value, Text) else value


T = TypeVar("T")

#: True: retry what `classify` allows; False: never retry; "refused": retry only answers that
#: say the server did not act (429/503, a refused token) — for writes that must not run twice.
RetryMode = bool | Literal["refused"]

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


class HttpFailure(Exception):
    """A failed HTTP answer that office365 did not turn into an exception (e.g. a `$batch` part).

    Carries what `classify_status` and `map_error` need.
    """

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str],
        code: str | None = None,
        message: str = "",
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"HTTP {status} {code or ''} {message}".strip())
        self.status = status
        self.headers = dict(headers)
        self.code = code
        self.message = message
        self.request_id = request_id

    @property
    def hresult(self) -> str | None:
        return hresult_of(self.code)

    @classmethod
    def from_response(cls, response: requests.Response) -> HttpFailure:
        code, message = parse_error_body(response.content, response.headers.get("Content-Type", ""))
        return cls(
            response.status_code, response.headers, code, message, request_id_of(response.headers)
        )


def parse_error_body(body: bytes, content_type: str = "") -> tuple[str | None, str]:
    """(code, message) from a SharePoint error body (verbose `error` or `odata.error`)."""
    try:
        data = json.loads(body.decode("utf-8", errors="replace")) if body else {}
    except ValueError:
        return None, body[:200].decode("utf-8", errors="replace")
    error = data.get("error") or data.get("odata.error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None, ""
    message = error.get("message")
    text = message.get("value", "") if isinstance(message, dict) else str(message or "")
    code = error.get("code")
    return (str(code) if code is not None else None), str(text)


def hresult_of(code: str | None) -> str | None:
    """The numeric part of SharePoint's `"-2147024860, Type.Name"` error code, if any."""
    if not code:
        return None
    token = code.split(",", 1)[0].strip()
    return token if token.lstrip("-").isdigit() else None


def error_type_of(code: str | None) -> str | None:
    """The exception type name after the comma of SharePoint's error code, if any."""
    if not code or "," not in code:
        return None
    return code.split(",", 1)[1].strip() or None


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """SharePoint's `SPRequestGuid` (or Graph's `request-id`): what support asks for."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return lowered.get("sprequestguid") or lowered.get("request-id")


def failure_facts(
    exc: BaseException,
) -> tuple[int | None, str | None, str, Mapping[str, str], str | None]:
    """(status, code, message, headers, request id) of any failure we know how to read."""
    # Imported here: office365 is heavy and only the client (which has loaded it) raises its
    # exceptions.
    from office365.runtime.client_request_exception import ClientRequestException

    if isinstance(exc, HttpFailure):
        return exc.status, exc.code, exc.message, exc.headers, exc.request_id
    if isinstance(exc, ClientRequestException):
        response = exc.response
        headers: Mapping[str, str] = response.headers if response is not None else {}
        status = response.status_code if response is not None else None
        message = exc.message if exc.code else ""
        return status, exc.code, message, headers, request_id_of(headers)
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        code, message = parse_error_body(exc.response.content)
        return (
            exc.response.status_code,
            code,
            message,
            exc.response.headers,
            request_id_of(exc.response.headers),
        )
    return None, None, "", {}, None


def classify(exc: BaseException) -> RetryDecision:
    """Retry decision for any failure raised while talking to SharePoint."""
    if isinstance(exc, UnreadableAnswer):
        return RetryDecision(RetryAction.BACKOFF, reason="answer not JSON")
    status, code, _message, headers, _rid = failure_facts(exc)
    if status is not None:
        return classify_status(status, hresult_of(code), headers, error_type_of(code))
    if isinstance(
        exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    ):
        return classify_connection_error()
    return RetryDecision(RetryAction.GIVE_UP, reason=type(exc).__name__)


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


#: What a failed attempt at talking to SharePoint raises (office365's ClientRequestException is a
#: RequestException). Anything else is a bug or our own error and passes through the loop untouched.
FAILURES: tuple[type[Exception], ...] = (HttpFailure, requests.RequestException)


class UnreadableAnswer(requests.RequestException):
    """A successful status whose body is not the JSON asked for (see `json_of`).

    SharePoint always answers its REST API in JSON; an HTML page with status 200 comes from
    something in between (a proxy's or a captive portal's sign-in page) and a body that does
    not parse was usually cut short. Both are worth a few more attempts, so it is a
    `RequestException` (one of `FAILURES`) that `classify` backs off on.
    """

    def __init__(self, status: int, headers: Mapping[str, str]) -> None:
        lowered = {k.lower(): v for k, v in headers.items()}
        self.status = status
        self.content_type = lowered.get("content-type", "").split(";")[0].strip()
        self.request_id = request_id_of(headers)
        super().__init__(
            f"HTTP {status} answer is not JSON ({self.content_type or 'no Content-Type'})"
        )


def json_of(response: requests.Response) -> Any:
    """The decoded JSON body of `response`; UnreadableAnswer when it is not JSON."""
    try:
        return response.json()
    except ValueError as exc:  # requests' JSONDecodeError, and UnicodeDecodeError
        raise UnreadableAnswer(response.status_code, response.headers) from exc


class RetryStopped(Exception):
    """The policy stopped retrying; `failure` is the last attempt's exception.

    `why` is None when the failure is an answer that no retry can change (or retries were not
    allowed for it); otherwise it says which limit ended the loop.
    """

    def __init__(
        self,
        failure: Exception,
        decision: RetryDecision,
        *,
        attempts: int,
        waited: float,
        why: str | Text | None,
    ) -> None:
        #: The limit that ended the loop in both languages (None: no retry could help).
        self.why_text = Text(sv=why, en=why) if isinstance(why, str) else why
        why = _english(why) if why is not None else None
        super().__init__(why or decision.reason)
        self.failure = failure
        self.decision = decision
        self.attempts = attempts
        self.waited = waited
        self.why = why


@dataclass(frozen=True)
class RetryPolicy:
    """Limits for retrying one SharePoint operation, and the loop that applies them (`run`).

    `sleep`, `clock` and `rng` are injectable so tests can run without real waiting; `clock` must
    be monotonic and is the same clock as the caller's `deadline`.
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
        """Seconds to wait after the n-th failed attempt (1-based) that `decision` describes."""
        if decision.action is RetryAction.WAIT_RETRY_AFTER:
            if decision.server_wait is not None:
                return max(0.0, decision.server_wait)
            return self.default_throttle_wait
        if decision.action is RetryAction.BACKOFF:
            return self.backoff(attempt)
        return 0.0

    def run(
        self,
        operation: Callable[[], T],
        *,
        description: str | Text = "a SharePoint request",
        mode: RetryMode = True,
        deadline: float | None = None,
        renew_token: Callable[[], None] | None = None,
        on_retry: Callable[[RetryDecision, float], None] | None = None,
    ) -> T:
        """Call `operation()` until it succeeds or a limit says stop (then `RetryStopped`).

        `operation` must be safe to call again. `renew_token` is called once on a 401 before
        the next attempt (without it a 401 is final); `on_retry(decision, seconds)` after each
        renewal or wait, for statistics. Exceptions other than `FAILURES` pass through.
        """
        attempt = 0
        waited = 0.0
        renewed = False
        while True:
            attempt += 1
            try:
                return operation()
            except FAILURES as exc:
                decision = classify(exc)
                failure = exc
            action = decision.action
            if action is RetryAction.RENEW_TOKEN and renew_token and not renewed and mode:
                renewed = True
                log.info(
                    "SharePoint refused the token (%s); renewing it once", _english(description)
                )
                renew_token()
                if on_retry:
                    on_retry(decision, 0.0)
                continue
            refused_only = mode == "refused" and action is not RetryAction.WAIT_RETRY_AFTER
            if action in (RetryAction.GIVE_UP, RetryAction.RENEW_TOKEN) or not mode or refused_only:
                raise RetryStopped(
                    failure, decision, attempts=attempt, waited=waited, why=None
                ) from failure
            why: Text | None = None
            wait = 0.0
            if attempt >= self.max_attempts:
                why = _RETRY_LIMIT
            else:
                wait = self.wait_for(decision, attempt)
                if deadline is not None and self.clock() + wait > deadline:
                    seconds = seconds_text(wait)
                    why = _PAST_DEADLINE.fill(wait=seconds)
                elif waited + wait > self.max_total_wait:
                    why = _WAIT_LIMIT
            if why is not None:
                raise RetryStopped(
                    failure, decision, attempts=attempt, waited=waited, why=why
                ) from failure
            log.warning(
                "%s: %s (attempt %d); retrying in %.2f s",
                _english(description),
                decision.reason,
                attempt,
                wait,
                extra=log_text(
                    _RETRY_WARNING.fill(
                        what=_sentence_start(description),
                        reason=_REASONS.get(decision.reason, decision.reason),
                        attempt=attempt,
                        wait=seconds_text(wait),
                    )
                ),
            )
            if wait > 0:
                self.sleep(wait)
            waited += wait
            if on_retry:
                on_retry(decision, wait)
