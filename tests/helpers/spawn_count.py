"""How many child processes the suite starts, and their CPU, by kind (opt-in pytest plugin).

    .venv/bin/python -m pytest -n 2 -q -p tests.helpers.spawn_count --spawn-count=/tmp/spawns
    .venv/bin/python -m tests.helpers.spawn_count /tmp/spawns

Counted at the spawn site (`subprocess.Popen`, which `subprocess.run` uses too), so children with
an environment of their own and SIGKILLed children count as well. A child's CPU is its own
rusage when the test waits for it (`os.wait4` instead of `os.waitpid`); a child only `poll`ed to
its end counts with no CPU. The fork server's children (tests/helpers/forkserver.py) are
recorded by the server, which reports each child's rusage with its exit status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

_OUT: Path | None = None
_CURRENT = {"file": "?"}


def kind(args: Any) -> str:
    argv = [str(a) for a in args] if isinstance(args, (list, tuple)) else [str(args)]
    if not argv:
        return "?"
    exe = Path(argv[0]).name
    if exe.startswith("python") or argv[0] == sys.executable:
        if "-m" in argv:
            return "python -m " + argv[argv.index("-m") + 1]
        if "-c" in argv:
            return "python -c"
        return "python " + (Path(argv[1]).name if len(argv) > 1 else "")
    return exe


def record(kind_: str, cpu: float, how: str) -> None:
    if _OUT is None:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    line = {"file": _CURRENT["file"], "kind": kind_, "cpu": cpu, "how": how}
    with (_OUT / f"{worker}.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--spawn-count", metavar="DIR", default=None, help="log child processes")


def pytest_configure(config: pytest.Config) -> None:
    global _OUT
    out = config.getoption("--spawn-count")
    if not out:
        return
    _OUT = Path(out)
    _OUT.mkdir(parents=True, exist_ok=True)
    original_init = subprocess.Popen.__init__

    def init(self: subprocess.Popen[Any], args: Any, *a: Any, **kw: Any) -> None:
        original_init(self, args, *a, **kw)
        self._spawn_kind = kind(args)  # type: ignore[attr-defined]
        self._spawn_recorded = False  # type: ignore[attr-defined]
        record(self._spawn_kind, 0.0, "started")  # type: ignore[attr-defined]

    def try_wait(self: subprocess.Popen[Any], wait_flags: int) -> tuple[int, int]:
        try:
            pid, sts, usage = os.wait4(self.pid, wait_flags)
        except ChildProcessError:
            pid, sts = self.pid, 0
            usage = None
        if pid and usage is not None and not getattr(self, "_spawn_recorded", True):
            self._spawn_recorded = True  # type: ignore[attr-defined]
            record(self._spawn_kind, usage.ru_utime + usage.ru_stime, "waited")  # type: ignore[attr-defined]
        return pid, sts

    from tests.helpers import forkserver

    forkserver.on_exit.append(lambda proc: record(kind(proc.args), proc.cpu, "forked"))
    subprocess.Popen.__init__ = init  # type: ignore[method-assign]
    subprocess.Popen._try_wait = try_wait  # type: ignore[attr-defined]


def pytest_runtest_setup(item: pytest.Item) -> None:
    _CURRENT["file"] = item.nodeid.split("::")[0]


def table(folder: Path) -> str:
    kinds: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    files: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            k = f"{r['kind']} ({r['how']})"
            kinds[k][0] += 1
            kinds[k][1] += r["cpu"]
            files[r["file"]][0] += 1
            files[r["file"]][1] += r["cpu"]
    out = ["| kind | children | cpu s |", "|---|---|---|"]
    for k, (n, cpu) in sorted(kinds.items(), key=lambda kv: -kv[1][1]):
        out.append(f"| {k} | {n:.0f} | {cpu:.1f} |")
    total_n = sum(v[0] for v in kinds.values())
    total_cpu = sum(v[1] for v in kinds.values())
    out.append(f"| total | {total_n:.0f} | {total_cpu:.1f} |")
    out += ["", "| file | children | cpu s |", "|---|---|---|"]
    for f, (n, cpu) in sorted(files.items(), key=lambda kv: -kv[1][1])[:25]:
        out.append(f"| {f} | {n:.0f} | {cpu:.1f} |")
    return "\n".join(out)


if __name__ == "__main__":
    print(table(Path(sys.argv[1])))
