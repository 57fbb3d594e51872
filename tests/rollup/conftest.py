"""Fixtures for the rollup tests: a deterministic demo-like data set (see helpers.py), and a
provisioned, seeded emulator site with a runtime for whole nights (`night`)."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture()
def night() -> Iterator[tuple[Any, Any, Path]]:
    """(emulator, runtime, a temporary folder): the site `main` provisioned through the managed
    identity and seeded with a little demo data, state in `<folder>/state`. Function-scoped:
    every test's runs change the site and the state."""
    from sp_emulator import SharePointEmulator
    from sp_sync.demo.runner import managed_identity_env, seed
    from sp_sync.run import pipeline
    from sp_sync.run.runtime import Runtime
    from sp_sync.settings import Settings

    with (
        SharePointEmulator(sites=["main"]) as emu,
        tempfile.TemporaryDirectory() as tmp,
        managed_identity_env(emu.identity_endpoint, emu.identity_header),
    ):
        settings = Settings.from_env(
            {
                "SP_SYNC_SITE_URL": emu.site_url("main"),
                "SP_SYNC_RESOURCE": emu.url,
                "SP_SYNC_STATE": "local",
                "SP_SYNC_STATE_DIR": str(Path(tmp) / "state"),
                "SP_SYNC_ORGANISATION": "Test",
            }
        )
        runtime = Runtime(settings=settings)
        pipeline.run_provision(runtime, settings.sites[0], apply=True, allow_destructive=False)
        seed(
            emu,
            site="main",
            base_date=dt.date(2026, 6, 1),
            knowledge_per_county=4,
            feedback_per_county=3,
            user_count=4,
        )
        yield emu, runtime, Path(tmp)
