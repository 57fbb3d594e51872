"""The administrator's surface (issue 13), through subprocesses: names are checked, a missing
site is a missing site, `status` checks what it says, and every message follows
SP_SYNC_LANGUAGE."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.cli.conftest import Cli


def _writes(emu: Any) -> list[dict[str, Any]]:
    """Every request that could have changed the site (uploads included)."""
    return [e for e in emu.journal() if str(e.get("method", "")).upper() != "GET"]


def _uploads(emu: Any) -> list[dict[str, Any]]:
    return [e for e in emu.journal() if "/files" in str(e.get("path", "")).lower()]


# ---------------------------------------------------------------------------------- item 1


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("sv", "listan 'Lanskunskap' finns inte i listschemana (menade du Länskunskap?)"),
        ("en", "there is no list 'Lanskunskap' in the list schemas (did you mean Länskunskap?)"),
    ],
)
def test_unknown_list_option_exits_2_with_the_closest_name(
    cli_factory: Any, language: str, expected: str
) -> None:
    cli: Cli = cli_factory("main")
    before = len(cli.emu.journal())
    done = cli.run("sync", "--list", "Lanskunskap", env=cli.env(SP_SYNC_LANGUAGE=language))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert expected in done.stderr
    assert "Dialoger, Länskunskap, Dialogåterkoppling" in done.stderr
    assert "--list" in done.stderr and "Traceback" not in done.stderr
    # Checked before anything ran: not one request reached SharePoint.
    assert len(cli.emu.journal()) == before


def test_unknown_lists_in_the_setting_are_all_named_and_nothing_is_uploaded(
    cli_factory: Any,
) -> None:
    cli: Cli = cli_factory("main")
    assert cli.in_process("run").returncode == 0  # workbooks exist from a good run
    uploads = len(_uploads(cli.emu))
    done = cli.run("run", env=cli.env(SP_SYNC_LISTS="dialoger,Foo"))
    assert done.returncode == 2, done.stderr
    assert "2 inställningar är fel" in done.stderr
    assert "'dialoger'" in done.stderr and "(menade du Dialoger?)" in done.stderr
    assert "'Foo'" in done.stderr and "SP_SYNC_LISTS" in done.stderr
    assert "klar" not in done.stdout
    assert len(_uploads(cli.emu)) == uploads


def test_a_run_where_no_list_synced_uploads_nothing(cli_factory: Any) -> None:
    cli: Cli = cli_factory("main")
    # Every item read is refused (400 is never retried): no list can sync.
    cli.emu.faults.inject(status=400, count=1000, method="GET", path=r"/items")
    try:
        uploads = len(_uploads(cli.emu))
        done = cli.run("run", "--json")
    finally:
        cli.emu.faults.clear()
    doc = json.loads(done.stdout)
    assert done.returncode != 0, done.stderr
    assert doc["status"] == "failed" and doc["lists"] == [] and doc["workbooks"] == []
    assert len(_uploads(cli.emu)) == uploads


# ---------------------------------------------------------------------------------- item 2


_MISSING_SITE = {
    "sv": "finns inte (SharePoint svarar 404)",
    "en": "does not exist (SharePoint answers 404)",
}


# Each command once, the languages alternating; `check` and `sync` in a subprocess, `run` and
# `provision` through the same entry point in-process (a process start costs about 1 CPU-s).
@pytest.mark.parametrize(
    ("command", "language"), [("check", "sv"), ("run", "en"), ("provision", "en"), ("sync", "sv")]
)
def test_a_missing_site_exits_2_naming_the_url(
    cli_factory: Any, command: str, language: str
) -> None:
    expected = _MISSING_SITE[language]
    cli: Cli = cli_factory("main")
    url = cli.emu.site_url("strategiskt-regionarbet")  # one letter short
    run = cli.run if command in ("check", "sync") else cli.in_process
    done = run(command, env=cli.env(SP_SYNC_SITE_URL=url, SP_SYNC_LANGUAGE=language))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert url in done.stderr and expected in done.stderr
    assert "SP_SYNC_SITE_URL" in done.stderr
    # Not drift: no talk of missing lists or of provisioning.
    assert "saknas" not in done.stdout + done.stderr
    assert "provision" not in done.stderr.replace("(SharePoint", "")
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------------------------- item 5


def test_status_checks_token_site_lists_and_shows_local_times(cli_factory: Any) -> None:
    cli: Cli = cli_factory("main")
    assert cli.in_process("sync").returncode == 0
    done = cli.run("status")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    for line in ("✓ Token hämtad", "✓ Webbplatsen nås (main)", "✓ Listorna finns på webbplatsen"):
        assert line in text, text
    assert "Synkroniserat (tider i Europe/Stockholm):" in text
    doc = cli.json("status", in_process=True)
    assert doc["checks"]["lists"] == {"ok": True, "missing": []}
    # Times: the site's zone, to the second (no microseconds, no +00:00).
    last_sync = dt.datetime.fromisoformat(doc["lists"]["Dialoger"]["last_sync"])
    shown = last_sync.astimezone(ZoneInfo("Europe/Stockholm")).strftime("%Y-%m-%d %H:%M:%S")
    assert f"Dialoger: 42 rader, senast synkad {shown}\n" in text
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", text) and "+00:00" not in text
    english = cli.in_process("status", env=cli.env(SP_SYNC_LANGUAGE="en"))
    assert "✓ Token obtained" in english.stdout and "42 rows, last sync" in english.stdout


def test_status_exit_codes(cli_factory: Any) -> None:
    cli: Cli = cli_factory("fresh")
    # The lists are not provisioned: 4, naming them.
    done = cli.run("status")
    assert done.returncode == 4, done.stderr
    assert "✗ Listorna finns på webbplatsen: saknas: Dialoger, Länskunskap" in done.stdout
    # The other codes through the same entry point in-process (each start costs ~1 CPU-s).
    # A refused identity: 3.
    done = cli.in_process("status", env=cli.env(IDENTITY_HEADER="wrong"))
    assert done.returncode == 3, done.stdout
    assert "✗ Token hämtad" in done.stdout
    # No identity at all (a laptop outside Azure): not "ok".
    env = cli.env()
    del env["IDENTITY_ENDPOINT"], env["IDENTITY_HEADER"]
    assert cli.in_process("status", env=env).returncode != 0
    # A site that does not exist: 2.
    done = cli.in_process("status", env=cli.env(SP_SYNC_SITE_URL=cli.emu.site_url("nosuch")))
    assert done.returncode == 2
    assert "✗ Webbplatsen nås" in done.stdout and "404" in done.stdout


# ---------------------------------------------------------------------------------- items 3, 4


def test_every_wrong_setting_at_once_in_the_chosen_language(cli_factory: Any) -> None:
    cli: Cli = cli_factory("main")
    wrong = {
        "SP_SYNC_TIME_BUDGET_SECONDS": "soon",
        "SP_SYNC_SITE_URL": "https://contoso.sharepoint.com/sites/regional work",
        "SP_SYNC_QUEUE": "Q",
    }
    done = cli.run("run", env=cli.env(**wrong))
    assert done.returncode == 2
    assert done.stderr.startswith("sp-sync: 3 inställningar är fel")
    for name in wrong:
        assert f"Inställningen {name}: " in done.stderr
    assert "sites/regional%20work" in done.stderr
    english = cli.in_process("run", env=cli.env(SP_SYNC_LANGUAGE="en", **wrong))
    assert english.stderr.startswith("sp-sync: 3 settings are wrong")
    assert "Inställningen" not in english.stderr
    # A wrong SP_SYNC_LANGUAGE is itself reported, in the default language.
    bad_language = cli.in_process("status", env=cli.env(SP_SYNC_LANGUAGE="fi"))
    assert bad_language.returncode == 2
    assert "Inställningen SP_SYNC_LANGUAGE: okänt språk 'fi'" in bad_language.stderr


def test_usage_errors_follow_the_language(cli_factory: Any) -> None:
    cli: Cli = cli_factory("main")
    done = cli.run("frobnicate", env=cli.env(SP_SYNC_LANGUAGE="en"))
    assert done.returncode == 2 and "invalid choice" in done.stderr
    done = cli.run("frobnicate")
    assert done.returncode == 2 and "ogiltigt val" in done.stderr and "fel:" in done.stderr


# ---------------------------------------------------------------------------------- item 7


def test_plan_is_compact_by_display_name_and_full_with_verbose(cli_factory: Any) -> None:
    cli: Cli = cli_factory("fresh")
    done = cli.run("provision")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "Plan: 37 ändringar i 4 listor (hela planen med -v)"
    assert len(lines) <= 10 and max(map(len, lines)) <= 100
    assert lines[1].startswith("  Dialoger: skapas; nya kolumner: Län, År, Fas, Planerat datum")
    assert "Giltig till" in done.stdout  # display names, never split across lines
    assert "CountyLead" not in done.stdout and "Dialoger.County" not in done.stdout
    # The rollup library's freshness columns (issue 12 item 9).
    assert "  Dokument: nya kolumner: Senast kontrollerad, Data ändrad" in lines
    english = cli.in_process("provision", env=cli.env(SP_SYNC_LANGUAGE="en"))
    assert english.stdout.startswith("Plan: 37 changes in 4 lists (full plan with -v)")
    assert "new columns: County, Year, Phase" in english.stdout
    full = cli.in_process("provision", "-v")
    assert "Kolumner att lägga till (28):" in full.stdout
    assert "Lägg till kolumnen Dialoger.CountyLead (person, 'Länsansvarig')" in full.stdout


def test_rollup_before_any_sync_and_an_unknown_site_speak_the_language(cli_factory: Any) -> None:
    cli: Cli = cli_factory("main")
    done = cli.run("rollup", "--no-upload")
    assert done.returncode == 1
    assert "Inga listor är synkroniserade för" in done.stderr and "sp-sync sync" in done.stderr
    done = cli.in_process("status", "--site", "nowhere", env=cli.env(SP_SYNC_LANGUAGE="en"))
    assert done.returncode == 2
    assert "Option --site: 'nowhere' is not a configured site" in done.stderr


def test_rollup_without_upload_needs_no_site(cli_factory: Any, tmp_path: Any) -> None:
    cli: Cli = cli_factory("main")
    assert cli.in_process("sync", "-q").returncode == 0
    offline = cli.env()
    del offline["IDENTITY_ENDPOINT"], offline["IDENTITY_HEADER"]  # no token can be had
    done = cli.run("rollup", "--no-upload", "--out", str(tmp_path / "out"), env=offline)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "Länsöversikt.xlsx").is_file()
