"""The README's reliability table, produced by the suite.

Each scenario test of issue 11 calls `record(slug, tries=…, failures=…, rows_lost=…)` with what
it measured (tries: attempts, deliveries, values or inputs it put through; failures: how many of
them ended in a stopped night, a stale or older workbook, an unhandled exception or an executed
payload; rows lost: committed rows missing afterwards). The results land in
`build/reliability/*.json`; `python -m tests.reliability.scenarios` writes the table into the
README between its markers, and `test_reliability_table.py` checks that the README lists every
scenario with zero failures and zero rows lost, matching any results on disk.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "build" / "reliability"
README = ROOT / "README.md"
START = "<!-- reliability-table:start -->"
END = "<!-- reliability-table:end -->"

#: slug → (issue 11 item, what the scenario does). The README rows follow this order.
SCENARIOS: dict[str, tuple[str, str]] = {
    "rollup-lease": ("1", "the invocation holding a site's rollup dies; the next delivery takes it over"),
    "rollup-gives-up": ("1", "a rollup that dies on every delivery is marked failed with its reason"),
    "lease-heartbeat": ("1", "a rollup longer than its lease renews it and is not taken over"),
    "extreme-values": ("2", "extreme and mistyped values in every column of every list, through sync and rollup"),
    "newer-run-waits": ("3", "a newer run starts while the nightly run uploads"),
    "older-functions-run": ("3", "an older Functions run finishes after a newer one"),
    "older-rollup-stalled": ("3", "an older rollup stalls past its lock's lease while a newer run publishes"),
    "older-rollup-between-files": ("3", "an older rollup stalls between two uploads while a newer run publishes"),
    "rollup-budget": ("5", "a Functions rollup runs out of its time budget between uploads; the redelivery finishes it"),
    "time-budget": ("5", "the time budget runs out before the rollup; the next run completes"),
    "hung-identity": ("4", "the managed-identity endpoint accepts and never answers"),
    "budget-timeout": ("4", "a SharePoint page hangs past a short budget; the run ends within budget + one timeout"),
    "blob-budget": ("4", "the state store hangs on a commit past a short budget; state intact, the next run completes"),
    "blob-hung-account": ("4", "the whole storage account stops answering mid-run; the run ends within budget + one timeout"),
    "run-counts": ("7", "throttled drift check and uploads, counted in the run summary"),
    "token-counts": ("7", "a throttled token endpoint, retried and counted in the run summary"),
    "status-words": ("7", "every status written by a Functions run is from its set; a typo is refused"),
    "full-disk": ("8", "the disk fills up during a run, and while taking the lock"),
    "blob-errors": ("8", "blob store unreachable, key refused, container deleted mid-run, 5xx"),
    "hostile-requests": ("9", "deep, huge, non-UTF-8 and mistyped run requests"),
    "malformed-messages": ("9", "malformed queue messages"),
    "settings-refused": ("10", "settings that would fail at run time"),
    "department-names": ("10", "departments whose workbooks would share a file name"),
    "emulator-payload": ("11", "a crafted pickle or JSON snapshot in the emulator's data directory"),
    "secret-in-url": ("12", "a password in the site URL, shown by status"),
    "quiet-lists": ("13", "three quiet weeks: last check apart from last change"),
}  # fmt: skip


def record(slug: str, *, tries: int, failures: int, rows_lost: int) -> None:
    """Store one scenario's measured outcome (called at the end of the scenario's test)."""
    assert slug in SCENARIOS, slug
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {"tries": int(tries), "failures": int(failures), "rows_lost": int(rows_lost)}
    (RESULTS / f"{slug}.json").write_text(json.dumps(doc), encoding="utf-8")


def results() -> dict[str, dict[str, int]]:
    out = {}
    for slug in SCENARIOS:
        path = RESULTS / f"{slug}.json"
        if path.exists():
            out[slug] = json.loads(path.read_text(encoding="utf-8"))
    return out


def render(found: dict[str, dict[str, int]]) -> str:
    lines = [
        "| item | scenario | tries | failures | rows lost |",
        "|---|---|---|---|---|",
    ]
    for slug, (item, text) in SCENARIOS.items():
        r = found[slug]
        lines.append(
            f"| {item} | {text} (`{slug}`) | {r['tries']} | {r['failures']} | {r['rows_lost']} |"
        )
    return "\n".join(lines)


def main() -> int:
    found = results()
    missing = sorted(set(SCENARIOS) - set(found))
    if missing:
        print(f"no results for {', '.join(missing)}: run tests/reliability and tests/hostile")
        return 1
    text = README.read_text(encoding="utf-8")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    README.write_text(f"{head}{START}\n{render(found)}\n{END}{tail}", encoding="utf-8")
    print(f"README reliability table updated ({len(found)} scenarios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
