"""A process running one batch command keeps the cyclic collector off what it imported
(`sp_sync.cli._settle_heap`, issue 14 goal 4): the collector's full passes over pandas' and
pyarrow's objects were a fifth of a night after 50 edits."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from typing import Any

from sp_sync import cli

_PROBE = """
import gc, json, sys
from sp_sync import cli
code = cli.main(sys.argv[1:], own_process=True)
print(json.dumps({"code": code, "threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                  "enabled": gc.isenabled(), "pandas": "pandas" in sys.modules,
                  "engine": "sp_sync.sync.engine" in sys.modules}))
"""


def _probe(*argv: str) -> dict[str, Any]:
    """`cli.main(argv, own_process=True)` in a fresh interpreter (its collector is what is
    observed), with no settings: the command fails on them after the heap was settled."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SP_SYNC_")}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_night_process_freezes_its_imports_and_collects_young_objects_rarely() -> None:
    state = _probe("run", "-q")
    assert state["code"] != 0  # no settings: a clear error, after the heap was settled
    assert state["enabled"] is True  # cycles are still collected
    assert state["threshold"][0] == cli._YOUNG_THRESHOLD
    assert state["pandas"] is True and state["engine"] is True
    # pandas, pyarrow and the sync engine's objects are out of every later pass.
    assert int(state["frozen"]) > 100_000


def test_a_rollup_process_settles_without_the_sync_engine() -> None:
    state = _probe("rollup", "--no-upload", "-q")
    assert state["threshold"][0] == cli._YOUNG_THRESHOLD
    assert state["engine"] is False


def test_other_commands_leave_the_collector_as_python_sets_it() -> None:
    state = _probe("status")
    assert state["frozen"] == 0
    assert state["threshold"][0] == 700
    assert state["pandas"] is False  # status stays lean


def test_main_in_a_shared_process_never_touches_the_collector() -> None:
    before = (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled())
    cli.main(["rollup", "--no-upload", "-q"])
    assert (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled()) == before
