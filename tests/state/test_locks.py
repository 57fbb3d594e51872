"""Run locks across processes, stale-lock takeover and the lock heartbeat."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sp_sync.errors import RunLockedError
from sp_sync.state import BlobStateStore, LocalStateStore
from tests.helpers import forkserver
from tests.helpers.azurite import Azurite, unique_container

RUNNER = Path(__file__).with_name("runner.py")
REPO = Path(__file__).resolve().parents[2]
SITE = "https://contoso.sharepoint.com/sites/team"


@pytest.fixture
def holder() -> Iterator[list[Any]]:
    """The lock-holding child processes a test started (Popen or the fork server's)."""
    procs: list[Any] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


def start_holder(procs: list[Any], *args: str) -> Any:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SP_SYNC_STATE_CRASH_AT", None)
    proc = forkserver.popen([str(RUNNER), *args], env=env, stdout=subprocess.PIPE, text=True)
    procs.append(proc)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "LOCKED"
    return proc


def write_lock_file(store: LocalStateStore, *, pid: int, host: str, age: float) -> Path:
    path = store.root / ".locks" / "contoso.sharepoint.com_sites_team.lock"
    path.write_text(
        json.dumps(
            {"token": "t", "pid": pid, "host": host, "acquired_at": "2026-11-27T01:00:00+00:00"}
        )
    )
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_local_lock_held_by_another_process(tmp_path: Path, holder: list) -> None:
    root = tmp_path / "state"
    proc = start_holder(holder, "local", str(root), "-", "hold", SITE, "0.5")
    store = LocalStateStore(root)
    with pytest.raises(RunLockedError, match=r"sedan 20\d\d-"), store.lock(SITE):
        pass
    time.sleep(1.0)  # older than its ttl, but the heartbeat keeps it fresh
    with pytest.raises(RunLockedError), store.lock(SITE):
        pass
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    time.sleep(0.7)  # heartbeat silent for longer than the ttl and the pid is gone
    with store.lock(SITE) as held:
        held.check()


@pytest.mark.azurite
def test_blob_lease_held_by_another_process(azurite: Azurite, holder: list) -> None:
    container = unique_container()
    proc = start_holder(holder, "azure", azurite.connection_string, container, "hold", SITE, "15")
    store = BlobStateStore(azurite.connection_string, container, retry_total=1)
    with pytest.raises(RunLockedError, match=r"sedan 20\d\d-"), store.lock(SITE):
        pass
    # Killed without releasing: the lease still holds until it expires (15–60 s).
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    with pytest.raises(RunLockedError), store.lock(SITE):
        pass


def test_stale_lock_of_a_dead_process_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = LocalStateStore(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_lock_file(store, pid=dead.pid, host=socket.gethostname(), age=120)
    with (
        caplog.at_level(logging.WARNING, logger="sp_sync.state"),
        store.lock(SITE, ttl_seconds=60) as held,
    ):
        held.check()
    assert any("Taking over the stale run lock" in r.getMessage() for r in caplog.records)


def test_old_lock_of_a_live_process_is_respected(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    write_lock_file(store, pid=os.getppid(), host=socket.gethostname(), age=3600)
    with pytest.raises(RunLockedError, match="2026-11-27T01:00:00"), store.lock(SITE):
        pass


def test_lock_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path: Path) -> None:
    # A run killed with SIGKILL must not block the rerun for a whole ttl.
    store = LocalStateStore(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_lock_file(store, pid=dead.pid, host=socket.gethostname(), age=1)
    with store.lock(SITE, ttl_seconds=60):
        pass
    assert not list((tmp_path / ".locks").glob("*.lock"))  # released


def test_fresh_lock_of_a_live_process_is_respected(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        write_lock_file(store, pid=live.pid, host=socket.gethostname(), age=1)
        with pytest.raises(RunLockedError), store.lock(SITE, ttl_seconds=60):
            pass
    finally:
        live.kill()
        live.wait()


def test_silent_lock_from_another_host_is_taken_over(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    write_lock_file(store, pid=1, host="some-other-instance", age=120)
    with store.lock(SITE, ttl_seconds=60):
        pass
    assert not list((tmp_path / ".locks").glob("*.lock"))  # released


def test_lock_is_not_reentrant_within_a_process(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    with store.lock(SITE), pytest.raises(RunLockedError), LocalStateStore(tmp_path).lock(SITE):
        pass
