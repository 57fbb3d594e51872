"""What the retry policy reads from a failure: status, SharePoint code, message, request id, reason.

The decision's `reason` and the request id are what the retry warning and the error messages show
an administrator (and what support asks for), so their texts are asserted here, and every kind of
failure the client raises (our HttpFailure, office365's ClientRequestException, requests'
HTTPError, connection errors) is read without a client or a server.
"""

from __future__ import annotations

import json
import logging

import pytest
import requests
from office365.runtime.client_request_exception import ClientRequestException
from requests.structures import CaseInsensitiveDict

from sp_sync.sharepoint.retry import (
    HttpFailure,
    RetryAction,
    RetryDecision,
    RetryPolicy,
    RetryStopped,
    classify,
    classify_connection_error,
    classify_status,
    error_type_of,
    failure_facts,
    hresult_of,
    parse_error_body,
    parse_retry_after,
    request_id_of,
    server_wait,
)

THRESHOLD = "-2147024860, Microsoft.SharePoint.SPQueryThrottledException"


def response(status: int, body: bytes, **headers: str) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = body
    r.headers = CaseInsensitiveDict({k.replace("_", "-"): v for k, v in headers.items()})
    r.url = "https://contoso.sharepoint.com/sites/x/_api/web/lists"
    r.reason = "Reason"
    return r


def verbose(code: str | None, message: object) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


# -- parsing an error body -----------------------------------------------------------------------


def test_error_body_in_every_shape_sharepoint_sends() -> None:
    assert parse_error_body(verbose(THRESHOLD, {"lang": "sv-SE", "value": "För många"})) == (
        THRESHOLD,
        "För många",
    )
    odata = json.dumps({"odata.error": {"code": "-1, X", "message": {"value": "nope"}}}).encode()
    assert parse_error_body(odata) == ("-1, X", "nope")
    assert parse_error_body(verbose("-1, X", "plain text")) == ("-1, X", "plain text")
    assert parse_error_body(verbose("-1, X", {"lang": "en"})) == ("-1, X", "")
    assert parse_error_body(verbose(None, None)) == (None, "")
    assert parse_error_body(verbose("0", 7)) == ("0", "7")
    assert parse_error_body(json.dumps({"error": {"code": 5}}).encode()) == ("5", "")


def test_error_bodies_that_are_not_sharepoint_errors() -> None:
    assert parse_error_body(b"") == (None, "")
    assert parse_error_body(b"[1, 2]") == (None, "")
    assert parse_error_body(b'{"error": "a string"}') == (None, "")
    assert parse_error_body(b'{"other": 1}') == (None, "")
    page = b"<html>" + b"x" * 400 + b"</html>"
    code, message = parse_error_body(page)  # a proxy's HTML page: its start, cut at 200 bytes
    assert code is None and message == page[:200].decode() and len(message) == 200
    assert parse_error_body(b"\xff\xfe broken") == (None, "\ufffd\ufffd broken")
    # A stray byte inside a SharePoint error still yields its code and the rest of the text.
    stray = b'{"error": {"code": "-1, X", "message": "fel \xff h\xc3\xa4r"}}'
    assert parse_error_body(stray) == ("-1, X", "fel \ufffd här")


def test_hresult_and_type_name_from_the_code() -> None:
    assert hresult_of(THRESHOLD) == "-2147024860"
    assert hresult_of("-2147024860") == "-2147024860"
    assert hresult_of(" 42 , X") == "42"
    assert hresult_of("-1, A, B") == "-1"  # only the first comma separates the number
    assert hresult_of("X1, Y") is None and hresult_of("1-, Y") is None
    assert hresult_of("itemNotFound") is None
    assert hresult_of("") is None and hresult_of(None) is None
    assert error_type_of(THRESHOLD) == "Microsoft.SharePoint.SPQueryThrottledException"
    assert error_type_of("-1, A, B") == "A, B"
    assert error_type_of("-1,  ") is None
    assert error_type_of("-1") is None and error_type_of(None) is None and error_type_of("") is None


def test_request_id_prefers_sharepoints_guid_in_any_case() -> None:
    assert request_id_of({"SPRequestGuid": "sp-1", "request-id": "graph-1"}) == "sp-1"
    assert request_id_of({"sprequestguid": "sp-2"}) == "sp-2"
    assert request_id_of({"Request-Id": "graph-2"}) == "graph-2"
    assert request_id_of({"SPRequestGuid": "", "request-id": "graph-3"}) == "graph-3"
    assert request_id_of({}) is None


# -- reading each kind of failure ----------------------------------------------------------------


