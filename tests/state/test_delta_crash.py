"""A process killed (SIGKILL) at any point of a delta commit leaves the old or the new state,
readable, and the next night converges; cleanup never removes the base a live manifest names.
The child is tests/state/runner.py (`night`)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pandas as pd
import pytest

from sp_sync.state import BlobStateStore, LocalStateStore, StateStore, delta
from tests.helpers.azurite import Azurite, unique_container
from tests.state.helpers import night_rows, quality
from tests.state.runner import LIST, SITE, commit_night
from tests.state.test_crash import generation_dirs, run_child

# (crash point, the night a reader must see afterwards: 3 = old, 4 = new)
LOCAL_POINTS = [
    ("mid-write", 3),  # half of delta.parquet written to its temp file
    ("after-delta", 3),
    ("after-quality", 3),
    ("before-manifest", 3),
    ("mid-write:3", 3),  # half of the new manifest written to its temp file
    ("after-manifest", 4),
    ("mid-cleanup", 4),  # removing night 2's folder (not the base's)
]
AZURE_POINTS = [
    ("after-delta", 3),
    ("before-manifest", 3),
    ("after-manifest", 4),
    ("mid-cleanup", 4),
]


@pytest.fixture(autouse=True)
def deltas_for_the_test_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delta, "DELTA_MIN_BASE_ROWS", 100)  # as the child sets it


def assert_night(store: StateStore) -> int:
    """The state is exactly one night's rows + quality + checkpoint; return which."""
    state = store.read_list_state(SITE, LIST)
    assert state is not None
    n = int(str(state.checkpoint.change_token).removeprefix("token-"))
    pd.testing.assert_frame_equal(state.rows, night_rows(n), check_exact=True)
    pd.testing.assert_frame_equal(state.quality, quality(n), check_exact=True)
    return n


def manifest(store: StateStore) -> dict[str, object]:
    doc, _ = store.read_json("contoso.sharepoint.com_sites_team/dialoger/checkpoint.json")
    assert doc is not None
    return doc


def crash_and_recover(
    store: StateStore, kind: str, target: str, container: str, point: str, seen: int
) -> None:
    commit_night(store, 1)  # the first commit: the full base file
    base = str(manifest(store)["directory"])
    commit_night(store, 2)
    commit_night(store, 3)
    assert manifest(store)["format"] == 2 and manifest(store)["base_directory"] == base
    result = run_child(kind, target, container, "night", "4", crash_at=point)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert "COMMITTED" not in result.stdout
    assert assert_night(store) == seen
    # The next night converges on top, as a delta over the same base, and the killed run's
    # files disappear: left are the base, the previous and the current generation.
    commit_night(store, 5)
    assert assert_night(store) == 5
    assert manifest(store)["base_directory"] == base
    dirs = generation_dirs(store)
    assert [d.split("-")[0] for d in dirs] == ["g1", f"g{seen}", f"g{seen + 1}"], dirs
    assert base in dirs
    assert not [k for k in store.list_keys("") if ".tmp-" in k]


@pytest.mark.reliability
@pytest.mark.parametrize(("point", "seen"), LOCAL_POINTS)
def test_local_delta_commit_killed_at_each_point(tmp_path: Path, point: str, seen: int) -> None:
    root = tmp_path / "state"
    crash_and_recover(LocalStateStore(root), "local", str(root), "-", point, seen)


@pytest.mark.reliability
@pytest.mark.azurite
@pytest.mark.parametrize(("point", "seen"), AZURE_POINTS)
def test_blob_delta_commit_killed_at_each_point(azurite: Azurite, point: str, seen: int) -> None:
    container = unique_container()
    store = BlobStateStore(azurite.connection_string, container, retry_total=1)
    crash_and_recover(store, "azure", azurite.connection_string, container, point, seen)


def test_blob_store_reads_and_cleans_deltas_as_the_local_one(azurite: Azurite) -> None:
    """The blob store writes the same files (delta.parquet in the new generation, the base's
    rows.parquet kept) and reads back the same frames."""
    store = BlobStateStore(azurite.connection_string, unique_container(), retry_total=1)
    commit_night(store, 1)
    base = str(manifest(store)["directory"])
    for n in range(2, 6):
        commit_night(store, n)
        assert assert_night(store) == n
    doc = manifest(store)
    assert doc["format"] == 2 and doc["base_directory"] == base
    keys = [k.split("/", 2)[2] for k in store.list_keys("contoso.sharepoint.com_sites_team/")]
    assert sorted(k for k in keys if k != "checkpoint.json") == sorted(
        [
            f"{base}/quality.parquet",
            f"{base}/rows.parquet",
            f"{doc['previous_directory']}/delta.parquet",
            f"{doc['previous_directory']}/quality.parquet",
            f"{doc['directory']}/delta.parquet",
            f"{doc['directory']}/quality.parquet",
        ]
    )
    # Past 10 % of the 200 rows (IDs 1..25 edited): a full file again, the base kept while the
    # previous manifest names it, then removed.
    commit_night(store, 25)
    assert manifest(store)["format"] == 1
    assert base in generation_dirs(store)
    commit_night(store, 26)
    assert assert_night(store) == 26
    assert base not in generation_dirs(store)


def test_local_manifest_names_both_files(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path / "state")
    commit_night(store, 1)
    commit_night(store, 2)
    folder = tmp_path / "state" / "contoso.sharepoint.com_sites_team" / "dialoger"
    doc = json.loads((folder / "checkpoint.json").read_bytes())
    assert (folder / doc["rows"]).is_file() and (folder / doc["delta"]).is_file()
    assert doc["rows"].startswith(doc["base_directory"] + "/")
