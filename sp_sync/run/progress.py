"""Progress reporting: a live bar on a terminal, quiet plain lines otherwise.

The pipeline reports through a `Progress` object so that the CLI, the demo and the Functions
app differ only in how progress is shown (Functions: log lines; CLI: a bar on a TTY).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Null progress: the interface every reporter implements."""

    def start(self, task: str, total: int | None = None, unit: str = "") -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        pass

    def finish(self, message: str | None = None) -> None:
        pass

    def note(self, message: str) -> None:
        pass


class TerminalProgress(Progress):
    """One updating line per task on a TTY; plain lines (start/finish only) when not a TTY."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.task = ""
        self.total: int | None = None
        self.done = 0
        self.unit = ""
        self._last_draw = 0.0
        self._started = 0.0

    def start(self, task: str, total: int | None = None, unit: str = "") -> None:
        self.task, self.total, self.unit, self.done = task, total, unit, 0
        self._started = time.monotonic()
        if not self.live:
            self.stream.write(f"{task} …\n")
            self.stream.flush()
        else:
            self._draw(force=True)

    def advance(self, amount: int = 1) -> None:
        self.done += amount
        if self.live:
            self._draw()

    def finish(self, message: str | None = None) -> None:
        seconds = time.monotonic() - self._started
        text = message or f"{self.task}: {self.done:,} {self.unit}".replace(",", " ").strip()
        if self.live:
            self.stream.write("\r\x1b[2K")
        self.stream.write(f"{text} ({seconds:.1f} s)\n")
        self.stream.flush()

    def note(self, message: str) -> None:
        if self.live:
            self.stream.write("\r\x1b[2K")
        self.stream.write(message + "\n")
        self.stream.flush()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        if self.total:
            share = min(1.0, self.done / self.total)
            filled = int(share * 24)
            bar = "█" * filled + "░" * (24 - filled)
            text = f"{self.task} {bar} {self.done}/{self.total} {self.unit}"
        else:
            text = f"{self.task} … {self.done} {self.unit}"
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()
