"""Access tokens for SharePoint through msal: managed identity and certificate app registration.

A `TokenProvider` hands out an `AccessToken` and can be told to forget it (`invalidate()`, used
once when SharePoint answers 401 mid-run). Providers cache the token and renew it
`RENEW_BEFORE_SECONDS` before it expires, so a long run never sends a token that expires in
flight. msal's error dicts become `AuthenticationError` with the AADSTS code; nothing here ever
logs or puts into a message a token, a client assertion or a private key.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import requests

from sp_sync.errors import AuthenticationError, SettingsError, TransientError
from sp_sync.i18n import Text
from sp_sync.redact import redact, register_secret

if TYPE_CHECKING:
    from sp_sync.settings import Settings
    from sp_sync.sharepoint.retry import RetryPolicy

log = logging.getLogger(__name__)

# User-facing texts: errors carry both languages, the command line renders the configured one.
# What the identity provider itself said (an AADSTS description) is quoted as it came.
_ENDPOINT_UNREACHABLE = Text(
    sv="Identitetstjänsten för {who} går inte att nå: {reason}",
    en="The identity endpoint for {who} is unreachable: {reason}",
)
_TLS_FAILED = Text(
    sv="TLS-verifieringen misslyckades för {who}: {detail}",
    en="TLS verification failed for {who}: {detail}",
)
_NO_TOKEN = Text(
    sv="Kunde inte hämta en token för {who}: {detail}",
    en="Could not get a token for {who}: {detail}",
)
#: The identity provider's own words are quoted as they came, in either language.
_PROVIDER_ERROR = Text(sv="{error}{code}{said}", en="{error}{code}{said}")
_PROVIDER_SAID = Text(sv=": ”{detail}”", en=": {detail}")
_NOTHING_RETURNED = Text(
    sv="Identitetstjänsten svarade inte med något för {who}.",
    en="The identity provider returned nothing for {who}.",
)
_MANAGED_IDENTITY = Text(
    sv="den hanterade identiteten ({kind}) mot {resource}",
    en="the managed identity ({kind}) for {resource}",
)
_SYSTEM_ASSIGNED = Text(sv="systemtilldelad", en="system-assigned identity")
_USER_ASSIGNED = Text(sv="användartilldelad {client_id}", en="user-assigned identity {client_id}")
_CERTIFICATE_APP = Text(sv="appen {client_id} hos {authority}", en="app {client_id} at {authority}")
_NO_IDENTITY_ENDPOINT = Text(
    sv="managed_identity behöver funktionsappens identitetstjänst, men IDENTITY_ENDPOINT och "
    "IDENTITY_HEADER är inte satta: slå på appens hanterade identitet (Identitet → "
    "Systemtilldelad), eller använd SP_SYNC_AUTH=certificate utanför Azure",
    en="managed_identity needs the Function app's identity endpoint, but IDENTITY_ENDPOINT "
    "and IDENTITY_HEADER are not set: turn on the app's managed identity (Identity → "
    "System assigned), or use SP_SYNC_AUTH=certificate outside Azure",
)
_CERT_UNREADABLE = Text(sv="kan inte läsa {path}: {reason}", en="cannot read {path}: {reason}")
_CERT_NO_KEY = Text(
    sv="{path}: PEM-filen innehåller ingen privat nyckel", en="{path}: the PEM holds no private key"
)
_CERT_NEEDS = Text(
    sv="certificate kräver SP_SYNC_CLIENT_ID och SP_SYNC_CERT_PATH",
    en="certificate needs SP_SYNC_CLIENT_ID and SP_SYNC_CERT_PATH",
)

#: Renew this many seconds before the token's expiry (msal's own MI cache uses the same margin).
RENEW_BEFORE_SECONDS = 300.0

#: Hosts for which msal's instance discovery is meaningful (public and sovereign clouds).
_MICROSOFT_AUTHORITY_HOSTS = (
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.microsoftonline.de",
    "login.windows.net",
    "login.microsoft.com",
    "login.partner.microsoftonline.cn",
    "sts.windows.net",
)


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and its expiry (epoch seconds). `repr` never shows the token."""

    token: str = field(repr=False)
    expires_on: float

    def expires_within(self, seconds: float, *, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) + seconds >= self.expires_on


