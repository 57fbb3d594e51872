"""The emulator's own control surface: observation (faults, statistics, journal, digests) and
the `/_emulator/` admin routes that expose it together with seeding and resetting."""

from __future__ import annotations

from sp_emulator.admin.observation import Digests, FaultRule, Faults, Stats, throttle_response

__all__ = ["Digests", "FaultRule", "Faults", "Stats", "throttle_response"]
