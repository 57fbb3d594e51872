"""Retries, error mapping, authentication renewal and the User-Agent, against the emulator."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from sp_emulator import SharePointEmulator
from sp_sync.auth import StaticTokenProvider
from sp_sync.errors import (
    AuthenticationError,
    ExitCode,
    NotFoundError,
    PermissionDeniedError,
    ThrottledError,
    TransientError,
)
from sp_sync.sharepoint import RetryPolicy, SharePointClient

from .conftest import FakeClock

Make = Callable[..., SharePointClient]


def page_requests(emu: SharePointEmulator) -> int:
    return int(emu.stats()["routes"].get("items.list", 0))


def read_all(client: SharePointClient, title: str = "Tasks") -> list[int]:
    return [
        i["ID"]
        for p in client.iter_item_pages(title, select=["Title"], page_size=5)
        for i in p.items
    ]


def test_429_with_retry_after_is_waited_and_retried(
    emu: SharePointEmulator, make_client: Make, fake_clock: FakeClock
) -> None:
    client = make_client(emu)
    emu.faults.inject(status=429, count=2, path=r"/items", retry_after=1)
    assert read_all(client) == list(range(1, 13))
    assert fake_clock.sleeps == [1.0, 1.0]
    stats = client.stats
    assert (stats.retries, stats.wait_seconds, stats.throttled_responses) == (2, 2.0, 2)
    assert page_requests(emu) == 3 + 2


def test_ratelimit_reset_larger_than_retry_after_is_honoured(
    emu: SharePointEmulator, make_client: Make, fake_clock: FakeClock
) -> None:
    client = make_client(emu)
    client.get_list("Tasks")  # digest and list first, so only the page is throttled
    # The emulator answers Retry-After: 0 with RateLimit-Reset: 1: the larger value must win.
    emu.faults.inject(status=429, count=1, path=r"/items", retry_after=0, ratelimit=True)
    read_all(client)
    assert fake_clock.sleeps == [1.0]
    assert client.stats.throttled_responses == 1


def test_retry_after_zero_and_503_burst(
    emu: SharePointEmulator, make_client: Make, fake_clock: FakeClock
) -> None:
    client = make_client(emu)
    emu.faults.inject(status=503, count=4, path=r"/items", retry_after=0)
    assert read_all(client) == list(range(1, 13))
    assert fake_clock.sleeps == []  # Retry-After: 0 means "now"
    assert client.stats.retries == 4 and client.stats.throttled_responses == 4


def test_throttling_beyond_max_attempts_raises_throttled_error(
    emu: SharePointEmulator, fake_clock: FakeClock
) -> None:
    policy = RetryPolicy(max_attempts=3, sleep=fake_clock.sleep, clock=fake_clock.clock)
    client = SharePointClient(
        emu.site_url("x"), StaticTokenProvider(emu.issue_token()), organisation="T", retry=policy
    )
    emu.faults.inject(status=429, count=None, path=r"/items", retry_after=1)
    with pytest.raises(ThrottledError) as info:
        read_all(client)
    assert info.value.status == 429
    assert "gave up after 3 attempts and 2.0 s of waiting" in str(info.value)
    assert page_requests(emu) == 3


def test_deadline_is_never_slept_past(
    emu: SharePointEmulator, fake_clock: FakeClock, make_client: Make
) -> None:
    client = make_client(emu, deadline=fake_clock.now + 1.5)
    emu.faults.inject(status=429, count=None, path=r"/items", retry_after=1)
    with pytest.raises(ThrottledError) as info:
        read_all(client)
    assert fake_clock.sleeps == [1.0]  # a second 1 s wait would pass the deadline
    assert "deadline" in str(info.value)
    assert fake_clock.now <= 1000.0 + 1.5


def test_dropped_connection_mid_page_is_retried(
    emu: SharePointEmulator, make_client: Make, fake_clock: FakeClock
) -> None:
    client = make_client(emu)
    emu.faults.drop_connection(count=1, path=r"/items")
    assert read_all(client) == list(range(1, 13))
    assert client.stats.retries == 1
    assert len(fake_clock.sleeps) == 1  # backoff (jittered), not a Retry-After


def test_transient_500_is_retried_with_backoff(
    emu: SharePointEmulator, make_client: Make, fake_clock: FakeClock
) -> None:
    client = make_client(emu)
    emu.faults.inject(status=502, count=2, path=r"/items", retry_after=None)
    assert read_all(client) == list(range(1, 13))
    # rng=0.5: full jitter over 0.5·2^(n-1)
    assert fake_clock.sleeps == [0.25, 0.5]


def test_401_renews_the_token_once(emu: SharePointEmulator, make_client: Make) -> None:
    provider = StaticTokenProvider(lambda: emu.issue_token())
    client = make_client(emu, provider=provider)
    client.get_list("Tasks")
    emu.faults.expire_tokens()
    assert read_all(client) == list(range(1, 13))
    assert provider.invalidations == 1
    assert provider.fetches == 2


def test_401_twice_is_an_authentication_error(emu: SharePointEmulator, make_client: Make) -> None:
    stale = emu.issue_token()
    emu.faults.expire_tokens()
    provider = StaticTokenProvider(stale)  # keeps handing out the expired token
    client = make_client(emu, provider=provider)
    with pytest.raises(AuthenticationError) as info:
        client.get_list("Tasks")
    assert info.value.status == 401
    assert provider.invalidations == 1
    assert stale not in str(info.value)


def test_403_says_which_grant_is_missing(emu: SharePointEmulator, make_client: Make) -> None:
    emu.grant("app-without-grants", "x", None)
    client = make_client(
        emu, provider=StaticTokenProvider(emu.issue_token(app_id="app-without-grants"))
    )
    with pytest.raises(PermissionDeniedError) as info:
        client.get_list("Tasks")
    message = str(info.value)
    assert "The app has no read access to site" in message
    assert "grant it 'read' through Sites.Selected" in message
    assert info.value.status == 403 and not isinstance(info.value, AuthenticationError)
    assert client.stats.retries == 0


def test_403_on_write_names_write_access(emu: SharePointEmulator, make_client: Make) -> None:
    emu.grant("reader-app", "x", "read")
    client = make_client(emu, provider=StaticTokenProvider(emu.issue_token(app_id="reader-app")))
    assert client.get_list("Tasks").item_count == 12
    with pytest.raises(PermissionDeniedError, match=r"grant it 'write' through Sites\.Selected"):
        client._raw(
            "POST",
            "/_api/web/lists/GetByTitle('Tasks')/items",
            json={"Title": "x", "__metadata": {"type": "SP.Data.TasksListItem"}},
        )


def test_not_found_list_keeps_status_code_and_request_id(
    emu: SharePointEmulator, make_client: Make
) -> None:
    client = make_client(emu)
    with pytest.raises(NotFoundError) as info:
        client.get_list("Finns inte")
    err = info.value
    assert "Finns inte" in str(err) and "does not exist" in str(err)
    assert err.status == 404 and err.code and err.code.startswith("-1")
    assert err.request_id
    assert isinstance(err.__cause__, NotFoundError) and err.__cause__.__cause__ is not None
    assert client.list_exists("Tasks") and not client.list_exists("Finns inte")


def test_unreachable_site_is_transient_with_a_sentence(fake_clock: FakeClock) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    policy = RetryPolicy(max_attempts=3, sleep=fake_clock.sleep, clock=fake_clock.clock)
    client = SharePointClient(
        f"http://127.0.0.1:{port}/sites/x",
        StaticTokenProvider("t" * 20),
        organisation="T",
        retry=policy,
    )
    with pytest.raises(TransientError) as info:
        client.get_web()
    assert str(info.value).startswith(
        f"SharePoint site http://127.0.0.1:{port}/sites/x is unreachable: "
    )
    assert "refused" in str(info.value).lower()
    assert len(fake_clock.sleeps) == 2


class _Capture(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self) -> None:
        _Capture.seen.append(dict(self.headers))
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if "contextinfo" in self.path.lower():
            body = b'{"d":{"GetContextWebInformation":{"FormDigestValue":"d","FormDigestTimeoutSeconds":1800}}}'
        else:
            body = b'{"d":{"Title":"w","Url":"u","ServerRelativeUrl":"/sites/x","Description":"(UTC) Dublin, Edinburgh, Lisbon, London","Id":2}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json;odata=verbose")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _reply
    do_POST = _reply


def test_every_request_carries_the_user_agent_and_a_bearer_token() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _Capture.seen.clear()
        client = SharePointClient(
            f"http://127.0.0.1:{server.server_port}/sites/x",
            StaticTokenProvider("abcdef123456"),
            organisation="Region Test",
        )
        web = client.get_web()
        assert str(web.time_zone) == "Europe/London"
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Capture.seen) == 2  # web, time zone (reads need no form digest)
    for headers in _Capture.seen:
        assert headers["User-Agent"] == "NONISV|Region Test|sp-sync/0.1.0"
        assert headers["Authorization"] == "Bearer abcdef123456"
    assert client.stats.requests == 2 and client.stats.bytes_received > 0


def test_user_agent_in_emulator_journal(emu: SharePointEmulator, make_client: Make) -> None:
    client = make_client(emu)
    client.get_list("Tasks")
    entries = emu.journal()
    assert entries
    assert {e["user_agent"] for e in entries} == {"NONISV|Testregion|sp-sync/0.1.0"}


def test_office365_queries_are_rebuilt_after_a_throttled_attempt(
    emu: SharePointEmulator, make_client: Make, fake_clock: FakeClock
) -> None:
    client = make_client(emu)
    token = client.get_current_change_token("Tasks")
    emu.backend.bulk_add_items("x", "Tasks", [{"Title": "new"}])
    emu.faults.inject(status=429, count=2, path=r"getchanges", retry_after=1)
    changes = client.get_changes("Tasks", token)
    assert [(c.kind, c.item_id) for c in changes] == [("add", 13)]
    assert fake_clock.sleeps == [1.0, 1.0]
    statuses = [e["status"] for e in emu.journal() if e["route"] == "changes.list"]
    assert statuses == [429, 429, 200]


@pytest.mark.parametrize("operation", ["read", "post"])
def test_canary_token_never_reaches_logs_or_errors(
    emu: SharePointEmulator, make_client: Make, caplog: pytest.LogCaptureFixture, operation: str
) -> None:
    """A read fails on its own request; a POST (the change log) first fetches the form digest,
    whose 503 and then 401s go through the digest path with the same token."""
    from sp_sync.redact import install

    install()
    canary = emu.issue_token()
    emu.faults.expire_tokens()
    client = make_client(emu, provider=StaticTokenProvider(canary))
    emu.faults.inject(status=503, count=1, path=r"contextinfo", retry_after=0)
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthenticationError) as info:
        if operation == "read":
            client.get_list("Tasks")
        else:
            client.get_changes("Tasks", "1;3;00000000-0000-0000-0000-000000000000;0;0")
    digest_statuses = [e["status"] for e in emu.journal() if e["route"] == "contextinfo"]
    # The 503 is retried; a 401 once more with a fresh token (the provider's same canary).
    assert digest_statuses == ([] if operation == "read" else [503, 401, 401])
    logging.getLogger("sp_sync.test").error("request failed: %s", info.value, exc_info=info.value)
    assert canary not in caplog.text
    assert canary not in str(info.value) and canary not in repr(info.value.details())
    assert "failed" in caplog.text


class _ThrottleOnceWithHttpDate(_Capture):
    """Answers the first GET with 429 and a `Retry-After` HTTP date 90 s from now."""

    throttled: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        if not _ThrottleOnceWithHttpDate.throttled:
            from email.utils import formatdate

            _ThrottleOnceWithHttpDate.throttled.append(self.path)
            # SPO's 429 bodies may name SPQueryThrottledException: the status must still decide.
            body = b'{"error":{"code":"-2147024860, Microsoft.SharePoint.SPQueryThrottledException","message":{"value":"busy"}}}'
            self.send_response(429)
            self.send_header("Retry-After", formatdate(time.time() + 90, usegmt=True))
            self.send_header("Content-Type", "application/json;odata=verbose")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self._reply()


def test_http_date_retry_after_is_waited_with_the_real_clock() -> None:
    """Only sleep is replaced: the wall clock turns SharePoint's HTTP date into seconds."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ThrottleOnceWithHttpDate)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sleeps: list[float] = []
    try:
        _ThrottleOnceWithHttpDate.throttled.clear()
        client = SharePointClient(
            f"http://127.0.0.1:{server.server_port}/sites/x",
            StaticTokenProvider("abcdef123456"),
            organisation="T",
            retry=RetryPolicy(sleep=sleeps.append),
        )
        assert client.get_web().title == "w"
    finally:
        server.shutdown()
        server.server_close()
    assert len(sleeps) == 1 and 80.0 < sleeps[0] <= 90.0
    assert client.stats.throttled_responses == 1 and client.stats.retries == 1