@runtime_checkable
class TokenProvider(Protocol):
    """What the SharePoint client needs from authentication."""

    def get_token(self) -> AccessToken:
        """A token valid for at least a few minutes (cached; renewed before expiry)."""
        ...

    def invalidate(self) -> None:
        """Forget the cached token so the next `get_token()` fetches a new one."""
        ...


class StaticTokenProvider:
    """A fixed token (tests, or a token obtained elsewhere). `invalidate()` may rotate it."""

    def __init__(
        self,
        token: str | Callable[[], str],
        *,
        lifetime: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = token
        self._lifetime = lifetime
        self._clock = clock
        self._token: AccessToken | None = None
        self.fetches = 0
        self.invalidations = 0

    def get_token(self) -> AccessToken:
        if self._token is None or self._token.expires_within(
            RENEW_BEFORE_SECONDS, now=self._clock()
        ):
            value = self._source() if callable(self._source) else self._source
            register_secret(value)
            self._token = AccessToken(value, self._clock() + self._lifetime)
            self.fetches += 1
        return self._token

    def invalidate(self) -> None:
        self._token = None
        self.invalidations += 1


#: (connect, read) seconds for every call to an identity endpoint. msal sends its requests
#: through the session we hand it and sets no timeout itself, so without this a hung
#: managed-identity endpoint hangs the run past any time budget.
TOKEN_TIMEOUT: tuple[float, float] = (5.0, 30.0)
#: The least time a token call gets when the run's budget is (nearly) spent: the floor of every
#: SharePoint request (sp_sync.sharepoint.client.MIN_REQUEST_TIMEOUT, not imported: that would
#: load office365 for the Graph mail path; a test checks they agree).
TOKEN_MIN_TIMEOUT = 5.0


#: Token answers worth asking again (throttled, or the endpoint briefly unwell). msal leaves
#: retrying to the http client ("Retry is the http_client or caller's responsibility"); the
#: waits and limits are the SharePoint client's `RetryPolicy` (sp_sync.sharepoint.retry).
TOKEN_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_TOKEN_CALL = Text(sv="identitetstjänsten", en="the identity endpoint")


class TokenTraffic:
    """What the token endpoint cost: requests, retries, seconds waited, throttled answers.
    The SharePoint client adds it to its own counts, so the run summary counts every request
    of the run, token calls included (issue 11, item 7)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0
        self.wait_seconds = 0.0
        self.throttled_responses = 0

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, value in deltas.items():
                setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "wait_seconds": round(self.wait_seconds, 3),
                "throttled_responses": self.throttled_responses,
            }


class _NotRetried(Exception):
    """Carries a connection failure of a token call through the retry loop untouched: a hung or
    unreachable identity endpoint fails the token at once (one timeout), as before."""

    def __init__(self, error: requests.RequestException) -> None:
        super().__init__(str(error))
        self.error = error


class TimeoutSession(requests.Session):
    """A `requests.Session` for msal: every request gets a timeout unless the caller set one
    (cut to the time left before `deadline()`, never below the SharePoint floor), throttled and
    failing answers go through `retry` (a `RetryPolicy`: the same limits, Retry-After handling,
    deadline and warning as SharePoint's requests), and every request, retry and wait is counted
    in `traffic`. When the retries end, the last answer goes to msal, which names the error."""

    def __init__(
        self,
        timeout: tuple[float, float] = TOKEN_TIMEOUT,
        *,
        retry: RetryPolicy | None = None,
        deadline: Callable[[], float | None] = lambda: None,
    ) -> None:
        from sp_sync.sharepoint.retry import RetryPolicy

        super().__init__()
        self.timeout = timeout
        self.traffic = TokenTraffic()
        #: Replaced by the SharePoint client's policy and deadline (`bind_retry`).
        self.retry: RetryPolicy = retry or RetryPolicy()
        self.deadline = deadline

    def _timeout(self) -> tuple[float, float]:
        deadline = self.deadline()
        if deadline is None:
            return self.timeout
        left = max(TOKEN_MIN_TIMEOUT, deadline - self.retry.clock())
        return min(self.timeout[0], left), min(self.timeout[1], left)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        from sp_sync.sharepoint.retry import THROTTLE_STATUSES, HttpFailure, RetryStopped

        # A caller's own timeout is kept; ours is taken per attempt, from the time left then:
        # a retry after a wait must not get the first attempt's allowance.
        fixed_timeout = kwargs.pop("timeout", None)
        last: list[requests.Response] = []

        def attempt() -> requests.Response:
            if last:
                last.pop().close()  # a retried answer's connection goes back to the pool
            self.traffic.add(requests=1)
            kwargs["timeout"] = fixed_timeout if fixed_timeout is not None else self._timeout()
            try:
                response = super(TimeoutSession, self).request(method, url, *args, **kwargs)
            except requests.RequestException as exc:
                raise _NotRetried(exc) from exc
            status = response.status_code
            if status in THROTTLE_STATUSES:
                self.traffic.add(throttled_responses=1)
            if status in TOKEN_RETRY_STATUSES:
                last.append(response)
                raise HttpFailure.from_response(response)
            return response

        def counted(_decision: object, wait: float) -> None:
            self.traffic.add(retries=1, wait_seconds=wait)

        try:
            return self.retry.run(
                attempt, description=_TOKEN_CALL, deadline=self.deadline(), on_retry=counted
            )
        except RetryStopped:
            return last[0]
        except _NotRetried as exc:
            raise exc.error from None


class _MsalProviderBase:
    """Shared caching, error handling and invalidation for the msal-backed providers."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self._app: Any = None
        self.fetches = 0
        #: The session msal sends through (kept across `invalidate()`, so its counts add up).
        self._session: TimeoutSession | None = None
        self._retry: RetryPolicy | None = None
        self._deadline: Callable[[], float | None] = lambda: None

    def bind_retry(self, retry: RetryPolicy, deadline: Callable[[], float | None]) -> None:
        """Send token calls through the SharePoint client's retry policy, bounded by its
        deadline (called by the client that uses this provider)."""
        self._retry = retry
        self._deadline = deadline
        if self._session is not None:
            self._session.retry = retry
            self._session.deadline = deadline

    @property
    def traffic(self) -> dict[str, float]:
        """Token requests, retries, waits and throttled answers so far (zeros before any)."""
        session = self._session
        return session.traffic.snapshot() if session is not None else TokenTraffic().snapshot()

    def _timeout_session(self, timeout: tuple[float, float]) -> TimeoutSession:
        if self._session is None:
            self._session = TimeoutSession(timeout, retry=self._retry, deadline=self._deadline)
        return self._session

    def _build_app(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _acquire(self, app: Any) -> Mapping[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _describe(self) -> Text:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_token(self) -> AccessToken:
        with self._lock:
            now = self._clock()
            if self._token is not None and not self._token.expires_within(
                RENEW_BEFORE_SECONDS, now=now
            ):
                return self._token
            try:
                if self._app is None:
                    self._app = self._build_app()
                result = self._acquire(self._app)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise TransientError(
                    _ENDPOINT_UNREACHABLE.fill(
                        who=self._describe(), reason=redact(type(exc).__name__)
                    )
                ) from exc
            except requests.exceptions.SSLError as exc:
                raise AuthenticationError(
                    _TLS_FAILED.fill(who=self._describe(), detail=redact(str(exc))[:300])
                ) from exc
            except ValueError as exc:
                raise AuthenticationError(
                    _NO_TOKEN.fill(who=self._describe(), detail=redact(str(exc))[:300])
                ) from exc
            self._token = token_from_msal_result(result, self._describe(), now=self._clock())
            self.fetches += 1
            log.info(
                "Obtained an access token for %s (expires in %d s)",
                self._describe().en,
                int(self._token.expires_on - self._clock()),
            )
            return self._token

    def invalidate(self) -> None:
        # msal caches tokens itself; a fresh application object is the documented way to be
        # sure the next call goes to the identity provider instead of the cache.
        with self._lock:
            self._token = None
            self._app = None


def token_from_msal_result(
    result: Mapping[str, Any] | None, who: str | Text, *, now: float
) -> AccessToken:
    """Turn an msal result dict into an AccessToken, or raise AuthenticationError."""
    if not result:
        raise AuthenticationError(_NOTHING_RETURNED.fill(who=who))
    if "access_token" not in result:
        error = str(result.get("error") or "unknown_error")
        description = str(result.get("error_description") or "")
        match = re.search(r"AADSTS\d+", description)
        code = match.group(0) if match else error
        first_line = redact(description.splitlines()[0] if description else "")[:300]
        said = _PROVIDER_SAID.fill(detail=first_line) if first_line else ""
        detail = _PROVIDER_ERROR.fill(error=error, code=f" ({code})" if match else "", said=said)
        raise AuthenticationError(_NO_TOKEN.fill(who=who, detail=detail), code=code)
    token = str(result["access_token"])
    register_secret(token)
    if result.get("expires_on") is not None:
        try:
            expires_on = float(result["expires_on"])
        except (TypeError, ValueError):
            expires_on = now + 600.0
    else:
        expires_on = now + float(result.get("expires_in") or 600.0)
    return AccessToken(token, expires_on)


class ManagedIdentityTokenProvider(_MsalProviderBase):
    """The Function app's managed identity (system-assigned, or user-assigned by client id).

    msal finds the endpoint from the environment (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER` on App
    Service / Functions). `resource` is the SharePoint origin, e.g. https://contoso.sharepoint.com.
    """

    def __init__(
        self,
        resource: str,
        client_id: str | None = None,
        *,
        http_client: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        timeout: tuple[float, float] = TOKEN_TIMEOUT,
    ) -> None:
        super().__init__(clock=clock)
        self.resource = resource
        self.client_id = client_id
        self._http_client = http_client
        self.timeout = timeout

    def _describe(self) -> Text:
        kind = _USER_ASSIGNED.fill(client_id=self.client_id) if self.client_id else _SYSTEM_ASSIGNED
        return _MANAGED_IDENTITY.fill(kind=kind, resource=self.resource)

    def _build_app(self) -> Any:
        import msal

        if not (os.environ.get("IDENTITY_ENDPOINT") and os.environ.get("IDENTITY_HEADER")):
            # Without the App Service variables msal falls back to the VM metadata address
            # (169.254.169.254) and waits for a timeout: on a laptop or a misconfigured app that
            # is a slow, confusing failure. sp-sync runs on Functions, where they are always set.
            raise SettingsError("SP_SYNC_AUTH", _NO_IDENTITY_ENDPOINT)
        identity: Any = (
            msal.UserAssignedManagedIdentity(client_id=self.client_id)
            if self.client_id
            else msal.SystemAssignedManagedIdentity()
        )
        return msal.ManagedIdentityClient(
            identity, http_client=self._http_client or self._timeout_session(self.timeout)
        )

    def _acquire(self, app: Any) -> Mapping[str, Any]:
        result: Mapping[str, Any] = app.acquire_token_for_client(resource=self.resource)
        return result


def is_microsoft_authority(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in _MICROSOFT_AUTHORITY_HOSTS


def split_pem(pem: bytes | str) -> tuple[str, str | None]:
    """(private key PEM, certificate PEM or None) from one PEM bundle."""
    text = pem.decode("ascii", errors="replace") if isinstance(pem, bytes) else pem
    key = re.search(
        r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", text, re.DOTALL
    )
    cert = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.DOTALL)
    if key is None:
        raise ValueError("the PEM holds no private key")
    return key.group(0), cert.group(0) if cert else None


def certificate_thumbprint(certificate_pem: str) -> str:
    """SHA-1 thumbprint (hex, upper case) of a PEM certificate, as Entra ID shows it."""
    import base64

    body = "".join(
        line
        for line in certificate_pem.strip().splitlines()
        if line and not line.startswith("-----")
    )
    return hashlib.sha1(base64.b64decode(body)).hexdigest().upper()


class CertificateTokenProvider(_MsalProviderBase):
    """An app registration that signs in with a certificate (client-credentials flow).

    `authority_url` defaults to https://login.microsoftonline.com/<tenant_id>. For an authority
    that is not a Microsoft host (the emulator, a sovereign proxy) msal's instance discovery is
    switched off, and with `ca_bundle` msal gets its own session with `trust_env=False` so that
    REQUESTS_CA_BUNDLE cannot override the bundle.
    """

    def __init__(
        self,
        *,
        client_id: str,
        private_key_pem: str,
        resource: str,
        tenant_id: str | None = None,
        authority_url: str | None = None,
        certificate_pem: str | None = None,
        thumbprint: str | None = None,
        ca_bundle: str | None = None,
        clock: Callable[[], float] = time.time,
        timeout: tuple[float, float] = TOKEN_TIMEOUT,
    ) -> None:
        super().__init__(clock=clock)
        self.timeout = timeout
        if not (tenant_id or authority_url):
            raise ValueError("CertificateTokenProvider needs tenant_id or authority_url")
        if not (certificate_pem or thumbprint):
            raise ValueError("CertificateTokenProvider needs certificate_pem or thumbprint")
        self.client_id = client_id
        self.authority_url = (
            authority_url or f"https://login.microsoftonline.com/{tenant_id}"
        ).rstrip("/")
        self.resource = resource.rstrip("/")
        self.ca_bundle = ca_bundle
        self._private_key_pem = private_key_pem
        self._certificate_pem = certificate_pem
        self._thumbprint = thumbprint
        register_secret(private_key_pem)

    @classmethod
    def from_pem_file(
        cls,
        path: str | Path,
        *,
        client_id: str,
        resource: str,
        tenant_id: str | None = None,
        authority_url: str | None = None,
        thumbprint: str | None = None,
        ca_bundle: str | None = None,
    ) -> CertificateTokenProvider:
        """Build from one PEM file holding the private key and the certificate."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise SettingsError(
                "SP_SYNC_CERT_PATH", _CERT_UNREADABLE.fill(path=path, reason=exc.strerror)
            ) from exc
        try:
            key, cert = split_pem(data)
        except ValueError as exc:
            # split_pem has one failure: no private key in the file.
            raise SettingsError("SP_SYNC_CERT_PATH", _CERT_NO_KEY.fill(path=path)) from exc
        return cls(
            client_id=client_id,
            private_key_pem=key,
            certificate_pem=cert,
            thumbprint=thumbprint,
            resource=resource,
            tenant_id=tenant_id,
            authority_url=authority_url,
            ca_bundle=ca_bundle,
        )

    def _describe(self) -> Text:
        return _CERTIFICATE_APP.fill(client_id=self.client_id, authority=self.authority_url)

    def _build_app(self) -> Any:
        import msal

        credential: dict[str, str] = {"private_key": self._private_key_pem}
        if self._certificate_pem:
            credential["public_certificate"] = self._certificate_pem
        if self._thumbprint:
            credential["thumbprint"] = self._thumbprint
        elif self._certificate_pem:
            credential["thumbprint"] = certificate_thumbprint(self._certificate_pem)
        kwargs: dict[str, Any] = {}
        if not is_microsoft_authority(self.authority_url):
            kwargs["instance_discovery"] = False
        session = self._timeout_session(self.timeout)
        if self.ca_bundle:
            session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override verify
            session.verify = self.ca_bundle
        kwargs["http_client"] = session
        return msal.ConfidentialClientApplication(
            self.client_id, client_credential=credential, authority=self.authority_url, **kwargs
        )

    def _acquire(self, app: Any) -> Mapping[str, Any]:
        result: Mapping[str, Any] = app.acquire_token_for_client(
            scopes=[f"{self.resource}/.default"]
        )
        return result


def token_provider_from_settings(settings: Settings, resource: str) -> TokenProvider:
    """The provider SP_SYNC_AUTH asks for, for one token resource (a SharePoint origin)."""
    if settings.auth == "certificate":
        if settings.cert_path is None or not settings.client_id:
            raise SettingsError("SP_SYNC_AUTH", _CERT_NEEDS)
        return CertificateTokenProvider.from_pem_file(
            settings.cert_path,
            client_id=settings.client_id,
            resource=resource,
            tenant_id=settings.tenant_id,
            authority_url=settings.authority_url,
            thumbprint=settings.cert_thumbprint,
            ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None,
        )
    return ManagedIdentityTokenProvider(resource, settings.client_id)
