"""Scenario 1: a bad night on SharePoint's side, through the whole pipeline.

30 % of requests answered 429 (some with RateLimit-* headers), 503 bursts, connections dropped in
the middle of a page, and the form digests and bearer tokens invalidated in the middle of a run.
The run must finish, report its retries and waiting, leave exact snapshots and upload every
workbook; then an incremental run under the same storm must do the same.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest

from tests.reliability.helpers import (
    RequestTrigger,
    World,
    is_sync_request,
    is_upload_request,
)

pytestmark = [pytest.mark.reliability, pytest.mark.slow]


def _reads(title: str) -> Callable[[str, str], bool]:
    """Sync requests of one list (the emulator journals decoded paths)."""
    return lambda method, path: f"'{title}')" in path and is_sync_request(method, path)


def _storm(world: World, trigger: RequestTrigger) -> int:
    """Arm the storm; returns how many mid-run events the trigger must fire.

    The fixed faults are spread over the three lists so no single request meets more than three
    of them: the retry budget (8 attempts per request) is meant to absorb a storm, not a
    deliberate string of eight failures on one request.
    """
    faults = world.emu.faults
    # First in the rule list so it wins over the others: the first two reads of Dialoger are
    # throttled with Retry-After 1 and RateLimit-* headers, which the run summary must show as
    # seconds waited; then its bearer token is invalidated.
    faults.inject(
        status=429, count=2, path=r"'Dialoger'\)/(items|GetChanges)", retry_after=1, ratelimit=True
    )
    trigger.when(_reads("Dialoger"), 3, faults.expire_tokens, "tokens expired during sync")
    # A probability rule matching everything: ~30 % of requests throttled with Retry-After 0, so
    # the test stays fast; the count bounds the storm and max_streak keeps any one request from
    # meeting more than three of them in a row, so the run's retry budget (8 attempts per
    # request) is never spent by chance, whatever order the client sends its requests in.
    faults.inject(status=429, count=45, probability=0.3, retry_after=0, max_streak=3)
    # A 503 burst on Länskunskap, connections dropped half-way through Dialogåterkoppling's
    # response, digests and tokens invalidated during the upload.
    trigger.when(
        _reads("Länskunskap"),
        1,
        lambda: faults.inject(status=503, count=3, retry_after=0, path="'Länskunskap'"),
        "503 burst",
    )
    trigger.when(
        _reads("Dialogåterkoppling"),
        1,
        lambda: faults.drop_connection(count=2, path="'Dialogåterkoppling'"),
        "connections dropped mid-page",
    )
    trigger.when(is_upload_request, 3, faults.expire_digests, "digests expired during upload")
    trigger.when(is_upload_request, 6, faults.expire_tokens, "tokens expired during upload")
    return 5


def test_throttling_storm_full_then_incremental(world: World) -> None:
    trigger = RequestTrigger(world.emu)
    for night, label in enumerate(("full", "incremental")):
        if night:
            world.change_items(random.Random(11), edits=10, deletes=4, adds=5)
        world.emu.faults.clear()
        # Each night's storm from its own seed: not shifted by how many requests the night
        # before made (a quiet night's freshness $batch parts draw from the same generator).
        world.emu.faults.rng.seed(night)
        trigger.clear()
        world.emu.reset_stats()
        events = _storm(world, trigger)
        summary = world.run()
        totals = summary.totals()
        fired = list(trigger.fired)
        trigger.fired.clear()
        assert summary.status == "ok", (label, summary.errors)
        assert {r.mode for r in summary.lists} == {label}, (label, [r.mode for r in summary.lists])
        assert totals["retries"] >= 2 and totals["wait_seconds"] >= 2.0, (label, totals)
        statuses = Counter(e["status"] for e in world.emu.journal())
        assert statuses[429] >= 5 and statuses[503] == 3, (label, statuses)
        assert statuses[401] >= 1 and statuses[403] >= 1, (label, statuses)  # really expired
        assert world.emu.stats()["faults_injected"] >= 10, label
        assert len(fired) == events, (label, fired)  # every mid-run event really happened
        world.emu.faults.clear()
        world.assert_exact()
        books = world.assert_workbooks_open(expected=len(summary.workbooks))
        assert sorted(books) == sorted(w.name for w in summary.workbooks)
        assert all(len(books[w.name]) == w.size for w in summary.workbooks)
