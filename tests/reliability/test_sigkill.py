"""Scenario 2: `sp-sync run` killed with SIGKILL at deterministic points across runs.

Each kill happens at an exact place, never after a guessed delay, so the test kills the same
runs at the same points on a fast or a loaded machine:

- at the state commit's crash points (`SP_SYNC_STATE_CRASH_AT=<point>:<n>`, see
  `sp_sync/state/hooks.py`): the process kills itself the n-th time a commit reaches the point;
- at the n-th sync request or the n-th workbook upload: the emulator (in this process) kills the
  client while that request is in flight, before answering it.

Items change before every run; some runs are `--full` re-reads. Every kill must really
hit (exit by SIGKILL, not a finished run); after each, every list's committed snapshot must be
either the one before the run or exactly the list now — never a mix, never unreadable. At the
end a run converges: the snapshot equals the list exactly and every workbook on the site opens.
"""

from __future__ import annotations

import random
import signal
import subprocess
from collections import Counter
from collections.abc import Callable

import pytest

from tests.reliability.helpers import (
    SCHEMAS,
    RequestTrigger,
    World,
    is_sync_request,
    is_upload_request,
)

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

#: (where, n, full): a crash point of the commit path or of the sync engine, or the n-th request
#: of a kind, in an incremental or a `--full` run. Spread over the sync (requests, pages,
#: commits), every step of a commit and the upload. An incremental run after the edits below
#: commits each point once (twice for mid-write), so the n > 1 points are in full runs.
KILL_POINTS: tuple[tuple[str, int, bool], ...] = (
    ("sync request", 1, False),
    ("after-rows", 1, False),
    ("sync-page", 2, True),
    ("sync-before-commit", 1, False),
    ("after-quality", 1, False),
    ("before-manifest", 3, True),
    ("mid-write", 2, False),
    ("upload request", 1, False),
    ("after-manifest", 1, False),
    ("mid-cleanup", 1, False),
    ("sync request", 3, True),
    ("upload request", 2, False),
    ("after-manifest", 3, True),
    ("mid-cleanup", 3, True),
)
_REQUEST_KINDS: dict[str, Callable[[str, str], bool]] = {
    "sync request": is_sync_request,
    "upload request": is_upload_request,
}


def _kill_run(world: World, where: str, nth: int, *args: str) -> subprocess.CompletedProcess[str]:
    """One `sp-sync run` killed at (`where`, `nth`)."""
    if where in _REQUEST_KINDS:
        trigger = RequestTrigger(world.emu)
        proc = world.spawn(*args)
        trigger.when(_REQUEST_KINDS[where], nth, lambda: proc.send_signal(signal.SIGKILL), where)
        try:
            out, err = proc.communicate(timeout=120)
        finally:
            trigger.clear()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return world.cli_run(*args, SP_SYNC_STATE_CRASH_AT=f"{where}:{nth}")


def test_sigkill_at_deterministic_points_then_converges(world: World) -> None:
    rng = random.Random(20260607)
    first = world.cli_run()
    assert first.returncode == 0, first.stderr[-2000:]
    store = world.store()
    hit: Counter[str] = Counter()
    for i, (where, nth, full) in enumerate(KILL_POINTS):
        world.change_items(rng, edits=3, deletes=1, adds=2)
        before = {t: world.snapshot_rows(store, t) for t in SCHEMAS.lists}
        done = _kill_run(world, where, nth, *(["--full"] if full else []))
        # Deterministic: the run was killed at that point, it did not finish or fail otherwise.
        assert done.returncode == -signal.SIGKILL, (i, where, nth, done.returncode, done.stderr)
        hit[where] += 1
        # Whatever the point, each list holds its previous snapshot or the new exact one.
        for title in SCHEMAS.lists:
            now = world.snapshot_rows(store, title)
            assert now in (before[title], world.list_rows(title)), (i, where, nth, title)
    assert sum(hit.values()) == len(KILL_POINTS)

    done = world.cli_run()
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    world.assert_exact()
    world.assert_workbooks_open(expected=27)
