"""The queue trigger end to end: HTTP/timer enqueue on Azurite's queue, the test reads the real
messages back (base64, as the host does) and hands them to the queue function, which syncs
through the managed-identity path against the emulator, keeps state in Azurite blobs and
uploads the workbooks. Covers the fan-out, the exactly-once rollup, time-budget continuation,
retries and poison messages, and the status endpoint."""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import quote

import azure.functions as func
import openpyxl
import pytest
import requests
from azure.functions.queue import QueueMessage

from sp_sync.errors import RunLockedError
from sp_sync.run import jobs
from tests.functions.conftest import SITES, AppEnv

BASE = "https://sp-sync-app.azurewebsites.net"


def start(functions: dict[str, Any], body: dict[str, Any]) -> str:
    req = func.HttpRequest(
        "POST",
        f"{BASE}/api/runs",
        headers={"content-type": "application/json"},
        body=json.dumps(body).encode(),
    )
    resp = functions["start_run"].get_user_function()(req)
    assert resp.status_code == 202, resp.get_body()
    return str(json.loads(resp.get_body())["run_id"])


def deliver(
    functions: dict[str, Any], body: bytes, dequeue_count: int = 1, name: str = "run_job"
) -> None:
    """What the host does with a queue message: call the function with a QueueMessage."""
    msg = QueueMessage(id=f"m-{dequeue_count}", body=body, dequeue_count=dequeue_count)
    functions[name].get_user_function()(msg)


def drain(functions: dict[str, Any], app_env: AppEnv, *, limit: int = 10) -> int:
    """Run every message on the queue (including continuations) until it is empty."""
    handled = 0
    for _ in range(limit):
        bodies = app_env.take_messages()
        if not bodies:
            return handled
        for body in bodies:
            deliver(functions, body)
            handled += 1
    raise AssertionError("the queue never drained")


def run_doc(app_env: AppEnv, run_id: str) -> dict[str, Any]:
    doc, _ = app_env.store().read_json(f"runs/{run_id}.json")
    assert doc is not None
    return doc


def status(functions: dict[str, Any]) -> dict[str, Any]:
    resp = functions["status"].get_user_function()(
        func.HttpRequest("GET", f"{BASE}/api/status", body=b"")
    )
    assert resp.status_code == 200
    return dict(json.loads(resp.get_body()))


def download(emu: Any, site: str, server_relative_url: str) -> bytes:
    url = f"{emu.site_url(site)}/_api/web/GetFileByServerRelativeUrl('{quote(server_relative_url)}')/$value"
    resp = requests.get(url, headers={"Authorization": f"Bearer {emu.issue_token()}"}, timeout=30)
    assert resp.status_code == 200, resp.text[:300]
    return resp.content


