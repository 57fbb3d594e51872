"""The core of the SharePoint client: context, transport, retry loop, error mapping, stats.

`ClientCore` is the base of `SharePointClient` (see `sp_sync.sharepoint`). It owns

- `self._request`: office365's `SharePointRequest` (auth through our `TokenProvider`, form
  digest, digest-expiry retry) that every request goes through, and `self._ctx`, an office365
  `ClientContext` on that same request for entity queries, built (and imported) on first use:
  no path of a night needs one, and its import alone cost 0.25 CPU-s per process;
- a `requests.Session` whose adapter stamps `User-Agent: NONISV|<org>|sp-sync/<version>` on every
  request and counts requests, bytes received and throttled responses;
- `_execute(build)`: hands one operation to the retry policy (`retry.RetryPolicy.run`) and maps
  what it gives up on to sp_sync.errors;
- `_raw(method, path, ...)`: one HTTP request through the same auth, digest, transport and
  retry policy, for what office365 cannot express (keyset paging with raw JSON, `$batch`);
- `map_error(...)`: the one function that turns office365/requests exceptions into sp_sync.errors.

Not thread-safe: one client per thread (the sync engine is sequential per site).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from sp_sync import __version__
from sp_sync.auth import TokenProvider
from sp_sync.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    SpSyncError,
    ThresholdError,
    ThrottledError,
    TransientError,
)
from sp_sync.i18n import Plural, Text, seconds_text
from sp_sync.redact import redact, redact_url
from sp_sync.sharepoint.retry import (
    THROTTLE_STATUSES,
    RetryAction,
    RetryDecision,
    RetryPolicy,
    RetryStopped,
    UnreadableAnswer,
    error_type_of,
    failure_facts,
    hresult_of,
    json_of,
)

# HttpFailure and parse_error_body moved to retry.py with the rest of "reading a failure";
# re-exported because the client's mixins raise and parse them.
from sp_sync.sharepoint.retry import HttpFailure as HttpFailure
from sp_sync.sharepoint.retry import parse_error_body as parse_error_body

log = logging.getLogger(__name__)

T = TypeVar("T")

VERBOSE = "application/json;odata=verbose"
#: (connect, read) seconds. A 5,000-row page with many columns can take a while on SPO.
DEFAULT_TIMEOUT = (10.0, 300.0)
#: The least time a request is given when little or nothing of the run's budget is left: a
#: run ends at most this much (or its remaining budget) after its deadline, never 300 s later.
MIN_REQUEST_TIMEOUT = 5.0


def bounded_timeout(
    timeout: Any, deadline: float | None, *, now: float | None = None
) -> tuple[float, float]:
    """(connect, read) seconds for one request: the given timeout, cut to the time left until
    the run's deadline (`time.monotonic()`), but never below MIN_REQUEST_TIMEOUT (issue 11,
    items 4 and 5: a run exceeds its budget by at most one short request timeout)."""
    if isinstance(timeout, tuple) and len(timeout) == 2:
        connect, read = float(timeout[0]), float(timeout[1])
    elif isinstance(timeout, int | float):
        connect = read = float(timeout)
    else:
        connect, read = DEFAULT_TIMEOUT
    if deadline is None:
        return connect, read
    left = max(MIN_REQUEST_TIMEOUT, deadline - (time.monotonic() if now is None else now))
    return min(connect, left), min(read, left)


@dataclass(frozen=True)
class RequestStats:
    """What the run summary reports about SharePoint traffic."""

    requests: int = 0
    retries: int = 0
    wait_seconds: float = 0.0
    bytes_received: int = 0
    throttled_responses: int = 0

    def __sub__(self, other: RequestStats) -> RequestStats:
        return RequestStats(
            self.requests - other.requests,
            self.retries - other.retries,
            round(self.wait_seconds - other.wait_seconds, 3),
            self.bytes_received - other.bytes_received,
            self.throttled_responses - other.throttled_responses,
        )


class _StatsCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0
        self.wait_seconds = 0.0
        self.bytes_received = 0
        self.throttled_responses = 0

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, value in deltas.items():
                setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> RequestStats:
        with self._lock:
            return RequestStats(
                self.requests,
                self.retries,
                round(self.wait_seconds, 3),
                self.bytes_received,
                self.throttled_responses,
            )


def _token_traffic(provider: object) -> Mapping[str, float]:
    """The token provider's request counts (msal providers count through their session)."""
    traffic = getattr(provider, "traffic", None)
    return traffic if isinstance(traffic, Mapping) else {}


