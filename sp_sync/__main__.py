"""`python -m sp_sync` runs the command line."""

from __future__ import annotations

from sp_sync.cli import run

run()
