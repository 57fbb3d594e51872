"""Fixtures for the SharePoint client suite: emulators, token providers, a recording sleep."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sp_emulator import SharePointEmulator
from sp_sync.auth import StaticTokenProvider
from sp_sync.sharepoint import RetryPolicy, SharePointClient

SIZES = {"Empty": 0, "One": 1, "Exact": 5000, "Over": 5001, "Big": 12000}


@dataclass
class FakeClock:
    """Monotonic clock + sleep that only records: retry waits cost no wall time."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def seed_list(emu: SharePointEmulator, title: str, count: int, site: str = "x") -> None:
    backend = emu.backend
    backend.create_list(backend.get_site(site), title)
    if count:
        backend.bulk_add_items(
            site, title, [{"Title": f"{title} {i}"} for i in range(1, count + 1)]
        )


@pytest.fixture(scope="module")
def big_emu() -> Iterator[SharePointEmulator]:
    """One emulator per module with lists of 0, 1, 5,000, 5,001 and 12,000 items."""
    with SharePointEmulator(sites=["x"]) as emu:
        for title, count in SIZES.items():
            seed_list(emu, title, count)
        yield emu


@pytest.fixture
def emu() -> Iterator[SharePointEmulator]:
    """A fresh emulator for tests that change grants, tokens or faults."""
    with SharePointEmulator(sites=["x"]) as instance:
        seed_list(instance, "Tasks", 12)
        yield instance


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(fake_clock: FakeClock) -> Callable[..., SharePointClient]:
    def make(
        emu: SharePointEmulator, *, provider: Any = None, site: str = "x", **kw: Any
    ) -> SharePointClient:
        policy = kw.pop("retry", None) or RetryPolicy(
            sleep=fake_clock.sleep, clock=fake_clock.clock, rng=lambda: 0.5
        )
        token_provider = provider or StaticTokenProvider(emu.issue_token())
        return SharePointClient(
            emu.site_url(site), token_provider, organisation="Testregion", retry=policy, **kw
        )

    return make
