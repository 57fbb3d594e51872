"""The mail runs as the CLI, the Functions triggers and the demo start them: a runtime and a site in,
one `SiteMailResult` (or failure-notice `Delivery`) out.

Typed against small protocols rather than `sp_sync.run.runtime.Runtime` so this package does
not import the run stage (the run stage calls into it, not the other way round).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Protocol

from sp_sync.auth import TokenProvider
from sp_sync.errors import SettingsError, SpSyncError
from sp_sync.notify.graph_mail import GRAPH_RESOURCE
from sp_sync.notify.ledger import Delivery
from sp_sync.notify.site import MailSettings, SiteMailResult, check_site_health, run_site_digest
from sp_sync.schema.model import SchemaSet
from sp_sync.state.base import StateStore

__all__ = ["digest_site", "graph_token_provider", "health_check_site", "mail_settings"]

log = logging.getLogger(__name__)


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
            raise SettingsError(
                "SP_SYNC_MAIL_SENDER", "is required to send mail (the mailbox mail is sent as)"
            )
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
