"""`sp-sync` through subprocesses: every command's happy path, `--json` output, `--help`, and the
documented exit codes for a wrong setting (2), a missing permission (3) and drift (4)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import requests

from tests.cli.conftest import ROOT, Cli, base_env, run_in_process
from tests.helpers import forkserver

COMMANDS = ("demo", "provision", "check", "sync", "rollup", "run", "status")


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return forkserver.run(
        ["-m", "sp_sync", *args],
        cwd=ROOT,
        env=env or base_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_help_on_every_command() -> None:
    top = _run(["--help"])
    assert top.returncode == 0
    for command in COMMANDS:
        assert command in top.stdout
    expected = {
        "demo": "--keep-running",
        "provision": "--allow-destructive",
        "check": "--timeout SEKUNDER",
        "sync": "--full",
        "rollup": "--no-upload",
        "run": "--out",
        "status": "--json",
    }
    english = {**base_env(), "SP_SYNC_LANGUAGE": "en"}
    for command, option in expected.items():
        done = _run([command, "--help"])
        assert done.returncode == 0, (command, done.stderr)
        # Swedish by default: description, options, the settings read and the exit codes.
        assert f"användning: sp-sync {command}" in done.stdout
        assert option in done.stdout, command
        assert "Inställningar som läses:" in done.stdout and "SP_SYNC_LANGUAGE" in done.stdout
        assert "Slutkoder:\n  0  klart\n" in done.stdout
        assert "visa den här hjälpen" in done.stdout
        done = _run([command, "--help"], env=english)
        assert f"usage: sp-sync {command}" in done.stdout
        assert "Settings read:" in done.stdout and "Exit codes:\n  0  done\n" in done.stdout
        assert "Inställningar" not in done.stdout
        assert option.replace("SEKUNDER", "SECONDS") in done.stdout, command
    # The exit codes are part of the documented interface: one enum, each code in the README.
    from sp_sync.errors import ExitCode

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for code in ExitCode:
        if code is not ExitCode.INTERRUPTED:
            assert f"\n| {code.value} | " in readme, code
    assert ExitCode.PERMISSION == 3 and ExitCode.PARTIAL == 8


def test_unknown_command_or_option_is_a_usage_error() -> None:
    done = _run(["frobnicate"])
    assert done.returncode == 2
    assert "ogiltigt val" in done.stderr
    assert "Traceback" not in done.stderr


def test_usage_words_follow_the_language_of_each_call_in_one_process(tmp_path: Path) -> None:
    """argparse's own words are switched by replacing its gettext: an English call after a
    Swedish one in the same process (as in-process tests make them) must be English again."""
    for language, said, other in (
        ("sv", "ogiltigt val", "invalid choice"),
        ("en", "invalid choice", "ogiltigt val"),
        ("sv", "ogiltigt val", "invalid choice"),
    ):
        done = run_in_process(
            ["frobnicate"], {**base_env(), "SP_SYNC_LANGUAGE": language}, tmp_path
        )
        assert done.returncode == 2
        assert said in done.stderr and other not in done.stderr, (language, done.stderr)


def test_wrong_setting_exits_2_naming_the_setting(cli_factory: Any) -> None:
    cli: Cli = cli_factory("main")
    done = cli.run("status", env=cli.env(SP_SYNC_TIME_BUDGET_SECONDS="soon"))
    assert done.returncode == 2
    assert "SP_SYNC_TIME_BUDGET_SECONDS" in done.stderr
    assert "Traceback" not in done.stderr
    # With --json the failure is machine-readable too.
    env = cli.env()
    del env["SP_SYNC_SITE_URL"]
    doc = cli.json("run", env=env, code=2)
    assert doc["status"] == "failed"
    assert doc["error"] == "SettingsError"
    assert "SP_SYNC_SITE_URL" in doc["message"]
    # A site that is not configured is a configuration error as well.
    done = cli.run("check", "--site", "https://elsewhere.example/sites/x")
    assert done.returncode == 2 and "--site" in done.stderr


def test_provision_plans_then_applies(cli_factory: Any) -> None:
    cli: Cli = cli_factory("fresh")
    emu = cli.emu
    plan = cli.json("provision")
    assert plan["applied"] is None
    actions = [s["action"] for s in plan["plan"]["steps"]]
    assert plan["plan"]["empty"] is False
    assert actions.count("create_list") == 3, actions
    assert "add_column" in actions
    # Planning changed nothing.
    site = emu.backend.get_site("fresh")
    assert "Dialoger" not in {lst.title for lst in site.lists.values()}

    applied = cli.json("provision", "--apply")
    assert applied["applied"]["applied"], applied["applied"]
    assert applied["applied"]["skipped"] == []
    titles_after = {lst.title for lst in site.lists.values()}
    assert {"Dialoger", "Länskunskap", "Dialogåterkoppling"} <= titles_after

    # Provisioning is idempotent: the plan is now empty (text output this time).
    again = cli.in_process("provision")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "Inga ändringar."


def test_check_reports_no_drift_on_a_provisioned_site(cli_factory: Any) -> None:
    cli: Cli = cli_factory("main")
    report = cli.json("check")
    assert report["site"] == cli.emu.site_url("main")
    findings = report.get("findings", [])
    assert findings == []
    text = cli.in_process("check")
    assert text.returncode == 0
    assert "Ingen avvikelse" in text.stdout


def test_sync_then_status(cli_factory: Any) -> None:
    cli: Cli = cli_factory("main")
    seeded: dict[str, int] = cli.emu.seed_counts["main"]

    first = cli.json("sync")
    assert first["status"] == "ok"
    assert {r["list"]: (r["mode"], r["rows"]) for r in first["lists"]} == {
        t: ("full", n) for t, n in seeded.items()
    }
    assert first["workbooks"] == []
    assert first["totals"]["added"] == sum(seeded.values())

    full = cli.json("sync", "--full", "--list", "Dialoger", in_process=True)
    assert [(r["list"], r["mode"], r["rows"]) for r in full["lists"]] == [
        ("Dialoger", "full", seeded["Dialoger"])
    ]

    # Plain output when not on a terminal: progress as plain lines on stderr (no bar redraws or
    # escape codes), the summary on stdout; nothing changed, so the incremental sync adds none.
    plain = cli.run("sync")
    assert plain.returncode == 0, plain.stderr
    assert "\x1b" not in plain.stderr and "\r" not in plain.stderr
    assert plain.stdout.startswith("Körning ") and cli.emu.site_url("main") in plain.stdout
    out_lines = plain.stdout.splitlines()
    for title in seeded:
        at = next(i for i, x in enumerate(out_lines) if x.startswith(f"{title}: "))
        assert ", ändringar, " in out_lines[at], out_lines[at]
        assert out_lines[at + 1].startswith("  +0 nya, 0 ändrade, -0 borttagna"), out_lines[at + 1]
    # Summary lines fit a 100-column terminal (the site URL has a line of its own).
    assert max(len(x) for x in out_lines if "http" not in x) <= 100, out_lines

    status = cli.json("status", in_process=True)
    assert status["site"] == cli.emu.site_url("main")
    assert {t: i["rows"] for t, i in status["lists"].items()} == seeded
    assert all(i["continues"] is False for i in status["lists"].values())


def test_run_then_rollup(cli_factory: Any, tmp_path: Path) -> None:
    cli: Cli = cli_factory("main")
    seeded: dict[str, int] = cli.emu.seed_counts["main"]

    run = cli.json("run")
    assert run["status"] == "ok"
    assert {r["list"]: (r["mode"], r["rows"]) for r in run["lists"]} == {
        t: ("full", n) for t, n in seeded.items()
    }
    uploaded = {w["name"]: w for w in run["workbooks"]}
    assert "Länsöversikt.xlsx" in uploaded and len(uploaded) > 20
    # The uploaded file really is on the site.
    url = (
        f"{cli.emu.site_url('main')}/_api/web/GetFileByServerRelativeUrl("
        f"'{uploaded['Länsöversikt.xlsx']['server_relative_url']}')/$value"
    )
    got = requests.get(
        url, headers={"Authorization": f"Bearer {cli.emu.issue_token()}"}, timeout=30
    )
    assert got.status_code == 200 and got.content[:2] == b"PK"

    out = tmp_path / "out"
    rolled = cli.json("rollup", "--out", str(out), "--no-upload", in_process=True)
    assert rolled["workbooks"] == []  # nothing uploaded
    local = {p.name for p in out.glob("*.xlsx")}
    assert set(uploaded) == local
    wb = openpyxl.load_workbook(out / "Länsöversikt.xlsx", read_only=True)
    assert len(wb.sheetnames) >= 2
    cells = " ".join(
        str(c) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row if c
    )
    assert "Skåne län" in cells

    status = cli.json("status", in_process=True)
    assert status["last_run"]["run_id"] == run["run_id"]
    assert status["last_run"]["status"] == "ok"


def test_missing_permission_exits_3(cli_factory: Any) -> None:
    cli: Cli = cli_factory("readonly")
    cli.emu.grant(cli.emu.managed_identity_app_id, "readonly", "read")
    done = cli.run("provision", "--apply")
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("sp-sync: ")
    # Nothing was created with the read-only grant.
    lists = cli.emu.backend.get_site("readonly").lists.values()
    assert not any(lst.title == "Dialoger" for lst in lists)


def _delete_column(emu: Any, site: str, list_title: str, column: str) -> None:
    """Remove a column by hand through plain REST, as a site owner would."""
    base = emu.site_url(site)
    headers = {
        "Authorization": f"Bearer {emu.issue_token()}",
        "Accept": "application/json;odata=verbose",
        "Content-Type": "application/json;odata=verbose",
    }
    digest = requests.post(f"{base}/_api/contextinfo", headers=headers, timeout=30)
    digest.raise_for_status()
    headers["X-RequestDigest"] = digest.json()["d"]["GetContextWebInformation"]["FormDigestValue"]
    headers["X-HTTP-Method"] = "DELETE"
    headers["IF-MATCH"] = "*"
    resp = requests.post(
        f"{base}/_api/web/lists/GetByTitle('{list_title}')/fields/"
        f"getbyinternalnameortitle('{column}')",
        headers=headers,
        timeout=30,
    )
    assert resp.status_code < 300, resp.text[:300]


def test_drift_exits_4(cli_factory: Any) -> None:
    cli: Cli = cli_factory("drift")
    _delete_column(cli.emu, "drift", "Dialoger", "Phase")
    report = cli.json("check", code=4)
    missing = [f for f in report["findings"] if f["column"] == "Phase"]
    assert missing and missing[0]["severity"] == "breaking"

    done = cli.run("run")
    assert done.returncode == 4, (done.stdout, done.stderr)
    assert "Phase" in done.stderr
    assert "sp-sync provision" in done.stderr  # says how to repair
    assert "Traceback" not in done.stderr
    # The run stopped before syncing anything.
    assert not list((cli.state_dir).rglob("checkpoint.json"))


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One `sp-sync demo` process (its two nights, ~9 CPU-seconds) for the tests that need its
    output or its state: its folder (state in `state/`, workbooks in `rollups/`) and the result."""
    tmp = tmp_path_factory.mktemp("demo")
    done = forkserver.run(
        [
            "-m",
            "sp_sync",
            "demo",
            "--state-dir",
            str(tmp / "state"),
            "--out",
            str(tmp / "rollups"),
            "--json",
        ],
        cwd=tmp,
        env=base_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    return tmp, done


@pytest.mark.slow
def test_demo_runs_twice_and_the_second_run_is_incremental(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    tmp, done = demo_run
    out = tmp / "rollups"
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = json.loads(done.stdout)
    assert first["status"] == second["status"] == "ok"
    assert {r["mode"] for r in first["lists"]} == {"full"}
    assert {r["mode"] for r in second["lists"]} == {"incremental"}
    by_list = {r["list"]: r for r in second["lists"]}
    # demo.make_changes: 25 feedback items edited, 12 added, 10 knowledge items deleted.
    assert by_list["Dialogåterkoppling"]["updated"] == 25
    assert by_list["Dialogåterkoppling"]["added"] == 12
    assert by_list["Länskunskap"]["deleted"] == 10
    assert by_list["Dialoger"]["added"] == by_list["Dialoger"]["updated"] == 0
    assert first["totals"]["rows"] > 2000
    files = {p.name for p in out.glob("*.xlsx")}
    assert {w["name"] for w in second["workbooks"]} <= files
    assert "Länsöversikt.xlsx" in files and len(files) >= 27
    wb = openpyxl.load_workbook(out / "Länsöversikt.xlsx", read_only=True)
    assert wb.sheetnames


def test_exit_code_of_a_finished_run() -> None:
    """6 when the run only ran out of time, 8 when a list failed, the error's own code when
    nothing synced (documented in sp_sync.cli)."""
    import datetime as dt

    from sp_sync.cli import _summary_code
    from sp_sync.run.summary import ListSyncResult, RunSummary

    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)

    def summary(
        lists: tuple[ListSyncResult, ...], errors: tuple[dict[str, Any], ...]
    ) -> RunSummary:
        return RunSummary(
            "r", "s", now, now, lists, (), errors, RunSummary.status_for(lists, errors)
        )

    done = ListSyncResult("Dialoger", "full")
    cont = ListSyncResult("Länskunskap", "full", continues_next_run=True)
    assert _summary_code(summary((done,), ())) == 0
    assert _summary_code(summary((done, cont), ())) == 6
    assert _summary_code(summary((done,), ({"list": "X", "error": "ThresholdError"},))) == 8
    assert _summary_code(summary((), ({"list": "X", "error": "PermissionDeniedError"},))) == 3
    assert _summary_code(summary((), ({"list": "X", "error": "Whatever"},))) == 1


@pytest.mark.slow
def test_commands_that_read_snapshots_exit_cleanly(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    """Arrow worker threads still alive at interpreter exit aborted `sp-sync status` with SIGABRT
    after it had printed its answer, about one run in five (apache/arrow#34314). The cause (a
    Parquet read with Arrow threads) is caught every time, in-process, by
    tests/reliability/test_arrow_exit.py; these runs check the real process's exit, 5 times
    (20 before: about 1 CPU-second each)."""
    tmp_path, demo = demo_run
    state = tmp_path / "state"
    assert demo.returncode == 0, demo.stderr[-2000:]
    env = {
        **base_env(),
        "SP_SYNC_SITE_URL": "http://127.0.0.1:1/sites/strategiskt-regionarbete",
        "SP_SYNC_STATE_DIR": str(state),
    }
    for _ in range(5):
        done = forkserver.run(
            ["-m", "sp_sync", "status", "--json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        # No managed identity outside Azure: status says so with exit 2 (a configuration
        # check), and still shows the local state; what matters here is no SIGABRT (-6).
        assert done.returncode == 2, (done.returncode, done.stderr[-500:])
        doc = json.loads(done.stdout)
        assert doc["checks"]["token"]["ok"] is False
        assert doc["lists"]["Länskunskap"]["rows"] > 1000
