"""Emulator time: the wall clock plus an offset that tests move forward.

Its own module because the backend, the observation layer (digest lifetimes) and the identity
service (token expiry) all read it, and none of them should import the others for it.
"""

from __future__ import annotations

import time


class Clock:
    """Emulator time: wall clock plus an offset that tests move with `advance`."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def __call__(self) -> float:
        return self.now()

    def advance(self, seconds: float) -> None:
        self.offset += seconds
