"""A demo to keep using (issue 13 item 8): `sp-sync demo --keep-running` and `python -m
sp_emulator --demo` (`make emulator`) print the exact settings that make every other command
work against the emulator; the demo's state lives in a known directory."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import base_env
from tests.helpers import forkserver


def _start(
    args: list[str], cwd: Path, env: dict[str, str], preexec_fn: Any = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        # Not a pipe nobody reads: the emulator's log (e.g. connection resets under load) could
        # fill it and block the process before it ever sees the signal.
        stderr=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        stdin=subprocess.DEVNULL,
        preexec_fn=preexec_fn,
    )


def _settings_from(proc: subprocess.Popen[str], timeout: float = 180) -> tuple[dict[str, str], str]:
    """Read stdout until the last `export` line; returns the settings and everything read."""
    assert proc.stdout is not None
    settings: dict[str, str] = {}
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if not line.strip().startswith("export "):
            continue
        words = shlex.split(line.strip())
        if len(words) == 2:
            name, _, value = words[1].partition("=")
            settings[name] = value
            if name == "IDENTITY_HEADER":
                return settings, "".join(seen)
    raise AssertionError("no settings printed:\n" + "".join(seen))


def _sp_sync(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return forkserver.run(
        ["-m", "sp_sync", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _signal_state(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "(no /proc)"
    return " ".join(line for line in status.splitlines() if line.startswith(("SigBlk", "SigIgn")))


def _stop(proc: subprocess.Popen[str], sig: int) -> None:
    state = _signal_state(proc.pid)
    proc.send_signal(sig)
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"signal {sig} did not stop the process ({state})") from exc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _inherit_ignored_and_blocked_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


class _KeptDemo:
    """One `sp-sync demo --keep-running` shared by this file's two keep-running tests (a demo
    costs about 9 CPU-seconds). It is started the hard way, with SIGINT inherited ignored and
    blocked, as a launcher, CI runner or test worker may hand it over; started again if a test
    before stopped it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.proc: subprocess.Popen[str] | None = None
        self.settings: dict[str, str] = {}
        self.printed = ""

    def running(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = _start(
                ["-m", "sp_sync", "demo", "--keep-running", "-q"],
                self.folder,
                {**base_env(), "SP_SYNC_LANGUAGE": "en"},
                preexec_fn=_inherit_ignored_and_blocked_sigint,
            )
            self.settings, self.printed = _settings_from(self.proc)
        return self.proc


@pytest.fixture(scope="module")
def kept_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_KeptDemo]:
    demo = _KeptDemo(tmp_path_factory.mktemp("kept-demo"))
    try:
        yield demo
    finally:
        if demo.proc is not None and demo.proc.poll() is None:
            _stop(demo.proc, signal.SIGTERM)


def test_keep_running_prints_settings_that_work_for_other_commands(kept_demo: _KeptDemo) -> None:
    kept_demo.running()
    settings, printed, folder = kept_demo.settings, kept_demo.printed, kept_demo.folder
    # The demo's own lines follow the language too.
    assert "== Run 1: full synchronisation ==" in printed
    assert "Körning" not in printed and " rader" not in printed
    state = folder / ".sp-sync" / "demo" / "state"
    assert settings["SP_SYNC_STATE_DIR"] == str(state.resolve())
    # A long path moves to a line of its own (100 columns), whole, so it can be copied.
    flat = " ".join(printed.split())
    assert f"The state (snapshots, checkpoints) is in {state.resolve()}/" in flat
    assert set(settings) >= {"SP_SYNC_SITE_URL", "IDENTITY_ENDPOINT", "IDENTITY_HEADER"}

    other = {**base_env(), **settings}
    status = _sp_sync(["status", "--json"], other, folder)
    assert status.returncode == 0, status.stdout + status.stderr
    doc = json.loads(status.stdout)
    assert doc["checks"]["lists"]["ok"] is True
    assert doc["last_run"]["status"] == "ok"  # the demo's second run
    run = _sp_sync(["run", "--json"], other, folder)
    assert run.returncode == 0, run.stderr
    assert {r["mode"] for r in json.loads(run.stdout)["lists"]} == {"incremental"}


def test_keep_running_stops_on_sigint_even_when_it_was_inherited_ignored_and_blocked(
    kept_demo: _KeptDemo,
) -> None:
    """A launcher, CI runner or test worker may hand the demo SIGINT ignored or blocked; the
    keep-running test's SIGINT then went unanswered in the full suite. The demo installs its
    own handlers and unblocks the signals, so Ctrl+C and SIGTERM stop it cleanly (exit 0)."""
    proc = kept_demo.running()
    _stop(proc, signal.SIGINT)
    assert proc.returncode == 0


def test_demo_refuses_to_clear_a_directory_it_did_not_make(tmp_path: Path) -> None:
    mine = tmp_path / "important"
    mine.mkdir()
    (mine / "keep.txt").write_text("x")
    done = _sp_sync(["demo", "--state-dir", str(mine), "-q"], base_env(), tmp_path)
    assert done.returncode == 2
    assert "inte en demokatalog" in done.stderr
    assert (mine / "keep.txt").read_text() == "x"


def test_make_emulator_seeds_the_demo_and_prints_the_settings(tmp_path: Path) -> None:
    proc = _start(["-m", "sp_emulator", "--demo"], tmp_path, base_env())
    try:
        settings, printed = _settings_from(proc, timeout=120)
        assert "Dialoger: 42, Länskunskap: 1200, Dialogåterkoppling: 800" in printed
        env = {**base_env(), **settings, "SP_SYNC_STATE_DIR": str(tmp_path / "state")}
        run = _sp_sync(["run", "--no-upload", "--json"], env, tmp_path)
        assert run.returncode == 0, run.stderr
        rows = {r["list"]: r["rows"] for r in json.loads(run.stdout)["lists"]}
        assert rows == {"Dialoger": 42, "Länskunskap": 1200, "Dialogåterkoppling": 800}
    finally:
        _stop(proc, signal.SIGTERM)