def test_queue_job_runs_end_to_end_and_uploads_workbooks(
    functions: dict[str, Any], app_env: AppEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    import msal

    emu = app_env.emu
    # Count (not replace) msal's managed-identity token calls: the job must get its tokens the
    # way it does in Azure, from IDENTITY_ENDPOINT (here the emulator's).
    tokens: list[str] = []
    original = msal.ManagedIdentityClient.acquire_token_for_client

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        tokens.append("access_token" if "access_token" in result else str(result.get("error")))
        return result

    monkeypatch.setattr(msal.ManagedIdentityClient, "acquire_token_for_client", spy)
    run_id = start(functions, {"sites": ["alfa"], "mode": "full"})
    assert drain(functions, app_env) == 1

    doc = run_doc(app_env, run_id)
    site = doc["sites"][emu.site_url("alfa")]
    assert {t: v["status"] for t, v in site["lists"].items()} == {
        "Dialoger": "done",
        "Länskunskap": "done",
        "Dialogåterkoppling": "done",
    }
    for title, count in emu.seed_counts["alfa"].items():
        assert site["lists"][title]["result"]["rows"] == count
        assert site["lists"][title]["result"]["mode"] == "full"
    assert site["rollup"]["status"] == "done"
    uploaded = site["rollup"]["summary"]["workbooks"]
    names = {w["name"] for w in uploaded}
    assert "Länsöversikt.xlsx" in names
    assert len(uploaded) > 20  # the overview, one per department and one per county

    # The workbook on the site opens and carries the synced data.
    overview = next(w for w in uploaded if w["name"] == "Länsöversikt.xlsx")
    data = download(emu, "alfa", overview["server_relative_url"])
    assert len(data) == overview["size"]
    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    text = " ".join(
        str(c) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row if c
    )
    assert "Skåne län" in text and "Gotlands län" in text
    assert len(wb.sheetnames) >= 2

    # Tokens came from the managed-identity endpoint (msal's App Service protocol).
    assert tokens and set(tokens) == {"access_token"}

    # The site's last run summary is stored and shown by the status endpoint.
    st = status(functions)
    assert st["configuration"] == {"ok": True}
    assert st["sites"]["alfa"]["last_run"]["run_id"] == run_id
    assert st["sites"]["alfa"]["last_run"]["status"] == "ok"
    assert st["sites"]["alfa"]["in_progress"] is False
    assert st["sites"]["beta"]["last_run"] is None
    # The other site was not touched.
    assert app_env.uploads("beta") == 0


def test_two_sites_fan_out_and_each_rollup_runs_exactly_once(
    functions: dict[str, Any], app_env: AppEnv
) -> None:
    emu = app_env.emu
    before = {s: app_env.uploads(s) for s in SITES}
    run_id = start(functions, {})
    bodies = app_env.take_messages()
    assert len(bodies) == 2
    assert sorted(json.loads(b)["site_url"] for b in bodies) == sorted(
        emu.site_url(s) for s in SITES
    )
    for body in bodies:
        deliver(functions, body)
    # At-least-once delivery: the same message arriving again (e.g. after a lost lease) syncs
    # again harmlessly but must not roll up a second time.
    deliver(functions, bodies[0], dequeue_count=2)
    assert app_env.take_messages() == []

    after = {s: app_env.uploads(s) for s in SITES}
    assert {s: after[s] - before[s] for s in SITES} == {"alfa": 1, "beta": 1}
    doc = run_doc(app_env, run_id)
    for s in SITES:
        assert doc["sites"][emu.site_url(s)]["rollup"]["status"] == "done"
    st = status(functions)
    assert {s: st["sites"][s]["last_run"]["status"] for s in SITES} == {"alfa": "ok", "beta": "ok"}
    assert {s: st["sites"][s]["in_progress"] for s in SITES} == {"alfa": False, "beta": False}


def test_time_budget_continues_in_a_new_message_and_the_rollup_waits(
    functions: dict[str, Any], app_env: AppEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = app_env.emu
    before = app_env.uploads("beta")
    monkeypatch.setenv("SP_SYNC_TIME_BUDGET_SECONDS", "1")
    run_id = start(functions, {"sites": ["beta"]})
    # Slow item reads: the first list finishes its only page after the budget has run out, so
    # the other lists are not started and continue in a new message.
    emu.faults.latency(1.2, path=r"/items")
    [body] = app_env.take_messages()
    deliver(functions, body)
    emu.faults.clear()

    doc = run_doc(app_env, run_id)
    site = doc["sites"][emu.site_url("beta")]
    states = {t: v["status"] for t, v in site["lists"].items()}
    assert "continues" in states.values(), states
    assert site["rollup"]["status"] == "waiting"
    assert app_env.uploads("beta") == before
    assert status(functions)["sites"]["beta"]["in_progress"] is True

    [cont] = app_env.take_messages()
    msg = json.loads(cont)
    assert msg["run_id"] == run_id and msg["attempt"] == 2
    assert sorted(msg["lists"]) == sorted(t for t, s in states.items() if s == "continues")

    monkeypatch.setenv("SP_SYNC_TIME_BUDGET_SECONDS", "600")
    deliver(functions, cont)
    assert app_env.take_messages() == []
    site = run_doc(app_env, run_id)["sites"][emu.site_url("beta")]
    assert {v["status"] for v in site["lists"].values()} == {"done"}
    assert site["rollup"]["status"] == "done"
    assert app_env.uploads("beta") == before + 1
    assert status(functions)["sites"]["beta"]["in_progress"] is False


def test_retryable_failure_raises_until_the_last_attempt_then_is_recorded(
    functions: dict[str, Any], app_env: AppEnv
) -> None:
    emu = app_env.emu
    run_id = start(functions, {"sites": ["alfa"]})
    [body] = app_env.take_messages()
    store = app_env.store()
    # Another instance holds the site's sync lock: a retryable condition.
    with store.lock(f"sync-{emu.site_url('alfa')}"):
        for attempt in range(1, jobs.MAX_DEQUEUE_COUNT):
            with pytest.raises(RunLockedError):
                deliver(functions, body, dequeue_count=attempt)
            lists = run_doc(app_env, run_id)["sites"][emu.site_url("alfa")]["lists"]
            assert {v["status"] for v in lists.values()} == {"retrying"}
            assert {v["dequeue_count"] for v in lists.values()} == {attempt}
        # The host's last attempt: recorded as failed and completed (no exception), so the
        # message is not retried forever.
        deliver(functions, body, dequeue_count=jobs.MAX_DEQUEUE_COUNT)

    site = run_doc(app_env, run_id)["sites"][emu.site_url("alfa")]
    assert {v["status"] for v in site["lists"].values()} == {"failed"}
    assert all(v["error"]["error"] == "RunLockedError" for v in site["lists"].values())
    # Nothing was ever synced into this state store, so the rollup cannot run: reported.
    assert site["rollup"]["status"] == "failed"
    st = status(functions)["sites"]["alfa"]
    assert st["last_run"]["run_id"] == run_id
    assert st["last_run"]["status"] == "failed"
    assert st["in_progress"] is False
    assert app_env.take_messages() == []


def test_poison_message_is_reported_and_the_site_finishes(
    functions: dict[str, Any], app_env: AppEnv
) -> None:
    emu = app_env.emu
    # A first run gives the site data, so the rollup after the poisoned run still has
    # snapshots to show.
    start(functions, {"sites": ["beta"]})
    drain(functions, app_env)
    before = app_env.uploads("beta")
    rollups_before = _rollup_runs(app_env, "beta")

    run_id = start(functions, {"sites": ["beta"]})
    [body] = app_env.take_messages()
    # The host gave up on the message (e.g. the worker crashed each time) and moved it to the
    # poison queue; the poison trigger receives it.
    deliver(functions, body, name="report_poison")

    site = run_doc(app_env, run_id)["sites"][emu.site_url("beta")]
    assert {v["status"] for v in site["lists"].values()} == {"failed"}
    assert all("gave up" in v["error"]["message"] for v in site["lists"].values())
    # The rollup still ran once, with the previous data, and says the sync failed.
    assert site["rollup"]["status"] == "done"
    assert _rollup_runs(app_env, "beta") == rollups_before + 1
    # Same data as before: the workbooks' content is unchanged, so nothing is uploaded again.
    assert app_env.uploads("beta") == before
    last = status(functions)["sites"]["beta"]
    assert last["last_run"]["run_id"] == run_id
    assert last["last_run"]["status"] == "partial"
    assert last["in_progress"] is False
    # Delivering the poison message again changes nothing (no second rollup).
    deliver(functions, body, name="report_poison")
    assert _rollup_runs(app_env, "beta") == rollups_before + 1
    assert app_env.uploads("beta") == before


def _rollup_runs(app_env: AppEnv, site: str) -> int:
    """How many rollups ran for `site`: each lists its folder's files once before uploading."""
    from urllib.parse import unquote

    return sum(
        1
        for e in app_env.emu.journal()
        if e.get("site") == site
        and not e.get("is_batch_sub")  # the freshness $batch lists the folder again
        and e.get("method") == "GET"
        and unquote(str(e.get("path", ""))).endswith("/Files")
    )


def test_poison_messages_that_cannot_be_matched_are_dropped_quietly(
    functions: dict[str, Any], app_env: AppEnv
) -> None:
    deliver(functions, b"not json at all", name="report_poison")
    deliver(
        functions,
        json.dumps(
            {
                "run_id": "20260101T000000Z-00000000",
                "site_url": app_env.emu.site_url("alfa"),
                "lists": ["Dialoger"],
            }
        ).encode(),
        name="report_poison",
    )
    assert app_env.store().list_keys("runs/") == []


def test_job_messages_a_retry_cannot_fix_are_completed_not_poisoned(
    functions: dict[str, Any], app_env: AppEnv
) -> None:
    emu = app_env.emu
    # Unreadable, for a run nobody started, for a site no longer configured: each returns
    # (the host completes the message) instead of raising into three retries and the poison queue.
    deliver(functions, b"{broken")
    deliver(
        functions,
        json.dumps(
            {
                "run_id": "20260101T000000Z-00000000",
                "site_url": emu.site_url("alfa"),
                "lists": ["Dialoger"],
            }
        ).encode(),
    )
    run_id = start(functions, {"sites": ["alfa"]})
    [body] = app_env.take_messages()
    stale = json.loads(body)
    stale["site_url"] = emu.site_url("gamma")
    deliver(functions, json.dumps(stale).encode())
    doc = run_doc(app_env, run_id)
    assert {v["status"] for v in doc["sites"][emu.site_url("alfa")]["lists"].values()} == {"queued"}
    assert app_env.take_messages() == []
