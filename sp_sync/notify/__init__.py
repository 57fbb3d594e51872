"""Mail that closes the loop: the weekly department digest and the administrators' failure notice.

    content     pure: snapshot DataFrames → DepartmentDigest / FailureNotice
    render      pure: subject line, Outlook-friendly HTML, plain text
    message     MIME (multipart/alternative) with a stable Message-ID
    recipients  the allow-list: department addresses from list_schemas/reference.yaml
    graph_mail  Microsoft Graph sendMail (app-only, msal tokens, the shared retry policy)
    ledger      exactly-once per slot in the state store (claim → send → commit)
    service     send_digests / preview_digests / notify_failure for one site
    site        run_site_digest / check_site_health from committed state
    entry       runtime + site in: what commands (CLI), the triggers and demo call

Names resolve on first use (PEP 562), as in `sp_sync`: the CLI imports `sp_sync.notify.commands`
for its parser, and that must not load pandas or requests.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name → module that defines it.
_EXPORTS: dict[str, str] = {
    "DEFAULT_STALE_DAYS": "sp_sync.notify.site",
    "DUE_SOON_DAYS": "sp_sync.notify.content",
    "FAILURE_STREAM": "sp_sync.notify.service",
    "GRAPH_RESOURCE": "sp_sync.notify.graph_mail",
    "GRAPH_URL": "sp_sync.notify.graph_mail",
    "Composed": "sp_sync.notify.ledger",
    "Delivery": "sp_sync.notify.ledger",
    "DeliveryUnknownError": "sp_sync.notify.graph_mail",
    "DepartmentDigest": "sp_sync.notify.content",
    "DepartmentRef": "sp_sync.notify.service",
    "DigestItem": "sp_sync.notify.content",
    "DigestPreview": "sp_sync.notify.service",
    "DigestRequest": "sp_sync.notify.service",
    "FailureNotice": "sp_sync.notify.content",
    "GraphMailSender": "sp_sync.notify.graph_mail",
    "MailLedger": "sp_sync.notify.ledger",
    "MailSender": "sp_sync.notify.ledger",
    "MailSettings": "sp_sync.notify.site",
    "Outcome": "sp_sync.notify.ledger",
    "OutgoingMail": "sp_sync.notify.message",
    "RecipientDirectory": "sp_sync.notify.recipients",
    "RenderedMail": "sp_sync.notify.render",
    "SendReceipt": "sp_sync.notify.graph_mail",
    "SiteMailResult": "sp_sync.notify.site",
    "StaleList": "sp_sync.notify.content",
    "UnconfiguredRecipientError": "sp_sync.notify.recipients",
    "build_digest": "sp_sync.notify.content",
    "build_failure_notice": "sp_sync.notify.content",
    "check_site_health": "sp_sync.notify.site",
    "compose_mail": "sp_sync.notify.message",
    "digest_period": "sp_sync.notify.service",
    "digest_stream": "sp_sync.notify.service",
    "digest_subject": "sp_sync.notify.render",
    "failure_subject": "sp_sync.notify.render",
    "is_mail_address": "sp_sync.notify.recipients",
    "last_syncs": "sp_sync.notify.service",
    "message_id_for": "sp_sync.notify.message",
    "notify_failure": "sp_sync.notify.service",
    "preview_digests": "sp_sync.notify.service",
    "recipients_from_schemas": "sp_sync.notify.recipients",
    "render_digest": "sp_sync.notify.render",
    "render_failure_notice": "sp_sync.notify.render",
    "run_site_digest": "sp_sync.notify.site",
    "send_digests": "sp_sync.notify.service",
    "stale_lists": "sp_sync.notify.content",
    "write_previews": "sp_sync.notify.service",
}

__all__ = [
    "DEFAULT_STALE_DAYS",
    "DUE_SOON_DAYS",
    "FAILURE_STREAM",
    "GRAPH_RESOURCE",
    "GRAPH_URL",
    "Composed",
    "Delivery",
    "DeliveryUnknownError",
    "DepartmentDigest",
    "DepartmentRef",
    "DigestItem",
    "DigestPreview",
    "DigestRequest",
    "FailureNotice",
    "GraphMailSender",
    "MailLedger",
    "MailSender",
    "MailSettings",
    "Outcome",
    "OutgoingMail",
    "RecipientDirectory",
    "RenderedMail",
    "SendReceipt",
    "SiteMailResult",
    "StaleList",
    "UnconfiguredRecipientError",
    "build_digest",
    "build_failure_notice",
    "check_site_health",
    "compose_mail",
    "digest_period",
    "digest_stream",
    "digest_subject",
    "failure_subject",
    "is_mail_address",
    "last_syncs",
    "message_id_for",
    "notify_failure",
    "preview_digests",
    "recipients_from_schemas",
    "render_digest",
    "render_failure_notice",
    "run_site_digest",
    "send_digests",
    "stale_lists",
    "write_previews",
]

if TYPE_CHECKING:  # what type checkers see; at run time `__getattr__` loads lazily
    from sp_sync.notify.content import (
        DUE_SOON_DAYS,
        DepartmentDigest,
        DigestItem,
        FailureNotice,
        StaleList,
        build_digest,
        build_failure_notice,
        stale_lists,
    )
    from sp_sync.notify.graph_mail import (
        GRAPH_RESOURCE,
        GRAPH_URL,
        DeliveryUnknownError,
        GraphMailSender,
        SendReceipt,
    )
    from sp_sync.notify.ledger import Composed, Delivery, MailLedger, MailSender, Outcome
    from sp_sync.notify.message import OutgoingMail, compose_mail, message_id_for
    from sp_sync.notify.recipients import (
        RecipientDirectory,
        UnconfiguredRecipientError,
        is_mail_address,
        recipients_from_schemas,
    )
    from sp_sync.notify.render import (
        RenderedMail,
        digest_subject,
        failure_subject,
        render_digest,
        render_failure_notice,
    )
    from sp_sync.notify.service import (
        FAILURE_STREAM,
        DepartmentRef,
        DigestPreview,
        DigestRequest,
        digest_period,
        digest_stream,
        last_syncs,
        notify_failure,
        preview_digests,
        send_digests,
        write_previews,
    )
    from sp_sync.notify.site import (
        DEFAULT_STALE_DAYS,
        MailSettings,
        SiteMailResult,
        check_site_health,
        run_site_digest,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sp_sync.notify' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
