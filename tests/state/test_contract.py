"""The StateStore contract, run against LocalStateStore and BlobStateStore (on Azurite)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from sp_sync.errors import RunLockedError
from sp_sync.state import (
    RunLockLostError,
    StateConflictError,
    StateStore,
    SyncCheckpoint,
)
from tests.state.conftest import StoreFactory
from tests.state.helpers import quality, snapshot

SITE = "https://contoso.sharepoint.com/sites/Team"
LIST = "Dialogåterkoppling"
T0 = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)


def checkpoint(n: int) -> SyncCheckpoint:
    return SyncCheckpoint(
        change_token=f"1;3;abc;{n}",
        last_full_sync=T0,
        last_sync=T0 + dt.timedelta(hours=n),
        item_count=3,
        schema_version="schema-v1",
        list_id="guid-1",
        resume_after_id=None if n % 2 else 5000 * n,
        extra={"note": f"run {n}", "nested": [1, "två"]},
    )


def commit(store: StateStore, n: int, etag: str | None) -> str:
    return store.commit_list_state(
        SITE, LIST, snapshot(n), quality(n), checkpoint(n), expected_etag=etag
    )


def assert_state_is(store: StateStore, n: int, generation: int) -> str:
    state = store.read_list_state(SITE, LIST)
    assert state is not None
    pd.testing.assert_frame_equal(state.rows, snapshot(n), check_exact=True)
    pd.testing.assert_frame_equal(state.quality, quality(n), check_exact=True)
    expected = checkpoint(n)
    assert state.checkpoint == SyncCheckpoint(**{**expected.__dict__, "generation": generation})
    assert state.etag
    return state.etag


def generation_dirs(store: StateStore) -> set[str]:
    return {
        k.split("/")[2]
        for k in store.list_keys("contoso.sharepoint.com_sites_team/")
        if k.count("/") == 3
    }


def test_a_list_never_synced_reads_none(store: StateStore) -> None:
    assert store.read_list_state(SITE, LIST) is None
    assert store.read_list_state("https://other.sharepoint.com/sites/x", "Dialoger") is None


def test_commit_then_read_round_trips_rows_quality_and_checkpoint(store: StateStore) -> None:
    etag = commit(store, 1, None)
    assert assert_state_is(store, 1, generation=1) == etag


def test_state_is_shared_between_store_objects(new_store: StoreFactory) -> None:
    etag = commit(new_store(), 1, None)
    other = new_store()
    assert assert_state_is(other, 1, generation=1) == etag
    commit(other, 2, etag)
    assert_state_is(new_store(), 2, generation=2)


def test_stale_etag_is_refused_and_changes_nothing(store: StateStore) -> None:
    first = commit(store, 1, None)
    second = commit(store, 2, first)
    assert second != first
    with pytest.raises(StateConflictError):
        commit(store, 3, first)  # a run that read generation 1
    with pytest.raises(StateConflictError):
        commit(store, 3, None)  # a run that thought the list had no state
    assert assert_state_is(store, 2, generation=2) == second
    commit(store, 3, second)
    assert_state_is(store, 3, generation=3)


def test_two_first_commits_only_one_wins(new_store: StoreFactory) -> None:
    a, b = new_store(), new_store()
    assert a.read_list_state(SITE, LIST) is None and b.read_list_state(SITE, LIST) is None
    commit(a, 1, None)
    with pytest.raises(StateConflictError):
        commit(b, 2, None)
    assert_state_is(b, 1, generation=1)


def test_old_generations_are_removed_after_commit(store: StateStore) -> None:
    etag = None
    for n in range(1, 5):
        etag = commit(store, n, etag)
    dirs = generation_dirs(store)
    # The committed generation and the previous one (a reader may still be on it).
    assert sorted(d.split("-")[0] for d in dirs) == ["g3", "g4"]
    assert_state_is(store, 4, generation=4)


def test_sites_and_lists_are_kept_apart(store: StateStore) -> None:
    store.commit_list_state(SITE, "A", snapshot(1), quality(1), checkpoint(1), expected_etag=None)
    store.commit_list_state(SITE, "B", snapshot(2), quality(2), checkpoint(2), expected_etag=None)
    other = "https://contoso.sharepoint.com/sites/Team2"
    store.commit_list_state(other, "A", snapshot(3), quality(3), checkpoint(3), expected_etag=None)
    for site, key, n in [(SITE, "A", 1), (SITE, "B", 2), (other, "A", 3)]:
        state = store.read_list_state(site, key)
        assert state is not None and state.checkpoint.change_token == f"1;3;abc;{n}"
    # Site URLs are case-insensitive, so are the keys.
    state = store.read_list_state(SITE.upper().replace("HTTPS", "https"), "a")
    assert state is not None and state.checkpoint.change_token == "1;3;abc;1"


def test_empty_snapshot_commits(store: StateStore) -> None:
    empty = snapshot(1).iloc[:0].reset_index(drop=True)
    store.commit_list_state(
        SITE,
        LIST,
        empty,
        quality(1).iloc[:0].reset_index(drop=True),
        checkpoint(1),
        expected_etag=None,
    )
    state = store.read_list_state(SITE, LIST)
    assert state is not None and len(state.rows) == 0
    assert list(state.rows.columns) == list(empty.columns)
    assert state.rows["AnsvarigId"].dtype == "Int64"


def test_json_documents_are_written_conditionally(store: StateStore) -> None:
    assert store.read_json("runs/2026-11-27.json") == (None, None)
    doc = {"status": "running", "lists": ["Dialoger"], "text": "åäö 😀"}
    etag1 = store.write_json("runs/2026-11-27.json", doc, create_only=True)
    with pytest.raises(StateConflictError):
        store.write_json("runs/2026-11-27.json", {"status": "other"}, create_only=True)
    assert store.read_json("runs/2026-11-27.json") == (doc, etag1)
    etag2 = store.write_json("runs/2026-11-27.json", {"status": "done"}, expected_etag=etag1)
    with pytest.raises(StateConflictError):
        store.write_json("runs/2026-11-27.json", {"status": "late"}, expected_etag=etag1)
    with pytest.raises(StateConflictError):
        store.write_json("runs/missing.json", {"status": "late"}, expected_etag=etag1)
    assert store.read_json("runs/2026-11-27.json") == ({"status": "done"}, etag2)
    store.write_json("runs/2026-11-27.json", {"status": "forced"})  # unconditional
    assert store.read_json("runs/2026-11-27.json")[0] == {"status": "forced"}
    assert store.list_keys("runs/") == ["runs/2026-11-27.json"]
    store.delete_json("runs/2026-11-27.json")
    store.delete_json("runs/2026-11-27.json")  # already gone: fine
    assert store.read_json("runs/2026-11-27.json") == (None, None)


def test_second_lock_holder_gets_a_clear_sentence(
    new_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the store's language, which its owner passes in; the environment plays no part."""
    first, second = new_store(), new_store()
    english = new_store(language="en")
    monkeypatch.setenv("SP_SYNC_LANGUAGE", "en")  # ignored: the language is passed in
    with first.lock(SITE, ttl_seconds=30) as held:
        held.check()
        with pytest.raises(RunLockedError) as info, english.lock(SITE):
            pass
        text = str(info.value)
        assert text.startswith(f"Another sp-sync run holds the lock on {SITE} since 20")
        assert text.endswith("; try again later.")
        with (
            pytest.raises(RunLockedError, match="En annan sp-sync-körning håller låset"),
            second.lock(SITE),
        ):
            pass
        # Other names are independent locks.
        with second.lock("https://contoso.sharepoint.com/sites/other"):
            pass
    with second.lock(SITE) as again:  # released: the next run gets it
        again.check()


