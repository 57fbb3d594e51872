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
from pathlib import Path
from typing import Any

from tests.cli.conftest import base_env


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
    return subprocess.run(
        [sys.executable, "-m", "sp_sync", *args],
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


def test_keep_running_prints_settings_that_work_for_other_commands(tmp_path: Path) -> None:
    env = {**base_env(), "SP_SYNC_LANGUAGE": "en"}
    proc = _start(["-m", "sp_sync", "demo", "--keep-running", "-q"], tmp_path, env)
    try:
        settings, printed = _settings_from(proc)
        # The demo's own lines follow the language too.
        assert "== Run 1: full synchronisation ==" in printed
        assert "Körning" not in printed and " rader" not in printed
        state = tmp_path / ".sp-sync" / "demo" / "state"
        assert settings["SP_SYNC_STATE_DIR"] == str(state.resolve())
        # A long path moves to a line of its own (100 columns), whole, so it can be copied.
        flat = " ".join(printed.split())
        assert f"The state (snapshots, checkpoints) is in {state.resolve()}/" in flat
        assert set(settings) >= {"SP_SYNC_SITE_URL", "IDENTITY_ENDPOINT", "IDENTITY_HEADER"}

        other = {**base_env(), **settings}
        status = _sp_sync(["status", "--json"], other, tmp_path)
        assert status.returncode == 0, status.stdout + status.stderr
        doc = json.loads(status.stdout)
        assert doc["checks"]["lists"]["ok"] is True
        assert doc["last_run"]["status"] == "ok"  # the demo's second run
        run = _sp_sync(["run", "--json"], other, tmp_path)
        assert run.returncode == 0, run.stderr
        assert {r["mode"] for r in json.loads(run.stdout)["lists"]} == {"incremental"}
    finally:
        _stop(proc, signal.SIGINT)
    assert proc.returncode == 0


def _inherit_ignored_and_blocked_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def test_keep_running_stops_on_sigint_even_when_it_was_inherited_ignored_and_blocked(
    tmp_path: Path,
) -> None:
    """A launcher, CI runner or test worker may hand the demo SIGINT ignored or blocked; the
    keep-running test's SIGINT then went unanswered in the full suite. The demo installs its
    own handlers and unblocks the signals, so Ctrl+C and SIGTERM stop it cleanly (exit 0)."""
    env = {**base_env(), "SP_SYNC_LANGUAGE": "en"}
    state = tmp_path / "state"
    proc = _start(
        ["-m", "sp_sync", "demo", "--keep-running", "-q", "--state-dir", str(state)],
        tmp_path,
        env,
        preexec_fn=_inherit_ignored_and_blocked_sigint,
    )
    try:
        _settings_from(proc)
    finally:
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
