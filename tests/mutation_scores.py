"""Print the mutation scores of `make mutation` per module (and the state commit path).

Reads the result files mutmut 3 leaves in mutants/ (`<module>.py.meta`) and prints a Markdown
table for tests/MUTATION.md plus the names of the surviving mutants (`mutmut show NAME` prints the
change). Killed = the tests failed, or timed out, on the mutant. The score is killed / (killed +
survived); mutants that no selected test reaches are counted separately ("no tests"), since
they are code the mutation run's test selection does not exercise at all.

Usage: python tests/mutation_scores.py [mutants-dir]
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

#: The state commit path of sp_sync/state/local.py: what issue 17 item 8 calls "state commit".
COMMIT_PATH = re.compile(
    r"sp_sync\.state\.local\.("
    r"x_(_etag|_read_or_none|_compare|_write_durably|_write_all|_fsync_dir|_remove_tree|_remove_stray_temps)"
    r"|xǁLocalStateStoreǁ(commit_list_state|_cleanup))__mutmut_"
)

KILLED = {1, 3, 36, 24, -24, 152, 255, 37}
SURVIVED = {0}
NO_TESTS = {5, 33}


def _row(label: str, codes: Counter[int | None]) -> tuple[str, int, int, int, int, str]:
    killed = sum(n for c, n in codes.items() if c in KILLED)
    survived = sum(n for c, n in codes.items() if c in SURVIVED)
    untested = sum(n for c, n in codes.items() if c in NO_TESTS)
    other = sum(codes.values()) - killed - survived - untested
    tested = killed + survived
    score = f"{100 * killed / tested:.1f} %" if tested else "–"
    return label, killed, survived, untested, other, score


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "mutants")
    metas = sorted(root.rglob("*.py.meta"))
    if not metas:
        print(f"no mutmut results under {root}/ (run `make mutation` first)", file=sys.stderr)
        return 2
    rows = []
    survivors: list[str] = []
    commit: Counter[int | None] = Counter()
    total: Counter[int | None] = Counter()
    for meta in metas:
        module = str(meta.relative_to(root))[: -len(".meta")]
        codes: Counter[int | None] = Counter()
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            codes[code] += 1
            if COMMIT_PATH.match(name):
                commit[code] += 1
            if code in SURVIVED:
                survivors.append(name)
        total.update(codes)
        rows.append(_row(module, codes))
    if commit:
        rows.append(_row("sp_sync/state/local.py — commit path only", commit))
    rows.append(_row("all four modules", total))
    print("| module | killed | survived | no tests | other | score |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, killed, survived, untested, other, score in rows:
        print(f"| {label} | {killed} | {survived} | {untested} | {other} | {score} |")
    print()
    print(f"{len(survivors)} surviving mutants:")
    for name in sorted(survivors):
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
