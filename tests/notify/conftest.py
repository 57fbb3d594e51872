"""Fixtures of the notify tests: one emulator with the Graph stand-in per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sp_emulator import SharePointEmulator
from sp_emulator.graph import GraphService
from tests.notify.helpers import graph_of


@pytest.fixture(scope="module")
def emu() -> Iterator[SharePointEmulator]:
    with SharePointEmulator(sites=["x"]) as instance:
        graph_of(instance)
        yield instance


@pytest.fixture
def graph(emu: SharePointEmulator) -> Iterator[GraphService]:
    service = graph_of(emu)
    service.reset()
    yield service
    service.reset()


@pytest.fixture
def mi_env(emu: SharePointEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", emu.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", emu.identity_header)
