"""`sp-sync digest`: preview, send once, JSON, exit codes (the CLI in-process, real settings)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from sp_emulator import SharePointEmulator
from sp_emulator.graph import GraphService
from sp_sync.cli import main
from sp_sync.schema import load_schemas
from sp_sync.state.local import LocalStateStore
from tests.notify.helpers import ADMIN, SENDER, STOCKHOLM, frame, row
from tests.notify.test_site_mail import SITE, seed


@pytest.fixture
def env(
    emu: SharePointEmulator, mi_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    folder = tmp_path / "schemas"
    shutil.copytree(load_schemas().directory, folder)
    text = (folder / "reference.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "{name: Företag, en: Business}",
        "{name: Företag, en: Business, mail: foretag@myndighet.example}",
    )
    (folder / "reference.yaml").write_text(text, encoding="utf-8")
    state = tmp_path / "state"
    # The CLI runs on the real clock: seed relative to it.
    now = dt.datetime.now(dt.UTC)
    today = now.astimezone(STOCKHOLM).date()
    feedback = frame(
        [
            row(1, created=now - dt.timedelta(days=1), due=today + dt.timedelta(days=30)),
            row(2, created=now - dt.timedelta(days=2)),
            row(3, due=today - dt.timedelta(days=3)),
            row(4, due=today - dt.timedelta(days=40)),
            row(6, due=today),
            row(7, due=today + dt.timedelta(days=14)),
            row(10, department="Regioner", created=now - dt.timedelta(hours=3)),
        ]
    )
    seed(LocalStateStore(state), last_sync=now, feedback=feedback)
    for name, value in {
        "SP_SYNC_SITE_URL": SITE,
        "SP_SYNC_STATE": "local",
        "SP_SYNC_STATE_DIR": str(state),
        "SP_SYNC_SCHEMA_DIR": str(folder),
        "SP_SYNC_MAIL_SENDER": SENDER,
        "SP_SYNC_ADMIN_MAIL": ADMIN,
        "SP_SYNC_GRAPH_URL": emu.url,
        "SP_SYNC_LANGUAGE": "sv",
    }.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def test_dry_run_previews_and_writes_files_without_sending(
    env: Path, graph: GraphService, capsys: pytest.CaptureFixture[str]
) -> None:
    out = env / "out"
    assert main(["digest", "--dry-run", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Återkoppling till Företag: 2 nya, 2 försenade, 2 förfaller snart" in text
    assert "foretag@myndighet.example" in text
    assert "Regioner" in text and "ingen adress konfigurerad" in text
    assert graph.messages() == []
    assert sorted(p.suffix for p in out.iterdir()) == [".eml", ".html", ".html"]


def test_send_once_then_already_sent(
    env: Path, graph: GraphService, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["digest", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    outcomes = {d["stream"].split("-")[1]: d["outcome"] for d in result["digests"]}
    assert outcomes["foretag"] == "sent" and outcomes["regioner"] == "nothing"
    assert [m["to"] for m in graph.messages()] == [["foretag@myndighet.example"]]
    assert main(["digest"]) == 0
    assert "redan skickad för perioden" in capsys.readouterr().out
    assert len(graph.messages()) == 1


def test_department_filter_and_unknown_department(
    env: Path, graph: GraphService, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["digest", "--dry-run", "--department", "regioner"]) == 0
    assert "Återkoppling till Regioner" in capsys.readouterr().out
    assert main(["digest", "--dry-run", "--department", "Ekonomi"]) == 2
    assert "ingen avdelning som heter 'Ekonomi'" in capsys.readouterr().err


def test_throttled_past_the_budget_exits_6_and_says_it_retries(
    env: Path, graph: GraphService, capsys: pytest.CaptureFixture[str]
) -> None:
    graph.throttle(count=100, retry_after=1000)
    assert main(["digest"]) == 6
    assert "nästa körning skickar den" in capsys.readouterr().out
    assert graph.messages() == []


def test_without_a_sender_it_is_a_settings_error(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SP_SYNC_MAIL_SENDER")
    assert main(["digest"]) == 2
    assert "SP_SYNC_MAIL_SENDER" in capsys.readouterr().err
