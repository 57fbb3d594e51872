"""The tests' fork server (tests/helpers/forkserver.py) gives a child that looks, to the test, like
the `python ...` process it replaces: its pid, environment, directory, stdio, exit status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import forkserver

pytestmark = pytest.mark.skipif(not forkserver.enabled(), reason="SP_SYNC_TEST_FORKSERVER=0")

PROBE = (
    "import json, os, random, signal, sys, threading, logging\n"
    "print(json.dumps({'pid': os.getpid(), 'ppid': os.getppid(), 'argv': sys.argv,\n"
    "  'cwd': os.getcwd(), 'env': dict(os.environ), 'stdin': sys.stdin.read(),\n"
    "  'encoding': sys.stdout.encoding, 'threads': threading.active_count(),\n"
    "  'handlers': len(logging.getLogger().handlers),\n"
    "  'sigint': signal.getsignal(signal.SIGINT) is signal.default_int_handler,\n"
    "  'sigterm': signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,\n"
    "  'random': random.random()}))\n"
    "print('on stderr', file=sys.stderr)\n"
)


#: The locale the worker (and so the server) started with: a child asking for another one gets a
#: real interpreter (see forkserver.forkable), so the probe keeps it to be forked.
LOCALE = {k: os.environ[k] for k in ("LANG", "LC_ALL", "LC_CTYPE") if k in os.environ}


def _probe(tmp_path: Path, **env: str) -> dict[str, object]:
    child_env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONIOENCODING": "latin-1",
        **LOCALE,
        **env,
    }
    done = forkserver.run(
        ["-c", PROBE, "first", "second"],
        input="från testet",
        capture_output=True,
        text=True,
        encoding="latin-1",
        env=child_env,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "on stderr\n"
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_forked_child_has_the_tests_argv_environment_directory_and_stdio(tmp_path: Path) -> None:
    seen = _probe(tmp_path, ONLY_THIS="1")
    assert seen["argv"] == ["-c", "first", "second"]
    assert seen["env"] == {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONIOENCODING": "latin-1",
        **LOCALE,
        "ONLY_THIS": "1",
    }
    assert seen["cwd"] == str(tmp_path)
    assert seen["stdin"] == "från testet"
    assert seen["encoding"] == "latin-1"
    assert seen["pid"] != os.getpid() and seen["ppid"] != os.getpid()  # the server's child
    assert seen["threads"] == 1 and seen["handlers"] == 0
    assert seen["sigint"] is True and seen["sigterm"] is True
    # `random` is reseeded in every child (a fork would otherwise repeat the server's sequence).
    assert seen["random"] != _probe(tmp_path)["random"]


def test_exit_codes_exceptions_and_signals_are_reported_as_subprocess_does() -> None:
    assert forkserver.run(["-c", "import sys; sys.exit(3)"]).returncode == 3
    failed = forkserver.run(["-c", "raise ValueError('boom')"], capture_output=True, text=True)
    assert failed.returncode == 1
    assert failed.stderr.splitlines()[-1] == "ValueError: boom"
    assert "forkserver" not in failed.stderr  # the traceback is the program's, as python prints
    interrupted = forkserver.run(["-c", "raise KeyboardInterrupt"], capture_output=True)
    assert interrupted.returncode == -signal.SIGINT


def test_the_pid_is_the_childs_own_so_a_test_can_kill_it() -> None:
    proc = forkserver.popen(
        ["-c", "import time; print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    assert proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    proc.stdout.close()


def test_a_timeout_raises_and_run_kills_the_child() -> None:
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        forkserver.run(["-c", "import time; time.sleep(60)"], timeout=0.5)
    assert time.monotonic() - started < 30


def test_python_m_sp_sync_runs_the_cli(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "SP_SYNC_LANGUAGE": "en"}
    done = forkserver.run(
        ["-m", "sp_sync", "status"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    real = subprocess.run(
        [sys.executable, "-m", "sp_sync", "status"],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(forkserver.ROOT)},
        cwd=tmp_path,
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        real.returncode,
        real.stdout,
        real.stderr,
    )
    assert done.returncode == 2 and "SP_SYNC_SITE_URL" in done.stderr


def test_what_a_fork_cannot_honour_gets_a_real_interpreter(tmp_path: Path) -> None:
    """Settings the interpreter fixes at its start (hash seed, sys.path, UTF-8 mode, warning
    filters, locale) cannot change in a fork: such an environment starts a real `python`."""
    base = {**os.environ, "PYTHONPATH": str(forkserver.ROOT)}
    assert forkserver.forkable(base) and forkserver.forkable(None)
    assert forkserver.forkable({**base, "PYTHONIOENCODING": "latin-1", "PYTHONUNBUFFERED": "1"})
    for extra in (
        {"PYTHONHASHSEED": "1"},
        {"PYTHONWARNINGS": "error"},
        {"PYTHONUTF8": "1"},
        {"LC_ALL": "sv_SE.UTF-8"},
        {"PYTHONPATH": f"{tmp_path}{os.pathsep}{forkserver.ROOT}"},
    ):
        assert not forkserver.forkable({**base, **extra}), extra
    code = "import os, sys; print(os.getppid(), sys.flags.utf8_mode)"
    forked = forkserver.run(["-c", code], env=base, capture_output=True, text=True)
    real = forkserver.run(
        ["-c", code], env={**base, "PYTHONUTF8": "1"}, capture_output=True, text=True
    )
    forked_ppid = forked.stdout.split()[0]
    real_ppid, real_utf8 = real.stdout.split()
    assert int(forked_ppid) != os.getpid()  # the server's child
    assert int(real_ppid) == os.getpid() and real_utf8 == "1"  # a real interpreter of ours


def test_signalling_a_child_that_has_just_ended_is_harmless(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server reaps a child before its status reaches the test: in that window poll() still
    says "running" and the pid is gone. Signalling then must not raise (as Popen, bpo-40550)."""
    proc = forkserver.popen(["-c", "pass"])
    assert isinstance(proc, forkserver.ForkedProcess)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until the server has reaped it
        try:
            os.kill(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.01)
    else:
        pytest.fail("the server did not reap its child")
    monkeypatch.setattr(proc, "poll", lambda: None)  # the status not read yet: the window
    proc.send_signal(signal.SIGTERM)
    proc.kill()
    monkeypatch.undo()
    assert proc.wait(10) == 0
