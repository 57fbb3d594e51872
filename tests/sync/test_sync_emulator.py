"""The sync engine through the real SharePoint client against the emulator.

Snapshots are compared row for row with what the emulator's backend holds; request budgets are
read from the emulator's own counter (`emu.stats()`).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.sync.helpers import (
    backend_list,
    client_for,
    create_lists,
    dialog_rows,
    expected_titles,
    now,
)

try:
    from sp_emulator import SharePointEmulator
except ImportError:  # the package __init__ is still being written
    from sp_emulator.server import SharePointEmulator
from sp_sync.errors import RunLockedError
from sp_sync.run.summary import ListSyncResult
from sp_sync.schema import load_schemas
from sp_sync.state.local import LocalStateStore
from sp_sync.sync.engine import sync_list, sync_site
from tests.helpers import forkserver

SCHEMAS = load_schemas()
DIALOGER = SCHEMAS["Dialoger"]
SITE = "emulator_sites_x"
RUNNER = Path(__file__).with_name("runner.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def emu() -> Iterator[SharePointEmulator]:
    with SharePointEmulator(sites=["x"]) as e:
        create_lists(e, SCHEMAS)
        yield e


@pytest.fixture
def store(tmp_path: Path) -> LocalStateStore:
    return LocalStateStore(tmp_path / "state")


class Env:
    def __init__(self, emu: Any, store: Any) -> None:
        self.emu = emu
        self.store = store
        self.token = emu.issue_token(lifetime=24 * 3600)
        setup = client_for(emu, self.token)
        self.web = setup.get_web()
        self.users = setup.get_site_users()

    def sync(self, **kw: Any) -> tuple[ListSyncResult, int]:
        """One run with a fresh client (as the nightly job has); stats reset first."""
        self.emu.reset_stats()
        client = client_for(self.emu, self.token)
        result = sync_list(
            client,
            self.store,
            SITE,
            kw.pop("schema", DIALOGER),
            web=self.web,
            users=self.users,
            now=now(),
            schema_set=SCHEMAS,
            **kw,
        )
        return result, self.emu.stats()["requests"]

    def assert_matches(self, title: str = "Dialoger") -> None:
        st = self.store.read_list_state(SITE, title)
        assert st is not None
        want = expected_titles(self.emu, title)
        assert list(st.rows["ID"]) == sorted(want)
        assert dict(zip(st.rows["ID"], st.rows["Title"], strict=True)) == want


def seed(emu: Any, n: int, start: int = 0) -> list[int]:
    if n == 0:
        return []
    return emu.backend.bulk_add_items("x", "Dialoger", dialog_rows(n, start))


def update(emu: Any, ids: list[int], prefix: str = "ändrad") -> None:
    site, lst = backend_list(emu, "Dialoger")
    for i in ids:
        emu.backend.update_item(site, lst, lst.items[i], {"Title": f"{prefix} {i}"}, if_match=None)


def delete(emu: Any, ids: list[int]) -> list[str | None]:
    site, lst = backend_list(emu, "Dialoger")
    return [emu.backend.delete_item(site, lst, lst.items[i]) for i in ids]


@pytest.mark.parametrize("n", [0, 1, pytest.param(12_000, marks=pytest.mark.slow)])
def test_full_then_incremental_row_for_row(emu: Any, store: LocalStateStore, n: int) -> None:
    env = Env(emu, store)
    seed(emu, n)
    result, requests = env.sync()
    assert (result.mode, result.rows, result.added) == ("full", n, n)
    assert result.item_count_mismatch is None
    assert requests <= math.ceil(n / 5000) + 3, requests
    assert result.requests == requests  # the client's counter agrees with the server's
    env.assert_matches()
    st = store.read_list_state(SITE, "Dialoger")
    assert st is not None
    # Date-only values around both DST changes come back as the calendar dates written.
    for rec, src in zip(st.rows.to_dict("records"), dialog_rows(n), strict=True):
        assert rec["PlannedDate"] == date.fromisoformat(src["PlannedDate"])
        assert rec["County"] == src["County"] and rec["Year"] == src["Year"]
        assert isinstance(rec["Author"], str) and rec["Author"]  # expanded Author/Title
        assert rec["_item_url"].endswith(f"/Lists/Dialoger/DispForm.aspx?ID={rec['ID']}")
        assert rec["_version"] >= 1

    result, requests = env.sync()
    assert result.mode == "incremental" and requests <= 2, requests
    assert (result.added, result.updated, result.deleted, result.unchanged) == (0, 0, 0, n)

    added = seed(emu, 5, start=n)
    old = sorted(expected_titles(emu, "Dialoger"))
    changed = [i for i in old if i not in added][:3]
    update(emu, changed)
    gone = [i for i in old if i not in added and i not in changed][:2]
    delete(emu, gone)
    result, requests = env.sync()
    k = len(added) + len(changed) + len(gone)
    assert result.mode == "incremental"
    assert (result.added, result.updated, result.deleted) == (5, len(changed), len(gone))
    assert requests <= 3 + math.ceil(k / 5000), requests
    env.assert_matches()


def test_restore_from_recycle_bin(emu: Any, store: LocalStateStore) -> None:
    env = Env(emu, store)
    ids = seed(emu, 4)
    env.sync()
    (entry,) = delete(emu, [ids[1]])
    assert env.sync()[0].deleted == 1
    assert entry is not None
    emu.backend.restore(emu.backend.get_site("x"), entry)
    result, _ = env.sync()
    assert result.added == 1
    env.assert_matches()


def test_expired_token_full_reread_reconciled(emu: Any, store: LocalStateStore) -> None:
    env = Env(emu, store)
    ids = seed(emu, 10)
    env.sync()
    delete(emu, ids[:3])
    update(emu, ids[5:6])
    emu.clock.advance(61 * 24 * 3600)
    env.token = emu.issue_token(lifetime=24 * 3600)  # the old one expired with the clock
    result, _ = env.sync()
    assert result.mode == "reread"
    assert result.deleted == 3 and result.added == 0 and result.updated == 1
    assert "change token expired; full re-read" in result.notes
    env.assert_matches()
    assert env.sync()[0].mode == "incremental"


@pytest.mark.reliability
def test_throttling_storm_and_503_bursts_still_exact(emu: Any, store: LocalStateStore) -> None:
    env = Env(emu, store)
    seed(emu, 1200)
    emu.faults.inject(status=429, count=40, probability=0.3, retry_after=0)
    result, _ = env.sync(page_size=100)
    assert result.rows == 1200 and result.retries > 0
    env.assert_matches()
    update(emu, list(range(1, 300, 7)))
    emu.faults.inject(status=503, count=3, retry_after=0)
    result, _ = env.sync()
    assert result.retries >= 3 and result.updated == len(range(1, 300, 7))
    env.assert_matches()


@pytest.mark.reliability
def test_dropped_connection_mid_page(emu: Any, store: LocalStateStore) -> None:
    env = Env(emu, store)
    seed(emu, 300)
    emu.faults.drop_connection(count=2, path=r"/items")
    result, _ = env.sync(page_size=100)
    assert result.rows == 300 and result.retries >= 2
    env.assert_matches()


def test_deadline_stops_half_way_then_next_run_finishes(emu: Any, store: LocalStateStore) -> None:
    env = Env(emu, store)
    ids = seed(emu, 30)
    result, _ = env.sync(page_size=10, deadline=time.monotonic() - 1)
    assert result.continues_next_run and result.rows == 10
    assert store.read_list_state(SITE, "Dialoger") is None  # nothing complete to read yet
    update(emu, ids[:2])  # behind the resume point: replayed from the change log
    delete(emu, ids[-1:])  # ahead of it: simply not read
    result, _ = env.sync(page_size=10)
    assert result.mode == "resumed" and not result.continues_next_run
    assert result.rows == 29
    result, _ = env.sync(page_size=10)
    assert result.mode == "incremental" and result.updated == 2
    env.assert_matches()


def test_two_concurrent_runs(emu: Any, store: LocalStateStore) -> None:
    env = Env(emu, store)
    seed(emu, 3)
    with store.lock(f"sync-{SITE}"), pytest.raises(RunLockedError):
        sync_site(client_for(emu, env.token), store, SITE, SCHEMAS, now=now())
    assert store.read_list_state(SITE, "Dialoger") is None
    out = sync_site(client_for(emu, env.token), store, SITE, SCHEMAS, now=now())
    assert not out.errors and [r.rows for r in out.lists][:1] == [3]


def _run_child(
    env: Env,
    state_dir: Path,
    *,
    crash_at: str | None = None,
    kill_on_page: int | None = None,
    page_size: int = 100,
) -> tuple[int, str]:
    cmd = [
        str(RUNNER),
        env.emu.site_url("x"),
        env.token,
        str(state_dir),
        "--page-size",
        str(page_size),
        "--site-key",
        SITE,
        "--lock-ttl",
        "0.5",
    ]
    child_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child_env.pop("SP_SYNC_STATE_CRASH_AT", None)
    if crash_at:
        child_env["SP_SYNC_STATE_CRASH_AT"] = crash_at
    proc = forkserver.popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env
    )
    out_lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        out_lines.append(line)
        if kill_on_page is not None and line.startswith("PAGE "):
            kill_on_page -= 1
            if kill_on_page == 0:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    return proc.returncode, "".join(out_lines) + (proc.stderr.read() if proc.stderr else "")


@pytest.mark.reliability
@pytest.mark.slow
@pytest.mark.parametrize(
    "how",
    # A page boundary of a first (full) read; inside the engine just before it commits; and
    # inside the store while the data files and the manifest are written.
    ["page:2", "crash:sync-before-commit", "crash:mid-write", "crash:before-manifest"],
)
def test_sigkill_then_rerun_converges(emu: Any, tmp_path: Path, how: str) -> None:
    store = LocalStateStore(tmp_path / "state")
    env = Env(emu, store)
    ids = seed(emu, 250)
    # A first complete run, then changes, so the killed run is an incremental one for some
    # points and a full one for others (first run below is killed before any state exists).
    if how.endswith("manifest") or how.endswith("commit"):
        env.sync()
        update(emu, ids[:20])
        delete(emu, ids[-5:])
        seed(emu, 7, start=1000)
    kind, _, point = how.partition(":")
    if kind == "page":
        code, out = _run_child(env, tmp_path / "state", kill_on_page=int(point))
    else:
        code, out = _run_child(env, tmp_path / "state", crash_at=point)
    assert code == -signal.SIGKILL, out
    time.sleep(0.7)  # the killed run's lock goes stale after its TTL; the rerun takes it over
    code, out = _run_child(env, tmp_path / "state")
    assert code == 0 and "DONE" in out, out
    env.assert_matches()
    # And one more run is a no-op incremental.
    result, requests = env.sync()
    assert result.mode == "incremental" and (result.added, result.updated) == (0, 0)
    assert requests <= 2
    env.assert_matches()


def test_no_token_in_logs(
    emu: Any, store: LocalStateStore, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    env = Env(emu, store)
    seed(emu, 3)
    caplog.set_level(logging.DEBUG)
    env.sync()
    update(emu, [1])
    env.sync()
    assert "Synced Dialoger" in caplog.text
    assert env.token not in caplog.text
    assert env.token[-16:] not in caplog.text


def test_lookups_and_persons_resolved_and_follow_renames(emu: Any, store: LocalStateStore) -> None:
    env = Env(emu, store)
    seed(emu, 2)
    k_ids = emu.backend.bulk_add_items(
        "x",
        "Länskunskap",
        [
            {
                "Title": "K1",
                "County": "Skåne län",
                "SubjectArea": "Innovation",
                "Department": "Företag",
                "Status": "Aktuell",
            },
            {
                "Title": "K2",
                "County": "Skåne län",
                "SubjectArea": "Innovation",
                "Department": "Företag",
                "Status": "Aktuell",
            },
        ],
    )
    user_id, user = next(iter(env.users.items()))
    emu.backend.bulk_add_items(
        "x",
        "Dialogåterkoppling",
        [
            {
                "Title": "Återkoppling",
                "County": "Skåne län",
                "DialogueId": 1,
                "DialogueDate": "2026-10-25",
                "ReceivingDepartment": "Företag",
                "Status": "Ny",
                "OwnerId": user_id,
                "LinkedKnowledgeId": {"results": k_ids},
                "Feedback": "<p>Första stycket</p><p>Andra &amp; sista</p>",
            }
        ],
    )
    out = sync_site(client_for(emu, env.token), store, SITE, SCHEMAS, now=now())
    assert not out.errors, out.errors
    st = store.read_list_state(SITE, "Dialogåterkoppling")
    assert st is not None
    row = st.rows.iloc[0]
    assert (row["DialogueId"], row["Dialogue"]) == (1, "Dialog 0")
    assert (row["OwnerId"], row["Owner"], row["Owner_email"]) == (user_id, user.title, user.email)
    assert row["LinkedKnowledgeId"] == k_ids and row["LinkedKnowledge"] == ["K1", "K2"]
    assert row["DialogueDate"] == date(2026, 10, 25)
    assert row["Feedback_text"] == "Första stycket\n\nAndra & sista"

    update(emu, [1], prefix="Omdöpt")
    sync_site(client_for(emu, env.token), store, SITE, SCHEMAS, now=now())
    st = store.read_list_state(SITE, "Dialogåterkoppling")
    assert st is not None and st.rows.iloc[0]["Dialogue"] == "Omdöpt 1"


@pytest.mark.azurite
def test_sync_against_blob_store(emu: Any, azurite: Any) -> None:
    from sp_sync.state.blob import BlobStateStore
    from tests.helpers.azurite import unique_container

    store = BlobStateStore(azurite.connection_string, unique_container("sync"))
    env = Env(emu, store)
    ids = seed(emu, 120)
    assert env.sync(page_size=50)[0].rows == 120
    update(emu, ids[:3])
    delete(emu, ids[-2:])
    result, requests = env.sync(page_size=50)
    assert (result.updated, result.deleted) == (3, 2) and requests <= 4
    env.assert_matches()
    # Deadline split and resume work the same on blobs.
    result, _ = env.sync(full=True, page_size=50, deadline=time.monotonic() - 1)
    assert result.continues_next_run
    assert env.sync(page_size=50)[0].mode == "resumed"
    env.assert_matches()
    with store.lock(f"sync-{SITE}"), pytest.raises(RunLockedError):
        sync_site(client_for(emu, env.token), store, SITE, SCHEMAS, now=now())