def test_an_answer_that_is_not_json_is_retried(
    emu: SharePointEmulator, make_client: Make, fake_clock: FakeClock
) -> None:
    """A proxy's sign-in page (200, HTML) in place of one page: the read tries again."""
    client = make_client(emu)
    emu.faults.sign_in_page(count=1, path=r"/items")
    assert read_all(client) == list(range(1, 13))
    assert client.stats.retries == 1
    assert len(fake_clock.sleeps) == 1


def _not_json(err: TransientError, what_en: str) -> None:
    assert err.status == 200 and err.exit_code is ExitCode.RETRY_LATER
    english, swedish = err.render("en"), err.render("sv")
    assert "with something other than JSON (HTTP 200, 'text/html')" in english, english
    assert what_en in english, english
    assert "proxy" in english and "sign-in page" in english
    assert "med något annat än JSON (HTTP 200, ”text/html”)" in swedish, swedish
    assert "inloggningssida" in swedish
    assert "Expecting value" not in english + swedish  # no decoder's words


@pytest.mark.parametrize(
    "operation, path, what",
    [
        ("items", r"/items", "Tasks"),
        ("by ids", r"/\$batch", "Tasks"),
        ("changes", r"/getChanges", "change log"),
        ("library", r"/defaultDocumentLibrary/RootFolder", "document library"),
        ("upload", r"/Files/add", "q.txt"),
        ("chunked", r"/finishUpload", "q.txt"),
        ("digest", r"/contextinfo", "uploading q.txt"),  # the digest is part of the upload
    ],
)
def test_a_persistent_answer_that_is_not_json_is_a_clear_transient_error(
    emu: SharePointEmulator,
    make_client: Make,
    fake_clock: FakeClock,
    operation: str,
    path: str,
    what: str,
) -> None:
    """Every JSON answer the client reads is decoded inside the retry loop: a page that is not
    JSON on every attempt ends as a TransientError (exit RETRY_LATER) naming the operation, never as a
    decoding error (which the CLI would call a bug)."""
    client = make_client(emu)
    library = client.get_default_library_root()
    token = client.get_current_change_token("Tasks")
    before = len(emu.journal())
    if operation == "by ids":  # the page arrives inside the $batch answer's part
        emu.faults.sign_in_page(count=None, path=r"/items", batch=True)
    else:
        emu.faults.sign_in_page(count=None, path=path)
    with pytest.raises(TransientError) as caught:
        if operation == "items":
            read_all(client)
        elif operation == "by ids":
            client.get_items_by_ids("Tasks", [1, 2, 3], select=["Title"])
        elif operation == "changes":
            client.get_changes("Tasks", token)
        elif operation == "library":
            client.get_default_library_root()
        elif operation == "upload":
            client.upload_file(library, "q.txt", b"abc")
        elif operation == "chunked":
            client.upload_file(library, "q.txt", b"abcdefgh", chunk_size=3)
        else:
            emu.faults.expire_digests()
            client.upload_file(library, "q.txt", b"abc")
    _not_json(caught.value, what)
    journal = [e for e in emu.journal()[before:] if re.search(path, e["path"], re.I)]
    # Retried with backoff where the operation may be repeated; an upload session's last
    # chunk is not (it may have been applied), so it is asked once.
    attempts = 1 if operation == "chunked" else 8
    assert len(journal) == attempts, [e["path"] for e in journal]
    assert len(fake_clock.sleeps) == attempts - 1
