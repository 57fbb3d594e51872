"""Crash points for the crash-safety tests.

`SP_SYNC_STATE_CRASH_AT=<point>` makes the process kill itself with SIGKILL when a commit reaches
that point — the same as the platform killing the Functions host there. With
`SP_SYNC_STATE_CRASH_AT=<point>:<n>` it happens at the n-th time the point is reached. Unset (always,
outside tests) this costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import sys

from sp_sync.settings import CRASH_AT_VARIABLE, crash_at

ENV = CRASH_AT_VARIABLE
POINTS = (
    "after-rows",
    "after-delta",
    "after-quality",
    "before-manifest",
    "mid-write",
    "after-manifest",
    "mid-cleanup",
)
_seen: dict[str, int] = {}


def crash_point(point: str) -> None:
    spec = crash_at()
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != point:
        return
    _seen[point] = _seen.get(point, 0) + 1
    if _seen[point] >= int(nth or 1):
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
