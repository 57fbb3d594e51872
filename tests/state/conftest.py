"""Fixtures for the state-store tests: the same contract suite runs on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from sp_sync.state import BlobStateStore, LocalStateStore, StateStore
from tests.helpers.azurite import Azurite, unique_container


class StoreFactory(Protocol):
    """`new_store()` or `new_store(language="en")`: the language of the store's messages."""

    def __call__(self, language: str = "sv") -> StateStore: ...


@pytest.fixture(params=["local", "azure"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_store(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[StoreFactory]:
    """A factory of independent store objects on the same state (like separate runs)."""
    if store_kind == "local":
        yield lambda language="sv": LocalStateStore(tmp_path / "state", language=language)
        return
    azurite: Azurite = request.getfixturevalue("azurite")
    container = unique_container()
    yield lambda language="sv": BlobStateStore(
        azurite.connection_string, container, retry_total=1, language=language
    )


@pytest.fixture
def store(new_store: StoreFactory) -> StateStore:
    return new_store()
