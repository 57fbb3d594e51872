"""Scenario 3: two nightly runs started at once on the same state.

Exactly one syncs; the other stops with RunLockedError (exit 7 from the CLI) and changes nothing:
every changed workbook gets exactly one new version (the winner's upload) and the snapshot is
exact.
Locally with two `sp-sync run` processes; in Azure Blob Storage (Azurite) with two pipeline runs
in threads of one process. Emulator latency on the list reads keeps the winner inside its lock
long enough for the runs to overlap.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from sp_sync.errors import RunLockedError
from tests.helpers.azurite import unique_container
from tests.reliability.helpers import World

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

SYNC_PATHS = r"/items|GetChanges|\$batch"


def _first_night(world: World, **env: str) -> dict[str, int]:
    """A clean first run, then changes, so the contested run is an incremental night."""
    world.run(**env)
    world.change_items(random.Random(3))
    return world.site_versions()


def _assert_one_winner(world: World, versions_before: dict[str, int]) -> None:
    world.assert_exact()
    uploads = [e for e in world.emu.journal() if "/Files/add" in e["path"] and e["status"] == 200]
    after = world.site_versions()
    assert set(after) == set(versions_before)
    # Only workbooks whose content changed get a new version (issue 12 item 9), each exactly
    # once: one run uploaded.
    bumped = [k for k, v in versions_before.items() if after[k] == v + 1]
    assert all(after[k] in (v, v + 1) for k, v in versions_before.items()), after
    assert len(uploads) == len(bumped) >= 1, (len(uploads), bumped)
    world.assert_workbooks_open(expected=len(versions_before))


def test_two_cli_runs_at_once_local(world: World) -> None:
    before = _first_night(world)
    world.emu.reset_stats()
    world.emu.faults.latency(0.4, path=SYNC_PATHS)
    procs = [world.spawn("--json"), world.spawn("--json")]
    done = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 7], (codes, [d[1][-1500:] for d in done])
    loser_err = next(d[1] for p, d in zip(procs, done, strict=True) if p.returncode == 7)
    assert "Traceback" not in loser_err
    assert "sp-sync:" in loser_err and "lås" in loser_err.lower(), loser_err
    world.emu.faults.clear()
    _assert_one_winner(world, before)


@pytest.mark.azurite
def test_two_pipeline_runs_at_once_azurite(world: World, azurite: Any) -> None:
    world.extra_env.update({
        "SP_SYNC_STATE": "azure", "AzureWebJobsStorage": azurite.connection_string,
        "SP_SYNC_STATE_CONTAINER": unique_container("rel"),
    })  # fmt: skip
    before = _first_night(world)
    world.emu.reset_stats()
    world.emu.faults.latency(0.4, path=SYNC_PATHS)
    start = threading.Barrier(2)
    outcomes: list[Any] = [None, None]

    def night(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = world.run()
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=night, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    locked = [o for o in outcomes if isinstance(o, RunLockedError)]
    finished = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(locked) == 1 and len(finished) == 1, outcomes
    assert finished[0].status == "ok", finished[0].errors
    world.emu.faults.clear()
    _assert_one_winner(world, before)
