"""What a real `sp-sync run` process costs beyond its SharePoint requests (issue 14 goal 4).

A night whose workbooks are all unchanged imports neither openpyxl nor the layouts:
`tests/report/test_lean_imports.py` checks the modules' imports, this checks the night itself (a
lazy import on the quiet path would pass there and fail here). And a night asks the identity
endpoint for one token, although the site check and the run each open a client."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.cli.conftest import Cli

HEAVY = ("openpyxl", "sp_sync.report.layouts", "sp_sync.report.xlsx_writer")


def _run_recording_imports(cli: Cli) -> tuple[dict[str, Any], set[str]]:
    """`sp-sync run --json` in a fresh interpreter (the start itself is what is observed, so
    not through any pre-imported helper); returns the summary and the modules it imported."""
    cli.emu.reset_stats()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sp_sync", "run", "--json"],
        cwd=cli.cwd,
        env=cli.env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    routes = cli.emu.stats()["routes"]
    assert routes.get("identity.token") == 1, routes  # one token for the check and the run
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return json.loads(done.stdout), imported


def _heavy(imported: set[str]) -> set[str]:
    return {m for m in imported if m in HEAVY or m.split(".")[0] == "openpyxl"}


def test_a_quiet_night_imports_neither_openpyxl_nor_the_layouts_and_asks_one_token(
    cli_factory: Any,
) -> None:
    cli: Cli = cli_factory("main")
    first, imported = _run_recording_imports(cli)
    assert first["status"] == "ok"
    assert {w["status"] for w in first["workbooks"]} == {"uploaded"}
    # The observation works: a night that renders imports all three.
    assert {"openpyxl", "sp_sync.report.layouts", "sp_sync.report.xlsx_writer"} <= imported

    second, imported = _run_recording_imports(cli)
    assert second["status"] == "ok"
    assert len(second["workbooks"]) == len(first["workbooks"])
    assert {w["status"] for w in second["workbooks"]} == {"unchanged"}
    assert "sp_sync.report.publish" in imported  # the rollup did run
    assert _heavy(imported) == set(), sorted(_heavy(imported))


def test_a_night_without_mail_settings_does_not_import_the_mail_modules(
    cli_factory: Any,
) -> None:
    """No sender or no administrator: no failure notice can be due, so the night does not
    pay for importing Graph mail and the notice's rendering (0.05 s); with both set the
    notice check runs (tests/notify cover what it sends)."""
    cli: Cli = cli_factory("main")
    summary, imported = _run_recording_imports(cli)
    assert summary["status"] == "ok"
    assert "sp_sync.run.pipeline" in imported  # the observation works
    # `sp_sync.notify.commands` is the `digest` command's parser, light by design.
    mail = {m for m in imported if m.startswith("sp_sync.notify.")} - {"sp_sync.notify.commands"}
    assert mail == set(), sorted(mail)
