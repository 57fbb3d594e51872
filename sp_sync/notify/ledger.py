"""The exactly-once ledger for mail: one JSON document per stream in the state store.

A *stream* is one kind of mail to one audience (the digest of one department, the failure notice
of one site); a *slot* is one unit that must be mailed once (a digest period such as `2026-W49`,
an incident). The document (`notify/<site>/<stream>.json`) holds the last completed slot, a
*pending* claim, and a short history. Every change is a conditional write on the document's ETag
(the same primitive that commits snapshot manifests), so two invocations cannot both claim a slot.

Sending one slot:

1. **claim** — write `pending` = {slot, Message-ID, the MIME bytes, claimed_at}; a conflicting
   write means another invocation got there first, and this one stops (`IN_PROGRESS`).
2. **send** — POST to Graph.
3. **commit** — `done` = the slot, `pending` = none.

A crash or a redelivery between 1 and 3 leaves the claim. The next run settles it before
anything else: a claim that *certainly* did not send (Graph refused it, throttled past the
budget, no token) is resent with the same bytes; a claim that *may* have sent (killed, 5xx,
connection lost) is looked up by its Message-ID in the sender's Sent Items once it is older than
`settle_seconds`: found → committed without sending again, not found → resent. When the lookup
is impossible (no read permission) nothing is resent and the run says so (`UNCERTAIN`), because
a second copy is worse than a late one; `resolve_pending` lets an administrator decide.
A claim for an older slot that never went out is superseded by the new slot, whose window starts
where the last *sent* slot ended, so no feedback falls between two digests.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sp_sync.errors import SpSyncError
from sp_sync.notify.graph_mail import DeliveryUnknownError
from sp_sync.notify.message import OutgoingMail
from sp_sync.state.base import StateConflictError, StateStore, check_key, site_key

__all__ = [
    "SETTLE_SECONDS",
    "Composed",
    "Delivery",
    "MailLedger",
    "MailSender",
    "Outcome",
]

log = logging.getLogger(__name__)

LEDGER_FORMAT = 1
#: A claim younger than this may still be in flight (another invocation, or Exchange not yet
#: showing the message in Sent Items after its 202): it is neither resent nor looked up.
SETTLE_SECONDS = 900.0
HISTORY_LENGTH = 20


class Outcome(enum.Enum):
    SENT = "sent"  # sent in this run
    RESENT = "resent"  # an earlier attempt certainly did not send; sent in this run
    RECOVERED = "recovered"  # an earlier attempt's mail was found in Sent Items: not sent again
    NOTHING = "nothing"  # nothing to say: the period is recorded, no mail
    ALREADY_DONE = "already_done"  # the slot was completed earlier
    IN_PROGRESS = "in_progress"  # another attempt holds a fresh claim: try again later
    RETRY_LATER = "retry_later"  # could not send now (recorded); the next run sends it
    UNCERTAIN = "uncertain"  # may have been sent and cannot be checked: not resent


@dataclass(frozen=True)
class Delivery:
    """What happened to one slot of one stream in this run."""

    stream: str
    slot: str
    outcome: Outcome
    message_id: str | None = None
    recipients: tuple[str, ...] = ()
    detail: str = ""
    #: What the stream is about, for people (a department's name); set by the caller.
    label: str = ""

    @property
    def needs_retry(self) -> bool:
        return self.outcome in (Outcome.IN_PROGRESS, Outcome.RETRY_LATER, Outcome.UNCERTAIN)


@dataclass(frozen=True)
class Composed:
    """A slot's mail (None: nothing to say) and data kept with the record (e.g. the window)."""

    mail: OutgoingMail | None
    data: Mapping[str, Any] = field(default_factory=dict)


class MailSender(Protocol):
    """What the ledger needs from a sender (GraphMailSender, or a test double)."""

    def send(self, mail: OutgoingMail) -> object:
        """Send; raise DeliveryUnknownError when it may have been accepted, SpSyncError if not."""
        ...

    def was_sent(self, message_id: str) -> bool | None:
        """True/False when the sender mailbox's Sent Items can be checked, None when not."""
        ...


