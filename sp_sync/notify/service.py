"""The digest run and the failure notice: content + rendering + ledger, for one site.

`send_digests` mails each department of a site its digest for the current period (the ISO week
in the site's time zone), exactly once; `preview_digests` renders the same mails without sending
or recording anything (`--dry-run`, `make demo`). `notify_failure` mails the administrators once
per incident: an incident opens when a night ends failed/partial or a list's data is stale, and
closes when a night is fine again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from sp_sync.errors import ConfigurationError, SpSyncError
from sp_sync.i18n import Text
from sp_sync.notify.content import (
    DUE_SOON_DAYS,
    DepartmentDigest,
    StaleList,
    build_digest,
    build_failure_notice,
)
from sp_sync.notify.ledger import Composed, Delivery, MailLedger, Outcome
from sp_sync.notify.message import OutgoingMail, compose_mail, message_id_for
from sp_sync.notify.recipients import RecipientDirectory
from sp_sync.notify.render import RenderedMail, render_digest, render_failure_notice
from sp_sync.report.safe_text import safe_file_name
from sp_sync.state.base import (
    MANIFEST_NAME,
    StateConflictError,
    StateStore,
    check_key,
    list_key_segment,
    list_prefix,
    site_key,
)

__all__ = [
    "FAILURE_STREAM",
    "DepartmentRef",
    "DigestPreview",
    "DigestRequest",
    "digest_period",
    "digest_stream",
    "last_syncs",
    "notify_failure",
    "preview_digests",
    "send_digests",
    "write_previews",
]

log = logging.getLogger(__name__)

_NO_DEPARTMENT = Text(
    sv="Det finns ingen avdelning som heter {name}; kända: {known}.",
    en="There is no department called {name}; known: {known}.",
)

#: The first digest of a department (no earlier digest in the ledger) covers this many days.
FIRST_WINDOW_DAYS = 7
FAILURE_STREAM = "failure-notice"


def digest_period(moment: dt.datetime, time_zone: ZoneInfo) -> str:
    """The digest period containing `moment`: its ISO week in the site's time zone (2026-W49)."""
    year, week, _day = moment.astimezone(time_zone).isocalendar()
    return f"{year}-W{week:02d}"


def digest_stream(department: str) -> str:
    return f"digest-{list_key_segment(department)}"


@dataclass(frozen=True)
class DepartmentRef:
    """A department as the reference data names it: the stored value and its label."""

    name: str
    label: str


@dataclass(frozen=True)
class DigestRequest:
    """Everything one site's digest run needs (built by the CLI, the timer or the demo)."""

    site_url: str
    feedback: pd.DataFrame
    departments: Sequence[DepartmentRef]
    recipients: RecipientDirectory
    sender: str
    now: dt.datetime
    time_zone: ZoneInfo
    language: str = "sv"
    county_codes: Mapping[str, str] | None = None
    #: Department → absolute URL of its workbook (from the last run summary), when known.
    workbook_urls: Mapping[str, str] | None = None
    only_department: str | None = None
    due_soon_days: int = DUE_SOON_DAYS


@dataclass(frozen=True)
class DigestPreview:
    """A digest rendered without sending: for --dry-run and the demo's .eml/.html files."""

    department: str
    recipient: str | None
    digest: DepartmentDigest
    rendered: RenderedMail
    mail: OutgoingMail | None


def _departments(request: DigestRequest) -> list[DepartmentRef]:
    if request.only_department is None:
        return list(request.departments)
    wanted = request.only_department.strip().casefold()
    chosen = [
        d
        for d in request.departments
        if d.name.casefold() == wanted or d.label.casefold() == wanted
    ]
    if not chosen:
        known = ", ".join(d.name for d in request.departments)
        raise ConfigurationError(
            _NO_DEPARTMENT.fill(name=repr(request.only_department), known=known)
        )
    return chosen


