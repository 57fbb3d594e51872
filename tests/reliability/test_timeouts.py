"""Issue 11 item 4: every outbound call has connect and read timeouts. A managed-identity
endpoint that accepts the connection and never answers used to hang a run for good."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from sp_sync.auth import TOKEN_TIMEOUT, ManagedIdentityTokenProvider, TimeoutSession
from sp_sync.errors import TransientError
from sp_sync.sharepoint.client import DEFAULT_TIMEOUT
from tests.reliability.scenarios import record


@pytest.fixture
def hung_endpoint() -> Iterator[str]:
    """A server that accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/msi/token"
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        server.close()


def test_a_hung_identity_endpoint_fails_within_the_token_timeout(
    hung_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", hung_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", "secret-header")
    provider = ManagedIdentityTokenProvider("https://contoso.sharepoint.com", timeout=(1.0, 1.0))
    started = time.monotonic()
    with pytest.raises(TransientError, match="identity endpoint"):
        provider.get_token()
    assert time.monotonic() - started < 10
    record("hung-identity", tries=1, failures=0, rows_lost=0)


def test_every_default_session_has_timeouts(hung_endpoint: str) -> None:
    # The default token timeout is what production uses; both bounds are finite and short.
    assert TOKEN_TIMEOUT[0] <= 10 and TOKEN_TIMEOUT[1] <= 60
    assert DEFAULT_TIMEOUT[0] <= 10
    session = TimeoutSession((0.5, 0.5))
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        session.get(hung_endpoint)  # no timeout given: the session's applies
    assert time.monotonic() - started < 5


def test_sharepoint_requests_office365_sends_itself_have_a_timeout(hung_endpoint: str) -> None:
    """The client's transport gives a timeout to requests sent without one."""
    from sp_sync.sharepoint.client import _InstrumentedAdapter, _StatsCounter

    adapter = _InstrumentedAdapter(_StatsCounter(), "sp-sync-test")
    seen: list[object] = []
    real_send = requests.adapters.HTTPAdapter.send

    def spy(self: object, request: object, *args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("timeout"))
        return real_send(self, request, *args, **kwargs)  # type: ignore[arg-type]

    session = requests.Session()
    session.mount("http://", adapter)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(requests.adapters.HTTPAdapter, "send", spy)
        mp.setattr("sp_sync.sharepoint.client.DEFAULT_TIMEOUT", (0.5, 0.5))
        with pytest.raises(requests.Timeout):
            session.get(hung_endpoint)
    assert seen == [(0.5, 0.5)]
