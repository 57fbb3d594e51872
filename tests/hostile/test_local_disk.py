"""Issue 11 item 8: local disk trouble is named. A full disk or an unwritable state directory
ends the run with exit 9 naming the directory and the cause (it used to be exit 1 "unexpected
error"), and never leaves a lock file behind (an empty one blocked the next runs for 62 s)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sp_sync.errors import ExitCode, LocalDiskError
from sp_sync.state.local import LocalStateStore
from tests.reliability.helpers import World, make_world
from tests.reliability.scenarios import record


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path)


def _full_disk(monkeypatch: pytest.MonkeyPatch, *, larger_than: int = 0) -> list[int]:
    """Every os.write of more than `larger_than` bytes in the state store fails with ENOSPC."""
    real_write = os.write
    refused: list[int] = []

    def write(fd: int, data: Any) -> int:
        if len(data) > larger_than:
            refused.append(len(data))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr("sp_sync.state.local.os.write", write)
    return refused


def test_a_full_disk_while_taking_the_lock_leaves_no_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStateStore(tmp_path / "state", language="en")
    with monkeypatch.context() as mp:
        _full_disk(mp)
        with pytest.raises(LocalDiskError) as caught, store.lock("sync-site"):
            pass
    assert caught.value.exit_code == ExitCode.LOCAL_DISK == 9
    assert str(tmp_path / "state") in str(caught.value)
    assert "the disk is full" in str(caught.value)
    assert [p.name for p in (tmp_path / "state" / ".locks").glob("*.lock")] == []
    # Space is back: the next run takes the lock at once (no wait for a ttl).
    with store.lock("sync-site"):
        pass


def test_an_empty_lock_file_left_by_an_older_version_does_not_block(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path / "state")
    with store.lock("sync-site") as held:
        path = held.path
    path.write_bytes(b"")
    with store.lock("sync-site"):
        pass


def test_a_full_disk_during_the_run_is_named_and_loses_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.run()  # a first complete run
    before = world.assert_exact()
    world.change_items(__import__("random").Random(3))
    with monkeypatch.context() as mp:
        refused = _full_disk(mp, larger_than=400)  # lock files fit, snapshots do not
        with pytest.raises(LocalDiskError) as caught:
            world.run()
    assert refused
    message = str(caught.value)
    assert str(world.tmp / "state") in message and "disken är full" in message
    assert not list((world.tmp / "state" / ".locks").glob("*.lock"))
    # The committed state is the previous run's, whole; the next run catches up.
    store = world.store()
    for title, rows in before.items():
        state = store.read_list_state(world.site_url, title)
        assert state is not None and len(state.rows) == rows
    assert world.run().status == "ok"
    sizes = world.assert_exact()
    record(
        "full-disk",
        tries=2,
        failures=0,
        rows_lost=sum(before.values()) - min(sum(before.values()), sum(sizes.values())),
    )


def test_an_unwritable_state_directory_exits_9_naming_it(world: World) -> None:
    target = "/sys/sp-sync-state"  # EPERM even for root, on every Linux
    proc = world.cli_run(SP_SYNC_STATE_DIR=target)
    assert proc.returncode == ExitCode.LOCAL_DISK, (proc.returncode, proc.stderr[-1500:])
    assert target in proc.stderr
    assert "unexpected" not in proc.stderr and "Traceback" not in proc.stderr
