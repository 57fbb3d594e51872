"""One outgoing mail as MIME: multipart/alternative (text/plain + text/html), fixed Message-ID.

Why MIME and not Graph's JSON message: a JSON `message.body` holds ONE content type, so the
plain-text alternative the issue asks for can only be sent as MIME (Graph's sendMail accepts
base64 MIME with `Content-Type: text/plain`, https://learn.microsoft.com/en-us/graph/api/user-sendmail).
MIME also lets us set the `Message-ID` ourselves: it is derived from the ledger slot (site,
stream, period), so a resend after a crash carries the same id and the ledger can look for it in
the sender's Sent Items. The same bytes are what `make demo` saves as `.eml`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr

from sp_sync.notify.render import RenderedMail

__all__ = ["OutgoingMail", "compose_mail", "message_id_for"]


@dataclass(frozen=True)
class OutgoingMail:
    """A composed mail: who gets it, its Message-ID, and the MIME bytes that are sent."""

    sender: str
    recipients: tuple[str, ...]
    subject: str
    message_id: str
    mime: bytes = field(repr=False)

    def mime_base64(self) -> str:
        """The body of a MIME sendMail request."""
        return base64.b64encode(self.mime).decode("ascii")


def message_id_for(*parts: str, domain: str = "sp-sync.invalid") -> str:
    """A stable RFC 5322 Message-ID for a ledger slot, e.g. <digest.3f2a…@sp-sync.invalid>."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]
    kind = "".join(ch for ch in parts[0] if ch.isalnum())[:20] if parts else "mail"
    return f"<{kind}.{digest}@{domain}>"


def compose_mail(
    rendered: RenderedMail,
    *,
    sender: str,
    recipients: Sequence[str],
    message_id: str,
    date: dt.datetime,
    sender_name: str = "sp-sync",
) -> OutgoingMail:
    """Build the MIME message (UTF-8, quoted-printable where needed, CRLF line ends)."""
    if not recipients:
        raise ValueError("a mail needs at least one recipient")
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr((sender_name, sender))
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = rendered.subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    # RFC 3834: an automatic message; out-of-office replies and auto-forwards leave it alone.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(rendered.text, subtype="plain", charset="utf-8")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8")
    # A boundary from the content instead of a random one: the same mail gives the same bytes
    # (stable .eml files in the demo, byte-identical resends).
    seed = "\x1f".join((message_id, rendered.subject, rendered.text, rendered.html))
    msg.set_boundary("=_sp-sync_" + hashlib.sha256(seed.encode("utf-8")).hexdigest()[:24])
    return OutgoingMail(
        sender=sender,
        recipients=tuple(recipients),
        subject=rendered.subject,
        message_id=message_id,
        mime=msg.as_bytes(),
    )