def test_a_second_run_changes_nothing(new_store: StoreFactory) -> None:
    first, second = new_store(), new_store()
    etag = commit(first, 1, None)
    with first.lock(SITE):
        with pytest.raises(RunLockedError), second.lock(SITE):
            commit(second, 2, etag)
        assert_state_is(second, 1, generation=1)


def test_lost_lock_blocks_the_next_write(
    new_store: StoreFactory, store_kind: str, request: pytest.FixtureRequest
) -> None:
    store = new_store()
    etag = commit(store, 1, None)
    with store.lock(SITE, ttl_seconds=30) as held:
        steal_lock(store, store_kind, request)
        with pytest.raises(RunLockLostError):
            commit(store, 2, etag)
        with pytest.raises(RunLockLostError):
            store.write_json("runs/x.json", {"a": 1})
        with pytest.raises(RunLockLostError):
            held.check()
    assert_state_is(new_store(), 1, generation=1)
    assert store.read_json("runs/x.json") == (None, None)


def steal_lock(store: StateStore, kind: str, request: pytest.FixtureRequest) -> None:
    """Take the lock away as a competing run would (lease broken / lock file replaced)."""
    from sp_sync.state import BlobStateStore, LocalStateStore

    if kind == "local":
        assert isinstance(store, LocalStateStore)
        (lock_file,) = (store.root / ".locks").glob("*.lock")
        lock_file.write_text('{"token": "someone-else", "pid": 1, "host": "elsewhere"}')
    else:
        from azure.storage.blob import BlobLeaseClient

        assert isinstance(store, BlobStateStore)
        (blob,) = [b for b in store._container.list_blobs(name_starts_with=".locks/")]
        BlobLeaseClient(store._container.get_blob_client(blob.name)).break_lease(
            lease_break_period=0
        )
