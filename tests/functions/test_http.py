"""The HTTP triggers invoked with real `func.HttpRequest` objects, against Azurite's queue and
blob storage: request validation, the 202 answer with run id and status URL, and the message
that really lands on the job queue."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest

from sp_sync.run import jobs
from tests.functions.conftest import SITES, AppEnv

BASE = "https://sp-sync-app.azurewebsites.net"


def post(
    functions: dict[str, Any], body: bytes, content_type: str | None = "application/json"
) -> func.HttpResponse:
    headers = {"content-type": content_type} if content_type else {}
    req = func.HttpRequest("POST", f"{BASE}/api/runs", headers=headers, body=body)
    return functions["start_run"].get_user_function()(req)


def answer(resp: func.HttpResponse) -> dict[str, Any]:
    assert resp.mimetype == "application/json"
    doc = json.loads(resp.get_body().decode("utf-8"))
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize(
    ("body", "content_type", "status", "needle"),
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"[1, 2]", "application/json", 400, "JSON object"),
        (b'{"sites": ["alfa"], "force": true}', "application/json", 400, "Unknown field(s): force"),
        (b'{"sites": "alfa"}', "application/json", 400, "'sites' must be"),
        (b'{"sites": [1]}', "application/json", 400, "'sites' must be"),
        (b'{"sites": []}', "application/json", 400, "'sites' must be"),
        (b'{"lists": [true]}', "application/json", 400, "'lists' must be"),
        (b'{"mode": "everything"}', "application/json", 400, "'mode'"),
        (b'{"mode": 1}', "application/json", 400, "'mode'"),
        (b"\xff\xfe{}", "application/json", 400, "not valid JSON"),
        (b'{"sites": ["alfa"]}', "text/plain", 415, "application/json"),
        (b"<run/>", "application/xml", 415, "application/json"),
        (
            b'{"sites": ["' + b"a" * (jobs.MAX_REQUEST_BYTES + 1) + b'"]}',
            "application/json",
            413,
            "larger than",
        ),
    ],
)
def test_run_request_is_rejected(
    functions: dict[str, Any],
    app_env: AppEnv,
    body: bytes,
    content_type: str,
    status: int,
    needle: str,
) -> None:
    resp = post(functions, body, content_type)
    assert resp.status_code == status
    assert needle in answer(resp)["error"]
    # Nothing was enqueued and no run was recorded.
    assert app_env.take_messages() == []
    assert app_env.store().list_keys("runs/") == []


def test_unknown_site_or_list_is_400(functions: dict[str, Any], app_env: AppEnv) -> None:
    resp = post(functions, b'{"sites": ["gamma"]}')
    assert resp.status_code == 400
    assert "gamma" in answer(resp)["error"]
    resp = post(functions, json.dumps({"lists": ["Budget"]}).encode())
    assert resp.status_code == 400
    assert "Budget" in answer(resp)["error"]
    assert app_env.take_messages() == []


def test_valid_request_enqueues_and_answers_202(functions: dict[str, Any], app_env: AppEnv) -> None:
    body = json.dumps({"sites": ["beta"], "lists": ["Dialoger"], "mode": "full"}).encode()
    resp = post(functions, body, "application/json; charset=utf-8")
    assert resp.status_code == 202
    doc = answer(resp)
    run_id = doc["run_id"]
    assert doc["jobs"] == 1
    assert doc["status_url"] == f"{BASE}/api/status/runs/{run_id}"

    bodies = app_env.take_messages()
    assert len(bodies) == 1
    msg = json.loads(bodies[0])
    assert msg == {
        "version": 1,
        "run_id": run_id,
        "site_url": app_env.emu.site_url("beta"),
        "lists": ["Dialoger"],
        "full": True,
        "attempt": 1,
    }
    # The run document exists before any job runs: the status URL answers at once.
    status = functions["run_status"].get_user_function()(
        func.HttpRequest("GET", doc["status_url"], route_params={"run_id": run_id}, body=b"")
    )
    assert status.status_code == 200
    run = answer(status)["run"]
    assert run["trigger"] == "http"
    site = run["sites"][app_env.emu.site_url("beta")]
    assert site["lists"] == {"Dialoger": {"status": "queued"}}
    assert site["rollup"]["status"] == "waiting"


def test_empty_body_runs_every_site_incrementally(
    functions: dict[str, Any], app_env: AppEnv
) -> None:
    resp = post(functions, b"", None)
    assert resp.status_code == 202
    assert answer(resp)["jobs"] == len(SITES)
    msgs = [json.loads(b) for b in app_env.take_messages()]
    assert sorted(m["site_url"] for m in msgs) == sorted(app_env.emu.site_url(s) for s in SITES)
    assert {m["full"] for m in msgs} == {False}
    assert {m["run_id"] for m in msgs} == {answer(resp)["run_id"]}
    # Every schema list is in each message (no site lists configured).
    assert all(m["lists"] == ["Dialoger", "Länskunskap", "Dialogåterkoppling"] for m in msgs)


def test_run_status_for_unknown_or_malformed_run_id(
    functions: dict[str, Any], app_env: AppEnv
) -> None:
    fn = functions["run_status"].get_user_function()
    resp = fn(
        func.HttpRequest(
            "GET",
            f"{BASE}/api/status/runs/x",
            route_params={"run_id": "20260101T000000Z-deadbeef"},
            body=b"",
        )
    )
    assert resp.status_code == 404
    resp = fn(
        func.HttpRequest(
            "GET", f"{BASE}/api/status/runs/x", route_params={"run_id": "../../etc"}, body=b""
        )
    )
    assert resp.status_code == 400


def test_broken_settings_answer_503_without_enqueuing(
    functions: dict[str, Any], app_env: AppEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SP_SYNC_LANGUAGE", "fi")
    resp = post(functions, b"{}")
    assert resp.status_code == 503
    assert "SP_SYNC_LANGUAGE" in answer(resp)["error"]
    assert app_env.take_messages() == []
    # The status endpoint still answers, with the problem in its configuration check.
    status = answer(
        functions["status"].get_user_function()(
            func.HttpRequest("GET", f"{BASE}/api/status", body=b"")
        )
    )
    assert status["configuration"]["ok"] is False
    assert "SP_SYNC_LANGUAGE" in status["configuration"]["problem"]


def test_timer_enqueues_one_message_per_site(functions: dict[str, Any], app_env: AppEnv) -> None:
    from azure.functions.timer import TimerRequest

    functions["nightly_sync"].get_user_function()(TimerRequest(past_due=True))
    msgs = [json.loads(b) for b in app_env.take_messages()]
    assert sorted(m["site_url"] for m in msgs) == sorted(app_env.emu.site_url(s) for s in SITES)
    run_ids = {m["run_id"] for m in msgs}
    assert len(run_ids) == 1
    doc, _ = app_env.store().read_json(f"runs/{run_ids.pop()}.json")
    assert doc is not None and doc["trigger"] == "timer"
    assert set(doc["sites"]) == {app_env.emu.site_url(s) for s in SITES}
