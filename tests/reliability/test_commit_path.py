"""The local state commit, interrupted at each crash point in-process, and its conflict path.

tests/state/test_crash.py kills real processes at the crash points; those children are invisible
to in-process tooling (mutation testing maps tests to the code they run in-process). Here the
crash point raises instead of killing, at exactly the named point, so the same promises are
checked in-process: an interrupted commit leaves the previous state readable and unchanged, the
next commit succeeds, a conflict names the list and leaves no generation directory behind.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sp_sync.state import base, local
from sp_sync.state.hooks import POINTS
from tests.state.helpers import quality, snapshot
from tests.state.test_contract import LIST, SITE, checkpoint

COMMIT_POINTS = ("after-rows", "after-quality", "before-manifest", "after-manifest")


class _Crash(Exception):
    pass


def _crash_at(monkeypatch: pytest.MonkeyPatch, point: str) -> list[str]:
    seen: list[str] = []

    def crash_point(name: str) -> None:
        assert name in POINTS, f"unknown crash point {name!r}"
        seen.append(name)
        if name == point:
            raise _Crash(name)

    monkeypatch.setattr(local, "crash_point", crash_point)
    return seen


def _generations(store: local.LocalStateStore) -> list[str]:
    folder = store.root / base.list_prefix(SITE, LIST)
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def test_a_commit_interrupted_in_the_middle_of_a_file_keeps_the_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = local.LocalStateStore(tmp_path)
    etag = store.commit_list_state(
        SITE, LIST, snapshot(1), quality(1), checkpoint(1), expected_etag=None
    )
    _crash_at(monkeypatch, "mid-write")
    with pytest.raises(_Crash):
        store.commit_list_state(
            SITE, LIST, snapshot(2), quality(2), checkpoint(2), expected_etag=etag
        )
    folder = store.root / base.list_prefix(SITE, LIST)
    assert not [p for p in folder.rglob("*") if p.name.startswith(local._TMP_PREFIX)]
    state = store.read_list_state(SITE, LIST)
    assert state is not None and state.etag == etag
    pd.testing.assert_frame_equal(state.rows, snapshot(1), check_exact=True)


@pytest.mark.parametrize("point", COMMIT_POINTS)
def test_a_commit_interrupted_at_each_point_keeps_a_readable_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    store = local.LocalStateStore(tmp_path)
    etag = store.commit_list_state(
        SITE, LIST, snapshot(1), quality(1), checkpoint(1), expected_etag=None
    )
    seen = _crash_at(monkeypatch, point)
    with pytest.raises(_Crash):
        store.commit_list_state(
            SITE, LIST, snapshot(2), quality(2), checkpoint(2), expected_etag=etag
        )
    # Each file is written through a temp file, which the mid-write point interrupts.
    assert [p for p in seen if p != "mid-write"] == list(
        COMMIT_POINTS[: COMMIT_POINTS.index(point) + 1]
    )
    files_written = {"after-rows": 1, "after-quality": 2, "before-manifest": 2, "after-manifest": 3}
    assert seen.count("mid-write") == files_written[point]
    state = store.read_list_state(SITE, LIST)
    assert state is not None
    new = point == "after-manifest"  # the manifest is the commit: written means committed
    expected = 2 if new else 1
    pd.testing.assert_frame_equal(state.rows, snapshot(expected), check_exact=True)
    pd.testing.assert_frame_equal(state.quality, quality(expected), check_exact=True)
    assert state.checkpoint.generation == expected
    monkeypatch.undo()
    # The next run goes on from whatever is committed.
    again = store.commit_list_state(
        SITE, LIST, snapshot(3), quality(3), checkpoint(3), expected_etag=state.etag
    )
    state = store.read_list_state(SITE, LIST)
    assert state is not None and state.etag == again
    pd.testing.assert_frame_equal(state.rows, snapshot(3), check_exact=True)


def test_a_conflict_names_the_list_and_leaves_no_generation_behind(tmp_path: Path) -> None:
    store = local.LocalStateStore(tmp_path)
    first = store.commit_list_state(
        SITE, LIST, snapshot(1), quality(1), checkpoint(1), expected_etag=None
    )
    before = _generations(store)
    with pytest.raises(base.StateConflictError) as info:
        store.commit_list_state(
            SITE, LIST, snapshot(2), quality(2), checkpoint(2), expected_etag="stale"
        )
    assert f"{SITE} / {LIST}" in str(info.value)
    assert _generations(store) == before
    state = store.read_list_state(SITE, LIST)
    assert state is not None and state.etag == first


def test_a_conflict_found_under_the_mutex_removes_the_new_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another run commits between our data files and our manifest: ours is dropped whole."""
    store = local.LocalStateStore(tmp_path)
    first = store.commit_list_state(
        SITE, LIST, snapshot(1), quality(1), checkpoint(1), expected_etag=None
    )
    other = local.LocalStateStore(tmp_path)

    def crash_point(name: str) -> None:
        if name == "after-quality":
            monkeypatch.setattr(local, "crash_point", lambda _name: None)
            other.commit_list_state(
                SITE, LIST, snapshot(5), quality(5), checkpoint(5), expected_etag=first
            )

    monkeypatch.setattr(local, "crash_point", crash_point)
    with pytest.raises(base.StateConflictError) as info:
        store.commit_list_state(
            SITE, LIST, snapshot(2), quality(2), checkpoint(2), expected_etag=first
        )
    assert f"{SITE} / {LIST}" in str(info.value)
    state = store.read_list_state(SITE, LIST)
    assert state is not None
    pd.testing.assert_frame_equal(state.rows, snapshot(5), check_exact=True)
    # Our generation directory is gone: only the other run's (and its predecessor) remain.
    assert len(_generations(store)) <= 2, _generations(store)
