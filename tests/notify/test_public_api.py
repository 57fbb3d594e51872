"""The notify package's public names, pinned: changing them must be a deliberate edit here."""

from __future__ import annotations

import sp_sync.notify

NOTIFY_PUBLIC = [
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
    "recipients_from_schemas",
    "message_id_for",
    "notify_failure",
    "preview_digests",
    "render_digest",
    "render_failure_notice",
    "run_site_digest",
    "send_digests",
    "stale_lists",
    "write_previews",
]


def test_public_names_are_pinned_and_importable() -> None:
    assert sorted(sp_sync.notify.__all__) == sorted(NOTIFY_PUBLIC)
    for name in NOTIFY_PUBLIC:
        assert getattr(sp_sync.notify, name) is not None
