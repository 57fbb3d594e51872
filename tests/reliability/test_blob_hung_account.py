"""Issue 11 item 4, the whole storage account hung: the overrun is one request's timeout.

The account stops answering every call at the run's first manifest write (the commit point).
The commit's write is cut at the deadline or the 5 s floor; after that the run used to spend one
more floor on the lease release and up to another waiting for the renewal thread. Now, past the
deadline, a store whose call just timed out makes no further write, releases its lease with a
1 s timeout (an unreleased lease just expires) and does not wait on the renewal thread: the run
ends within budget + one request timeout, and the next run (account healthy) loses no row."""

from __future__ import annotations

import time

import pytest

from sp_sync.errors import ExitCode
from sp_sync.state.blob import MIN_REQUEST_TIMEOUT
from tests.helpers.azurite import Azurite, unique_container
from tests.reliability.helpers import World
from tests.reliability.scenarios import record
from tests.reliability.test_blob_budget import (
    HANG,
    HangingBlobProxy,
    _is_manifest_write,
    first_night_through,
)

pytestmark = [pytest.mark.azurite]

#: Long enough that the run reaches its first manifest write (where the account hangs) on a
#: loaded 2-core machine, as test_blob_budget's BUDGET: with 3 s, a run slowed by the full suite
#: beside other work ran out of budget before its commit and the test failed (seen once in a
#: full run at load 4-6) without saying anything about a hung account.
BUDGET = 10
#: Process start-up (imports), the summary and a loaded 2-core machine. 5 s, not the 8 s it was
#: with a 3 s budget: the quiet run ends about 12 s after its start (2 s after the deadline),
#: so the limit stays about 8 s above it, as before, and an overrun of one more request floor
#: past the deadline is caught as often as before.
SLACK = 5.0


def _break_leases(azurite: Azurite, container: str) -> list[str]:
    """Break every lease still held on the container's lock blobs; their names."""
    from azure.storage.blob import BlobLeaseClient, ContainerClient

    client = ContainerClient.from_connection_string(azurite.connection_string, container)
    broken = []
    for blob in client.list_blobs(name_starts_with=".locks/"):
        if blob.lease.state == "leased":
            BlobLeaseClient(client.get_blob_client(blob.name)).break_lease(lease_break_period=0)
            broken.append(blob.name)
    return broken


class WholeAccountHang:
    """Once `trigger` matches, every later request is held too (none reaches Azurite)."""

    def __init__(self) -> None:
        self.tripped = False

    def __call__(self, method: str, path: str) -> bool:
        if not self.tripped and _is_manifest_write(method, path):
            self.tripped = True
        return self.tripped


def test_a_whole_hung_account_costs_one_timeout_past_the_budget(
    world: World, azurite: Azurite
) -> None:
    container = unique_container("hungacct")
    proxy = HangingBlobProxy(azurite.blob_port, lambda m, p: False, forward=False)
    # Hold every request, not only the first one matching.
    proxy.hang_all = True
    try:
        direct, before = first_night_through(world, azurite, proxy, container, seed=12)

        proxy.predicate = WholeAccountHang()
        started = time.monotonic()
        proc = world.cli_run(SP_SYNC_TIME_BUDGET_SECONDS=str(BUDGET), timeout=HANG * 2)
        elapsed = time.monotonic() - started
        print(f"hung account: elapsed {elapsed:.2f} s, held {len(proxy.hung)} requests")
        assert proxy.hung, "the account never hung"
        assert proc.returncode == ExitCode.RETRY_LATER, (proc.returncode, proc.stderr[-2000:])
        err = proc.stderr.lower()
        assert "oväntat" not in err and "traceback" not in err, proc.stderr[-2000:]
        assert elapsed < BUDGET + MIN_REQUEST_TIMEOUT + SLACK, elapsed

        proxy.release()
        proxy.predicate = lambda m, p: False
        for title in before:
            assert direct.read_list_state(world.site_url, title) is not None, title
        # The leases left behind (the late release could not get through) would expire
        # within their 60 s; break them instead of waiting, as their expiry would.
        held = _break_leases(azurite, container)
        assert held, "no lease was left behind: the account was not hung at the release"
        again = world.cli_run()
        assert again.returncode == ExitCode.OK, again.stderr[-2000:]
        sizes = world.assert_exact(direct)
        record(
            "blob-hung-account",
            tries=1,
            failures=0,
            rows_lost=sum(len(world.list_rows(t)) for t in sizes) - sum(sizes.values()),
        )
    finally:
        proxy.close()
