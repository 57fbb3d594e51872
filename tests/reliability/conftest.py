"""Fixtures of the reliability suite (helpers and checks live in helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.helpers import World, make_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A provisioned, seeded site of a few hundred rows on its own emulator."""
    yield from make_world(tmp_path)
