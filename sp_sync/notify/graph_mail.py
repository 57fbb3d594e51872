"""Send mail through Microsoft Graph with the app's own identity (app-only, no user).

`POST {graph}/v1.0/users/{sender}/sendMail` with the MIME message base64-encoded and
`Content-Type: text/plain`; Graph answers `202 Accepted` with an empty body
(https://learn.microsoft.com/en-us/graph/api/user-sendmail). Tokens come from the same msal
providers as SharePoint's (`sp_sync.auth`), for the resource https://graph.microsoft.com.

Why plain `requests` and not a Graph SDK or office365's Graph client: this is one POST and one
GET; `requests` is already pinned and used by msal; the empty 202 body has tripped client
libraries before (microsoftgraph/msgraph-sdk-powershell#1834); and office365 stays confined to
`sp_sync/sharepoint` (house rule 4).

Retries go through the one policy of `sp_sync.sharepoint.retry` (`RetryPolicy.run`) in its
`mode="refused"`, the mode for writes that must not run twice: 429/503 wait Retry-After and try
again, 401 renews the token once, and nothing else is retried — sendMail is not idempotent, so a
500/502/504 or a connection lost mid-request may mean the mail was accepted. That raises
`DeliveryUnknownError`, and the ledger looks for the message's Message-ID in the sender's Sent
Items before it ever sends again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from sp_sync.auth import TokenProvider
from sp_sync.errors import (
    AuthenticationError,
    FatalError,
    NotFoundError,
    PermissionDeniedError,
    SpSyncError,
    ThrottledError,
    TransientError,
)
from sp_sync.i18n import Plural, Text
from sp_sync.notify.message import OutgoingMail
from sp_sync.notify.recipients import UnconfiguredRecipientError
from sp_sync.redact import redact
from sp_sync.sharepoint.retry import (
    HttpFailure,
    RetryAction,
    RetryDecision,
    RetryPolicy,
    RetryStopped,
)

__all__ = [
    "GRAPH_RESOURCE",
    "GRAPH_URL",
    "DeliveryUnknownError",
    "GraphMailSender",
    "SendReceipt",
]

log = logging.getLogger(__name__)

# Error texts in both languages (issue 13 item 4); Graph's own answer is quoted as sent.
_UNKNOWN_RECIPIENTS = Text(
    sv="E-post till en adress som inte är konfigurerad stoppades (inget skickades): {addresses}.",
    en="Mail to an address that is not configured was refused (nothing was sent): {addresses}.",
)
_NO_RECIPIENTS = _UNKNOWN_RECIPIENTS.fill(addresses=Text(sv="inga mottagare", en="no recipients"))
_WRONG_SENDER = Text(
    sv="E-posten anger avsändaren {named}, inte {sender}.",
    en="The mail names the sender {named}, not {sender}.",
)
_UNREACHABLE = Text(
    sv="Microsoft Graph gick inte att nå; e-posten skickades inte.",
    en="Microsoft Graph could not be reached; the mail was not sent.",
)
_CONNECTION_BROKE = Text(
    sv="Anslutningen till Microsoft Graph bröts medan {message_id} skickades; e-posten kan ha "
    "tagits emot. Nästa körning tittar först i Skickade objekt.",
    en="The connection to Microsoft Graph broke while sending {message_id}; "
    "the mail may have been accepted. The next run checks Sent Items first.",
)
_ATTEMPTS = Plural("försök", "försök", "attempt", "attempts")
_THROTTLED = Text(
    sv="Microsoft Graph fortsatte att strypa sendMail ({status} {code}) efter {attempts} "
    "({why}); e-posten skickades inte och skickas igen nästa körning.",
    en="Microsoft Graph kept throttling sendMail ({status} {code}) after "
    "{attempts} ({why}); the mail was not sent and is retried next run.",
)
_TOKEN_REFUSED = Text(
    sv="Microsoft Graph nekade token (”{detail}”). Appen behöver en token för {resource} "
    "och applikationsbehörigheten Mail.Send.",
    en="Microsoft Graph refused the token ({detail}). The app needs a token for "
    "{resource} and the Mail.Send application permission.",
)
_SEND_DENIED = Text(
    sv="Microsoft Graph nekade att skicka som {sender} (”{detail}”). Ge behörigheten Mail.Send "
    "och tillåt postlådan i appens åtkomstomfång i Exchange (RBAC for Applications).",
    en="Microsoft Graph denied sending as {sender} ({detail}). Grant Mail.Send and "
    "allow this mailbox in the app's Exchange access scope (RBAC for Applications).",
)
_NO_MAILBOX = Text(
    sv="Avsändarens postlåda {sender} finns inte i Microsoft Graph (”{detail}”).",
    en="The sender mailbox {sender} does not exist in Microsoft Graph ({detail}).",
)
_GRAPH_FAILED = Text(
    sv="Microsoft Graph fick ett fel när e-posten skickades (”{detail}”); den kan ha tagits "
    "emot. Nästa körning tittar först i Skickade objekt.",
    en="Microsoft Graph failed while sending ({detail}); the mail may have been "
    "accepted. The next run checks Sent Items first.",
)
_REJECTED = Text(
    sv="Microsoft Graph avvisade e-posten (”{detail}”).",
    en="Microsoft Graph rejected the mail ({detail}).",
)

#: Token resource (audience) of Microsoft Graph; scope `https://graph.microsoft.com/.default`.
GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_URL = "https://graph.microsoft.com"


class DeliveryUnknownError(TransientError):
    """The request may or may not have been accepted (5xx, connection lost): do not resend blindly."""


@dataclass(frozen=True)
class SendReceipt:
    """What one accepted sendMail cost."""

    message_id: str
    attempts: int
    waited_seconds: float
    request_id: str | None


def _graph_error(response: requests.Response) -> tuple[str, str, str | None]:
    """(code, message, request id) from Graph's error body `{"error": {"code", "message"}}`."""
    code, text = "", ""
    try:
        body: Any = response.json()
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            code = str(err.get("code") or "")
            text = str(err.get("message") or "")
    except ValueError:
        text = response.text[:200]
    request_id = response.headers.get("request-id") or response.headers.get("client-request-id")
    return code, redact(text)[:300], request_id


