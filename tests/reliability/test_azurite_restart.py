"""Scenario 4: Azurite stopped and restarted in the middle of a run (SP_SYNC_STATE=azure).

A persistent Azurite on its own ports. The second night's `sp-sync run` process is in the middle
of its sync (emulator latency keeps it there) when Azurite is stopped; it comes back two seconds
later on the same ports, or only after the run gave up (that run has a 15 s time budget, which
bounds the storage SDK's real retries as SP_SYNC_TIME_BUDGET_SECONDS does on Azure; without it,
every storage call's full retry chain made the run take ~90 s). The run either completes (the
storage SDK's retries bridged the gap) or fails with a clear retryable error: exit 6, a plain
sentence, no traceback. Meanwhile every list's committed state is either the previous snapshot
or the new exact one, never a mix or unreadable; a rerun converges to the exact list.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest

from tests.helpers.azurite import Azurite, AzuriteMissingError, unique_container
from tests.reliability.helpers import SCHEMAS, RequestTrigger, World, is_sync_request

pytestmark = [pytest.mark.reliability, pytest.mark.azurite, pytest.mark.slow]


@pytest.fixture
def own_azurite() -> Iterator[Azurite]:
    az = Azurite(persistent=True)
    try:
        az.start()
    except AzuriteMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield az
    finally:
        az.close()


@pytest.mark.parametrize("outage", ["2s", "until-the-run-gives-up"])
def test_azurite_restart_mid_run(world: World, own_azurite: Azurite, outage: str) -> None:
    az = own_azurite
    world.extra_env.update(
        {
            "SP_SYNC_STATE": "azure",
            "AzureWebJobsStorage": az.connection_string,
            "SP_SYNC_STATE_CONTAINER": unique_container("restart"),
        }
    )
    first = world.cli_run()
    assert first.returncode == 0, first.stderr[-2000:]
    store = world.store()
    previous = {t: world.snapshot_rows(store, t) for t in SCHEMAS.lists}
    world.change_items(random.Random(4), edits=8, deletes=3, adds=4)

    back = threading.Event()

    def stop_azurite() -> None:
        az.stop()  # SIGTERM: a persistent Azurite saves its data, as a recycled host would

        def restart() -> None:
            az.start()  # same ports, so the connection string stays valid
            back.set()

        if outage == "2s":
            threading.Timer(2.0, restart).start()

    trigger = RequestTrigger(world.emu)
    trigger.when(is_sync_request, 2, stop_azurite, "Azurite stopped")
    world.emu.faults.latency(0.3, path=r"/items|GetChanges|\$batch")
    # The outage that outlasts the run: a short time budget bounds the storage SDK's real
    # retries (BudgetRetry stops retrying once a backoff would end past the deadline), so the
    # run gives up in seconds instead of after every call's full retry chain (~90 s).
    budget = "1500" if outage == "2s" else "15"  # 1500: the default
    night = world.cli_run(SP_SYNC_TIME_BUDGET_SECONDS=budget)
    assert trigger.fired == ["Azurite stopped"]
    if outage == "2s":
        assert back.wait(30), az.output()[-2000:]
        # Usually the storage SDK's retries bridge two seconds; a failure must still be clean.
        assert night.returncode in (0, 6), (night.returncode, night.stderr[-2000:])
    else:
        assert night.returncode == 6, (night.returncode, night.stderr[-2000:])
        az.start()
    assert "Traceback" not in night.stderr
    if night.returncode == 6:
        assert "Azure Storage" in night.stderr, night.stderr[-2000:]
    world.emu.faults.clear()

    # Never corrupted: each list holds the previous snapshot or the new exact one.
    store = world.store()
    for title in SCHEMAS.lists:
        rows = world.snapshot_rows(store, title)
        assert rows in (previous[title], world.list_rows(title)), title

    for _attempt in range(3):
        rerun = world.cli_run()
        if rerun.returncode == 0:
            break
    assert rerun.returncode == 0, (rerun.returncode, rerun.stderr[-2000:])
    world.assert_exact(world.store())
    world.assert_workbooks_open(expected=27)
