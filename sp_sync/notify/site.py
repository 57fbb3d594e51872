"""One site's mail run, from committed state: what the CLI, the timer and the demo call.

Everything comes from the state store and the schemas, never from SharePoint: the
Dialogåterkoppling snapshot (and the site's time zone recorded in its checkpoint), the last run
summary (for the workbook links and the failure notice) and the lists' manifests (for stale
data). So a digest can be sent, or previewed, without a SharePoint token.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from sp_sync.auth import TokenProvider
from sp_sync.errors import SettingsError, StateError
from sp_sync.i18n import Text, label
from sp_sync.notify.content import stale_lists
from sp_sync.notify.graph_mail import GRAPH_URL, GraphMailSender
from sp_sync.notify.ledger import SETTLE_SECONDS, Delivery, MailLedger, Outcome
from sp_sync.notify.recipients import (
    RecipientDirectory,
    is_mail_address,
    recipients_from_schemas,
)
from sp_sync.notify.service import (
    DepartmentRef,
    DigestPreview,
    DigestRequest,
    last_syncs,
    notify_failure,
    preview_digests,
    send_digests,
    write_previews,
)
from sp_sync.report.safe_text import safe_file_name
from sp_sync.report.tables import FEEDBACK
from sp_sync.schema.model import SchemaSet
from sp_sync.sharepoint.retry import RetryPolicy
from sp_sync.state.base import MANIFEST_NAME, StateStore, check_key, list_prefix

__all__ = [
    "DEFAULT_STALE_DAYS",
    "MailSettings",
    "SiteMailResult",
    "check_site_health",
    "run_site_digest",
]

log = logging.getLogger(__name__)

_NOT_A_MAILBOX = Text(
    sv="{sender} är inte adressen till en postlåda", en="{sender} is not the address of a mailbox"
)
_NOT_AN_ADDRESS = Text(sv="{admin} är inte en e-postadress", en="{admin} is not a mail address")
_AT_LEAST_A_DAY = Text(sv="måste vara minst 1 dag", en="must be at least 1 day")
_NOT_SYNCED = Text(
    sv="{list} har inte synkroniserats för {site} ännu: kör `sp-sync sync` först.",
    en="{list} has not been synchronised for {site} yet: run `sp-sync sync` first.",
)
_NEEDS_GRAPH_TOKEN = Text(
    sv="att skicka e-post kräver en token för Microsoft Graph",
    en="sending mail needs a token for Microsoft Graph",
)

DEFAULT_STALE_DAYS = 3


@dataclass(frozen=True)
class MailSettings:
    """The mail part of the settings (SP_SYNC_MAIL_SENDER, SP_SYNC_ADMIN_MAIL, SP_SYNC_STALE_DAYS)."""

    sender: str
    admin: str | None = None
    stale_days: int = DEFAULT_STALE_DAYS
    #: Microsoft Graph's origin; the emulator's URL in tests and the demo.
    graph_url: str = GRAPH_URL
    settle_seconds: float = SETTLE_SECONDS

    def __post_init__(self) -> None:
        if not is_mail_address(self.sender):
            raise SettingsError(
                "SP_SYNC_MAIL_SENDER", _NOT_A_MAILBOX.fill(sender=repr(self.sender))
            )
        if self.admin is not None and not is_mail_address(self.admin):
            raise SettingsError("SP_SYNC_ADMIN_MAIL", _NOT_AN_ADDRESS.fill(admin=repr(self.admin)))
        if self.stale_days < 1:
            raise SettingsError("SP_SYNC_STALE_DAYS", _AT_LEAST_A_DAY)


@dataclass(frozen=True)
class SiteMailResult:
    """What one site's mail run did."""

    site: str
    period: str
    deliveries: tuple[Delivery, ...] = ()
    previews: tuple[DigestPreview, ...] = ()
    failure_notice: Delivery | None = None
    files: tuple[Path, ...] = field(default=())

    @property
    def needs_retry(self) -> bool:
        """True when something must be retried by the next run (the CLI exits 6)."""
        every = [*self.deliveries, *([self.failure_notice] if self.failure_notice else [])]
        return any(d.needs_retry for d in every)

    def to_dict(self) -> dict[str, Any]:
        def one(d: Delivery) -> dict[str, Any]:
            return {
                "stream": d.stream,
                "department": d.label or None,
                "slot": d.slot,
                "outcome": d.outcome.value,
                "message_id": d.message_id,
                "recipients": list(d.recipients),
                "detail": d.detail,
            }

        return {
            "site": self.site,
            "period": self.period,
            "digests": [one(d) for d in self.deliveries],
            "previews": [
                {
                    "department": p.department,
                    "recipient": p.recipient,
                    "subject": p.rendered.subject,
                    "new": len(p.digest.new),
                    "overdue": len(p.digest.overdue),
                    "due_soon": len(p.digest.due_soon),
                }
                for p in self.previews
            ],
            "failure_notice": one(self.failure_notice) if self.failure_notice else None,
            "files": [str(p) for p in self.files],
        }

    def format_text(self, language: str = "sv") -> str:
        en = language == "en"
        lines = [
            f"{'Digest' if en else 'Sammanfattning'} {self.period} — {self.site}",
        ]
        for p in self.previews:
            to = p.recipient or ("no address configured" if en else "ingen adress konfigurerad")
            lines.append(f"  {p.rendered.subject}  →  {to}")
        for d in self.deliveries:
            text = _OUTCOME_TEXT[d.outcome][1 if en else 0]
            who = ", ".join(d.recipients)
            lines.append(f"  {d.label or d.stream}: {text}" + (f" ({who})" if who else ""))
            if d.detail and d.outcome is not Outcome.ALREADY_DONE:
                lines.append(f"    {d.detail}")
        if self.failure_notice is not None:
            d = self.failure_notice
            lines.append(
                ("  Failure notice: " if en else "  Felmeddelande: ")
                + _OUTCOME_TEXT[d.outcome][1 if en else 0]
            )
        for path in self.files:
            lines.append(f"  {'Written' if en else 'Skrev'} {path}")
        if self.needs_retry:
            lines.append(
                "Some mail could not be sent now; the next run sends it (nothing is sent twice)."
                if en
                else "Viss e-post kunde inte skickas nu; nästa körning skickar den (inget skickas "
                "två gånger)."
            )
        return "\n".join(lines)


