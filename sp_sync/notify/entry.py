"""The mail runs as the CLI, the Functions triggers and the demo start them: a runtime and a site in,
one `SiteMailResult` (or failure-notice `Delivery`) out.

Typed against small protocols rather than `sp_sync.run.runtime.Runtime` so this package does
not import the run stage (the run stage calls into it, not the other way round).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sp_sync.auth import TokenProvider
from sp_sync.errors import RetryableError, SettingsError, SpSyncError
from sp_sync.i18n import Text
from sp_sync.notify.graph_mail import GRAPH_RESOURCE
from sp_sync.notify.ledger import Delivery
from sp_sync.notify.site import MailSettings, SiteMailResult, check_site_health, run_site_digest
from sp_sync.schema.model import SchemaSet
from sp_sync.state.base import StateStore

__all__ = [
    "AppRuntime",
    "DigestJob",
    "digest_jobs",
    "digest_site",
    "enqueue_digest_jobs",
    "graph_token_provider",
    "handle_digest_job",
    "handle_digest_message",
    "health_check_site",
    "mail_settings",
    "notify_after_run",
]

log = logging.getLogger(__name__)

_SENDER_REQUIRED = Text(
    sv="krävs för att skicka e-post (postlådan som e-posten skickas från)",
    en="is required to send mail (the mailbox mail is sent as)",
)
# The parse problem and the delivery details are English detail, quoted as they are.
_NOT_A_DIGEST_JOB = Text(
    sv="meddelandet är inget sammandragsjobb: ”{problem}”",
    en="the message is not a digest job: {problem}",
)
_SITE_GONE = Text(
    sv="{site} är inte längre en konfigurerad webbplats",
    en="{site} is no longer a configured site",
)
_MAIL_TO_RETRY = Text(
    sv="En del e-post för {site} ({period}) måste skickas igen: ”{details}”",
    en="Some mail for {site} ({period}) must be retried: {details}",
)


class MailConfig(Protocol):
    """The settings the mail runs read (fields of `sp_sync.settings.Settings`)."""

    @property
    def mail_sender(self) -> str | None: ...
    @property
    def admin_mail(self) -> str | None: ...
    @property
    def stale_days(self) -> int: ...
    @property
    def graph_url(self) -> str: ...
    @property
    def language(self) -> str: ...


class MailRuntime(Protocol):
    """What the mail runs need from `sp_sync.run.runtime.Runtime`."""

    @property
    def store(self) -> StateStore: ...
    @property
    def schemas(self) -> SchemaSet: ...
    def now(self) -> dt.datetime: ...


class SiteLike(Protocol):
    @property
    def url(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def lists(self) -> tuple[str, ...]: ...


def mail_settings(settings: MailConfig, *, required: bool = True) -> MailSettings | None:
    """MailSettings from the settings; None (or, when `required`, a SettingsError) without a sender."""
    if not settings.mail_sender:
        if required:
            raise SettingsError("SP_SYNC_MAIL_SENDER", _SENDER_REQUIRED)
        return None
    return MailSettings(
        sender=settings.mail_sender,
        admin=settings.admin_mail,
        stale_days=settings.stale_days,
        graph_url=settings.graph_url,
    )


def graph_token_provider(settings: object) -> TokenProvider:
    """The configured identity (SP_SYNC_AUTH), for the Microsoft Graph resource."""
    from sp_sync.auth import token_provider_from_settings

    return token_provider_from_settings(settings, GRAPH_RESOURCE)  # type: ignore[arg-type]


def digest_site(
    runtime: MailRuntime,
    settings: MailConfig,
    site: SiteLike,
    *,
    dry_run: bool = False,
    department: str | None = None,
    out_dir: Path | None = None,
    token_provider: TokenProvider | None = None,
) -> SiteMailResult:
    """This period's digests of one site (see `site.run_site_digest`)."""
    mail = mail_settings(settings, required=not dry_run) or MailSettings(
        sender="preview@sp-sync.invalid"
    )
    provider = token_provider
    if provider is None and not dry_run:
        provider = graph_token_provider(settings)
    return run_site_digest(
        store=runtime.store,
        site_url=site.url,
        site_name=site.name,
        schemas=runtime.schemas,
        mail=mail,
        token_provider=provider,
        now=runtime.now(),
        language=settings.language,
        dry_run=dry_run,
        department=department,
        out_dir=out_dir,
    )


