"""Review leftover of issue 11: `run_pipeline` learns from `_run_locked`'s result, not from an
attribute stuck on the exception, whether a failed rollup stored its summary. A failed rollup
stores its summary, the notice goes out once, and the very same error reaches the caller."""

from __future__ import annotations

from typing import Any

import pytest

from sp_sync.errors import PermissionDeniedError, TransientError
from sp_sync.run import pipeline
from sp_sync.run.runtime import Runtime
from tests.reliability.helpers import World


def test_a_failed_rollup_stores_its_summary_sends_the_notice_and_raises(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    notices: list[str] = []
    failure = TransientError("upload refused by the test")

    def failing_rollup(*args: Any, **kwargs: Any) -> Any:
        raise failure

    monkeypatch.setattr(pipeline, "_rollup", failing_rollup)
    monkeypatch.setattr(pipeline, "after_run_notice", lambda _r, site: notices.append(site.name))
    settings = world.settings()
    runtime = Runtime(settings=settings)
    with pytest.raises(TransientError) as raised:
        pipeline.run_pipeline(runtime, settings.sites[0])
    assert raised.value is failure
    assert not hasattr(raised.value, "_summary_stored")  # nothing is smuggled on the error
    assert notices == [settings.sites[0].name]
    stored, _ = runtime.store.read_json(f"summaries/{settings.sites[0].name}/last.json")
    assert stored is not None
    assert stored["status"] == "partial"
    assert stored["errors"][-1]["step"] == "rollup"
    assert stored["errors"][-1]["message"] == "upload refused by the test"


def test_a_run_that_fails_before_its_summary_sends_no_notice(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    notices: list[str] = []

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise PermissionDeniedError("no access to the fields")

    monkeypatch.setattr(pipeline, "_drift_check", refused)
    monkeypatch.setattr(pipeline, "after_run_notice", lambda _r, site: notices.append(site.name))
    settings = world.settings()
    runtime = Runtime(settings=settings)
    with pytest.raises(PermissionDeniedError):
        pipeline.run_pipeline(runtime, settings.sites[0])
    assert notices == []
    stored, _ = runtime.store.read_json(f"summaries/{settings.sites[0].name}/last.json")
    assert stored is None
