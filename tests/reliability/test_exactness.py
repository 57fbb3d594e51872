"""The exact check every reliability scenario ends with covers every column and catches defects.

A check that compares only a few columns lets a broken date, number, person or lookup pass as
"exact". These tests plant such defects in normalising, one at a time, run the real sync and require
`World.assert_exact` to fail (a clean run is the whole pipeline); and they pin that all 29 schema columns are compared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from sp_sync.run import pipeline
from sp_sync.run.runtime import Runtime
from sp_sync.sync import normalize
from tests.reliability.exactness import SCHEMAS, compared_columns
from tests.reliability.helpers import World, make_world

pytestmark = [pytest.mark.reliability]


@pytest.fixture
def small_world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path, knowledge_per_county=2, feedback_per_county=2)


def test_every_schema_column_is_compared() -> None:
    columns = {title: compared_columns(title) for title in SCHEMAS.lists}
    assert sum(len(c) for c in columns.values()) == 29
    assert columns == {t: [c.name for c in s.columns] for t, s in SCHEMAS.lists.items()}
    types = {c.type for s in SCHEMAS.lists.values() for c in s.columns}
    assert types == {"text", "choice", "note", "number", "date", "person", "lookup", "multi_lookup"}


def test_a_clean_run_is_exact(small_world: World) -> None:
    small_world.run()
    sizes = small_world.assert_exact()
    assert sizes == small_world.counts


def _alter_column(column: str, change: Callable[[pd.Series], Any]) -> Callable[..., Any]:
    real = normalize.normalize_page

    def planted(*args: Any, **kwargs: Any) -> Any:
        frame, issues = real(*args, **kwargs)
        if column in frame.columns and len(frame):
            frame = frame.copy()
            frame[column] = change(frame[column])
        return frame, issues

    return planted


def _utc_dates(monkeypatch: pytest.MonkeyPatch) -> None:
    """The classic bug: date-only values converted in UTC, one day early in Sweden."""
    real = normalize._dates_in_zone
    monkeypatch.setattr(normalize, "_dates_in_zone", lambda utc, tz: real(utc, ZoneInfo("UTC")))


def _plant(column: str, change: Callable[[pd.Series], Any]) -> Callable[[pytest.MonkeyPatch], None]:
    def plant(monkeypatch: pytest.MonkeyPatch) -> None:
        # The engine imported normalize_page by name: patch the name it calls.
        from sp_sync.sync import engine

        monkeypatch.setattr(engine, "normalize_page", _alter_column(column, change))

    return plant


def _stale_lookup_titles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lookup titles are re-resolved after normalising; lose them there."""
    from sp_sync.sync import engine

    real = engine.apply_lookup_titles

    def planted(rows: pd.DataFrame, schema: Any, titles: Any) -> pd.DataFrame:
        out = real(rows, schema, titles)
        if "Dialogue" in out.columns:
            out["Dialogue"] = out["Dialogue"].map(lambda v: v and f"{v} (old)")
        return out

    monkeypatch.setattr(engine, "apply_lookup_titles", planted)


DEFECTS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "dates in UTC": _utc_dates,
    "a date column dropped": _plant("DueDate", lambda s: pd.Series([None] * len(s), dtype=object)),
    "numbers rounded": _plant("Year", lambda s: s + 1),
    "note text trimmed": _plant("Description", lambda s: s.map(lambda v: v and v[:-1])),
    "person e-mail lost": _plant("Owner_email", lambda s: pd.Series([None] * len(s))),
    "person id lost": _plant("CountyLeadId", lambda s: pd.Series([pd.NA] * len(s), dtype="Int64")),
    "lookup title stale": _stale_lookup_titles,
    "multi-lookup ids changed": _plant(
        "LinkedKnowledgeId", lambda s: s.map(lambda v: [*list(v)[::-1], 999] if v else [999])
    ),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_a_planted_defect_fails_the_exact_check(
    small_world: World, monkeypatch: pytest.MonkeyPatch, defect: str
) -> None:
    DEFECTS[defect](monkeypatch)
    # The sync alone: every defect is planted in it, and the check reads what it committed
    # (the workbooks a whole run would also render and upload are not compared).
    settings = small_world.settings()
    pipeline.run_sync(Runtime(settings=settings), settings.sites[0])
    with pytest.raises(AssertionError, match="differing values"):
        small_world.assert_exact()