def test_http_failure_from_a_response_keeps_everything_support_needs() -> None:
    r = response(
        500, verbose(THRESHOLD, {"value": "för stor"}), SPRequestGuid="g-1", Retry_After="3"
    )
    failure = HttpFailure.from_response(r)
    assert (failure.status, failure.code, failure.message) == (500, THRESHOLD, "för stor")
    assert failure.request_id == "g-1" and failure.hresult == "-2147024860"
    assert failure.headers["Retry-After"] == "3"
    assert str(failure) == f"HTTP 500 {THRESHOLD} för stor"
    assert str(HttpFailure(404, {})) == "HTTP 404"
    assert failure_facts(failure) == (500, THRESHOLD, "för stor", failure.headers, "g-1")


def test_failure_facts_of_an_office365_exception() -> None:
    r = response(500, verbose(THRESHOLD, {"value": "too many"}), SPRequestGuid="g-2")
    exc = ClientRequestException.from_response(r)
    status, code, message, headers, rid = failure_facts(exc)
    assert (status, code, message, rid) == (500, THRESHOLD, "too many", "g-2")
    assert headers["SPRequestGuid"] == "g-2"
    assert classify(exc) == RetryDecision(RetryAction.GIVE_UP, reason="list view threshold")
    # Without a SharePoint error body there is no code and no message to show.
    bare = ClientRequestException.from_response(response(502, b"Bad gateway", request_id="r-3"))
    assert failure_facts(bare)[:3] == (502, None, "") and failure_facts(bare)[4] == "r-3"
    assert classify(bare).action is RetryAction.BACKOFF
    # A message without a SharePoint code is not SharePoint's answer: it is not passed on.
    uncoded = ClientRequestException.from_response(response(500, verbose(None, "proxy says no")))
    assert failure_facts(uncoded)[:3] == (500, None, "")
    # office365 raises some without a response (e.g. its own validation).
    assert failure_facts(ClientRequestException("no response")) == (None, None, "", {}, None)


def test_failure_facts_of_a_requests_http_error() -> None:
    r = response(503, verbose("-1, Busy", "later"), Retry_After="12", request_id="r-4")
    exc = requests.HTTPError("503", response=r)
    assert failure_facts(exc) == (503, "-1, Busy", "later", r.headers, "r-4")
    assert classify(exc) == RetryDecision(RetryAction.WAIT_RETRY_AFTER, 12.0, "throttled")
    assert failure_facts(requests.HTTPError("no response")) == (None, None, "", {}, None)


def test_connection_failures_back_off_anything_else_gives_up_naming_its_type() -> None:
    expected = RetryDecision(RetryAction.BACKOFF, reason="connection failed")
    assert classify_connection_error() == expected
    for exc in (
        requests.ConnectionError("refused"),
        requests.Timeout("slow"),
        requests.exceptions.ChunkedEncodingError("cut"),
    ):
        assert classify(exc) == expected
    assert classify(requests.exceptions.InvalidURL("x")) == RetryDecision(
        RetryAction.GIVE_UP, reason="InvalidURL"
    )
    assert classify(ValueError("x")) == RetryDecision(RetryAction.GIVE_UP, reason="ValueError")


# -- the reason each decision gives (shown in the retry warning) ---------------------------------


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (429, None, RetryDecision(RetryAction.WAIT_RETRY_AFTER, None, "throttled")),
        (503, THRESHOLD, RetryDecision(RetryAction.WAIT_RETRY_AFTER, None, "throttled")),
        (502, THRESHOLD, RetryDecision(RetryAction.BACKOFF, reason="HTTP 502")),
        (504, None, RetryDecision(RetryAction.BACKOFF, reason="HTTP 504")),
        (500, THRESHOLD, RetryDecision(RetryAction.GIVE_UP, reason="list view threshold")),
        (
            500,
            "-2147024749, Microsoft.SharePoint.SPException",
            RetryDecision(RetryAction.GIVE_UP, reason="list view threshold"),
        ),
        (
            400,
            "-1, Microsoft.SharePoint.SPQueryThrottledException",
            RetryDecision(RetryAction.GIVE_UP, reason="list view threshold"),
        ),
        (401, None, RetryDecision(RetryAction.RENEW_TOKEN, reason="token refused")),
        (
            500,
            "-2146233086, System.ArgumentOutOfRangeException",
            RetryDecision(RetryAction.GIVE_UP, reason="SharePoint error -2146233086"),
        ),
        (500, "-1, System.Exception", RetryDecision(RetryAction.BACKOFF, reason="HTTP 500")),
        (408, None, RetryDecision(RetryAction.BACKOFF, reason="HTTP 408")),
        (
            408,
            "-2146233086, System.ArgumentOutOfRangeException",
            RetryDecision(RetryAction.BACKOFF, reason="HTTP 408"),
        ),
        (404, "-2130575338, X", RetryDecision(RetryAction.GIVE_UP, reason="HTTP 404")),
        (409, None, RetryDecision(RetryAction.GIVE_UP, reason="HTTP 409")),
    ],
)
def test_each_decision_and_its_reason(
    status: int, code: str | None, expected: RetryDecision
) -> None:
    assert classify(HttpFailure(status, {}, code)) == expected
    assert classify_status(status, hresult_of(code), {}, error_type_of(code)) == expected


