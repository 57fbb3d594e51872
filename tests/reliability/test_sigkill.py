"""Scenario 2: `sp-sync run` killed with SIGKILL at 20 random points across runs.

A reference run (not killed) measures when the sync, the rollup and the upload happen after the
process starts; then 20 runs are killed after seeded random delays spread over those three
phases (emulator latency widens each of them), with items changed between kills and every
fourth run a `--full` re-read. After each kill the committed state must still read; at the end
runs are repeated until one exits 0, and the snapshot must equal the list exactly and every
workbook on the site must open.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter

import pytest

from tests.reliability.reliability_support import SCHEMAS, World, is_sync_request, is_upload_request

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

KILLS = 20
PHASES = ("sync", "rollup", "upload")


def _phase_windows(world: World) -> dict[str, tuple[float, float]]:
    """Seconds after spawn at which each phase runs, measured on an unkilled run."""
    world.emu.reset_stats()
    started = time.time()
    done = world.cli_run()
    ended = time.time()
    assert done.returncode == 0, done.stderr[-2000:]
    journal = world.emu.journal()
    sync = [e["time"] - started for e in journal if is_sync_request(e["method"], e["path"])]
    upload = [e["time"] - started for e in journal if is_upload_request(e["method"], e["path"])]
    assert sync and upload
    return {
        "sync": (min(sync), max(sync)),
        "rollup": (max(sync), min(upload)),
        "upload": (min(upload), ended - started),
    }


def _phase_reached(world: World) -> str:
    """The phase the killed run was in, from what the emulator saw."""
    journal = world.emu.journal()
    if any(is_upload_request(e["method"], e["path"]) for e in journal):
        return "upload"
    if any(is_sync_request(e["method"], e["path"]) for e in journal):
        return "sync/rollup"
    return "start"


def test_sigkill_at_20_random_points_then_converges(world: World) -> None:
    rng = random.Random(20260607)
    world.emu.faults.latency(0.02)  # every request; widens each phase without slowing much
    windows = _phase_windows(world)
    reached: Counter[str] = Counter()
    store = world.store()
    for i in range(KILLS):
        if i % 2:
            world.change_items(rng, edits=3, deletes=1, adds=2)
        phase = PHASES[i % len(PHASES)]
        low, high = windows[phase]
        world.emu.reset_stats()
        proc = world.spawn(*(["--full"] if i % 4 == 3 else []))
        time.sleep(rng.uniform(low, max(low, high)))
        proc.send_signal(signal.SIGKILL)
        _out, err = proc.communicate(timeout=60)
        if proc.returncode == 0:
            reached["finished before the kill"] += 1
        else:
            assert proc.returncode == -signal.SIGKILL, (i, proc.returncode, err[-2000:])
            reached[_phase_reached(world)] += 1
        # Whatever instant the kill hit, the committed state still reads (never half-written).
        for title in SCHEMAS.lists:
            store.read_list_state(world.site_url, title)
    # The kills really spread over the run, not all before it started or after it ended.
    assert reached["upload"] >= 3 and reached["sync/rollup"] >= 3, reached

    world.emu.faults.clear()
    for _attempt in range(3):
        done = world.cli_run()
        if done.returncode == 0:
            break
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    world.assert_exact()
    world.assert_workbooks_open(expected=27)
