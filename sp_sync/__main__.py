"""`python -m sp_sync` runs the command line."""

from __future__ import annotations

import sys

from sp_sync.cli import main

sys.exit(main())