class GraphMailSender:
    """Sends `OutgoingMail` as `sender` (a mailbox UPN or id) through Graph.

    `allowed` is the recipient allow-list (lower-case addresses); a mail to anyone else is
    refused before any request. `session`, `policy` (sleep/clock) are injectable for tests.
    """

    def __init__(
        self,
        sender: str,
        token_provider: TokenProvider,
        *,
        allowed: Iterable[str],
        graph_url: str = GRAPH_URL,
        session: requests.Session | None = None,
        policy: RetryPolicy | None = None,
        timeout: float = 30.0,
        user_agent: str = "sp-sync",
    ) -> None:
        self.sender = sender
        self._tokens = token_provider
        self._allowed = frozenset(a.lower() for a in allowed)
        self._base = graph_url.rstrip("/") + "/v1.0/users/" + quote(sender, safe="@")
        self._session = session or requests.Session()
        self._policy = policy or RetryPolicy(max_attempts=6, max_total_wait=300.0)
        self._timeout = timeout
        self._user_agent = user_agent
        self.requests = 0

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._tokens.get_token().token}",
            "User-Agent": self._user_agent,
        }
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def send(self, mail: OutgoingMail) -> SendReceipt:
        """Send one mail; return when Graph accepted it (202). See the module docstring for errors."""
        unknown = sorted(r for r in mail.recipients if r.lower() not in self._allowed)
        if unknown or not mail.recipients:
            raise UnconfiguredRecipientError(
                _UNKNOWN_RECIPIENTS.fill(addresses=", ".join(unknown))
                if unknown
                else _NO_RECIPIENTS
            )
        if mail.sender.lower() != self.sender.lower():
            raise FatalError(_WRONG_SENDER.fill(named=mail.sender, sender=self.sender))
        body = mail.mime_base64().encode("ascii")
        url = f"{self._base}/sendMail"
        counts = {"attempts": 0, "waited": 0.0}

        def post() -> requests.Response:
            counts["attempts"] += 1
            self.requests += 1
            response = self._session.post(
                url, data=body, headers=self._headers("text/plain"), timeout=self._timeout
            )
            if response.status_code != 202:
                raise HttpFailure.from_response(response)
            return response

        def note(_decision: RetryDecision, seconds: float) -> None:
            counts["waited"] += seconds

        try:
            response = self._policy.run(
                post,
                description=f"Microsoft Graph sendMail {mail.message_id}",
                mode="refused",  # retry only answers that say Graph did not take the mail
                renew_token=self._tokens.invalidate,
                on_retry=note,
            )
        except RetryStopped as stop:
            raise self._stopped(stop, mail) from stop.failure
        log.info(
            "Graph accepted mail %s to %d recipient(s) after %d attempt(s)",
            mail.message_id,
            len(mail.recipients),
            counts["attempts"],
        )
        return SendReceipt(
            mail.message_id,
            int(counts["attempts"]),
            float(counts["waited"]),
            response.headers.get("request-id"),
        )

    def _stopped(self, stop: RetryStopped, mail: OutgoingMail) -> SpSyncError:
        failure = stop.failure
        if isinstance(failure, requests.ConnectTimeout):
            # Never connected, so nothing can have been sent: the next run simply sends again.
            return TransientError(_UNREACHABLE)
        if not isinstance(failure, HttpFailure):
            return DeliveryUnknownError(_CONNECTION_BROKE.fill(message_id=mail.message_id))
        status, code = failure.status, failure.code or ""
        if stop.decision.action is RetryAction.WAIT_RETRY_AFTER:
            return ThrottledError(
                _THROTTLED.fill(
                    status=status,
                    code=code,
                    attempts=_ATTEMPTS.text(stop.attempts),
                    why=stop.why_text if stop.why_text is not None else str(stop.why),
                ),
                status=status,
                code=code or None,
                request_id=failure.request_id,
            )
        return self._error(status, code, redact(failure.message)[:300], failure.request_id)

    def _error(self, status: int, code: str, text: str, request_id: str | None) -> SpSyncError:
        detail = f"{status} {code}: {text}".strip()
        kwargs: dict[str, Any] = {"status": status, "code": code or None, "request_id": request_id}
        if status == 401:
            return AuthenticationError(
                _TOKEN_REFUSED.fill(detail=detail, resource=GRAPH_RESOURCE),
                **kwargs,
            )
        if status == 403:
            return PermissionDeniedError(
                _SEND_DENIED.fill(sender=self.sender, detail=detail),
                **kwargs,
            )
        if status == 404:
            return NotFoundError(
                _NO_MAILBOX.fill(sender=self.sender, detail=detail),
                **kwargs,
            )
        if status >= 500:
            return DeliveryUnknownError(
                _GRAPH_FAILED.fill(detail=detail),
                **kwargs,
            )
        return FatalError(_REJECTED.fill(detail=detail), **kwargs)

    def was_sent(self, message_id: str) -> bool | None:
        """Is a message with this Message-ID in the sender's Sent Items? None: cannot tell.

        Needs read access to the sender mailbox (Mail.ReadBasic, scoped like Mail.Send); without
        it Graph answers 403 and the answer is None.
        """
        literal = message_id.replace("'", "''")
        url = f"{self._base}/mailFolders/SentItems/messages"
        params = {
            "$filter": f"internetMessageId eq '{literal}'",
            "$select": "id,internetMessageId",
            "$top": "1",
        }
        for _attempt in range(2):
            self.requests += 1
            try:
                response = self._session.get(
                    url, params=params, headers=self._headers(None), timeout=self._timeout
                )
            except requests.RequestException:
                return None
            if response.status_code == 401:
                self._tokens.invalidate()
                continue
            if response.status_code != 200:
                code, text, _rid = _graph_error(response)
                log.warning(
                    "Cannot look into %s's Sent Items (%s %s: %s)",
                    self.sender,
                    response.status_code,
                    code,
                    text,
                )
                return None
            try:
                values = response.json().get("value") or []
            except (ValueError, AttributeError):
                return None
            return any(
                isinstance(v, dict) and v.get("internetMessageId") == message_id for v in values
            )
        return None
