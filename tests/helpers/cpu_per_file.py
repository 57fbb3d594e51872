"""Where the suite's CPU goes, per test file, child processes included (opt-in pytest plugin).

    .venv/bin/python -m pytest -n 2 -q -p tests.helpers.cpu_per_file --cpu-per-file=/tmp/cpu
    .venv/bin/python -m tests.helpers.cpu_per_file /tmp/cpu 30     # the top 30 files

Each test's CPU is the change of `getrusage(RUSAGE_SELF)` + `getrusage(RUSAGE_CHILDREN)` of its
worker across the whole test (setup, call, teardown), plus the CPU the fork server reports for
each of its children that ended meanwhile, so the emulator threads of the test process, the
`sp-sync` subprocesses it waited for (forked or real) and a module fixture's teardown (the last
test of a file) all count. A process is counted when it is reaped: the session's Azurite (one per
worker) shows up on the worker's last test. Timing goals are measured by `benchmarks/`; this is
for finding where the suite's own time goes (issue 13 item 10).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cpu-per-file",
        metavar="DIR",
        default=None,
        help="append each test's CPU (self + reaped children) and wall seconds to DIR/<worker>.jsonl",
    )


#: CPU of the fork server's children (tests/helpers/forkserver.py) that ended in this worker:
#: they are the server's children, so RUSAGE_CHILDREN never sees them; the server reports each
#: child's CPU with its exit status.
_FORKED = [0.0]


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--cpu-per-file", default=None):
        from tests.helpers import forkserver

        forkserver.on_exit.append(lambda proc: _FORKED.__setitem__(0, _FORKED[0] + proc.cpu))


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime + _FORKED[0]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[Any]:
    out = item.config.getoption("--cpu-per-file")
    if not out:
        yield
        return
    own0, children0 = _cpu()
    wall0 = time.perf_counter()
    yield
    own1, children1 = _cpu()
    record = {
        "id": item.nodeid,
        "self": own1 - own0,
        "child": children1 - children0,
        "wall": time.perf_counter() - wall0,
    }
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with (folder / f"{worker}.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def table(folder: Path, top: int = 30) -> str:
    """A Markdown table of the `top` files by CPU seconds, and the total."""
    files: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            row = files[r["id"].split("::")[0]]
            row[0] += r["self"]
            row[1] += r["child"]
            row[2] += r["wall"]
            row[3] += 1
    ranked = sorted(files.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))
    lines = [
        "| # | file | tests | cpu s | self | children | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, (name, (own, children, wall, n)) in enumerate(ranked[:top], 1):
        lines.append(
            f"| {i} | {name} | {n:.0f} | {own + children:.1f} | {own:.1f} | {children:.1f} "
            f"| {wall:.1f} |"
        )
    own, children, wall, n = (sum(v[k] for v in files.values()) for k in range(4))
    lines.append(
        f"| | total ({len(files)} files) | {n:.0f} | {own + children:.1f} | {own:.1f} "
        f"| {children:.1f} | {wall:.1f} |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 30))
