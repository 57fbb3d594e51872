"""Child process for crash and lock tests: `python runner.py <kind> <target> <action> [args]`.

kind: local (target = state dir) | azure (target = connection string; container in argv).
Actions:
  commit <generation>        commit snapshot(generation) over whatever is there
  night <n>                  commit night_rows(n) as an incremental night (a delta)
  loop <count>               commit generations 2.. count in a loop (for random kills)
  hold <name> <ttl>          take the run lock, print LOCKED, sleep until killed
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sp_sync.state import LocalStateStore, StateStore, SyncCheckpoint, delta
from sp_sync.state.base import Changes
from tests.state.helpers import NIGHT_ROWS, night_rows, quality, snapshot

SITE = "https://contoso.sharepoint.com/sites/team"
LIST = "Dialoger"


def open_store(kind: str, target: str, container: str) -> StateStore:
    if kind == "local":
        return LocalStateStore(Path(target))
    from sp_sync.state.blob import BlobStateStore  # only Azure runs pay for the SDK import

    return BlobStateStore(target, container, retry_total=0)


def commit(store: StateStore, generation: int) -> None:
    current = store.read_list_state(SITE, LIST)
    store.commit_list_state(
        SITE,
        LIST,
        snapshot(generation),
        quality(generation),
        SyncCheckpoint(change_token=f"token-{generation}", item_count=3, schema_version="v1"),
        expected_etag=current.etag if current else None,
    )


def commit_night(store: StateStore, night: int) -> None:
    """Commit `night_rows(night)` as the sync does after an incremental read: with what changed
    since the state read (IDs 1..night), so a large enough list gets a delta."""
    current = store.read_list_state(SITE, LIST)
    changes = None
    if current is not None and current.stored is not None:
        changes = Changes(current.stored, frozenset(range(1, night + 1)), {}, current.rows_file)
    store.commit_list_state(
        SITE,
        LIST,
        night_rows(night),
        quality(night),
        SyncCheckpoint(change_token=f"token-{night}", item_count=NIGHT_ROWS, schema_version="v1"),
        expected_etag=current.etag if current else None,
        changes=changes,
    )


def main() -> None:
    kind, target, container, action, *args = sys.argv[1:]
    store = open_store(kind, target, container)
    if action == "commit":
        commit(store, int(args[0]))
        print("COMMITTED", flush=True)
    elif action == "night":
        delta.DELTA_MIN_BASE_ROWS = 100  # the test list (200 rows) gets deltas
        commit_night(store, int(args[0]))
        print("COMMITTED", flush=True)
    elif action == "loop":
        for generation in range(2, int(args[0])):
            commit(store, generation)
            print("COMMITTED", generation, flush=True)
    elif action == "hold":
        with store.lock(args[0], ttl_seconds=float(args[1])):
            print("LOCKED", flush=True)
            time.sleep(600)


if __name__ == "__main__":
    main()
