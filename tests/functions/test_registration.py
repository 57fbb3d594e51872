"""The function app's contract as the Functions host reads it (`app.get_functions()`), without
the host: triggers, schedules, routes, methods, auth levels, queues and connections."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from sp_sync.errors import SettingsError
from sp_sync.run import jobs
from sp_sync.settings import Settings, trigger_settings

ROOT = Path(__file__).resolve().parents[2]


def _binding(fn: Any) -> dict[str, Any]:
    return fn.get_trigger().get_dict_repr()


def test_exactly_the_expected_functions_are_registered(functions: dict[str, Any]) -> None:
    assert set(functions) == {
        "nightly_sync",
        "start_run",
        "status",
        "run_status",
        "run_job",
        "report_poison",
    }


def test_timer_uses_schedule_setting_monitor_on_startup_off(functions: dict[str, Any]) -> None:
    trigger = _binding(functions["nightly_sync"])
    assert trigger["type"] == "timerTrigger"
    # The app was imported with the test process's environment: the schedule is the one
    # Settings validates (SP_SYNC_SCHEDULE, default 02:00 UTC).
    assert trigger["schedule"] == trigger_settings().schedule
    if not os.environ.get("SP_SYNC_SCHEDULE"):
        assert trigger["schedule"] == "0 0 2 * * *"
    assert trigger["useMonitor"] is True
    assert trigger["runOnStartup"] is False
    assert len(trigger["schedule"].split()) == 6  # NCRONTAB with seconds


def _index_in_fresh_process(**values: str | None) -> subprocess.CompletedProcess[str]:
    """Import function_app in a new process with the given app settings (the host reads the
    schedule and the queue names when it indexes the app, i.e. at import)."""
    env = {k: v for k, v in os.environ.items() if k not in values}
    env.update({k: v for k, v in values.items() if v is not None})
    code = (
        "import json, function_app\n"
        "fs = {f.get_function_name(): f for f in function_app.app.get_functions()}\n"
        "print(json.dumps({n: f.get_trigger().get_dict_repr() for n, f in fs.items()}, default=str))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _triggers(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_timer_schedule_and_queues_come_from_the_app_settings() -> None:
    triggers = _triggers(
        _index_in_fresh_process(SP_SYNC_SCHEDULE="0 30 1 * * 1-5", SP_SYNC_QUEUE="night-jobs")
    )
    assert triggers["nightly_sync"]["schedule"] == "0 30 1 * * 1-5"
    assert triggers["run_job"]["queueName"] == "night-jobs"
    assert triggers["report_poison"]["queueName"] == "night-jobs-poison"
    defaults = _triggers(_index_in_fresh_process(SP_SYNC_SCHEDULE=None, SP_SYNC_QUEUE=None))
    assert defaults["nightly_sync"]["schedule"] == "0 0 2 * * *"
    assert defaults["run_job"]["queueName"] == "sp-sync-jobs"


@pytest.mark.parametrize("value", ["0 0 2 * *", "every night"])
def test_an_invalid_schedule_fails_indexing_exactly_as_every_run_fails(value: str) -> None:
    """One way to fail: the host cannot index the app, and the error it logs is the one every
    run (CLI, HTTP, queue) raises for the same value, naming SP_SYNC_SCHEDULE. The app never
    falls back to 02:00 while its runs refuse the settings."""
    done = _index_in_fresh_process(SP_SYNC_SCHEDULE=value)
    assert done.returncode != 0
    with pytest.raises(SettingsError) as in_run:
        Settings.from_env(
            {"SP_SYNC_SITE_URL": "https://c.sharepoint.com/sites/x", "SP_SYNC_SCHEDULE": value}
        )
    assert "SettingsError" in done.stderr
    assert str(in_run.value) in done.stderr
    assert "SP_SYNC_SCHEDULE" in str(in_run.value)


def test_an_invalid_queue_name_fails_indexing_with_the_settings_error() -> None:
    done = _index_in_fresh_process(SP_SYNC_QUEUE="Not_A_Queue")
    assert done.returncode != 0
    assert "Setting SP_SYNC_QUEUE: 'Not_A_Queue' is not a valid queue name" in done.stderr


@pytest.mark.parametrize(
    ("name", "route", "methods"),
    [
        ("start_run", "runs", ["POST"]),
        ("status", "status", ["GET"]),
        ("run_status", "status/runs/{run_id}", ["GET"]),
    ],
)
def test_http_triggers_declare_function_auth_routes_and_methods(
    functions: dict[str, Any], name: str, route: str, methods: list[str]
) -> None:
    fn = functions[name]
    trigger = _binding(fn)
    assert trigger["type"] == "httpTrigger"
    assert trigger["route"] == route
    assert [str(getattr(m, "value", m)) for m in trigger["methods"]] == methods
    # Unauthenticated calls are refused by the host, not by Python code: what the app controls
    # is that every HTTP function declares function-level auth (a function or host key).
    assert trigger["authLevel"] == func.AuthLevel.FUNCTION
    assert fn.is_http_function()
    outputs = [b.get_dict_repr() for b in fn.get_bindings() if b.get_dict_repr()["type"] == "http"]
    assert outputs and outputs[0]["name"] == "$return"


def test_no_http_function_is_anonymous(functions: dict[str, Any]) -> None:
    for fn in functions.values():
        for binding in fn.get_bindings():
            rep = binding.get_dict_repr()
            if rep["type"] == "httpTrigger":
                assert rep["authLevel"] not in (func.AuthLevel.ANONYMOUS, "anonymous")


@pytest.mark.parametrize(
    ("name", "queue"),
    [
        ("run_job", trigger_settings().queue),
        ("report_poison", trigger_settings().poison_queue),
    ],
)
def test_queue_triggers(functions: dict[str, Any], name: str, queue: str) -> None:
    trigger = _binding(functions[name])
    assert trigger["type"] == "queueTrigger"
    assert trigger["queueName"] == queue
    assert trigger["connection"] == "AzureWebJobsStorage"


def test_function_json_is_serialisable(functions: dict[str, Any]) -> None:
    """What the host's indexer reads: every function renders to function.json."""
    for fn in functions.values():
        doc = json.loads(fn.get_function_json())
        assert doc["bindings"], fn.get_function_name()


