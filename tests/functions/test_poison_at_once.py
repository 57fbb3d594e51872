"""Issue 11 item 9 on Azurite: a malformed job message goes to `<queue>-poison` at once, with
the reason logged, and its invocation completes (the host neither retries it nor poisons it a
second time). The poison trigger then reports it and drops it."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.functions.conftest import AppEnv
from tests.functions.test_queue_jobs import deliver

MALFORMED = {
    "invalid UTF-8": b'{"run_id": "\xff\xfe", "lists": ["A"]}',
    "deep nesting": b"[" * 5000 + b"]" * 5000,
    "schema-invalid": json.dumps(
        {"run_id": "../etc", "site_url": "https://x/sites/a", "lists": "A"}
    ).encode(),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_message_lands_in_the_poison_queue_once(
    name: str,
    functions: dict[str, Any],
    app_env: AppEnv,
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = MALFORMED[name]
    with caplog.at_level(logging.ERROR):
        deliver(functions, body)  # returns: the host completes the message
    assert any(
        "Poison job message" in r.getMessage() and "Unreadable job message" in r.getMessage()
        for r in caplog.records
    )
    assert app_env.take_messages(f"{app_env.queue}-poison") == [body]
    assert app_env.take_messages() == []  # nothing else was enqueued or left behind
    # The poison trigger reports it (logged) and drops it without raising.
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        deliver(functions, body, name="report_poison")
    assert any("unreadable poison message dropped" in r.getMessage() for r in caplog.records)
    assert app_env.store().list_keys("runs/") == []
