"""Issue 11 item 13: quiet lists stay fresh. A list nobody edits commits nothing, so its "last
synchronised" time stayed at the first run; after three quiet weeks it looked as if the nightly
job had stopped. The last successful check is recorded separately from the last change and
shown in `status`, the run summary and what Om rapporten receives."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from sp_sync.run import pipeline
from sp_sync.run.runtime import Runtime
from tests.reliability.helpers import World
from tests.reliability.scenarios import record

FIRST = dt.datetime(2026, 6, 1, 2, 0, tzinfo=dt.UTC)
LATER = FIRST + dt.timedelta(days=21)


def test_a_quiet_list_shows_its_last_check_apart_from_its_last_change(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [FIRST]
    runtime = Runtime(settings=world.settings(), clock=lambda: now[0])
    site = runtime.settings.sites[0]
    pipeline.run_pipeline(runtime, site)

    now[0] = LATER  # three quiet weeks: nobody edited any list
    seen: dict[str, Any] = {}
    from sp_sync.report import publish

    real_build = publish.build_workbooks

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.update(args[3] if len(args) > 3 else kwargs["sync_info"])
        return real_build(*args, **kwargs)

    monkeypatch.setattr(publish, "build_workbooks", spy)
    summary = pipeline.run_pipeline(runtime, site)

    assert summary.status == "ok"
    checked = dict(summary.last_checked)
    assert set(checked) == set(runtime.schemas.lists)
    assert all(dt.datetime.fromisoformat(v) == LATER for v in checked.values())
    assert summary.to_dict()["last_checked"] == checked

    status = pipeline.site_status(runtime, site)
    for title, info in status["lists"].items():
        assert info["last_sync"] == FIRST, title  # the last change: the first run
        assert dt.datetime.fromisoformat(info["last_checked"]) == LATER, title
    text = pipeline.format_status(status, "sv")
    assert "senast kontrollerad 2026-06-22" in text

    # A quiet night rebuilds no workbook (only real changes become new versions on the site,
    # issue 12): the last check is shown by status and the run summary above, not by a new
    # version of Om rapporten.
    assert seen == {}

    sizes = world.assert_exact(runtime.store)
    record(
        "quiet-lists",
        tries=2,
        failures=0,
        rows_lost=sum(world.counts.values()) - sum(sizes.values()),
    )