def test_host_json_matches_the_code() -> None:
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    queues = host["extensions"]["queues"]
    # The sender base64-encodes; the host must decode the same way.
    assert queues["messageEncoding"] == "base64"
    # The job handler records a retryable failure as failed at the host's last attempt.
    assert queues["maxDequeueCount"] == jobs.MAX_DEQUEUE_COUNT
    assert host["version"] == "2.0"
    assert host["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
    # The time budget default must stop a run before the host kills it.
    h, m, s = (int(p) for p in host["functionTimeout"].split(":"))
    from sp_sync.settings import Settings

    budget = Settings.from_env({"SP_SYNC_SITE_URL": "https://contoso.sharepoint.com/sites/x"})
    assert budget.time_budget_seconds < h * 3600 + m * 60 + s


def test_funcignore_keeps_emulator_tests_and_benchmarks_out() -> None:
    lines = {
        line.strip().rstrip("/")
        for line in (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"sp_emulator", "tests", "benchmarks", "local.settings.json"} <= lines
    assert "sp_sync" not in lines and "function_app.py" not in lines


def test_indexing_does_not_import_the_heavy_modules() -> None:
    """Cold start: the host imports function_app on every new instance. pandas (through the
    state store), office365 and msal load only when a job needs them (runtime.py)."""
    code = (
        "import sys, function_app\n"
        "print(sorted(m for m in ('pandas', 'office365', 'msal', 'sp_sync.state') "
        "if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
