"""Issue 11 item 9: bounded, validated inputs for the triggers. Deep nesting, 5,000-digit
numbers and invalid UTF-8 used to raise (a 500, or a queue message retried three times and
poisoned); now the run request answers 400 with the reason and a malformed job message goes
to the poison queue at once with the reason logged, and its invocation completes."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sp_sync.errors import ConfigurationError, RetryableError
from sp_sync.run import jobs
from sp_sync.run.jobs import Answer, JobMessage, handle_job_message, handle_run_request
from sp_sync.run.runtime import Runtime
from sp_sync.settings import Settings
from tests.reliability.scenarios import record

VALID = {"run_id": "20260601T010000Z-abcdef12", "site_url": "https://x/sites/a", "lists": ["A"]}


def _never_loaded() -> Any:
    raise AssertionError("the runtime must not be loaded for a rejected input")


def _request(body: bytes) -> Answer:
    return handle_run_request(
        body, "application/json", "https://app/api/runs", load_runtime=_never_loaded
    )


HOSTILE_BODIES = {
    "deep nesting": b"[" * 5000 + b"]" * 5000,
    "deep object": b'{"sites":' * 1500 + b"1" + b"}" * 1500,
    "5000-digit number": b'{"sites": ["a"], "mode": ' + b"9" * 5000 + b"}",
    "huge float": b'{"sites": [1' + b"0" * 400 + b".5]}",
    "NaN": b'{"sites": NaN}',
    "invalid UTF-8": b'{"sites": ["\xff\xfe"]}',
    "lone surrogate": b'{"sites": ["\xed\xa0\x80"]}',
    "not an object": b"[1, 2, 3]",
    "wrong type": b'{"sites": "alfa"}',
    "unknown field": b'{"sites": ["alfa"], "admin": true}',
}


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_hostile_run_requests_answer_400_with_a_reason(name: str) -> None:
    answer = _request(HOSTILE_BODIES[name])
    assert answer.status == 400, (name, answer)
    assert answer.body["error"] and "Traceback" not in answer.body["error"]
    if name == sorted(HOSTILE_BODIES)[-1]:  # the parametrised cases ran in this order
        record("hostile-requests", tries=len(HOSTILE_BODIES), failures=0, rows_lost=0)


def test_oversized_run_request_is_413() -> None:
    answer = _request(b'{"sites": ["' + b"a" * (jobs.MAX_REQUEST_BYTES + 1) + b'"]}')
    assert answer.status == 413


@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8")))
@settings(max_examples=300, deadline=None)
def test_any_body_is_answered_or_refused_never_raised(body: bytes) -> None:
    try:
        parsed = jobs.parse_run_request(body, "application/json")
    except ValueError as exc:  # _RequestError: an answer with a status and a reason
        assert getattr(exc, "status", None) in (400, 413, 415)
    else:
        assert set(parsed) == {"sites", "lists", "full"}


MALFORMED_MESSAGES = {
    "invalid UTF-8": b'{"run_id": "\xff"}',
    "deep nesting": b"[" * 5000 + b"]" * 5000,
    "5000-digit attempt": json.dumps({**VALID, "attempt": 0}).encode().replace(b"0}", b"9" * 5000 + b"}"),
    "attempt out of range": json.dumps({**VALID, "attempt": 10**6}).encode(),
    "lists not a list": json.dumps({**VALID, "lists": "A"}).encode(),
    "run id with a path": json.dumps({**VALID, "run_id": "../../etc"}).encode(),
    "full not a bool": json.dumps({**VALID, "full": "yes"}).encode(),
    "too large": json.dumps({**VALID, "lists": ["x" * 300] * 300}).encode(),
}  # fmt: skip


class _PoisonQueue:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, text: str) -> None:
        self.sent.append(text.encode("utf-8", "surrogateescape"))


def _poison_only_runtime(queue: _PoisonQueue) -> Runtime:
    """A runtime whose only use is the poison queue (no store, no SharePoint, no job queue)."""
    settings = Settings.from_env({"SP_SYNC_SITE_URL": "https://x.sharepoint.com/sites/a"})
    return Runtime(settings=settings, poison_sender_factory=lambda _s: queue)


@pytest.mark.parametrize("name", sorted(MALFORMED_MESSAGES))
def test_malformed_job_messages_take_the_poison_path_at_once(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    queue = _PoisonQueue()
    runtime = _poison_only_runtime(queue)
    with caplog.at_level(logging.ERROR, logger="sp_sync.run.jobs"):
        outcome = handle_job_message(MALFORMED_MESSAGES[name], load_runtime=lambda: runtime)
    assert outcome.startswith("poisoned: Unreadable job message"), outcome
    assert any("Poison job message" in r.getMessage() for r in caplog.records)
    # In the poison queue once, byte for byte (invalid UTF-8 included), as the host would put it.
    assert queue.sent == [MALFORMED_MESSAGES[name]]
    # The poison handler drops it as quietly, without loading anything either.
    poison = jobs.handle_poison_message(MALFORMED_MESSAGES[name], load_runtime=_never_loaded)
    assert poison.startswith("unreadable poison message dropped")
    if name == sorted(MALFORMED_MESSAGES)[-1]:
        record("malformed-messages", tries=len(MALFORMED_MESSAGES), failures=0, rows_lost=0)


def test_a_valid_message_still_parses() -> None:
    msg = JobMessage.from_body(json.dumps({**VALID, "attempt": 3, "full": True}).encode())
    assert msg == JobMessage(str(VALID["run_id"]), str(VALID["site_url"]), ("A",), True, 3)
    assert JobMessage.from_body(msg.to_json()) == msg


@given(st.binary(max_size=400))
@settings(max_examples=300, deadline=None)
def test_any_queue_body_parses_or_is_refused(body: bytes) -> None:
    try:
        JobMessage.from_body(body)
    except ConfigurationError as exc:
        assert str(exc).startswith("Unreadable job message")


def test_a_malformed_message_is_left_to_the_host_when_the_poison_queue_is_down() -> None:
    """Moving it fails: raise, so the host's own retries end in the same poison queue."""

    def unreachable(_settings: Settings) -> Any:
        raise ConnectionError("storage account unreachable")

    settings = Settings.from_env({"SP_SYNC_SITE_URL": "https://x.sharepoint.com/sites/a"})
    runtime = Runtime(settings=settings, poison_sender_factory=unreachable)
    with pytest.raises(RetryableError, match="poison queue failed"):
        handle_job_message(MALFORMED_MESSAGES["deep nesting"], load_runtime=lambda: runtime)
