"""Shared fixtures. Keep this small: suites put their own fixtures in their folders."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import forkserver
from tests.helpers.azurite import Azurite, AzuriteMissingError


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The fork server of this process (one per xdist worker), if a test started it."""
    forkserver.SERVER.close()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One in-memory Azurite per test session (so one per xdist worker).

    Tests share it: give every test its own container (`support.azurite.unique_container()`).
    A test that stops or restarts Azurite must start its own `Azurite(persistent=True)` instead.
    """
    try:
        instance = Azurite().start()
    except AzuriteMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield instance
    finally:
        instance.close()
