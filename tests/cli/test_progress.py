"""Progress people can read (issue 13 item 6): a bar with a total, language number formats,
each step's own duration, plain lines when piped, and tqdm kept off the Functions path."""

from __future__ import annotations

import io
import subprocess
import sys
import time

from sp_sync.i18n import format_number, format_seconds, format_size
from sp_sync.run.progress import TerminalProgress
from tests.cli.conftest import ROOT, base_env


def test_live_bar_shows_the_total_in_the_language_and_each_step_its_own_duration() -> None:
    out = io.StringIO()
    progress = TerminalProgress(out, live=True, language="sv")
    progress.start("Laddar upp", total=3 * 1024 * 1024, unit="byte")
    for _ in range(3):
        time.sleep(0.12)  # tqdm redraws at most every 0.1 s
        progress.advance(1024 * 1024)
    progress.finish("3 arbetsböcker uppladdade")
    text = out.getvalue()
    assert "1,0 MB / 3,0 MB" in text and "100 %" in text
    last = text.rsplit("\r", 1)[-1]
    assert last.startswith("3 arbetsböcker uppladdade (") and last.endswith(" s)\n")

    out = io.StringIO()
    english = TerminalProgress(out, live=True, language="en")
    english.start("Syncing Länskunskap", total=1200, unit="rows")
    english.advance(1200)
    english.finish()
    assert "Syncing Länskunskap: 1,200 / 1,200 rows (" in out.getvalue()


def test_plain_lines_when_piped() -> None:
    out = io.StringIO()
    progress = TerminalProgress(out, live=False, language="sv")
    progress.start("Synkar Dialoger", total=42, unit="rader")
    progress.advance(42)
    progress.finish()
    assert out.getvalue().splitlines()[0] == "Synkar Dialoger …"
    assert out.getvalue().splitlines()[1].startswith("Synkar Dialoger: 42 / 42 rader (0,0 s)")
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_number_formats() -> None:
    assert format_number(1674, "sv") == "1 674" and format_number(1674, "en") == "1,674"
    assert format_seconds(0.123, "sv") == "0,1 s" and format_seconds(0.123, "en") == "0.1 s"
    assert format_seconds(185, "sv") == "3 min 5 s"
    assert format_size(1674 * 1024, "sv") == "1,6 MB" and format_size(509 * 1024, "en") == "509 kB"
    assert format_size(12, "sv") == "12 byte" and format_size(1, "en") == "1 byte"


def test_the_functions_app_never_imports_the_terminal_library() -> None:
    """The cold start stays as it was: `import function_app` loads neither tqdm nor the CLI."""
    code = (
        "import sys, function_app; "
        "print(sorted(m for m in ('tqdm', 'sp_sync.cli', 'argparse') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