# -- server hints --------------------------------------------------------------------------------


def test_retry_after_tolerates_spaces_and_refuses_garbage() -> None:
    assert parse_retry_after(" 7 ") == 7.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("") is None and parse_retry_after("   ") is None
    assert parse_retry_after("Mon, 99 Foo 2026 99:99:99 GMT") is None


def test_an_http_date_without_a_zone_is_read_as_utc() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    # RFC 850 / asctime forms carry no "GMT" offset: parsedate_to_datetime gives a naive time.
    assert parse_retry_after("Thu Jan  1 12:00:40 2026", now=now) == pytest.approx(40.0)
    assert parse_retry_after("Thu, 01 Jan 2026 12:01:00 -0000", now=now) == pytest.approx(60.0)


def test_ratelimit_reset_alone_garbage_or_negative() -> None:
    assert server_wait({"RateLimit-Reset": " 9 "}) == 9.0
    assert server_wait({"RateLimit-Reset": "-5"}) == 0.0
    assert server_wait({"RateLimit-Reset": "soon", "Retry-After": "2"}) == 2.0
    assert server_wait({"RateLimit-Reset": "soon"}) is None
    assert server_wait({"Retry-After": "0", "RateLimit-Reset": "0"}) == 0.0


# -- what the loop logs --------------------------------------------------------------------------


def test_each_retry_is_logged_with_reason_attempt_and_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sleeps: list[float] = []
    failures = iter([HttpFailure(502, {}), HttpFailure(429, {"Retry-After": "2"})])

    def operation() -> str:
        for failure in failures:
            raise failure
        return "ok"

    policy = RetryPolicy(sleep=sleeps.append, rng=lambda: 0.5)
    with caplog.at_level(logging.INFO, logger="sp_sync.sharepoint.retry"):
        assert policy.run(operation, description="Reading Dialoger") == "ok"
    assert [r.getMessage() for r in caplog.records] == [
        "Reading Dialoger: HTTP 502 (attempt 1); retrying in 0.25 s",
        "Reading Dialoger: throttled (attempt 2); retrying in 2.00 s",
    ]
    assert [r.levelno for r in caplog.records] == [logging.WARNING] * 2
    assert sleeps == [0.25, 2.0]


def test_a_token_renewal_is_logged_once_at_info(caplog: pytest.LogCaptureFixture) -> None:
    calls = iter([HttpFailure(401, {})])

    def operation() -> str:
        for failure in calls:
            raise failure
        return "ok"

    with caplog.at_level(logging.INFO, logger="sp_sync.sharepoint.retry"):
        assert RetryPolicy().run(operation, renew_token=lambda: None) == "ok"
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "SharePoint refused the token (a SharePoint request); renewing it once")
    ]


# -- what a stop reports -------------------------------------------------------------------------


def test_a_stop_reports_attempts_wait_and_reason_whatever_ended_it() -> None:
    sleeps: list[float] = []
    failures = iter([HttpFailure(502, {}), HttpFailure(429, {"Retry-After": "3"})])
    final = HttpFailure(404, {}, "-2130575338, X")
    seen: list[tuple[RetryDecision, float]] = []

    def operation() -> str:
        for failure in failures:
            raise failure
        raise final

    policy = RetryPolicy(sleep=sleeps.append, rng=lambda: 1.0)
    with pytest.raises(RetryStopped) as info:
        policy.run(operation, on_retry=lambda d, s: seen.append((d, s)))
    stopped = info.value
    # An answer no retry changes: no limit named, the message is the decision's reason.
    assert (stopped.attempts, stopped.waited, stopped.why) == (3, 3.5, None)
    assert str(stopped) == "HTTP 404" and stopped.failure is final
    assert seen == [
        (RetryDecision(RetryAction.BACKOFF, reason="HTTP 502"), 0.5),
        (RetryDecision(RetryAction.WAIT_RETRY_AFTER, 3.0, "throttled"), 3.0),
    ]

    # A limit: the message says which one.
    def gateway() -> str:
        raise HttpFailure(502, {})

    with pytest.raises(RetryStopped) as limit:
        RetryPolicy(max_attempts=2, sleep=sleeps.append, rng=lambda: 0.0).run(gateway)
    assert str(limit.value) == "the retry limit was reached"
    assert (limit.value.attempts, limit.value.waited) == (2, 0.0)
