"""Fixtures for the rollup tests: a deterministic demo-like data set (see rollup_fixtures.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

# The fixture generator is shared with benchmarks/bench_rollup.py, so it is a plain module here.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from rollup_fixtures import GENERATED_AT, SITE, make_quality, make_snapshots

from sp_sync.report.tables import RollupReference, load_reference


@pytest.fixture(scope="session")
def reference() -> RollupReference:
    return load_reference()


@pytest.fixture(scope="session")
def snapshots() -> dict[str, pd.DataFrame]:
    return make_snapshots()


@pytest.fixture(scope="session")
def quality(snapshots: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return make_quality(snapshots)


@pytest.fixture(scope="session")
def site_url() -> str:
    return SITE


@pytest.fixture(scope="session")
def generated_at():  # type: ignore[no-untyped-def]
    return GENERATED_AT