def _iso(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("ledger times must be timezone-aware")
    return value.isoformat()


def _mail_from_claim(claim: Mapping[str, Any]) -> OutgoingMail:
    return OutgoingMail(
        sender=str(claim["sender"]),
        recipients=tuple(claim["recipients"]),
        subject=str(claim.get("subject", "")),
        message_id=str(claim["message_id"]),
        mime=base64.b64decode(claim["mime"]),
    )


class MailLedger:
    """Exactly-once delivery of mail slots for one site (see the module docstring)."""

    def __init__(
        self,
        store: StateStore,
        site: str,
        sender: MailSender,
        *,
        settle_seconds: float = SETTLE_SECONDS,
        after_send: Callable[[OutgoingMail], None] | None = None,
    ) -> None:
        self._store = store
        self._site = site_key(site)
        self._sender = sender
        self._settle = settle_seconds
        # Test seam: called between a successful send and the commit (a kill goes here).
        self._after_send = after_send

    def key(self, stream: str) -> str:
        return check_key(f"notify/{self._site}/{stream}.json")

    def read(self, stream: str) -> tuple[dict[str, Any], str | None]:
        """The stream's document (an empty one when missing) and its ETag."""
        doc, etag = self._store.read_json(self.key(stream))
        if not doc:
            return {"format": LEDGER_FORMAT, "done": None, "pending": None, "history": []}, None
        doc.setdefault("history", [])
        doc.setdefault("done", None)
        doc.setdefault("pending", None)
        return doc, etag

    def _write(self, stream: str, doc: dict[str, Any], etag: str | None) -> str:
        return self._store.write_json(
            self.key(stream), doc, expected_etag=etag, create_only=etag is None
        )

    @staticmethod
    def _is_done(doc: Mapping[str, Any], slot: str) -> bool:
        done = doc.get("done")
        if done and done.get("slot") == slot:
            return True
        return any(
            h.get("slot") == slot and h.get("state") in ("sent", "empty")
            for h in doc.get("history") or ()
        )

    @staticmethod
    def _complete(
        doc: dict[str, Any],
        slot: str,
        state: str,
        now: dt.datetime,
        *,
        message_id: str | None = None,
        recipients: tuple[str, ...] = (),
        data: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        record = {
            "slot": slot,
            "state": state,
            "at": _iso(now),
            "message_id": message_id,
            "recipients": list(recipients),
            "data": dict(data or {}),
        }
        history = [*(doc.get("history") or []), record][-HISTORY_LENGTH:]
        return {**doc, "done": record, "pending": None, "history": history}

    # --- the protocol ------------------------------------------------------------------------

    def deliver(
        self,
        stream: str,
        slot: str,
        compose: Callable[[Mapping[str, Any] | None], Composed],
        *,
        now: dt.datetime,
    ) -> Delivery:
        """Make sure `slot` of `stream` is mailed exactly once; `compose(last_done_record)`."""
        try:
            return self._deliver(stream, slot, compose, now)
        except StateConflictError:
            return Delivery(
                stream,
                slot,
                Outcome.IN_PROGRESS,
                detail="another run changed the mail ledger at the same time; it handles the slot",
            )

    def _deliver(
        self,
        stream: str,
        slot: str,
        compose: Callable[[Mapping[str, Any] | None], Composed],
        now: dt.datetime,
    ) -> Delivery:
        doc, etag = self.read(stream)
        if self._is_done(doc, slot):
            return Delivery(stream, slot, Outcome.ALREADY_DONE)
        pending = doc.get("pending")
        resend = False
        if pending is not None:
            verdict = self._verdict(pending, now)
            pslot, pid = str(pending.get("slot")), str(pending.get("message_id"))
            if verdict == "in_flight":
                return Delivery(
                    stream,
                    slot,
                    Outcome.IN_PROGRESS,
                    pid,
                    detail=f"an attempt claimed {pslot} at {pending.get('claimed_at')}; "
                    "it is left alone until it settles",
                )
            if verdict == "unknown":
                return Delivery(
                    stream,
                    slot,
                    Outcome.UNCERTAIN,
                    pid,
                    tuple(pending.get("recipients") or ()),
                    detail=f"the mail {pid} for {pslot} may have been sent and Sent Items cannot "
                    "be checked; it is not sent again until resolved",
                )
            if verdict == "sent":
                doc = self._complete(
                    doc,
                    pslot,
                    "sent",
                    now,
                    message_id=pid,
                    recipients=tuple(pending.get("recipients") or ()),
                    data=pending.get("data"),
                )
                etag = self._write(stream, doc, etag)
                log.info("Mail %s for %s/%s was sent earlier; recorded it", pid, stream, pslot)
                if pslot == slot:
                    return Delivery(
                        stream,
                        slot,
                        Outcome.RECOVERED,
                        pid,
                        tuple(pending.get("recipients") or ()),
                        detail="found in Sent Items; not sent again",
                    )
            elif pslot == slot:
                resend = True
            else:
                # An older slot that never went out: this slot's window covers it.
                history = [
                    *(doc.get("history") or []),
                    {"slot": pslot, "state": "superseded", "at": _iso(now), "message_id": pid},
                ][-HISTORY_LENGTH:]
                doc = {**doc, "pending": None, "history": history}
                etag = self._write(stream, doc, etag)
        if resend:
            assert pending is not None
            mail = _mail_from_claim(pending)
            claim = {
                **pending,
                "claimed_at": _iso(now),
                "attempts": int(pending.get("attempts") or 0) + 1,
                "not_sent": False,
            }
        else:
            composed = compose(doc.get("done"))
            if composed.mail is None:
                doc = self._complete(doc, slot, "empty", now, data=composed.data)
                self._write(stream, doc, etag)
                return Delivery(stream, slot, Outcome.NOTHING)
            mail = composed.mail
            claim = {
                "slot": slot,
                "message_id": mail.message_id,
                "sender": mail.sender,
                "recipients": list(mail.recipients),
                "subject": mail.subject,
                "mime": mail.mime_base64(),
                "claimed_at": _iso(now),
                "attempts": 1,
                "not_sent": False,
                "last_error": None,
                "data": dict(composed.data),
            }
        doc = {**doc, "pending": claim}
        etag = self._write(stream, doc, etag)
        return self._send_claimed(stream, slot, doc, etag, mail, now, resend=resend)

    def _send_claimed(
        self,
        stream: str,
        slot: str,
        doc: dict[str, Any],
        etag: str,
        mail: OutgoingMail,
        now: dt.datetime,
        *,
        resend: bool,
    ) -> Delivery:
        claim = doc["pending"]
        try:
            self._sender.send(mail)
        except DeliveryUnknownError as exc:
            self._note_failure(stream, doc, etag, str(exc), not_sent=False)
            return Delivery(
                stream, slot, Outcome.UNCERTAIN, mail.message_id, mail.recipients, str(exc)
            )
        except SpSyncError as exc:
            self._note_failure(stream, doc, etag, str(exc), not_sent=True)
            return Delivery(
                stream, slot, Outcome.RETRY_LATER, mail.message_id, mail.recipients, str(exc)
            )
        if self._after_send is not None:
            self._after_send(mail)
        done = self._complete(
            doc,
            slot,
            "sent",
            now,
            message_id=mail.message_id,
            recipients=mail.recipients,
            data=claim.get("data"),
        )
        outcome = Outcome.RESENT if resend else Outcome.SENT
        try:
            self._write(stream, done, etag)
        except SpSyncError as exc:
            # Sent, but not recorded: the claim stays and the next run finds the mail in Sent
            # Items instead of sending it again.
            log.warning("Mail %s was sent but the ledger could not record it: %s", slot, exc)
            return Delivery(
                stream,
                slot,
                outcome,
                mail.message_id,
                mail.recipients,
                detail="sent; the ledger is updated by the next run",
            )
        return Delivery(stream, slot, outcome, mail.message_id, mail.recipients)

    def _note_failure(
        self, stream: str, doc: dict[str, Any], etag: str, error: str, *, not_sent: bool
    ) -> None:
        claim = {**doc["pending"], "last_error": error[:500], "not_sent": not_sent}
        try:
            self._write(stream, {**doc, "pending": claim}, etag)
        except SpSyncError as exc:  # the claim (not_sent False) stays: the next run looks it up
            log.warning("Could not record the failed send in the mail ledger: %s", exc)

    def _verdict(self, pending: Mapping[str, Any], now: dt.datetime) -> str:
        """ "sent", "not_sent", "in_flight" or "unknown" for a pending claim."""
        if pending.get("not_sent"):
            return "not_sent"
        claimed = dt.datetime.fromisoformat(str(pending.get("claimed_at")))
        if (now - claimed).total_seconds() < self._settle:
            return "in_flight"
        found = self._sender.was_sent(str(pending.get("message_id")))
        if found is None:
            return "unknown"
        return "sent" if found else "not_sent"

    def resolve_pending(self, stream: str, *, sent: bool, now: dt.datetime) -> bool:
        """An administrator's decision on an UNCERTAIN claim: it was sent (record it) or not
        (the next run resends it). Returns False when there is no pending claim."""
        doc, etag = self.read(stream)
        pending = doc.get("pending")
        if not pending:
            return False
        if sent:
            doc = self._complete(
                doc,
                str(pending["slot"]),
                "sent",
                now,
                message_id=str(pending.get("message_id")),
                recipients=tuple(pending.get("recipients") or ()),
                data=pending.get("data"),
            )
        else:
            doc = {**doc, "pending": {**pending, "not_sent": True}}
        self._write(stream, doc, etag)
        return True
