"""Progress reporting: a live bar on a terminal, plain lines otherwise.

The pipeline reports through a `Progress` object so that the CLI, the demo and the Functions
app differ only in how progress is shown (Functions: log lines; CLI: a tqdm bar on a TTY, one
plain line per step when piped). tqdm is imported only when a live bar is drawn, so neither the
Functions app nor a piped CLI loads it.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from sp_sync.i18n import format_number, format_seconds, format_size
from sp_sync.run.summary import fit_line, fit_text

if TYPE_CHECKING:
    from tqdm import tqdm


class Progress:
    """Null progress: the interface every reporter implements.

    `start` begins a step (with its `total` where it is known: items, changes, bytes) and
    `finish` ends it with a message; the reporter measures each step's duration itself.
    `unit="byte"` makes counts show as sizes.
    """

    def start(self, task: str, total: int | None = None, unit: str = "") -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass

    def finish(self, message: str | None = None) -> None:
        pass

    def note(self, message: str) -> None:
        pass


class TerminalProgress(Progress):
    """A tqdm bar per step on a TTY (with a total where one is known); plain lines when not.

    Every finished step prints one line `message (duration)`, the duration being that step's
    own, measured from its `start`.
    """

    def __init__(
        self, stream: TextIO | None = None, *, live: bool | None = None, language: str = "sv"
    ) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.language = language
        self.task = ""
        self.total: int | None = None
        self.done = 0
        self.unit = ""
        self._started = 0.0
        self._bar: tqdm[Any] | None = None

    def _amount(self, value: int) -> str:
        if self.unit == "byte":
            return format_size(value, self.language)
        return format_number(value, self.language)

    def _counter(self) -> str:
        unit = "" if self.unit == "byte" else f" {self.unit}"
        if self.total:
            return f"{self._amount(self.done)} / {self._amount(self.total)}{unit}"
        return f"{self._amount(self.done)}{unit}"

    def start(self, task: str, total: int | None = None, unit: str = "") -> None:
        self._close_bar()
        self.task, self.total, self.unit, self.done = task, total, unit, 0
        self._started = time.monotonic()
        if not self.live:
            self.stream.write(f"{task} …\n")
            self.stream.flush()
            return
        from tqdm import tqdm

        # The counter is drawn by us (language-specific numbers and sizes); tqdm draws the bar,
        # the percentage and the elapsed time, and limits redraws to a few per second.
        self._bar = tqdm(
            total=total or None,
            desc=task,
            file=self.stream,
            leave=False,
            dynamic_ncols=True,
            mininterval=0.1,
            # tqdm puts ", " before the postfix: "Laddar upp ███ 33 %, 1,0 MB / 3,0 MB [00:01]".
            bar_format="{desc} {bar} {percentage:3.0f} %{postfix} [{elapsed}]"
            if total
            else "{desc}{postfix} [{elapsed}]",
        )
        self._bar.set_postfix_str(self._counter(), refresh=False)

    def set_total(self, total: int | None) -> None:
        self.total = total
        if self._bar is not None and total:
            self._bar.total = total
            self._bar.refresh()

    def advance(self, amount: int = 1) -> None:
        self.done += amount
        if self._bar is not None:
            self._bar.set_postfix_str(self._counter(), refresh=False)
            self._bar.update(amount)

    def finish(self, message: str | None = None) -> None:
        seconds = time.monotonic() - self._started
        self._close_bar()
        text = message or f"{self.task}: {self._counter()}"
        # "27 arbetsböcker uppladdade till /sites/…/Rapporter (1,2 s)": a long folder goes on a
        # line of its own, so no line is wider than a terminal.
        line = f"{text} ({format_seconds(seconds, self.language)})"
        self.stream.write("\n".join(fit_line(line, path_last=True)) + "\n")
        self.stream.flush()

    def note(self, message: str) -> None:
        message = fit_text(message)
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
            return
        self.stream.write(message + "\n")
        self.stream.flush()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
