"""The digest's Functions wiring: registered only with mail configured, a timer that fans out
one message per site, a queue trigger that retries through the queue and never sends twice."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sp_emulator import SharePointEmulator
from sp_emulator.graph import GraphService
from sp_sync.errors import RetryableError
from sp_sync.notify.entry import enqueue_digest_jobs, handle_digest_message
from sp_sync.run.runtime import Runtime
from sp_sync.schema import load_schemas
from sp_sync.settings import Settings
from sp_sync.state.base import site_key
from sp_sync.state.local import LocalStateStore
from tests.notify.helpers import ADMIN, SENDER, STOCKHOLM, frame, row
from tests.notify.test_site_mail import SITE, seed

ROOT = Path(__file__).resolve().parents[2]


def index(**values: str | None) -> dict[str, Any]:
    """Import function_app in a fresh process with these app settings; name → binding dicts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SP_SYNC_")}
    env.update({k: v for k, v in values.items() if v is not None})
    code = (
        "import json, function_app\n"
        "out = {f.get_function_name(): [b.get_dict_repr() for b in f.get_bindings()]\n"
        "       for f in function_app.app.get_functions()}\n"
        "print(json.dumps(out, default=str))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_digest_functions_exist_only_with_mail_configured() -> None:
    on = index(SP_SYNC_MAIL_SENDER=SENDER)
    timer = {b["type"]: b for b in on["weekly_digest"]}
    assert timer["timerTrigger"]["schedule"] == "0 0 5,6,7 * * 1"
    assert timer["timerTrigger"]["useMonitor"] is True
    assert timer["queue"]["queueName"] == "sp-sync-jobs-digest"
    [job] = on["digest_job"]
    assert job["type"] == "queueTrigger" and job["queueName"] == "sp-sync-jobs-digest"
    assert "nightly_sync" in on and "run_job" in on
    assert "weekly_digest" not in index()  # no sender: no mail functions
    assert "weekly_digest" not in index(SP_SYNC_MAIL_SENDER=SENDER, SP_SYNC_DIGEST_SCHEDULE="off")
    custom = index(SP_SYNC_MAIL_SENDER=SENDER, SP_SYNC_DIGEST_SCHEDULE="0 30 6 * * 1-5")
    assert {b["type"]: b for b in custom["weekly_digest"]}["timerTrigger"]["schedule"] == (
        "0 30 6 * * 1-5"
    )


@pytest.fixture
def runtime(emu: SharePointEmulator, mi_env: None, tmp_path: Path) -> Runtime:
    folder = tmp_path / "schemas"
    shutil.copytree(load_schemas().directory, folder)
    text = (folder / "reference.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "{name: Företag, en: Business}",
        "{name: Företag, en: Business, mail: foretag@myndighet.example}",
    )
    (folder / "reference.yaml").write_text(text, encoding="utf-8")
    now = dt.datetime.now(dt.UTC)
    today = now.astimezone(STOCKHOLM).date()
    state = tmp_path / "state"
    seed(
        LocalStateStore(state),
        last_sync=now,
        status="partial",
        feedback=frame([row(1, created=now - dt.timedelta(days=1)), row(2, due=today)]),
    )
    settings = Settings.from_env(
        {
            "SP_SYNC_SITE_URL": SITE,
            "SP_SYNC_STATE_DIR": str(state),
            "SP_SYNC_SCHEMA_DIR": str(folder),
            "SP_SYNC_MAIL_SENDER": SENDER,
            "SP_SYNC_ADMIN_MAIL": ADMIN,
            "SP_SYNC_GRAPH_URL": emu.url,
        }
    )
    return Runtime(settings=settings)


def test_timer_fans_out_and_the_job_sends_digest_and_notice_once(
    runtime: Runtime, graph: GraphService
) -> None:
    [message] = enqueue_digest_jobs(load_runtime=lambda: runtime)
    assert json.loads(message) == {"kind": "digest", "site": SITE}
    result = handle_digest_message(message, load_runtime=lambda: runtime)
    assert sorted(m["to"][0] for m in graph.messages()) == sorted(
        [ADMIN, "foretag@myndighet.example"]
    )
    assert result.failure_notice is not None  # the last night was partial
    handle_digest_message(message, load_runtime=lambda: runtime)  # redelivered
    assert len(graph.messages()) == 2


def test_a_job_that_must_retry_raises_so_the_queue_delivers_it_again(
    runtime: Runtime, graph: GraphService
) -> None:
    [message] = enqueue_digest_jobs(load_runtime=lambda: runtime)
    graph.throttle(count=100, retry_after=1000)
    with pytest.raises(RetryableError, match="must be retried"):
        handle_digest_message(message, load_runtime=lambda: runtime)
    assert graph.messages() == []
    graph.reset()  # Graph recovers; the queue delivers the message again
    handle_digest_message(message, load_runtime=lambda: runtime)
    assert len(graph.messages()) == 2


def test_timer_without_a_sender_enqueues_nothing(runtime: Runtime) -> None:
    from dataclasses import replace

    quiet = Runtime(settings=replace(runtime.settings, mail_sender=None))
    assert enqueue_digest_jobs(load_runtime=lambda: quiet) == []


def test_after_a_night_the_failure_notice_goes_out_once_and_never_fails_the_run(
    runtime: Runtime, graph: GraphService
) -> None:
    from dataclasses import replace

    from sp_sync.run.pipeline import after_run_notice

    site = runtime.settings.sites[0]
    after_run_notice(runtime, site)  # the seeded last night was partial
    after_run_notice(runtime, site)  # a retry of the same night: the same incident
    assert [m["to"] for m in graph.messages()] == [[ADMIN]]
    assert "ofullständig" in graph.messages()[0]["subject"]
    # Graph unreachable: logged, the caller (the night's run) is not affected.
    broken = Runtime(settings=replace(runtime.settings, graph_url="http://127.0.0.1:9"))
    LocalStateStore(runtime.settings.state_dir).delete_json(
        f"notify/{site_key(SITE)}/incident.json"
    )
    after_run_notice(broken, site)
    assert len(graph.messages()) == 1