class _InstrumentedAdapter(HTTPAdapter):
    """Sets our User-Agent on every request and counts requests, bytes and throttling."""

    def __init__(
        self,
        counter: _StatsCounter,
        user_agent: str,
        deadline: Callable[[], float | None] = lambda: None,
    ) -> None:
        super().__init__(max_retries=0, pool_connections=4, pool_maxsize=8)
        self._counter = counter
        self._user_agent = user_agent
        self._deadline = deadline

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        request.headers["User-Agent"] = self._user_agent
        if not args and kwargs.get("timeout") is None:
            # Every request has connect and read timeouts, including those office365 sends on
            # its own (e.g. the form digest): a hung server cannot hang the run.
            kwargs["timeout"] = DEFAULT_TIMEOUT
        if not args:
            kwargs["timeout"] = bounded_timeout(kwargs["timeout"], self._deadline())
        self._counter.add(requests=1)
        response = super().send(request, *args, **kwargs)
        if response.status_code in THROTTLE_STATUSES:
            self._counter.add(throttled_responses=1)
        if kwargs.get("stream"):
            size = int(response.headers.get("Content-Length") or 0)
        else:
            size = len(response.content)
        self._counter.add(bytes_received=size)
        return response


# What a failed request means, in both languages. `{what}` is the operation ("reading list
# 'Dialoger'"); `{server}` is SharePoint's own message, quoted as it came (not translated).
_UNREACHABLE = Text(
    sv="SharePoint-webbplatsen {site} går inte att nå: {reason}",
    en="SharePoint site {site} is unreachable: {reason}",
)
_FAILED = Text(sv="{what} misslyckades på {site}: {reason}", en="{what} failed on {site}: {reason}")
_NOT_JSON = Text(
    sv="SharePoint svarade på {what} på {site} med något annat än JSON (HTTP {status}, "
    "”{type}”): står en proxy eller en inloggningssida mellan sp-sync och SharePoint?",
    en="SharePoint answered {what} on {site} with something other than JSON (HTTP {status}, "
    "'{type}'): is a proxy or a sign-in page between sp-sync and SharePoint?",
)
_THROTTLED = Text(
    sv="SharePoint strypte {what} på {site} (HTTP {status}){server}",
    en="SharePoint throttled {what} on {site} (HTTP {status}){server}",
)
_SERVER_FAILED = Text(
    sv="SharePoint misslyckades med {what} på {site} (HTTP {status}){server}",
    en="SharePoint failed {what} on {site} (HTTP {status}){server}",
)
_THRESHOLD = Text(
    sv="SharePoint vägrade {what} eftersom det överskrider {which}{server}",
    en="SharePoint refused {what} because it exceeds the {which}{server}",
)
_LOOKUP_THRESHOLD = Text(sv="gränsen för uppslagskolumner (12)", en="lookup column threshold (12)")
_VIEW_THRESHOLD = Text(sv="listvyns tröskel (5 000 objekt)", en="list view threshold (5,000 items)")
_TOKEN_REFUSED = Text(
    sv="SharePoint-webbplatsen {site} nekade åtkomsttoken ({what}){server}",
    en="SharePoint site {site} refused the access token ({what}){server}",
)
_NO_ACCESS = Text(
    sv="Appen har ingen {grant}behörighet till webbplatsen {site}: ge den '{grant_en}' via "
    "Sites.Selected ({what} nekades{server})",
    en="The app has no {grant} access to site {site}: grant it '{grant_en}' through "
    "Sites.Selected ({what} was refused{server})",
)
_GRANT = {
    "read": Text(sv="läs", en="read"),
    "write": Text(sv="skriv", en="write"),
}
_NOT_FOUND = Text(
    sv="{what}: finns inte på webbplatsen {site}{server}",
    en="{what}: not found on site {site}{server}",
)
_HTTP_STATUS = Text(
    sv="SharePoint svarade HTTP {status} på {what} på {site}{server}",
    en="SharePoint answered HTTP {status} to {what} on {site}{server}",
)
_SERVER_SAID = Text(sv=": ”{detail}”", en=": {detail}")
#: The generic operation when a caller named none.
REQUEST = Text(sv="en SharePoint-begäran", en="a SharePoint request")
_GAVE_UP = Text(
    sv=" (gav upp efter {attempts} och {waited} väntan: {why})",
    en=" (gave up after {attempts} and {waited} of waiting: {why})",
)
_ATTEMPTS = Plural("försök", "försök", "attempt", "attempts")
_WITH_TAIL = Text(sv="{message}{tail}", en="{message}{tail}")


