"""Secrets are masked in text, URLs, headers and every log record."""

from __future__ import annotations

import logging

import pytest

from sp_sync.redact import (
    MASK,
    RedactingFilter,
    install,
    redact,
    redact_headers,
    redact_url,
    register_secret,
)

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhcHAiLCJhdWQiOiJ4In0.c2lnbmF0dXJlLXBhcnQ"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("https://acct.blob.core.windows.net/c/b?sv=2024&sig=AbC%2Bdef123&se=2030", "AbC%2Bdef123"),
        ("https://login/x?code=0.AAAbbb&state=1", "0.AAAbbb"),
        ("GET /token?client_secret=s3cr3t-value&x=1", "s3cr3t-value"),
        ("body client_assertion=abc.def.ghi&grant_type=x", "abc.def.ghi"),
        ("Authorization: Bearer abcdef123456", "abcdef123456"),
        ("{'Authorization': 'Bearer qwertyuiop'}", "qwertyuiop"),
        (f"token was {JWT} ok", JWT),
        (
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=Zm9vYmFyYmF6==;EndpointSuffix=x",
            "Zm9vYmFyYmF6==",
        ),
        ("BlobEndpoint=x;SharedAccessSignature=sv=1&sig=zzz123", "sv=1&sig=zzz123"),
    ],
)
def test_redact_masks_known_secret_shapes(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert MASK in out


def test_redact_keeps_ordinary_text_and_urls() -> None:
    text = "Read 5000 items from https://contoso.sharepoint.com/sites/x/_api/web/lists?$top=5000"
    assert redact(text) == text


def test_registered_secret_and_url_credentials() -> None:
    register_secret("canary-5b1f-secret")
    assert redact("the value canary-5b1f-secret leaked") == f"the value {MASK} leaked"
    assert "pw" not in redact_url("https://user:pw@host/x").split("@")[0]
    assert redact_headers({"Authorization": "Bearer x", "Accept": "a"}) == {
        "Authorization": MASK,
        "Accept": "a",
    }


def test_private_key_block_is_masked() -> None:
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEv123\n-----END PRIVATE KEY-----"
    assert "MIIEv123" not in redact(f"key: {pem}")


def test_log_records_are_redacted_for_child_loggers_and_args(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install()
    canary = "canary-log-9f8e7d6c"
    register_secret(canary)
    logger = logging.getLogger("sp_sync.some.child")
    with caplog.at_level(logging.DEBUG):
        logger.info("token %s and url %s", canary, "https://h/x?sig=abcdef")
        logger.warning(f"inline {canary}")
        try:
            raise ValueError(f"boom {canary}")
        except ValueError:
            logger.exception("failed")
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert canary not in text
    assert "abcdef" not in text
    assert "failed" in text


def test_filter_handles_mapping_args() -> None:
    register_secret("mapping-secret-1234")
    record = logging.LogRecord("sp_sync", logging.INFO, __file__, 1, "%(a)s", None, None)
    record.args = {"a": "mapping-secret-1234"}
    RedactingFilter().filter(record)
    assert record.getMessage() == MASK
