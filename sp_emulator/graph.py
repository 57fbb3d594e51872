"""A Microsoft Graph stand-in for mail: `sendMail` and a Sent Items lookup, app-only.

What it emulates (https://learn.microsoft.com/en-us/graph/api/user-sendmail):

* `POST /v1.0/users/{id | userPrincipalName}/sendMail` with a JSON `message` or with base64
  MIME (`Content-Type: text/plain`) → **202 Accepted, empty body**. Malformed base64 → 400
  "Invalid base64 string for MIME content."; no recipient → 400; unknown mailbox → 404
  `ErrorInvalidUser`; an app without Mail.Send on that mailbox → 403 `ErrorAccessDenied`
  (Mail.Send restricted to mailboxes, as Exchange RBAC for Applications does,
  https://learn.microsoft.com/en-us/exchange/permissions-exo/application-rbac).
* `GET /v1.0/users/{id}/mailFolders/SentItems/messages?$filter=internetMessageId eq '<…>'` —
  only that filter; anything else answers 400 "not supported by the emulator".
* Tokens: the identity service issues tokens for the resource `https://graph.microsoft.com`
  (managed identity `resource=`, client credentials `scope=https://graph.microsoft.com/.default`);
  Graph accepts only those (a SharePoint token → 401 `InvalidAuthenticationToken`).
* Throttling: `throttle(count, retry_after)` answers the next sendMail calls with 429 and
  `Retry-After` (https://learn.microsoft.com/en-us/graph/throttling-limits);
  `fail(count, status, accept=True)` records the mail and still answers 5xx (the ambiguous case
  a sender must not resend blindly).

Recorded messages are readable through the admin API (`GET /_emulator/graph/messages`) and
`GraphService.messages()`. Not emulated: delivery, attachments, drafts, any other Graph API.

Registering it is one line in `EmulatorApp.__init__`: `self.graph = GraphService.install(self)`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email
import email.policy
import json
import re
import threading
import uuid
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

import jwt

from sp_emulator.http import Request, Response

__all__ = [
    "GRAPH_APP_ID",
    "GRAPH_RESOURCE",
    "GraphBackend",
    "GraphError",
    "GraphService",
    "SentMessage",
]

GRAPH_RESOURCE = "https://graph.microsoft.com"
#: The first-party Microsoft Graph principal (appId); accepted as a resource too.
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"

_USER = r"/v1\.0/users/(?P<user>[^/]+)"
_FILTER = re.compile(r"^\s*internetMessageId\s+eq\s+'(?P<value>(?:[^']|'')*)'\s*$", re.IGNORECASE)


#: The route table (as `sp_emulator.urls`): method, path pattern, handler method, route name.
GRAPH_ROUTES: tuple[tuple[str, str, str, str], ...] = (
    ("POST", _USER + r"/sendMail", "send_mail", "graph.sendMail"),
    (
        "GET",
        _USER + r"/mailFolders/(?P<folder>[^/]+)/messages",
        "list_messages",
        "graph.messages.list",
    ),
)
GRAPH_ADMIN_ROUTES: tuple[tuple[str, str, str, str], ...] = (
    ("GET", r"/_emulator/graph/messages", "admin_messages", "admin.graph.messages"),
    ("DELETE", r"/_emulator/graph/messages", "admin_reset", "admin.graph.reset"),
    ("POST", r"/_emulator/graph/faults", "admin_faults", "admin.graph.faults"),
    ("POST", r"/_emulator/graph/grants", "admin_grants", "admin.graph.grants"),
    ("POST", r"/_emulator/graph/mailboxes", "admin_mailboxes", "admin.graph.mailboxes"),
)


class GraphError(Exception):
    """A Graph error answer: `{"error": {"code", "message", "innerError"}}`."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass
class SentMessage:
    """One accepted sendMail, as recorded by the stand-in."""

    id: str
    mailbox: str
    app_id: str
    subject: str
    to: list[str]
    cc: list[str]
    internet_message_id: str
    format: str  # "mime" or "json"
    text: str | None
    html: str | None
    mime: str | None  # the decoded MIME text (format "mime")
    saved_to_sent_items: bool
    received_at: float
    headers: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Fault:
    status: int
    remaining: int
    retry_after: float | None
    accept: bool  # record the mail before answering (the sender cannot know it went out)