def map_error(
    exc: BaseException,
    *,
    site_url: str,
    description: str | Text,
    write: bool = False,
) -> SpSyncError:
    """The one mapping from office365/requests failures to sp_sync.errors.

    The result keeps the HTTP status, SharePoint's error code and the request id; the caller
    raises it `from exc`. Messages go through the redactor (URLs may carry secrets) and carry
    both languages (`SpSyncError.render`); SharePoint's own message is quoted as it came.
    """
    site = redact_url(site_url)
    if isinstance(exc, UnreadableAnswer):
        return TransientError(
            _NOT_JSON.fill(what=description, site=site, status=exc.status, type=exc.content_type),
            status=exc.status,
            request_id=exc.request_id,
        )
    status, code, message, _headers, request_id = failure_facts(exc)
    detail = redact(message.strip()) if message else ""
    server: Text | str = _SERVER_SAID.fill(detail=detail) if detail else ""
    kw: dict[str, Any] = {"status": status, "code": code, "request_id": request_id}
    hresult = hresult_of(code)
    etype = error_type_of(code) or ""
    at = {"what": description, "site": site, "server": server}
    if status is None:
        if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
            reason = redact(_short_reason(exc))
            said = Text(sv=f"”{reason}”", en=reason)  # the system's words, quoted in Swedish
            return TransientError(_UNREACHABLE.fill(site=site, reason=said), **kw)
        failed = _FAILED.fill(what=description, site=site, reason=redact(str(exc))[:300])
        # Capitalised as a sentence start in both languages ("Reading list 'X' failed …").
        return SpSyncError(Text(sv=_capital(failed.sv), en=_capital(failed.en)), **kw)
    if status in THROTTLE_STATUSES:
        return ThrottledError(_THROTTLED.fill(status=status, **at), **kw)
    if status in (502, 504):
        return TransientError(_SERVER_FAILED.fill(status=status, **at), **kw)
    if hresult in ("-2147024860", "-2147024749") or "SPQueryThrottledException" in etype:
        which = _LOOKUP_THRESHOLD if hresult == "-2147024749" else _VIEW_THRESHOLD
        return ThresholdError(_THRESHOLD.fill(which=which, **at), **kw)
    if status == 401:
        return AuthenticationError(_TOKEN_REFUSED.fill(**at), **kw)
    if status == 403:
        grant = "write" if write else "read"
        return PermissionDeniedError(
            _NO_ACCESS.fill(grant=_GRANT[grant], grant_en=grant, **at), **kw
        )
    if status == 404:
        return NotFoundError(_NOT_FOUND.fill(**at), **kw)
    if status >= 500:
        return TransientError(_SERVER_FAILED.fill(status=status, **at), **kw)
    return SpSyncError(_HTTP_STATUS.fill(status=status, **at), **kw)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _short_reason(exc: BaseException) -> str:
    """The innermost cause of a connection failure, in one line (no URL noise)."""
    inner: BaseException = exc
    seen = 0
    while seen < 6:
        nxt = inner.__cause__ or inner.__context__
        if nxt is None and inner.args and isinstance(inner.args[0], BaseException):
            nxt = inner.args[0]
        if nxt is None:
            break
        inner = nxt
        seen += 1
    reason = getattr(inner, "reason", None)
    text = str(reason if reason is not None else inner) or type(inner).__name__
    return text.splitlines()[0][:200]


def quote_path_literal(value: str) -> str:
    """A string literal for a URL path segment like GetByTitle('…'): quotes doubled, encoded."""
    return "'" + quote(value.replace("'", "''"), safe="'()!*,;=:@") + "'"


def encode_query(params: Mapping[str, str] | None) -> str:
    """Encode OData query options the way office365 does: `$` and `'`,`/`,`,` kept, spaces %20."""
    if not params:
        return ""
    return "&".join(
        f"{quote(k, safe='$')}={quote(str(v), safe=chr(39) + ',/()$:*')}" for k, v in params.items()
    )


