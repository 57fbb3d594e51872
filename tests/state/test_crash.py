"""A process killed (SIGKILL) at any point of a commit leaves the old or the new state, never a
broken one, and the next commit cleans up after it. The child is tests/state/runner.py."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from sp_sync.state import BlobStateStore, LocalStateStore, StateStore, SyncCheckpoint
from tests.helpers import forkserver
from tests.helpers.azurite import Azurite, unique_container
from tests.state.helpers import quality, snapshot

RUNNER = Path(__file__).with_name("runner.py")
REPO = Path(__file__).resolve().parents[2]
SITE = "https://contoso.sharepoint.com/sites/team"
LIST = "Dialoger"

# (crash point, the generation a reader must see afterwards: 2 = old, 3 = new)
LOCAL_POINTS = [
    ("mid-write", 2),  # half of rows.parquet written to its temp file
    ("after-rows", 2),
    ("after-quality", 2),
    ("before-manifest", 2),
    ("mid-write:3", 2),  # half of the new manifest written to its temp file
    ("after-manifest", 3),
    ("mid-cleanup", 3),
]
AZURE_POINTS = [
    p for p in LOCAL_POINTS if not p[0].startswith("mid-write") and p[0] != "after-quality"
]
# rows written, quality not: covered on Azure by "after-rows", locally by "after-quality".
LOCAL_POINTS = [p for p in LOCAL_POINTS if p[0] != "after-rows"]


def run_child(
    kind: str, target: str, container: str, *args: str, crash_at: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SP_SYNC_STATE_CRASH_AT", None)
    if crash_at:
        env["SP_SYNC_STATE_CRASH_AT"] = crash_at
    return forkserver.run(
        [str(RUNNER), kind, target, container, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def commit(store: StateStore, n: int) -> str:
    current = store.read_list_state(SITE, LIST)
    return store.commit_list_state(
        SITE,
        LIST,
        snapshot(n),
        quality(n),
        SyncCheckpoint(change_token=f"token-{n}", item_count=3, schema_version="v1"),
        expected_etag=current.etag if current else None,
    )


def assert_consistent(store: StateStore) -> int:
    """The state is exactly one generation's rows + quality + checkpoint; return which."""
    state = store.read_list_state(SITE, LIST)
    assert state is not None
    n = int(str(state.checkpoint.change_token).removeprefix("token-"))
    pd.testing.assert_frame_equal(state.rows, snapshot(n), check_exact=True)
    pd.testing.assert_frame_equal(state.quality, quality(n), check_exact=True)
    return n


def generation_dirs(store: StateStore) -> list[str]:
    keys = store.list_keys("contoso.sharepoint.com_sites_team/dialoger/")
    return sorted({k.split("/")[2] for k in keys if k.count("/") == 3})


def crash_and_recover(
    store: StateStore, kind: str, target: str, container: str, point: str, seen: int
) -> None:
    commit(store, 1)
    commit(store, 2)
    result = run_child(kind, target, container, "commit", "3", crash_at=point)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert "COMMITTED" not in result.stdout
    assert assert_consistent(store) == seen
    # The next run converges: it commits on top and stray files of the killed run disappear.
    commit(store, 4)
    assert assert_consistent(store) == 4
    dirs = generation_dirs(store)
    assert [d.split("-")[0] for d in dirs] == [f"g{seen}", f"g{seen + 1}"], dirs
    assert not [k for k in store.list_keys("") if ".tmp-" in k]


@pytest.mark.reliability
@pytest.mark.parametrize(("point", "seen"), LOCAL_POINTS)
def test_local_commit_killed_at_each_point(tmp_path: Path, point: str, seen: int) -> None:
    root = tmp_path / "state"
    crash_and_recover(LocalStateStore(root), "local", str(root), "-", point, seen)


@pytest.mark.reliability
@pytest.mark.azurite
@pytest.mark.parametrize(("point", "seen"), AZURE_POINTS)
def test_blob_commit_killed_at_each_point(azurite: Azurite, point: str, seen: int) -> None:
    container = unique_container()
    store = BlobStateStore(azurite.connection_string, container, retry_total=1)
    crash_and_recover(store, "azure", azurite.connection_string, container, point, seen)


def test_stray_manifest_temp_file_is_ignored_then_cleaned(tmp_path: Path) -> None:
    root = tmp_path / "state"
    store = LocalStateStore(root)
    commit(store, 1)
    result = run_child("local", str(root), "-", "commit", "2", crash_at="mid-write:3")
    assert result.returncode == -signal.SIGKILL
    folder = root / "contoso.sharepoint.com_sites_team" / "dialoger"
    (stray,) = folder.glob(".tmp-*checkpoint.json")
    assert 0 < stray.stat().st_size < len((folder / "checkpoint.json").read_bytes()) + 200
    assert assert_consistent(store) == 1
    assert not [k for k in store.list_keys("") if ".tmp-" in k]
    # Old enough (a killed run's leftover, not a live writer's): removed by the next commit.
    os.utime(stray, (time.time() - 3600, time.time() - 3600))
    commit(store, 3)
    assert not stray.exists()


@pytest.mark.reliability
@pytest.mark.slow
def test_random_kills_during_a_commit_loop_never_break_the_state(tmp_path: Path) -> None:
    root = tmp_path / "state"
    store = LocalStateStore(root)
    commit(store, 1)
    rng = random.Random(4)
    seen = []
    for _ in range(3):
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("SP_SYNC_STATE_CRASH_AT", None)
        proc = forkserver.popen(
            [str(RUNNER), "local", str(root), "-", "loop", "100000"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("COMMITTED")  # inside the loop now
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        seen.append(assert_consistent(store))
    assert seen[-1] >= 2
    commit(store, 1000)
    assert assert_consistent(store) == 1000