class GraphBackend:
    """Mailboxes, Mail.Send/Mail.Read grants, recorded messages and injected faults."""

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self.messages: list[SentMessage] = []
        #: Registered mailboxes (lower case); empty = every address is a mailbox.
        self.mailboxes: set[str] = set()
        #: app id → mailboxes it may send as ("*" = all), and may read Sent Items of.
        self.send_grants: dict[str, set[str]] = {}
        self.read_grants: dict[str, set[str]] = {}
        self._faults: list[_Fault] = []

    # --- control ------------------------------------------------------------------------

    def add_mailbox(self, address: str) -> None:
        with self._lock:
            self.mailboxes.add(address.lower())

    def grant(
        self, app_id: str, mailbox: str = "*", *, send: bool = True, read: bool = True
    ) -> None:
        """Mail.Send (and Mail.ReadBasic) for `app_id` on `mailbox` ("*": unrestricted)."""
        with self._lock:
            if send:
                self.send_grants.setdefault(app_id, set()).add(mailbox.lower())
            if read:
                self.read_grants.setdefault(app_id, set()).add(mailbox.lower())

    def revoke(self, app_id: str, *, send: bool = True, read: bool = True) -> None:
        with self._lock:
            if send:
                self.send_grants.pop(app_id, None)
            if read:
                self.read_grants.pop(app_id, None)

    def throttle(self, count: int = 1, retry_after: float = 1.0, status: int = 429) -> None:
        """Answer the next `count` sendMail calls with `status` and Retry-After."""
        with self._lock:
            self._faults.append(_Fault(status, count, retry_after, accept=False))

    def fail(self, count: int = 1, status: int = 500, *, accept: bool = True) -> None:
        """Answer the next `count` sendMail calls with `status`; `accept` records the mail first."""
        with self._lock:
            self._faults.append(_Fault(status, count, None, accept=accept))

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self._faults.clear()

    # --- rules --------------------------------------------------------------------------

    def _check_mailbox(self, user: str) -> str:
        mailbox = user.lower()
        if self.mailboxes and mailbox not in self.mailboxes:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{user}' is invalid.")
        return mailbox

    @staticmethod
    def _granted(grants: dict[str, set[str]], app_id: str, mailbox: str) -> bool:
        allowed = grants.get(app_id, set())
        return "*" in allowed or mailbox in allowed

    def _take_fault(self) -> _Fault | None:
        for fault in self._faults:
            if fault.remaining > 0:
                fault.remaining -= 1
                return fault
        return None

    def send(self, app_id: str, user: str, body: bytes, content_type: str) -> SentMessage | None:
        """Accept one sendMail. Returns the message, or raises GraphError."""
        with self._lock:
            mailbox = self._check_mailbox(user)
            if not self._granted(self.send_grants, app_id, mailbox):
                raise GraphError(
                    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                )
            fault = self._take_fault()
            if fault is not None and not fault.accept:
                headers = (
                    {"Retry-After": f"{fault.retry_after:g}"}
                    if fault.retry_after is not None
                    else {}
                )
                if fault.status == 429:
                    raise GraphError(
                        429,
                        "ApplicationThrottled",
                        "Application is over its MailboxConcurrency limit.",
                        headers,
                    )
                raise GraphError(
                    fault.status,
                    "ServiceUnavailable" if fault.status == 503 else "InternalServerError",
                    "Injected failure.",
                    headers,
                )
            if content_type.startswith("text/plain"):
                message = self._from_mime(app_id, mailbox, body)
            elif content_type.startswith("application/json"):
                message = self._from_json(app_id, mailbox, body)
            else:
                raise GraphError(
                    415,
                    "UnsupportedMediaType",
                    "The content type is not supported: use application/json or text/plain (MIME).",
                )
            self.messages.append(message)
            if fault is not None:  # accepted, yet the answer is an error
                raise GraphError(
                    fault.status, "InternalServerError", "Injected failure after acceptance."
                )
            return message

    def _from_mime(self, app_id: str, mailbox: str, body: bytes) -> SentMessage:
        try:
            raw = base64.b64decode(body.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise GraphError(
                400,
                "ErrorMimeContentInvalidBase64String",
                "Invalid base64 string for MIME content.",
            ) from None
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        to = [a for _n, a in getaddresses(parsed.get_all("To", []) or []) if a]
        cc = [a for _n, a in getaddresses(parsed.get_all("Cc", []) or []) if a]
        if not to and not cc:
            raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
        text_part = parsed.get_body(preferencelist=("plain",))
        html_part = parsed.get_body(preferencelist=("html",))
        return SentMessage(
            id=uuid.uuid4().hex,
            mailbox=mailbox,
            app_id=app_id,
            subject=str(parsed.get("Subject", "")),
            to=to,
            cc=cc,
            internet_message_id=str(
                parsed.get("Message-ID") or f"<{uuid.uuid4().hex}@emulator.invalid>"
            ).strip(),
            format="mime",
            text=text_part.get_content() if text_part is not None else None,
            html=html_part.get_content() if html_part is not None else None,
            mime=raw.decode("utf-8", errors="replace"),
            saved_to_sent_items=True,
            received_at=self._clock.now(),
            headers={k: str(v) for k, v in parsed.items()},
        )

    def _from_json(self, app_id: str, mailbox: str, body: bytes) -> SentMessage:
        try:
            doc = json.loads(body or b"{}")
            message = doc["message"]
            content = message.get("body") or {}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise GraphError(
                400, "ErrorInvalidRequest", "Empty Payload. JSON content expected."
            ) from None

        def addresses(key: str) -> list[str]:
            out = []
            for entry in message.get(key) or []:
                address = ((entry or {}).get("emailAddress") or {}).get("address")
                if address:
                    out.append(str(address))
            return out

        to, cc = addresses("toRecipients"), addresses("ccRecipients")
        if not to and not cc:
            raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
        kind = str(content.get("contentType") or "text").lower()
        return SentMessage(
            id=uuid.uuid4().hex,
            mailbox=mailbox,
            app_id=app_id,
            subject=str(message.get("subject") or ""),
            to=to,
            cc=cc,
            internet_message_id=str(
                message.get("internetMessageId") or f"<{uuid.uuid4().hex}@emulator.invalid>"
            ),
            format="json",
            text=str(content.get("content") or "") if kind == "text" else None,
            html=str(content.get("content") or "") if kind == "html" else None,
            mime=None,
            saved_to_sent_items=bool(doc.get("saveToSentItems", True)),
            received_at=self._clock.now(),
        )

    def sent_items(
        self, app_id: str, user: str, folder: str, query: dict[str, str]
    ) -> list[dict[str, Any]]:
        with self._lock:
            mailbox = self._check_mailbox(user)
            if not self._granted(self.read_grants, app_id, mailbox):
                raise GraphError(
                    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                )
            if folder.lower() != "sentitems":
                raise GraphError(
                    400,
                    "ErrorNotSupported",
                    f"The mail folder '{folder}' is not supported by the emulator (only SentItems).",
                )
            match = _FILTER.match(query.get("$filter", ""))
            if match is None:
                raise GraphError(
                    400,
                    "ErrorNotSupported",
                    "Only $filter=internetMessageId eq '...' is supported by the emulator.",
                )
            wanted = match.group("value").replace("''", "'")
            found = [
                m
                for m in self.messages
                if m.mailbox == mailbox
                and m.saved_to_sent_items
                and m.internet_message_id == wanted
            ]
            return [
                {"id": m.id, "internetMessageId": m.internet_message_id, "subject": m.subject}
                for m in found
            ]


class _IdentityBridge:
    """The two places the stand-in needs the identity service: issue and verify Graph tokens.

    Kept in one class so that a restructured identity service changes only this.
    """

    def __init__(self, auth: Any, clock: Any) -> None:
        self._auth = auth
        self._clock = clock
        original = auth._resource_ok

        def resource_ok(resource: str, request: Request | None) -> str | None:
            value = resource.strip()
            if value.endswith("/.default"):
                value = value[: -len("/.default")]
            if value.rstrip("/") in (GRAPH_RESOURCE, GRAPH_APP_ID):
                return GRAPH_RESOURCE
            result: str | None = original(resource, request)
            return result

        auth._resource_ok = resource_ok

    def app_of(self, request: Request) -> str:
        """The app id of a valid Graph token, or raise GraphError 401 as Graph does."""
        header = (request.header("authorization") or "").strip()
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        try:
            claims = jwt.decode(
                token.strip(),
                self._auth._signing_key.public_key(),
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_nbf": False, "verify_aud": False},
            )
        except jwt.PyJWTError:
            raise GraphError(
                401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed."
            ) from None
        if claims.get("iss") != self._auth.issuer:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid issuer.",
            )
        if claims.get("aud") not in (GRAPH_RESOURCE, GRAPH_RESOURCE + "/", GRAPH_APP_ID):
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
            )
        exp = claims.get("exp")
        if (
            not isinstance(exp, (int, float))
            or exp <= self._clock.now()
            or claims.get("xms_emu_gen") != self._auth._generation
        ):
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )
        return str(claims.get("appid", ""))