class ClientCore:
    """Context, transport, retries, error mapping and statistics shared by all client mixins.

    Contract for mixins (provisioning.py, files.py, …):
    - `self._execute(build, description=..., write=...)` runs `build()` — which queues office365
      queries on `self._ctx` and/or calls `self._raw(...)` — then `self._ctx.execute_query()`
      if anything is pending, retrying the *whole* build on throttling/transient failures.
      `build` must therefore be safe to run again (reads are; for writes pass `write=True` and
      make the build idempotent, or call `_execute` with `retry=False`). Pending queries left by
      a failed attempt are discarded before the next one.
    - `self._raw(method, path, ...)` sends one request through the same auth, digest, stats and
      retry policy; `path` is relative to the site (`/_api/...`) or absolute.
    - `self._ctx` is the office365 ClientContext (built on first use); `self.site_url` the site.
    Errors always leave as sp_sync.errors (`map_error`).
    """

    def __init__(
        self,
        site_url: str,
        token_provider: TokenProvider,
        *,
        organisation: str,
        retry: RetryPolicy | None = None,
        deadline: float | None = None,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        from office365.sharepoint.request import SharePointRequest

        self.site_url = site_url.rstrip("/")
        self.organisation = organisation
        self.user_agent = f"NONISV|{organisation}|sp-sync/{__version__}"
        self.retry_policy = retry or RetryPolicy()
        #: Monotonic time (same clock as `retry_policy.clock`) after which no retry waits.
        self.deadline = deadline
        self._token_provider = token_provider
        # Token calls count as this client's traffic (issue 11, item 7): what the provider's
        # endpoint cost from now on (a provider may be shared, hence the starting point).
        self._token_traffic_start = _token_traffic(token_provider)
        # Token calls retry under this client's policy and deadline (one retry mechanism).
        bind_retry = getattr(token_provider, "bind_retry", None)
        if callable(bind_retry):
            bind_retry(self.retry_policy, lambda: self.deadline)
        self._counter = _StatsCounter()
        self._timeout = timeout
        self._session = session or requests.Session()
        adapter = _InstrumentedAdapter(self._counter, self.user_agent, lambda: self.deadline)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._in_execute = False
        # office365's request pipeline (auth, form digest, digest-expiry retry) without its
        # entity tree: `ClientContext` imports some 1,500 entity classes (0.25 CPU-s, issue 14
        # goal 4: a night's start-up) and no request of a night needs it (the change log is
        # sent raw too); it is built on first use (`_ctx`) on this same request.
        self._request = SharePointRequest(self.site_url)
        self._request.authentication_context.with_access_token(self._office365_token)
        self._request.with_transport(session=self._session, timeout=timeout)
        # office365 fetches the form digest with its own retry loop (5 tries, exponential 5 s
        # base): a dead site would take minutes to fail and a throttled digest would bypass our
        # budget. One attempt here; our `_execute` loop retries the whole operation.
        self._request._fetch_context_web_information = self._fetch_digest_once  # type: ignore[method-assign]
        # office365 puts a form digest on every request, so a client that only reads (the
        # site check before a night) fetched one it never needed: a request and a round trip.
        # SharePoint checks the digest on POSTs only; reads go without it.
        self._request.beforeExecute -= self._request.ensure_form_digest
        self._request.beforeExecute += self._digest_for_posts
        self._context: Any = None

    @property
    def _ctx(self) -> Any:
        """The office365 `ClientContext` for entity queries, on this client's request (same
        auth, session, digest and stats); built on first use."""
        if self._context is None:
            from office365.sharepoint.client_context import ClientContext

            context = ClientContext(self.site_url)
            context._pending_request = self._request
            self._context = context
        return self._context

    def _has_queued(self) -> bool:
        return self._context is not None and bool(self._context.has_pending_request)

    # -- public -----------------------------------------------------------------------------

    @property
    def stats(self) -> RequestStats:
        """Requests, retries, seconds waited, bytes received and throttled responses so far,
        the token endpoint's included."""
        own = self._counter.snapshot()
        token = _token_traffic(self._token_provider)
        start = self._token_traffic_start

        def grew(key: str) -> float:
            return max(0.0, float(token.get(key, 0)) - float(start.get(key, 0)))

        return RequestStats(
            own.requests + int(grew("requests")),
            own.retries + int(grew("retries")),
            round(own.wait_seconds + grew("wait_seconds"), 3),
            own.bytes_received,
            own.throttled_responses + int(grew("throttled_responses")),
        )

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> ClientCore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- auth -------------------------------------------------------------------------------

    def _office365_token(self) -> dict[str, Any]:
        token = self._token_provider.get_token()
        # expires_in=0 makes office365 ask us on every request; the provider caches and renews
        # 5 minutes early, and invalidate() after a 401 takes effect on the very next request.
        return {"token_type": "Bearer", "access_token": token.token, "expires_in": 0}

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token_provider.get_token().token}"}

    def _fetch_digest_once(self) -> Any:
        from office365.runtime.client_request_exception import ClientRequestException
        from office365.sharepoint.webs.context_web_information import ContextWebInformation

        headers = {"Accept": VERBOSE, "Content-Type": VERBOSE, **self._auth_headers()}
        response = self._session.post(
            f"{self.site_url}/_api/contextinfo", headers=headers, timeout=self._timeout
        )
        if response.status_code >= 400:
            raise ClientRequestException.from_response(response)
        info = json_of(response)["d"]["GetContextWebInformation"]
        return ContextWebInformation(
            FormDigestValue=info.get("FormDigestValue"),
            FormDigestTimeoutSeconds=int(info.get("FormDigestTimeoutSeconds") or 1800),
            SiteFullUrl=info.get("SiteFullUrl"),
            WebFullUrl=info.get("WebFullUrl"),
        )

    def _digest_for_posts(self, request: Any) -> None:
        from office365.runtime.http.http_method import HttpMethod

        if request.method != HttpMethod.Get:
            self._request.ensure_form_digest(request)

    # -- execution --------------------------------------------------------------------------

    def _prepare(self) -> None:
        # The token (and, before a POST, the form digest: `_send`) is fetched here, before
        # office365's request hooks would: a failure inside those hooks is logged by the
        # library with a full traceback before it reaches us, which would flood the log
        # during an outage.
        self._token_provider.get_token()

    def _discard_pending(self) -> None:
        # A failed office365 query can leave queued queries (and a stale cursor) behind; running
        # them on the next attempt would repeat or reorder work. ClientContext.clear() would also
        # drop the authenticated request object, so only the queue is reset.
        if self._context is None:
            return
        queries = getattr(self._context, "_queries", None)
        if queries is not None:
            queries.clear()
        self._context._current_query = None

    def _execute(
        self,
        build: Callable[[], T],
        *,
        description: str | Text = REQUEST,
        write: bool = False,
        retry: bool | Literal["refused"] = True,
    ) -> T:
        """Run `build()` (+ pending office365 queries) with the retry policy; see class doc."""
        if self._in_execute:
            # Nested call (e.g. `_raw` inside a build): the outer loop owns retries.
            result = build()
            if self._has_queued():
                self._ctx.execute_query()
            return result

        def attempt() -> T:
            self._discard_pending()
            self._prepare()
            outcome = build()
            if self._has_queued():
                self._request.warm_up()  # entity queries may POST: the digest first
                self._ctx.execute_query()
            return outcome

        self._in_execute = True
        try:
            return self.retry_policy.run(
                attempt,
                description=description,
                mode=retry,
                deadline=self.deadline,
                renew_token=self._token_provider.invalidate,
                on_retry=self._count_retry,
            )
        except RetryStopped as stop:
            stopped = stop
        finally:
            self._in_execute = False
            self._discard_pending()
        # Raised outside the handler so the error's context is the SharePoint failure itself,
        # not the policy's bookkeeping exception.
        if stopped.why_text is None:
            raise map_error(
                stopped.failure, site_url=self.site_url, description=description, write=write
            ) from stopped.failure
        raise self._gave_up(
            stopped.failure,
            stopped.decision,
            description,
            write,
            stopped.attempts,
            stopped.waited,
            stopped.why_text,
        ) from stopped.failure

    def _count_retry(self, decision: RetryDecision, waited: float) -> None:
        if decision.action is RetryAction.RENEW_TOKEN:
            self._counter.add(retries=1)
        else:
            self._counter.add(retries=1, wait_seconds=waited)

    def _gave_up(
        self,
        exc: BaseException,
        decision: RetryDecision,
        description: str | Text,
        write: bool,
        attempts: int,
        waited: float,
        why: Text,
    ) -> SpSyncError:
        base = map_error(exc, site_url=self.site_url, description=description, write=write)
        tail = _GAVE_UP.fill(
            attempts=_ATTEMPTS.text(attempts),
            waited=seconds_text(waited),
            why=why,
        )
        cls: type[SpSyncError]
        if decision.action is RetryAction.WAIT_RETRY_AFTER:
            cls = ThrottledError
        elif isinstance(base, (ThrottledError, TransientError)):
            cls = type(base)
        else:
            cls = TransientError
        return cls(
            _WITH_TAIL.fill(message=base.as_text(), tail=tail),
            status=base.status,
            code=base.code,
            request_id=base.request_id,
        )

    def _url(self, path: str, params: Mapping[str, str] | None = None) -> str:
        url = path if path.startswith(("http://", "https://")) else f"{self.site_url}{path}"
        query = encode_query(params)
        if query:
            url += ("&" if "?" in url else "?") + query
        return url

    def _send(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One request through office365's pipeline (auth, digest, digest-expiry retry)."""
        from office365.runtime.http.http_method import HttpMethod
        from office365.runtime.http.request_options import RequestOptions

        upper = method.upper()
        options = RequestOptions(url=url)
        options.method = HttpMethod.Get if upper == "GET" else HttpMethod.Post
        options.set_header("Accept", VERBOSE)
        if upper not in ("GET", "POST"):
            options.set_header("X-HTTP-Method", upper)
        if json is not None:
            options.data = json
            options.set_header("Content-Type", VERBOSE)
        elif data is not None:
            options.data = data
        for name, value in (headers or {}).items():
            options.set_header(name, value)
        if upper != "GET":
            self._request.warm_up()  # the form digest, outside office365's hooks (`_prepare`)
        response: requests.Response = self._request.execute_request_direct(options)
        return response

    def _raw(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        description: str | Text | None = None,
        write: bool | None = None,
        retry: bool | Literal["refused"] = True,
    ) -> requests.Response:
        """Send one request the library cannot express; returns the `requests.Response`."""
        return self._call(
            lambda response: response,
            method,
            path,
            params=params,
            json=json,
            data=data,
            headers=headers,
            description=description,
            write=write,
            retry=retry,
        )

    def _raw_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        description: str | Text | None = None,
        write: bool | None = None,
        retry: bool | Literal["refused"] = True,
    ) -> Any:
        """As `_raw`, and return the decoded JSON body.

        The body is decoded inside the retry loop: an answer that is not JSON (a proxy's
        sign-in page, a body cut short) is retried and then reported as such, never left as a
        decoding error.
        """
        return self._call(
            json_of,
            method,
            path,
            params=params,
            json=json,
            data=data,
            headers=headers,
            description=description,
            write=write,
            retry=retry,
        )

    def _call(
        self,
        read: Callable[[requests.Response], T],
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        json: Any,
        data: bytes | None,
        headers: Mapping[str, str] | None,
        description: str | Text | None,
        write: bool | None,
        retry: bool | Literal["refused"],
    ) -> T:
        url = self._url(path, params)
        is_write = write if write is not None else method.upper() != "GET"
        what = description or f"{method.upper()} {path.split('?')[0]}"
        return self._execute(
            lambda: read(self._send(method, url, json=json, data=data, headers=headers)),
            description=what,
            write=is_write,
            retry=retry,
        )

    def _get_json(
        self, path: str, params: Mapping[str, str] | None = None, *, description: str | Text
    ) -> Any:
        """GET and return the verbose payload's `d` member."""
        return unwrap_verbose(self._raw_json("GET", path, params=params, description=description))


def unwrap_verbose(payload: Any) -> Any:
    """The `d` member of a verbose OData payload (the payload itself if there is none)."""
    if isinstance(payload, dict) and "d" in payload:
        return payload["d"]
    return payload


def clean_entity(value: Any) -> Any:
    """Drop `__metadata` and `__deferred` members; `{"results": [...]}` becomes a list.

    This is the shape office365 itself produces, applied to raw JSON.
    """
    if isinstance(value, dict):
        if "__deferred" in value and len(value) == 1:
            return None
        if "results" in value and set(value) <= {"results", "__metadata", "__next", "__count"}:
            return [clean_entity(v) for v in value["results"]]
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "__metadata":
                continue
            if isinstance(item, dict) and "__deferred" in item:
                continue
            out[key] = clean_entity(item)
        return out
    if isinstance(value, list):
        return [clean_entity(v) for v in value]
    return value