def health_check_site(
    runtime: MailRuntime,
    settings: MailConfig,
    site: SiteLike,
    *,
    token_provider: TokenProvider | None = None,
) -> Delivery | None:
    """The failure notice for one site, when mail is configured; never raises for mail trouble
    (a night's run must not fail because its notice could not be sent — it is retried)."""
    mail = mail_settings(settings, required=False)
    if mail is None or not mail.admin:
        return None
    try:
        return check_site_health(
            store=runtime.store,
            site_url=site.url,
            site_name=site.name,
            schemas=runtime.schemas,
            mail=mail,
            token_provider=token_provider or graph_token_provider(settings),
            now=runtime.now(),
            language=settings.language,
            lists=site.lists or None,
        )
    except SpSyncError as exc:
        log.warning("The failure notice for %s could not be handled: %s", site.url, exc)
        return None


# --- the Functions fan-out: one queue message per site ----------------------------------------


@dataclass(frozen=True)
class DigestJob:
    """One site's digest run, as a queue message."""

    site: str

    def to_json(self) -> str:
        return json.dumps({"kind": "digest", "site": self.site})

    @classmethod
    def from_body(cls, body: bytes | str) -> DigestJob:
        try:
            doc = json.loads(body)
            site = doc["site"]
            if doc.get("kind") != "digest" or not isinstance(site, str) or not site:
                raise ValueError("not a digest job")
        except (ValueError, KeyError, TypeError) as exc:
            raise SettingsError("digest queue", _NOT_A_DIGEST_JOB.fill(problem=exc)) from exc
        return cls(site)


def digest_jobs(sites: Sequence[SiteLike]) -> list[str]:
    """The queue messages the digest timer sends: one per configured site."""
    return [DigestJob(site.url).to_json() for site in sites]


def handle_digest_job(
    body: bytes | str,
    runtime: MailRuntime,
    settings: MailConfig,
    sites: Sequence[SiteLike],
    *,
    token_provider: TokenProvider | None = None,
) -> SiteMailResult:
    """Run one site's digests and its failure/stale check (the digest queue trigger).

    The caller raises when `needs_retry` so that the queue delivers the message again; the
    ledger makes the redelivery send only what is still missing.
    """
    job = DigestJob.from_body(body)
    matches = [s for s in sites if s.url.rstrip("/").lower() == job.site.rstrip("/").lower()]
    if not matches:
        raise SettingsError("SP_SYNC_SITE_URL", _SITE_GONE.fill(site=job.site))
    site = matches[0]
    provider = token_provider or graph_token_provider(settings)
    result = digest_site(runtime, settings, site, token_provider=provider)
    notice = health_check_site(runtime, settings, site, token_provider=provider)
    if notice is None:
        return result
    return SiteMailResult(
        result.site,
        result.period,
        deliveries=result.deliveries,
        previews=result.previews,
        failure_notice=notice,
        files=result.files,
    )


# --- what the Functions triggers call ---------------------------------------------------------


class AppSettings(MailConfig, Protocol):
    @property
    def sites(self) -> Sequence[SiteLike]: ...


class AppRuntime(MailRuntime, Protocol):
    """`sp_sync.run.runtime.Runtime` as the digest triggers use it."""

    @property
    def settings(self) -> AppSettings: ...


def enqueue_digest_jobs(*, load_runtime: Callable[[], AppRuntime]) -> list[str]:
    """The digest timer: one queue message per configured site (none when mail is off)."""
    runtime = load_runtime()
    if mail_settings(runtime.settings, required=False) is None:
        log.warning("The digest timer fired but SP_SYNC_MAIL_SENDER is not set; nothing to do")
        return []
    return digest_jobs(runtime.settings.sites)


def handle_digest_message(
    body: bytes | str,
    *,
    load_runtime: Callable[[], AppRuntime],
    token_provider: TokenProvider | None = None,
) -> SiteMailResult:
    """The digest queue trigger: one site's digests and failure/stale check.

    Raises RetryableError when some mail must be retried, so the queue delivers the message
    again (the ledger sends only what is still missing)."""
    runtime = load_runtime()
    result = handle_digest_job(
        body, runtime, runtime.settings, runtime.settings.sites, token_provider=token_provider
    )
    if result.needs_retry:
        details = "; ".join(d.detail for d in result.deliveries if d.needs_retry and d.detail)
        raise RetryableError(
            _MAIL_TO_RETRY.fill(site=result.site, period=result.period, details=details)
        )
    return result


def notify_after_run(runtime: AppRuntime, site: SiteLike) -> Delivery | None:
    """Right after a night's run stored its summary: the failure notice, when one is due.

    Never raises: the run's outcome must not depend on mail (a notice that could not be sent is
    in the ledger and goes out with the next check)."""
    try:
        return health_check_site(runtime, runtime.settings, site)
    except Exception as exc:
        log.warning("The failure notice for %s was not handled: %s", site.url, exc)
        return None
