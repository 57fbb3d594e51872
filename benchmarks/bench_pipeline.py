"""Benchmark: the whole nightly pipeline end to end, as `sp-sync run` does it.

    .venv/bin/python benchmarks/bench_pipeline.py [--items 100000] [--json]

For N items (two thirds Länskunskap, one third Dialogåterkoppling, plus two dialogues per
county), against a fresh in-process emulator and through the managed-identity path:

1. provision   – the three lists from list_schemas/ (sp_sync.run.pipeline.run_provision)
2. seed        – N items straight into the emulator backend (not timed as part of a night)
3. full night  – drift check, full sync, validation, aggregation, workbooks, upload, summary
4. incr night  – 1 % of the items edited in the emulator, then the same pipeline incrementally

Per step: wall seconds, CPU seconds of the pipeline's own thread (`time.thread_time`, so the
emulator's serving threads are not counted), CPU seconds of the whole process (pipeline +
emulator), requests the emulator served and bytes it sent, and the process's peak RSS. The
emulator keeps all N items in memory in the same process, so peak RSS includes it; the RSS
right after seeding is reported beside it so the pipeline's own share can be read off.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sp_emulator import SharePointEmulator  # noqa: E402
from sp_sync.demo.data import generate_demo_data  # noqa: E402
from sp_sync.demo.runner import DEMO_SITE, demo_env, managed_identity_env  # noqa: E402
from sp_sync.run import pipeline  # noqa: E402
from sp_sync.run.progress import Progress  # noqa: E402
from sp_sync.run.runtime import Runtime  # noqa: E402
from sp_sync.schema import load_schemas  # noqa: E402
from sp_sync.settings import Settings  # noqa: E402

KNOWLEDGE = "Länskunskap"
FEEDBACK = "Dialogåterkoppling"
DIALOGUES = "Dialoger"


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Quiet(Progress):
    """No progress output: the benchmark prints one table at the end."""

    def start(self, *args: Any, **kwargs: Any) -> None:
        pass

    def advance(self, *args: Any, **kwargs: Any) -> None:
        pass

    def finish(self, *args: Any, **kwargs: Any) -> None:
        pass


def seed(emu: Any, items: int, *, base_date: dt.date) -> dict[str, int]:
    """Seed about `items` rows: 2/3 knowledge, 1/3 feedback over the 20 counties with data."""
    reference = load_schemas().reference
    with_data = max(1, len(reference.counties) - 1)  # the demo leaves one county quiet
    knowledge_per_county = max(1, round(items * 2 / 3 / with_data))
    feedback_per_county = max(1, round(items / 3 / with_data))
    backend = emu.backend
    site = backend.get_site(DEMO_SITE)
    data = generate_demo_data(
        reference,
        user_ids=sorted(site.users)[:8],
        base_date=base_date,
        knowledge_per_county=knowledge_per_county,
        feedback_per_county=feedback_per_county,
    )
    counts = {}
    for title, rows in (
        (DIALOGUES, data.dialogues),
        (KNOWLEDGE, data.knowledge),
        (FEEDBACK, data.feedback),
    ):
        backend.bulk_add_items(DEMO_SITE, title, rows)
        counts[title] = len(rows)
    return counts


def change_share(emu: Any, share: float) -> int:
    """Edit `share` of the knowledge and feedback items, spread evenly over the IDs."""
    backend = emu.backend
    site = backend.get_site(DEMO_SITE)
    changed = 0
    for title, values in ((KNOWLEDGE, {"Priority": "Hög"}), (FEEDBACK, {"Status": "Klar"})):
        lst = backend.get_list(site, title=title)
        ids = sorted(lst.items)
        k = max(1, int(len(ids) * share))
        step = max(1, len(ids) // k)
        for item_id in ids[::step][:k]:
            backend.update_item(site, lst, backend.get_item(lst, item_id), values, if_match=None)
            changed += 1
    return changed


def measure(name: str, emu: Any, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    emu.reset_stats()
    wall0, thread0, proc0 = time.perf_counter(), time.thread_time(), time.process_time()
    extra = fn()
    wall = time.perf_counter() - wall0
    thread_cpu = time.thread_time() - thread0
    proc_cpu = time.process_time() - proc0
    stats = emu.stats()
    return {
        "step": name,
        "wall_s": round(wall, 2),
        "pipeline_cpu_s": round(thread_cpu, 2),
        "process_cpu_s": round(proc_cpu, 2),
        "requests": stats.get("requests"),
        "bytes_sent": stats.get("bytes_sent"),
        "peak_rss_mb": round(rss_mb()),
        **extra,
    }


def _summary_extra(summary: Any) -> dict[str, Any]:
    doc = summary.to_dict()
    totals = doc.get("totals", {})
    return {
        "status": doc.get("status"),
        "rows": totals.get("rows"),
        "added": totals.get("added"),
        "updated": totals.get("updated"),
        "deleted": totals.get("deleted"),
        "workbooks": len(doc.get("workbooks", [])),
        "workbook_bytes": sum(w.get("size", 0) for w in doc.get("workbooks", [])),
        "modes": sorted({r.get("mode") for r in doc.get("lists", [])}),
    }


def run(items: int) -> dict[str, Any]:
    # The pipeline logs one INFO line per list; a benchmark wants only its table.
    logging.getLogger("sp_sync").setLevel(logging.WARNING)
    base_date = dt.date(2026, 3, 29)
    steps: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="sp-sync-bench-") as tmp,
        SharePointEmulator(sites=[DEMO_SITE]) as emu,
        managed_identity_env(emu.identity_endpoint, emu.identity_header),
    ):
        env = demo_env(emu, Path(tmp) / "state")
        env["SP_SYNC_TIME_BUDGET_SECONDS"] = "3600"
        settings = Settings.from_env(env)
        runtime = Runtime(settings=settings)
        site = settings.sites[0]
        out_dir = Path(tmp) / "rollups"

        def provision() -> dict[str, Any]:
            pipeline.run_provision(runtime, site, apply=True, allow_destructive=False)
            return {}

        steps.append(measure("provision", emu, provision))
        t0 = time.perf_counter()
        counts = seed(emu, items, base_date=base_date)
        seed_s = round(time.perf_counter() - t0, 2)
        rss_after_seed = round(rss_mb())

        def night(full: bool) -> Callable[[], dict[str, Any]]:
            def go() -> dict[str, Any]:
                summary = pipeline.run_pipeline(
                    runtime, site, full=full, out_dir=out_dir, progress=_Quiet()
                )
                return _summary_extra(summary)

            return go

        steps.append(measure("full night", emu, night(True)))
        changed = change_share(emu, 0.01)
        steps.append({**measure("incremental night (1 %)", emu, night(False)), "changed": changed})
    return {
        "benchmark": "pipeline",
        "items": sum(counts.values()),
        "lists": counts,
        "seed_s": seed_s,
        "rss_after_seed_mb": rss_after_seed,
        "steps": steps,
        "peak_rss_mb": round(rss_mb()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="print only the JSON document")
    args = parser.parse_args(argv)
    doc = run(args.items)
    print(json.dumps(doc, ensure_ascii=False, indent=1))
    if not args.json:
        print()
        print(
            f"{doc['items']} items seeded in {doc['seed_s']} s; RSS after seeding {doc['rss_after_seed_mb']} MB"
        )
        print(
            f"{'step':<26} {'wall s':>7} {'cpu s':>6} {'proc cpu':>8} {'req':>5} {'bytes':>11} {'RSS MB':>7}"
        )
        for s in doc["steps"]:
            print(
                f"{s['step']:<26} {s['wall_s']:>7} {s['pipeline_cpu_s']:>6} {s['process_cpu_s']:>8} "
                f"{s['requests']!s:>5} {s['bytes_sent']!s:>11} {s['peak_rss_mb']:>7}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
