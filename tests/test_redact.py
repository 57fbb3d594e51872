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
    unregister_secret,
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
    assert redact(f"key: {pem} end") == (
        f"key: -----BEGIN PRIVATE KEY-----{MASK}-----END PRIVATE KEY----- end"
    )
    rsa = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"
    assert redact(rsa) == f"-----BEGIN RSA PRIVATE KEY-----{MASK}-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: abcdefgh123", f"Authorization: {MASK}"),
        ("authorization=Basic dXNlcjpwdw==", f"authorization=Basic {MASK}"),
        ('{"X-IDENTITY-HEADER": "abc123def"}', f'{{"X-IDENTITY-HEADER": "{MASK}"}}'),
        ("Proxy-Authorization: Negotiate abc", f"Proxy-Authorization: Negotiate {MASK}"),
    ],
)
def test_authorization_headers_in_text_keep_their_shape(text: str, expected: str) -> None:
    assert redact(text) == expected


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


class _Opaque:
    """An object whose str() and repr() both carry a secret (like an SDK error object)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def __str__(self) -> str:
        return f"opaque {self.secret}"

    def __repr__(self) -> str:
        return f"Opaque(secret={self.secret!r})"


@pytest.mark.parametrize(
    ("fmt", "make_arg"),
    [
        ("failed: %s", lambda s: ValueError(f"boom {s}")),
        ("failed: %r", lambda s: ValueError(f"boom {s}")),
        ("failed: %s", lambda s: {"token": s, "n": 1}),
        ("failed: %r", lambda s: [s]),
        ("failed: %s", lambda s: s.encode()),
        ("failed: %r", lambda s: s.encode()),
        ("failed: %s", _Opaque),
        ("failed: %r", _Opaque),
    ],
)
def test_every_log_argument_is_redacted_whatever_its_type(
    caplog: pytest.LogCaptureFixture, fmt: str, make_arg: object
) -> None:
    install()
    canary = "canary-arg-7c1d2e3f"
    register_secret(canary)
    logger = logging.getLogger("sp_sync.args")
    with caplog.at_level(logging.INFO):
        logger.info(fmt, make_arg(canary))  # type: ignore[operator]
    (record,) = [r for r in caplog.records if r.name == "sp_sync.args"]
    assert canary not in record.getMessage()
    assert canary not in caplog.text
    assert MASK in record.getMessage()
    assert record.getMessage().startswith("failed: ")


def test_a_secret_split_between_format_and_argument_is_masked() -> None:
    record = logging.LogRecord(
        "sp_sync", logging.INFO, __file__, 1, "Authorization: Bearer %s", ("abc.def.ghi",), None
    )
    RedactingFilter().filter(record)
    assert record.getMessage() == f"Authorization: Bearer {MASK}"


def test_a_broken_format_string_still_masks_each_argument() -> None:
    register_secret("broken-format-secret")
    record = logging.LogRecord(
        "sp_sync", logging.INFO, __file__, 1, "%d items", ("broken-format-secret",), None
    )
    assert RedactingFilter().filter(record) is True
    assert record.args == (MASK,)
    assert record.msg == "%d items"
    record = logging.LogRecord(
        "sp_sync", logging.INFO, __file__, 1, "broken-format-secret %d", ("x",), None
    )
    RedactingFilter().filter(record)
    assert record.msg == f"{MASK} %d"


def test_a_broken_format_with_mapping_arguments_masks_each_value() -> None:
    register_secret("mapping-broken-secret")
    record = logging.LogRecord("sp_sync", logging.INFO, __file__, 1, "%(a)d %(b)s", None, None)
    record.args = {"a": "mapping-broken-secret", "b": 7}
    RedactingFilter().filter(record)
    assert record.args == {"a": MASK, "b": 7}


def test_the_filter_never_drops_a_record(caplog: pytest.LogCaptureFixture) -> None:
    install()
    with caplog.at_level(logging.INFO):
        logging.getLogger("sp_sync").info("direct on the sp_sync logger")
    assert [r.getMessage() for r in caplog.records] == ["direct on the sp_sync logger"]


def test_non_string_message_is_redacted() -> None:
    register_secret("message-object-secret")
    record = logging.LogRecord(
        "sp_sync", logging.INFO, __file__, 1, ValueError("message-object-secret"), None, None
    )
    RedactingFilter().filter(record)
    assert record.getMessage() == MASK


def test_preformatted_exception_text_is_redacted() -> None:
    register_secret("exc-text-secret-42")
    record = logging.LogRecord("sp_sync", logging.ERROR, __file__, 1, "x", None, None)
    record.exc_text = "Traceback ... exc-text-secret-42"
    RedactingFilter().filter(record)
    assert record.exc_text == f"Traceback ... {MASK}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("token Bearer abcdef123456 sent", f"token Bearer {MASK} sent"),
        ("bearer abc.def-ghi_jkl~mno+pq/rs==", f"bearer {MASK}"),
        ("Bearer: s3cr3tvalue", f"Bearer: {MASK}"),
        ("Bearer=s3cr3tvalue", f"Bearer={MASK}"),
        ("GET /x?h=Bearer%20s3cr3tvalue", f"GET /x?h=Bearer%20{MASK}"),
        ("Bearer\ts3cr3tvalue", f"Bearer\t{MASK}"),
    ],
)
def test_bare_bearer_tokens_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_bearer_as_an_ordinary_word_keeps_the_rest() -> None:
    # Only the one word after "Bearer" is the token; the sentence goes on readable.
    assert redact("Bearer abc then more words") == f"Bearer {MASK} then more words"


@pytest.mark.parametrize(
    "text",
    [
        '{"access_token": "tok-123456789", "expires_in": 3599}',
        "{'refresh_token': 'tok-123456789'}",
        '{"client_secret":"tok-123456789"}',
        '{"password": "tok-123456789"}',
    ],
)
def test_json_token_fields_are_masked(text: str) -> None:
    out = redact(text)
    assert "tok-123456789" not in out
    assert MASK in out


def test_json_fields_that_are_not_secret_stay() -> None:
    text = '{"Title": "Län", "County": "Skåne län", "expires_in": 3599}'
    assert redact(text) == text


@pytest.mark.parametrize(
    ("secrets", "text", "expected"),
    [
        # Overlapping in both orders: no tail of either may remain visible.
        (("ovl-abcdef123", "123xyz789-ovl"), "x ovl-abcdef123xyz789-ovl y", f"x {MASK} y"),
        (("123xyz789-ovl", "ovl-abcdef123"), "x ovl-abcdef123xyz789-ovl y", f"x {MASK} y"),
        # One inside the other, and adjacent ones.
        (("inner-secret", "outer-inner-secret-x"), "outer-inner-secret-x", MASK),
        (("adj-secret-1", "adj-secret-2"), "adj-secret-1adj-secret-2!", f"{MASK}!"),
        # Repeated occurrences.
        (("rep-secret-9",), "rep-secret-9 and rep-secret-9", f"{MASK} and {MASK}"),
        (
            ("rep-secret-8",),
            "rep-secret-8 1 rep-secret-8 2 rep-secret-8",
            f"{MASK} 1 {MASK} 2 {MASK}",
        ),
        # A secret overlapping itself ("aaaaaa" in "aaaaaaaa").
        (("aaaaaa",), "<aaaaaaaa>", f"<{MASK}>"),
    ],
)
def test_overlapping_registered_secrets_leave_no_tail(
    secrets: tuple[str, ...], text: str, expected: str
) -> None:
    for secret in secrets:
        register_secret(secret)
    try:
        assert redact(text) == expected
    finally:
        for secret in secrets:
            unregister_secret(secret)


def test_short_values_are_not_registered() -> None:
    register_secret("abcde")
    register_secret(None)
    register_secret("")
    assert redact("abcde") == "abcde"
    register_secret("abcdef")
    try:
        assert redact("abcdef") == MASK
    finally:
        unregister_secret("abcdef")
    assert redact("abcdef") == "abcdef"


def test_install_is_idempotent_and_covers_library_loggers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = install()
    assert install() is first
    assert logging.getLogger("sp_sync").filters.count(first) == 1
    register_secret("library-log-secret")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("msal.application").debug("sent %s", "library-log-secret")
    assert "library-log-secret" not in caplog.text
    assert MASK in caplog.text


def test_redact_url_masks_user_info_and_query() -> None:
    assert redact_url("https://user:pa55word@host/x?sig=abc&a=1") == (
        f"https://{MASK}@host/x?sig={MASK}&a=1"
    )


def test_redact_headers_masks_every_credential_header() -> None:
    headers = {
        "Authorization": "x",
        "X-IDENTITY-HEADER": "x",
        "X-RequestDigest": "x",
        "Cookie": "x",
        "Set-Cookie": "x",
        "Proxy-Authorization": "x",
        "Location": "https://h/x?sig=abcdef",
    }
    out = redact_headers(headers)
    assert out == {**dict.fromkeys(list(headers)[:-1], MASK), "Location": f"https://h/x?sig={MASK}"}


def test_install_from_scratch_puts_the_filter_and_the_record_factory_in_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """install() in a process where nothing installed redaction yet (others tests did)."""
    from sp_sync import redact as module

    monkeypatch.setattr(module, "_factory_installed", False)
    monkeypatch.setattr(logging.getLogger("sp_sync"), "filters", [])
    monkeypatch.setattr(logging.getLogger("sp_sync.other"), "filters", [])
    original = logging.getLogRecordFactory()
    try:
        first = install()
        assert logging.getLogger("sp_sync").filters == [first]
        factory = logging.getLogRecordFactory()
        assert factory is not original
        record = factory(
            "lib", logging.INFO, __file__, 1, "Bearer %s", ("abcdefgh",), None, func="f"
        )
        assert isinstance(record, logging.LogRecord)
        assert record.funcName == "f"
        assert record.getMessage() == f"Bearer {MASK}"
        assert record.name == "lib" and record.levelno == logging.INFO
        # Idempotent: no second filter, no second factory wrapped around the first.
        assert install() is first
        assert logging.getLogger("sp_sync").filters == [first]
        assert logging.getLogRecordFactory() is factory
        # Another logger name gets the filter too, the factory stays.
        install("sp_sync.other")
        assert logging.getLogger("sp_sync.other").filters == [first]
        assert logging.getLogRecordFactory() is factory
    finally:
        logging.setLogRecordFactory(original)


def test_a_broken_format_keeps_the_types_of_harmless_arguments() -> None:
    register_secret("typed-args-secret")
    record = logging.LogRecord(
        "sp_sync",
        logging.INFO,
        __file__,
        1,
        "%d %d",
        ("typed-args-secret", 5, 2.5, True, None, ValueError("x typed-args-secret")),
        None,
    )
    RedactingFilter().filter(record)
    assert record.args == (MASK, 5, 2.5, True, None, f"x {MASK}")
    assert [type(a) for a in record.args] == [str, int, float, bool, type(None), str]


def test_redact_url_ignores_the_case_of_the_scheme() -> None:
    assert redact_url("HTTPS://User:Secret@host/x") == f"HTTPS://{MASK}@host/x"