def _digest_for(
    request: DigestRequest, department: DepartmentRef, since: dt.datetime
) -> DepartmentDigest:
    return build_digest(
        request.feedback,
        department.name,
        since=since,
        until=request.now,
        time_zone=request.time_zone,
        department_label=department.label,
        language=request.language,
        county_codes=request.county_codes,
        workbook_url=(request.workbook_urls or {}).get(department.name),
        due_soon_days=request.due_soon_days,
    )


def _mail_for(
    request: DigestRequest, department: DepartmentRef, rendered: RenderedMail, period: str
) -> OutgoingMail | None:
    address = request.recipients.for_department(department.name)
    if address is None:
        return None
    request.recipients.check([address])
    return compose_mail(
        rendered,
        sender=request.sender,
        recipients=[address],
        message_id=message_id_for("digest", site_key(request.site_url), department.name, period),
        date=request.now,
    )


def preview_digests(
    request: DigestRequest, *, since: dt.datetime | None = None
) -> list[DigestPreview]:
    """Every department's digest as it would be sent now (nothing is sent or recorded).

    Departments with nothing to say are left out. `since` defaults to a week before `now`.
    """
    start = since or request.now - dt.timedelta(days=FIRST_WINDOW_DAYS)
    period = digest_period(request.now, request.time_zone)
    out: list[DigestPreview] = []
    for department in _departments(request):
        digest = _digest_for(request, department, start)
        if not digest.has_content:
            continue
        rendered = render_digest(digest, time_zone=request.time_zone)
        mail = _mail_for(request, department, rendered, period)
        out.append(
            DigestPreview(
                department.name,
                request.recipients.for_department(department.name),
                digest,
                rendered,
                mail,
            )
        )
    return out