def _graph_response(
    status: int, payload: Any = None, headers: dict[str, str] | None = None
) -> Response:
    out = {"request-id": str(uuid.uuid4()), **(headers or {})}
    if payload is None:
        return Response(status, out, b"")
    out["Content-Type"] = (
        "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"
    )
    return Response(status, out, json.dumps(payload, ensure_ascii=False).encode("utf-8"))


def _error_response(exc: GraphError) -> Response:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    rid = str(uuid.uuid4())
    return _graph_response(
        exc.status,
        {
            "error": {
                "code": exc.code,
                "message": exc.message,
                "innerError": {"date": now, "request-id": rid, "client-request-id": rid},
            }
        },
        exc.headers,
    )


class GraphService:
    """Thin handlers over GraphBackend, registered on an EmulatorApp's routers."""

    def __init__(self, app: Any) -> None:
        self.backend = GraphBackend(app.clock)
        self._identity = _IdentityBridge(app.auth, app.clock)
        # The managed identity gets Mail.Send + read on every mailbox (unrestricted, as after a
        # plain app-role assignment); certificate apps are granted explicitly.
        self.backend.grant(app.auth.managed_identity_app_id, "*")

    @classmethod
    def install(cls, app: Any) -> GraphService:
        """Create the stand-in and add its route rows to `app.router` and `app.admin_router`."""
        service = cls(app)
        for router, rows in ((app.router, GRAPH_ROUTES), (app.admin_router, GRAPH_ADMIN_ROUTES)):
            for method, pattern, handler, name in rows:
                router.add(method, pattern, getattr(service, handler), name)
        return service

    # --- Python API -------------------------------------------------------------------

    def messages(self) -> list[dict[str, Any]]:
        return [m.to_json() for m in self.backend.messages]

    def throttle(self, count: int = 1, retry_after: float = 1.0, status: int = 429) -> None:
        self.backend.throttle(count, retry_after, status)

    def fail(self, count: int = 1, status: int = 500, *, accept: bool = True) -> None:
        self.backend.fail(count, status, accept=accept)

    def grant(
        self, app_id: str, mailbox: str = "*", *, send: bool = True, read: bool = True
    ) -> None:
        self.backend.grant(app_id, mailbox, send=send, read=read)

    def revoke(self, app_id: str, *, send: bool = True, read: bool = True) -> None:
        self.backend.revoke(app_id, send=send, read=read)

    def add_mailbox(self, address: str) -> None:
        self.backend.add_mailbox(address)

    def reset(self) -> None:
        self.backend.reset()

    # --- Graph handlers ---------------------------------------------------------------

    def send_mail(self, request: Request, m: re.Match[str]) -> Response:
        try:
            app_id = self._identity.app_of(request)
            self.backend.send(
                app_id,
                m.group("user"),
                request.body,
                (request.header("content-type") or "").lower(),
            )
        except GraphError as exc:
            return _error_response(exc)
        return _graph_response(202)

    def list_messages(self, request: Request, m: re.Match[str]) -> Response:
        try:
            app_id = self._identity.app_of(request)
            found = self.backend.sent_items(
                app_id, m.group("user"), m.group("folder"), request.query
            )
        except GraphError as exc:
            return _error_response(exc)
        return _graph_response(200, {"value": found})

    # --- admin handlers ---------------------------------------------------------------

    @staticmethod
    def _json(status: int, payload: Any) -> Response:
        return Response(status, {"Content-Type": "application/json"}, json.dumps(payload).encode())

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        try:
            doc = json.loads(request.body or b"{}")
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}

    def admin_messages(self, request: Request, m: re.Match[str]) -> Response:
        return self._json(200, {"messages": self.messages()})

    def admin_reset(self, request: Request, m: re.Match[str]) -> Response:
        self.reset()
        return self._json(200, {"ok": True})

    def admin_faults(self, request: Request, m: re.Match[str]) -> Response:
        doc = self._body(request)
        status = int(doc.get("status", 429))
        count = int(doc.get("count", 1))
        if status == 429 or (status == 503 and "retry_after" in doc):
            self.throttle(count, float(doc.get("retry_after", 1)), status)
        else:
            self.fail(count, status, accept=bool(doc.get("accept", True)))
        return self._json(200, {"ok": True})

    def admin_grants(self, request: Request, m: re.Match[str]) -> Response:
        doc = self._body(request)
        app_id = str(doc.get("app_id") or "")
        if not app_id:
            return self._json(400, {"error": "app_id is required"})
        if doc.get("revoke"):
            self.revoke(app_id)
        else:
            self.grant(
                app_id,
                str(doc.get("mailbox") or "*"),
                send=bool(doc.get("send", True)),
                read=bool(doc.get("read", True)),
            )
        return self._json(200, {"ok": True})

    def admin_mailboxes(self, request: Request, m: re.Match[str]) -> Response:
        address = str(self._body(request).get("address") or "")
        if "@" not in address:
            return self._json(400, {"error": "address is required"})
        self.add_mailbox(address)
        return self._json(200, {"ok": True})
