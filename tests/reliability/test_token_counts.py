"""Issue 11 item 7, token side: the run summary counts every request of the run, the token
endpoint's included. A throttled managed-identity endpoint used to fail the run, and its
requests, retries and waits were never counted."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from sp_sync.auth import TOKEN_MIN_TIMEOUT, TimeoutSession
from sp_sync.sharepoint.client import MIN_REQUEST_TIMEOUT
from sp_sync.sharepoint.retry import RetryPolicy
from tests.reliability.helpers import World
from tests.reliability.scenarios import record


class ThrottlingIdentity:
    """An identity endpoint in front of the emulator's that answers the first `throttle`
    requests with 429 (Retry-After: 1) and forwards the rest."""

    def __init__(self, upstream: str, throttle: int) -> None:
        self.upstream = upstream
        self.throttle = throttle
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                if outer.hits <= outer.throttle:
                    self.send_response(429)
                    self.send_header("Retry-After", "1")
                    self.send_header("Content-Type", "application/json")
                    body = b'{"error": "throttled"}'
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                query = self.path.split("?", 1)[1] if "?" in self.path else ""
                headers = {k: v for k, v in self.headers.items() if k.lower().startswith("x-")}
                answer = requests.get(f"{outer.upstream}?{query}", headers=headers, timeout=10)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/msi/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ThrottlingIdentity:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def throttled_identity(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with ThrottlingIdentity(world.emu.identity_endpoint, throttle=2) as proxy:
        monkeypatch.setenv("IDENTITY_ENDPOINT", proxy.url)
        yield proxy


def test_a_throttled_token_endpoint_is_retried_and_counted(
    world: World, throttled_identity: ThrottlingIdentity
) -> None:
    summary = world.run()
    assert summary.status == "ok"
    totals = summary.totals()
    # Two 429s, each retried after its Retry-After second, then the token.
    assert throttled_identity.hits == 3
    assert totals["throttled_responses"] == 2
    assert totals["retries"] >= 2
    assert totals["wait_seconds"] >= 2.0
    sharepoint = [e for e in world.emu.journal() if not e["is_batch_sub"]]
    assert totals["requests"] >= len(sharepoint) + throttled_identity.hits
    assert summary.to_dict()["totals"] == totals
    sizes = world.assert_exact()
    record(
        "token-counts",
        tries=throttled_identity.hits,
        failures=0,
        rows_lost=sum(world.counts.values()) - sum(sizes.values()),
    )


def test_the_token_session_gives_up_after_its_attempts_and_counts_each() -> None:
    statuses: list[int] = []

    class Always503(requests.adapters.HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
            response = requests.Response()
            response.status_code = 503
            response.headers["Retry-After"] = "3"
            response.request = request
            response._content = b"{}"
            statuses.append(503)
            return response

    waits: list[float] = []
    attempts = 3
    session = TimeoutSession(
        (1.0, 1.0), retry=RetryPolicy(max_attempts=attempts, sleep=waits.append)
    )
    session.mount("http://", Always503())
    answer = session.get("http://identity.invalid/token")
    assert answer.status_code == 503  # msal turns it into an error naming the endpoint
    assert len(statuses) == attempts
    assert waits == [3.0] * (attempts - 1)
    assert session.traffic.snapshot() == {
        "requests": attempts,
        "retries": attempts - 1,
        "wait_seconds": 3.0 * (attempts - 1),
        "throttled_responses": attempts,
    }


def test_token_retries_stop_at_the_deadline_and_speak_the_language(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Token calls go through the SharePoint client's RetryPolicy: a Retry-After that would end
    past the run's deadline is not waited for, and the retry warning is bilingual."""
    from sp_sync.i18n import LOG_TEXT

    statuses: list[int] = []

    class Throttled(requests.adapters.HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
            response = requests.Response()
            response.status_code = 429
            response.headers["Retry-After"] = "2"
            response.request = request
            response._content = b"{}"
            statuses.append(429)
            return response

    now = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    policy = RetryPolicy(sleep=sleep, clock=lambda: now[0])
    session = TimeoutSession((5.0, 30.0), retry=policy, deadline=lambda: 105.0)
    session.mount("http://", Throttled())
    with caplog.at_level("WARNING"):
        answer = session.get("http://identity.invalid/token")
    assert answer.status_code == 429
    # 100 → 102 → 104; a third wait would end at 106, past the deadline at 105.
    assert waits == [2.0, 2.0]
    assert len(statuses) == 3
    assert session.traffic.snapshot()["retries"] == 2
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2
    text = getattr(warnings[0], LOG_TEXT)
    assert text.render("sv").startswith("Identitetstjänsten: strypt (försök 1)"), text
    assert text.render("en").startswith("The identity endpoint: throttled"), text
    # Each token call's timeout is cut to the time left, never below the shared floor.
    assert TOKEN_MIN_TIMEOUT == MIN_REQUEST_TIMEOUT
    assert session._timeout() == (5.0, 5.0)


def test_each_token_attempt_gets_the_time_left_then_not_the_first_attempts() -> None:
    """The timeout of a token call is taken per attempt: a retry after a Retry-After wait gets
    what is left of the run, so the last attempt cannot run on past the deadline."""
    timeouts: list[Any] = []

    class Throttled(requests.adapters.HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
            timeouts.append(kwargs.get("timeout"))
            response = requests.Response()
            response.status_code = 429
            response.headers["Retry-After"] = "3"
            response.request = request
            response._content = b"{}"
            return response

    now = [100.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    policy = RetryPolicy(max_attempts=3, sleep=sleep, clock=lambda: now[0])
    session = TimeoutSession((10.0, 30.0), retry=policy, deadline=lambda: 114.0)
    session.mount("http://", Throttled())
    assert session.get("http://identity.invalid/token").status_code == 429
    # 14 s left at 100, 11 s at 103, 8 s at 106; the connect part never above its own 10 s.
    assert timeouts == [(10.0, 14.0), (10.0, 11.0), (8.0, 8.0)]
    # A caller's own timeout is kept for every attempt.
    timeouts.clear()
    now[0] = 100.0
    session.get("http://identity.invalid/token", timeout=(1.0, 2.0))
    assert timeouts == [(1.0, 2.0)] * 3
