"""The standalone emulator: the `sp-emulator` console script (issue 15, last bullet).

The script is what pip generates from pyproject's `[project.scripts]` entry. When the venv was
installed before that entry existed, the test runs the same `module:function` the entry names,
the way the generated script does, so it checks the declared entry point either way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def _entry() -> str:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["scripts"]
    return str(scripts["sp-emulator"])


def _command(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "sp-emulator"
    if script.exists():
        return [str(script), *args]
    module, func = _entry().split(":")
    code = (
        f"import sys; from {module} import {func}; sys.argv[0] = 'sp-emulator'; sys.exit({func}())"
    )
    return [sys.executable, "-c", code, *args]


def test_pyproject_declares_the_console_script() -> None:
    assert _entry() == "sp_emulator.__main__:main"


def test_help_says_what_it_is() -> None:
    out = subprocess.run(
        _command("--help"),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=True,
    ).stdout
    assert out.startswith("usage: sp-emulator")
    assert "stand-in for SharePoint Online's REST API" in out
    assert "/_emulator/token" in out and "--site" in out and "--data" in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_console_script_serves_and_stops_cleanly(sig: signal.Signals, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        _command("--port", "0", "--site", "team", "--data", str(tmp_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline().strip()
        assert ready.startswith("SharePoint emulator ready at http://127.0.0.1:"), ready
        url = ready.rsplit(" ", 1)[1]
        token = requests.post(url + "/_emulator/token", json={}, timeout=10).json()["access_token"]
        seeded = requests.post(
            url + "/_emulator/seed",
            json={"site": "team", "list": "Uppgifter", "items": [{"Title": "ett"}]},
            timeout=10,
        )
        assert seeded.status_code == 201, seeded.text
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json;odata=verbose"}
        web = requests.get(url + "/sites/team/_api/web", headers=headers, timeout=10)
        assert web.status_code == 200 and web.json()["d"]["Title"] == "team"
        items = requests.get(
            url + "/sites/team/_api/web/lists/getbytitle('Uppgifter')/items?$select=Title",
            headers=headers,
            timeout=10,
        ).json()["d"]["results"]
        assert [i["Title"] for i in items] == ["ett"]
    finally:
        proc.send_signal(sig)
        code = proc.wait(timeout=20)
        stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 0, stderr
    assert "Traceback" not in stderr
    # A clean stop writes the final snapshot.
    assert any(tmp_path.iterdir())
