"""Fixtures for the rollup tests: a deterministic demo-like data set (see helpers.py)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from sp_sync.report.tables import RollupReference, load_reference

# The fixture generator (helpers.py) is shared with benchmarks/bench_rollup.py and bench_engines.py.
from tests.rollup.helpers import GENERATED_AT, SITE, make_quality, make_snapshots


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
def generated_at() -> dt.datetime:
    return GENERATED_AT
