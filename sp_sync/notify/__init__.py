"""Mail that closes the loop: the weekly department digest and the administrators' failure notice.

content     pure: snapshot DataFrames → DepartmentDigest / FailureNotice
render      pure: subject line, Outlook-friendly HTML, plain text
message     MIME (multipart/alternative) with a stable Message-ID
recipients  the allow-list: department addresses from list_schemas/reference.yaml
graph_mail  Microsoft Graph sendMail (app-only, msal tokens, the shared retry policy)
ledger      exactly-once per slot in the state store (claim → send → commit)
service     send_digests / preview_digests / notify_failure for one site
"""

from __future__ import annotations

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
