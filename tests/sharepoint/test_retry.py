"""The retry policy's classification and waits (pure functions; no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from sp_sync.sharepoint.odata import id_in, literal
from sp_sync.sharepoint.retry import (
    RetryAction,
    RetryPolicy,
    classify_status,
    parse_retry_after,
    server_wait,
)


@pytest.mark.parametrize(
    ("status", "hresult", "action"),
    [
        (429, None, RetryAction.WAIT_RETRY_AFTER),
        (503, None, RetryAction.WAIT_RETRY_AFTER),
        (502, None, RetryAction.BACKOFF),
        (504, None, RetryAction.BACKOFF),
        (500, None, RetryAction.BACKOFF),
        (500, "-2147024860", RetryAction.GIVE_UP),  # list view threshold
        (500, "-2147024749", RetryAction.GIVE_UP),  # lookup column threshold
        (500, "-2146233086", RetryAction.GIVE_UP),  # expired change token
        (400, None, RetryAction.GIVE_UP),
        (401, None, RetryAction.RENEW_TOKEN),
        (403, None, RetryAction.GIVE_UP),
        (404, "-1", RetryAction.GIVE_UP),
        (412, None, RetryAction.GIVE_UP),
    ],
)
def test_classify_status(status: int, hresult: str | None, action: RetryAction) -> None:
    assert classify_status(status, hresult, {}).action is action


def test_threshold_type_name_alone_is_fatal() -> None:
    decision = classify_status(500, None, {}, "Microsoft.SharePoint.SPQueryThrottledException")
    assert decision.action is RetryAction.GIVE_UP


def test_retry_after_seconds_date_and_zero() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    http_date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(http_date, now=now) == pytest.approx(30.0)
    past = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


def test_ratelimit_reset_wins_when_larger() -> None:
    assert server_wait({"Retry-After": "1", "RateLimit-Reset": "4"}) == 4.0
    assert server_wait({"retry-after": "5", "ratelimit-reset": "2"}) == 5.0
    assert server_wait({}) is None
    decision = classify_status(429, None, {"Retry-After": "1", "RateLimit-Reset": "3"})
    assert RetryPolicy().wait_for(decision, 1) == 3.0


def test_throttle_without_hint_uses_default_wait() -> None:
    policy = RetryPolicy(default_throttle_wait=2.5)
    assert policy.wait_for(classify_status(503, None, {}), 1) == 2.5


def test_backoff_is_full_jitter_and_capped() -> None:
    top = RetryPolicy(backoff_base=1.0, backoff_max=8.0, rng=lambda: 1.0)
    assert [top.backoff(n) for n in (1, 2, 3, 4, 5, 9)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    bottom = RetryPolicy(rng=lambda: 0.0)
    assert bottom.backoff(5) == 0.0


def test_odata_literals_escape_quotes_and_force_utc() -> None:
    assert literal("O'Brien") == "'O''Brien'"
    assert literal(5) == "5"
    assert literal(True) == "true"
    cet = datetime(2026, 3, 29, 3, 30, tzinfo=UTC).astimezone()
    assert literal(cet) == "datetime'2026-03-29T03:30:00Z'"
    with pytest.raises(ValueError, match="naive"):
        literal(datetime(2026, 1, 1))
    assert id_in([3, 1]) == "ID eq 3 or ID eq 1"
