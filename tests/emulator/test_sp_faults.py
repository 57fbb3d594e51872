"""Fault injection, digests, statistics, the journal and the admin API."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from office365.runtime.client_request_exception import ClientRequestException
from office365.sharepoint.client_context import ClientContext
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from sp_emulator import SharePointEmulator
from tests.emulator.conftest import make_client


def _retrying_session() -> requests.Session:
    s = requests.Session()
    retry = Retry(
        total=5,
        status_forcelist=[429, 503],
        allowed_methods=None,
        respect_retry_after_header=True,
        raise_on_status=False,
        backoff_factor=0,
    )
    s.mount("http://", HTTPAdapter(max_retries=retry))
    return s


def test_429_with_retry_after_is_honoured_by_a_urllib3_retry_session(
    emulator: SharePointEmulator,
) -> None:
    emulator.backend.create_list(emulator.backend.get_site("x"), "T")
    ctx = make_client(emulator)
    ctx.with_transport(session=_retrying_session())
    emulator.faults.inject(
        status=429, count=2, method="GET", path=r"/items", retry_after=1, ratelimit=True
    )
    started = time.monotonic()
    items = ctx.web.lists.get_by_title("T").items.get().execute_query()
    elapsed = time.monotonic() - started
    assert len(items) == 0
    assert elapsed >= 1.9  # two waits of Retry-After: 1
    journal = [e for e in emulator.journal() if e["route"] == "items.list"]
    assert [e["status"] for e in journal] == [429, 429, 200]
    assert emulator.stats()["faults_injected"] == 2


def test_429_response_shape(emulator: SharePointEmulator, raw: Any) -> None:
    emulator.faults.inject(status=503, count=1, path=r"/_api/web$", retry_after=7, ratelimit=True)
    r = raw("GET", "/_api/web")
    assert r.status_code == 503 and r.headers["Retry-After"] == "7"
    assert (
        r.headers["RateLimit-Limit"] == "1200"
        and r.headers["RateLimit-Remaining"] == "0"
        and r.headers["RateLimit-Reset"] == "7"
    )
    assert raw("GET", "/_api/web").status_code == 200  # count exhausted


def test_probability_is_seeded(emulator: SharePointEmulator, raw: Any) -> None:
    """The same fault seed fails the same requests; another seed fails others."""
    from sp_emulator.admin import Faults

    def pattern(seed: int) -> list[bool]:
        faults = Faults(seed=seed)
        faults.inject(status=429, count=None, path=r"/_api/web$", probability=0.3)
        return [faults.take("GET", "/_api/web", False)[1] is not None for _ in range(100)]

    assert pattern(7) == pattern(7)
    assert pattern(7) != pattern(8)
    assert 15 <= pattern(7).count(True) <= 45
    # Through HTTP, the emulator (seed 0 unless told otherwise) follows its seed's pattern.
    emulator.faults.rng.seed(0)
    emulator.faults.inject(status=429, count=None, path=r"/_api/web$", probability=0.3)
    statuses = [raw("GET", "/_api/web").status_code for _ in range(100)]
    assert [s == 429 for s in statuses] == pattern(0)
    emulator.faults.clear()
    assert raw("GET", "/_api/web").status_code == 200


def test_plain_execute_query_does_not_retry(
    emulator: SharePointEmulator, client: ClientContext
) -> None:
    client.web.get().execute_query()
    emulator.faults.inject(status=429, count=1, path=r"/_api/web$")
    with pytest.raises(ClientRequestException) as info:
        client.web.get().execute_query()
    assert info.value.response is not None
    assert info.value.response.status_code == 429


def test_digest_expiry_triggers_one_refetch(
    emulator: SharePointEmulator, client: ClientContext
) -> None:
    client.web.get().execute_query()
    emulator.reset_stats()
    emulator.faults.expire_digests()
    web = client.web.get().execute_query()
    assert web.properties["Title"] == "x"
    routes = [(e["route"], e["status"]) for e in emulator.journal()]
    assert routes == [("web.get", 403), ("contextinfo", 200), ("web.get", 200)]


def test_expired_digest_body(emulator: SharePointEmulator, raw: Any) -> None:
    digest = raw("POST", "/_api/contextinfo").json()["d"]["GetContextWebInformation"][
        "FormDigestValue"
    ]
    assert raw("GET", "/_api/web", headers={"X-RequestDigest": digest}).status_code == 200
    emulator.faults.expire_digests()
    r = raw("GET", "/_api/web", headers={"X-RequestDigest": digest})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "-2130575251, Microsoft.SharePoint.SPException"
    # Bearer requests do not need a digest at all.
    assert raw("POST", "/_api/web/lists", json={"Title": "Utan digest"}).status_code == 201


def test_latency_and_drop_connection(emulator: SharePointEmulator, raw: Any) -> None:
    emulator.faults.latency(0.3, path=r"/_api/web$", count=1)
    started = time.monotonic()
    assert raw("GET", "/_api/web").status_code == 200
    assert time.monotonic() - started >= 0.3
    emulator.faults.drop_connection(count=1, path=r"/_api/web/lists$")
    with pytest.raises(requests.exceptions.RequestException):
        raw("GET", "/_api/web/lists")
    assert raw("GET", "/_api/web/lists").status_code == 200


def test_stats_and_journal(emulator: SharePointEmulator, raw: Any) -> None:
    emulator.reset_stats()
    raw("GET", "/_api/web")
    raw("GET", "/_api/web/lists")
    requests.get(emulator.url + "/_emulator/stats", timeout=5)  # admin requests are not counted
    stats = emulator.stats()
    assert stats["requests"] == 2 and stats["routes"] == {"web.get": 1, "lists.list": 1}
    assert stats["bytes_sent"] > 0 and stats["bytes_received"] > 0 and stats["faults_injected"] == 0
    j = emulator.journal()
    assert [e["path"] for e in j] == ["/sites/x/_api/web", "/sites/x/_api/web/lists"]
    assert set(j[0]) >= {"method", "path", "query", "status", "route", "duration", "is_batch_sub"}


def test_every_response_has_sharepoint_headers(raw: Any) -> None:
    for r in (raw("GET", "/_api/web"), raw("GET", "/_api/web/lists/getbytitle('Nej')")):
        assert r.headers["SPRequestGuid"] == r.headers["request-id"]
        assert r.headers["X-SharePointHealthScore"] == "0"
        assert r.headers["Content-Type"] == "application/json;odata=verbose;charset=utf-8"


def test_admin_api_over_http(emulator: SharePointEmulator) -> None:
    base = emulator.url + "/_emulator"
    assert requests.post(base + "/sites", json={"name": "ny"}, timeout=5).status_code == 201
    seeded = requests.post(
        base + "/seed",
        json={
            "site": "ny",
            "list": "Frö",
            "fields": [
                {"SchemaXml": '<Field Type="Number" Name="Antal" DisplayName="Antal"/>'},
                {"Title": "Län", "FieldTypeKind": 2},
            ],
            "items": [{"Title": "a", "Antal": 1, "L_x00e4_n": "Skåne"}, {"Title": "b", "Antal": 2}],
        },
        timeout=5,
    )
    assert seeded.status_code == 201 and seeded.json()["added"] == 2
    tok = requests.post(base + "/token", json={}, timeout=5).json()["access_token"]
    h = {"Authorization": f"Bearer {tok}", "Accept": "application/json;odata=verbose"}
    rows = requests.get(
        emulator.site_url("ny")
        + "/_api/web/lists/getbytitle('Frö')/items?$select=Title,Antal,L_x00e4_n",
        headers=h,
        timeout=5,
    ).json()["d"]["results"]
    assert [(r["Title"], r["Antal"], r["L_x00e4_n"]) for r in rows] == [
        ("a", 1, "Skåne"),
        ("b", 2, None),
    ]
    assert (
        requests.post(
            base + "/faults", json={"status": 503, "count": 1, "path": "/items"}, timeout=5
        ).status_code
        == 201
    )
    assert (
        requests.get(
            emulator.site_url("ny") + "/_api/web/lists/getbytitle('Frö')/items",
            headers=h,
            timeout=5,
        ).status_code
        == 503
    )
    now = requests.get(base + "/clock", timeout=5).json()["now"]
    assert (
        requests.post(base + "/clock", json={"advance": 3600}, timeout=5).json()["now"]
        >= now + 3600
    )
    stats = requests.get(base + "/stats", timeout=5).json()
    assert stats["requests"] == 2 and stats["faults_injected"] == 1
    assert len(requests.get(base + "/journal", timeout=5).json()) == 2
    assert requests.post(base + "/reset", json={}, timeout=5).status_code == 200
    assert requests.get(base + "/stats", timeout=5).json()["requests"] == 0
    assert not emulator.backend.site_exists("ny") and emulator.backend.site_exists("x")


def test_missing_token_is_401(emulator: SharePointEmulator) -> None:
    r = requests.get(
        emulator.site_url("x") + "/_api/web",
        headers={"Accept": "application/json;odata=verbose"},
        timeout=5,
    )
    assert r.status_code == 401


def test_unknown_site_is_404(raw: Any) -> None:
    assert raw("GET", "/_api/web", site="finns-inte").status_code == 404


def test_max_streak_spares_a_request_after_that_many_failures_in_a_row() -> None:
    """A probability rule with max_streak leaves a request (method and path) alone once its last
    answers failed that many times in a row, whatever failed them; each request has its own
    count, and a success starts it again."""
    from sp_emulator.admin import Faults

    faults = Faults(seed=3)
    faults.inject(status=429, count=None, probability=1.0, max_streak=2)

    def failed(path: str, method: str = "GET") -> bool:
        rule = faults.take(method, path, False)[1]
        faults.note_answer(method, path, 429 if rule is not None else 200)
        return rule is not None

    web, lists = "/sites/x/_api/web", "/sites/x/_api/web/lists"
    assert [failed(web), failed(web), failed(lists), failed(web), failed(web)] == [
        True,
        True,
        True,  # another request's own count
        False,  # the third attempt of `web` passes (and its success resets the count)
        True,
    ]
    assert [failed(lists), failed(lists), failed(web, "POST")] == [True, False, True]
    # Failures from elsewhere (an expired token's 401) count too.
    faults.note_answer("GET", "/sites/x/_api/web/fields", 401)
    faults.note_answer("GET", "/sites/x/_api/web/fields", 401)
    assert not failed("/sites/x/_api/web/fields")
    # Without the cap a seeded 90 % storm fails one request more than twice in a row.
    plain = Faults(seed=3)
    plain.inject(status=429, count=None, probability=0.9)
    fails = [plain.take("GET", web, False)[1] is not None for _ in range(60)]
    assert any(all(fails[i : i + 3]) for i in range(58))


def test_sign_in_page_answers_200_html(emulator: SharePointEmulator, raw: Any) -> None:
    """What a proxy or captive portal sends: status 200, an HTML page, no JSON."""
    emulator.faults.sign_in_page(count=1, path=r"/_api/web$")
    r = raw("GET", "/_api/web")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.content.startswith(b"<!DOCTYPE html>") and b"Sign in" in r.content
    with pytest.raises(ValueError):
        r.json()
    assert raw("GET", "/_api/web").json()["d"]["Title"]  # count exhausted: JSON again
    # Over the admin HTTP API too, with the streak cap of a probability storm beside it.
    base = emulator.url + "/_emulator"
    added = requests.post(
        base + "/faults", json={"kind": "html", "count": 1, "path": "/lists$"}, timeout=5
    )
    assert added.status_code == 201
    requests.post(
        base + "/faults",
        json={"status": 429, "count": 5, "probability": 0.5, "max_streak": 1, "path": "/nomatch"},
        timeout=5,
    )
    described = {f["kind"]: f for f in requests.get(base + "/faults", timeout=5).json()}
    assert described["html"]["count"] == 1 and described["status"]["max_streak"] == 1
    assert raw("GET", "/_api/web/lists").headers["Content-Type"].startswith("text/html")