def write_previews(previews: Sequence[DigestPreview], folder: Path | str) -> list[Path]:
    """Save each preview as `.html` (the mail's HTML part) and `.eml` (the exact MIME that would
    be sent; opens in Outlook and Thunderbird). Returns the written paths."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for preview in previews:
        lang = preview.digest.language
        stem = ("Digest – " if lang == "en" else "Veckosammanfattning – ") + (
            preview.digest.department_label
        )
        html_path = target / safe_file_name(stem, extension=".html")
        html_path.write_text(preview.rendered.html, encoding="utf-8")
        written.append(html_path)
        if preview.mail is not None:
            eml_path = target / safe_file_name(stem, extension=".eml")
            eml_path.write_bytes(preview.mail.mime)
            written.append(eml_path)
    return written


def send_digests(request: DigestRequest, ledger: MailLedger) -> list[Delivery]:
    """Mail each department its digest for the current period, exactly once (see ledger).

    The window of a department's digest starts where its last recorded digest ended, so a
    missed week is covered by the next digest rather than lost. A department without an
    address in the reference data gets nothing (and the result says so).
    """
    period = digest_period(request.now, request.time_zone)
    results: list[Delivery] = []
    for department in _departments(request):
        stream = digest_stream(department.name)
        address = request.recipients.for_department(department.name)
        if address is None:
            log.info("No mail address is configured for %s; no digest", department.name)
            results.append(
                Delivery(
                    stream,
                    period,
                    Outcome.NOTHING,
                    detail="no address configured",
                    label=department.label,
                )
            )
            continue

        def compose(
            done: Mapping[str, Any] | None, _department: DepartmentRef = department
        ) -> Composed:
            since = _window_start(done, request.now)
            digest = _digest_for(request, _department, since)
            data = {
                "since": since.isoformat(),
                "until": request.now.isoformat(),
                "new": len(digest.new),
                "overdue": len(digest.overdue),
                "due_soon": len(digest.due_soon),
            }
            if not digest.has_content:
                return Composed(None, data)
            rendered = render_digest(digest, time_zone=request.time_zone)
            return Composed(_mail_for(request, _department, rendered, period), data)

        try:
            result = ledger.deliver(stream, period, compose, now=request.now)
        except SpSyncError as exc:
            # One department's trouble (state store busy, a bad address) must not hold up the
            # others; the ledger is unchanged or holds a claim, so the next run picks it up.
            log.warning("Digest %s for %s failed: %s", period, department.name, exc)
            result = Delivery(stream, period, Outcome.RETRY_LATER, detail=str(exc))

        log.info("Digest %s for %s: %s", period, department.name, result.outcome.value)
        results.append(replace(result, label=department.label))
    return results


def _window_start(done: Mapping[str, Any] | None, now: dt.datetime) -> dt.datetime:
    until = ((done or {}).get("data") or {}).get("until")
    if until:
        try:
            start = dt.datetime.fromisoformat(str(until))
            if start.tzinfo is not None and start < now:
                return start
        except ValueError:
            pass
    return now - dt.timedelta(days=FIRST_WINDOW_DAYS)


# --------------------------------------------------------------------------------------------
# Failure notice


def last_syncs(store: StateStore, site: str, lists: Sequence[str]) -> dict[str, dt.datetime | None]:
    """When each list was last synchronised, read from its manifest alone (no data files)."""
    out: dict[str, dt.datetime | None] = {}
    for title in lists:
        doc, _etag = store.read_json(check_key(f"{list_prefix(site, title)}/{MANIFEST_NAME}"))
        raw = ((doc or {}).get("checkpoint") or {}).get("last_sync")
        try:
            out[title] = dt.datetime.fromisoformat(raw) if raw else None
        except ValueError:
            out[title] = None
    return out


def _incident_key(site: str) -> str:
    return check_key(f"notify/{site_key(site)}/incident.json")


def notify_failure(
    *,
    site: str,
    summary: Mapping[str, Any] | None,
    stale: Sequence[StaleList],
    stale_days: int,
    store: StateStore,
    ledger: MailLedger,
    recipients: RecipientDirectory,
    sender: str,
    now: dt.datetime,
    time_zone: ZoneInfo,
    language: str = "sv",
) -> Delivery | None:
    """Mail the administrators once per incident; None when there is no incident now.

    An incident opens at the first failed/partial run or stale list and stays open (no further
    notices) until a run ends ok with nothing stale, which closes it.
    """
    notice = build_failure_notice(
        summary, site=site, stale=stale, stale_days=stale_days, language=language
    )
    key = _incident_key(site)
    for _attempt in range(3):
        state, etag = store.read_json(key)
        current = (state or {}).get("open")
        if not notice.needed:
            if current:
                try:
                    store.write_json(
                        key,
                        {"open": None, "last_closed": now.isoformat(), "last": current},
                        expected_etag=etag,
                    )
                    log.info("Incident %s on %s is over", current.get("id"), site)
                except StateConflictError:
                    continue
            return None
        if current is None:
            current = {"id": now.strftime("%Y%m%dT%H%M%SZ"), "opened_at": now.isoformat()}
            try:
                store.write_json(
                    key,
                    {**(state or {}), "open": current},
                    expected_etag=etag,
                    create_only=etag is None,
                )
            except StateConflictError:
                continue
        break
    else:
        return Delivery(FAILURE_STREAM, "", Outcome.IN_PROGRESS, detail="incident state contended")
    admin = recipients.admin
    incident = str(current["id"])
    if not admin:
        log.warning("Incident %s on %s: SP_SYNC_ADMIN_MAIL is not set, no notice", incident, site)
        return Delivery(FAILURE_STREAM, incident, Outcome.NOTHING, detail="no admin address")

    def compose(_done: Mapping[str, Any] | None) -> Composed:
        rendered = render_failure_notice(notice, time_zone=time_zone)
        recipients.check([admin])
        mail = compose_mail(
            rendered,
            sender=sender,
            recipients=[admin],
            message_id=message_id_for("incident", site_key(site), incident),
            date=now,
        )
        return Composed(mail, {"status": notice.status, "stale": [s.list_title for s in stale]})

    return ledger.deliver(FAILURE_STREAM, incident, compose, now=now)
