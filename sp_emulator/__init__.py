"""A SharePoint Online emulator on loopback, for tests, the demo and trying list schemas.

`with SharePointEmulator(sites=["x"]) as emu:` runs it in a thread; `python -m sp_emulator`
runs it in the foreground. See sp_emulator/README.md for what is emulated and how faithfully.
"""

from __future__ import annotations

from sp_emulator.clock import Clock
from sp_emulator.errors import SPError
from sp_emulator.model import Backend
from sp_emulator.server import EmulatorApp, SharePointEmulator

__all__ = ["Backend", "Clock", "EmulatorApp", "SPError", "SharePointEmulator"]
