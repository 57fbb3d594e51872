"""Issue 11 item 7: the run summary counts every request of the run. Retries and waits outside
list reads (drift check, uploads) used to be missing: 32 throttled answers were reported as 6
retries. And an error's HTTP status no longer takes the place of the status word in JSON."""

from __future__ import annotations

import json

from sp_sync.errors import ThrottledError
from tests.reliability.helpers import World
from tests.reliability.scenarios import record


def test_throttling_outside_the_list_reads_is_counted(world: World) -> None:
    faults = world.emu.faults
    # Throttle the drift check (its list reads, which bring the fields: it runs before the
    # sync, so the three throttled answers are all its own) and the uploads, not the item reads.
    faults.inject(status=429, count=3, path=r"GetByTitle\('[^']*'\)$", retry_after=0)
    faults.inject(status=429, count=3, method="POST", path="Files/add", retry_after=0)
    try:
        summary = world.run()
    finally:
        faults.clear()
    assert summary.status == "ok"
    totals = summary.totals()
    list_retries = sum(r.retries for r in summary.lists)
    assert totals["throttled_responses"] == 6
    assert totals["retries"] >= 6 > list_retries
    assert totals["requests"] >= sum(r.requests for r in summary.lists) + len(summary.workbooks)
    assert summary.to_dict()["totals"] == totals
    sizes = world.assert_exact()
    record(
        "run-counts",
        tries=6,
        failures=0,
        rows_lost=sum(world.counts.values()) - sum(sizes.values()),
    )


def test_an_error_keeps_its_http_status_apart_from_the_status_word() -> None:
    details = ThrottledError("busy", status=429).details()
    assert details["http_status"] == 429
    assert "status" not in details
    printed = json.loads(json.dumps({"status": "failed", **details}))
    assert printed["status"] == "failed"