_OUTCOME_TEXT: dict[Outcome, tuple[str, str]] = {
    Outcome.SENT: ("skickad", "sent"),
    Outcome.RESENT: ("skickad (nytt försök)", "sent (retried)"),
    Outcome.RECOVERED: (
        "redan skickad av ett tidigare försök",
        "already sent by an earlier attempt",
    ),
    Outcome.NOTHING: ("inget att skicka", "nothing to send"),
    Outcome.ALREADY_DONE: ("redan skickad för perioden", "already sent for this period"),
    Outcome.IN_PROGRESS: ("pågår i en annan körning", "in progress in another run"),
    Outcome.RETRY_LATER: (
        "kunde inte skickas, nästa körning försöker igen",
        "could not be sent, the next run retries",
    ),
    Outcome.UNCERTAIN: (
        "kanske skickad, kan inte kontrolleras",
        "may have been sent, cannot be checked",
    ),
}


def _time_zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "Europe/Stockholm")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Europe/Stockholm")


def workbook_urls(
    summary: dict[str, Any] | None, site_url: str, schemas: SchemaSet, language: str
) -> dict[str, str]:
    """Department → absolute URL of its workbook, from the uploads of the last run summary."""
    doc = summary or {}
    # A RunSummary has `workbooks`; the Functions run document keeps it under `rollup`.
    found = doc.get("rollup")
    rollup: dict[str, Any] = found if isinstance(found, dict) else {}
    uploaded = {
        str(w.get("name")): str(w.get("server_relative_url"))
        for w in (doc.get("workbooks") or rollup.get("workbooks") or ())
        if isinstance(w, dict) and w.get("server_relative_url")
    }
    parts = urlsplit(site_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    out: dict[str, str] = {}
    for dept in schemas.reference.departments:
        name = safe_file_name(label("wb_department", language, name=dept.label(language)))
        path = uploaded.get(name)
        if path:
            out[dept.name] = origin + quote(path, safe="/")
    return out


def run_site_digest(
    *,
    store: StateStore,
    site_url: str,
    site_name: str,
    schemas: SchemaSet,
    mail: MailSettings,
    token_provider: TokenProvider | None,
    now: dt.datetime,
    language: str = "sv",
    dry_run: bool = False,
    department: str | None = None,
    out_dir: Path | None = None,
    session: requests.Session | None = None,
    policy: RetryPolicy | None = None,
    recipients: RecipientDirectory | None = None,
) -> SiteMailResult:
    """Send (or with `dry_run` only render) this period's digests of one site.

    `out_dir` also saves each digest as .html and .eml. Sending needs `token_provider` (for the
    Graph resource). `recipients` replaces the addresses from reference.yaml (the demo's).
    Raises StateError when the feedback list was never synchronised.
    """
    from sp_sync.notify.service import digest_period

    state = store.read_list_state(site_url, FEEDBACK)
    if state is None:
        raise StateError(_NOT_SYNCED.fill(list=FEEDBACK, site=site_url))
    tz = _time_zone(state.checkpoint.extra.get("time_zone"))
    summary, _etag = store.read_json(f"summaries/{site_name}/last.json")
    if recipients is None:
        recipients = recipients_from_schemas(schemas, mail.admin)
    request = DigestRequest(
        site_url=site_url,
        feedback=state.rows,
        departments=[
            DepartmentRef(d.name, d.label(language)) for d in schemas.reference.departments
        ],
        recipients=recipients,
        sender=mail.sender,
        now=now,
        time_zone=tz,
        language=language,
        county_codes={c.name: c.code for c in schemas.reference.counties},
        workbook_urls=workbook_urls(summary, site_url, schemas, language),
        only_department=department,
    )
    period = digest_period(now, tz)
    previews = preview_digests(request) if (dry_run or out_dir is not None) else []
    files = write_previews(previews, out_dir) if out_dir is not None else []
    if dry_run:
        return SiteMailResult(site_url, period, previews=tuple(previews), files=tuple(files))
    if token_provider is None:
        raise SettingsError("SP_SYNC_AUTH", _NEEDS_GRAPH_TOKEN)
    sender = GraphMailSender(
        mail.sender,
        token_provider,
        allowed=recipients.allowed(),
        graph_url=mail.graph_url,
        session=session,
        policy=policy,
    )
    ledger = MailLedger(store, site_url, sender, settle_seconds=mail.settle_seconds)
    deliveries = send_digests(request, ledger)
    return SiteMailResult(
        site_url, period, deliveries=tuple(deliveries), previews=tuple(previews), files=tuple(files)
    )


def check_site_health(
    *,
    store: StateStore,
    site_url: str,
    site_name: str,
    schemas: SchemaSet,
    mail: MailSettings,
    token_provider: TokenProvider,
    now: dt.datetime,
    language: str = "sv",
    lists: Sequence[str] | None = None,
    session: requests.Session | None = None,
    policy: RetryPolicy | None = None,
) -> Delivery | None:
    """The failure notice for a site: mails the administrators once per incident (see service).

    Call it after a night's run and from the digest timer (which also catches a nightly job
    that stopped running: its lists go stale). Returns None when all is well.
    """
    summary, _etag = store.read_json(f"summaries/{site_name}/last.json")
    titles = list(lists) if lists is not None else list(schemas.lists)
    stale = stale_lists(last_syncs(store, site_url, titles), now=now, stale_days=mail.stale_days)
    recipients = RecipientDirectory({}, mail.admin)
    sender = GraphMailSender(
        mail.sender,
        token_provider,
        allowed=recipients.allowed(),
        graph_url=mail.graph_url,
        session=session,
        policy=policy,
    )
    return notify_failure(
        site=site_url,
        summary=summary,
        stale=stale,
        stale_days=mail.stale_days,
        store=store,
        ledger=MailLedger(store, site_url, sender, settle_seconds=mail.settle_seconds),
        recipients=recipients,
        sender=mail.sender,
        now=now,
        time_zone=_site_time_zone(store, site_url),
        language=language,
    )


def _site_time_zone(store: StateStore, site_url: str) -> ZoneInfo:
    """The site's time zone as the last sync recorded it (in any list's manifest)."""
    doc, _etag = store.read_json(check_key(f"{list_prefix(site_url, FEEDBACK)}/{MANIFEST_NAME}"))
    extra = ((doc or {}).get("checkpoint") or {}).get("extra") or {}
    return _time_zone(extra.get("time_zone"))
