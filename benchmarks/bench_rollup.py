"""Benchmark: the rollups for 100,000 knowledge + 50,000 feedback rows vs a naive DataFrame.to_excel.

    .venv/bin/python benchmarks/bench_rollup.py [--rows 100000,50000] [--json] [--skip-naive]

Builds deterministic snapshots (tests/rollup/helpers.py; not timed), then runs
sp_sync.report.publish.build_workbooks once — aggregation, rendering of every workbook and verification
(each reopened with openpyxl) — and reports the time of each phase, the total wall time, the CPU
time (user + system, this process and any worker processes) and the peak RSS of the process
(ru_maxrss, so it includes the fixture). For comparison the same snapshots are written by pandas'
`to_excel` (openpyxl engine, no formatting) in a child process, so each gets its own peak RSS.
Goal (issue 5): ≤ 30 s wall and ≤ 1.5 GB peak on this 2-core machine.

With --json only the JSON document goes to stdout (benchmarks/__main__.py parses it) and the
table to stderr; without it the table and then the JSON go to stdout.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sp_sync.report.publish import build_workbooks  # noqa: E402
from sp_sync.report.tables import FEEDBACK, KNOWLEDGE  # noqa: E402
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_quality, make_snapshots  # noqa: E402

GOAL_S = 30.0
GOAL_MB = 1536.0


def peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def cpu_s() -> float:
    """User + system CPU of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def snapshots(knowledge: int, feedback: int, dialogues: int) -> dict[str, Any]:
    return make_snapshots(
        knowledge=knowledge, feedback=feedback, dialogues_per_county=dialogues, empty_counties=()
    )


def naive_child(knowledge: int, feedback: int, dialogues: int) -> dict[str, Any]:
    """In the child process: pandas' to_excel of the raw knowledge and feedback frames."""
    import pandas as pd

    snaps = snapshots(knowledge, feedback, dialogues)
    t0, c0 = time.perf_counter(), time.process_time()
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as writer:
        for title in (KNOWLEDGE, FEEDBACK):
            frame = snaps[title].copy()
            for col in frame.columns:
                if frame[col].map(lambda v: isinstance(v, list)).any():
                    frame[col] = frame[col].map(str)
                if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
                    frame[col] = frame[col].dt.tz_localize(None)
            frame.to_excel(writer, sheet_name=title, index=False)
    return {
        "naive_to_excel_s": round(time.perf_counter() - t0, 2),
        "naive_cpu_s": round(time.process_time() - c0, 2),
        "naive_bytes": len(buf.getvalue()),
        "naive_peak_rss_mb": round(peak_mb()),
    }


def run_naive(knowledge: int, feedback: int, dialogues: int) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--naive-child",
        "--rows",
        f"{knowledge},{feedback}",
        "--dialogues-per-county",
        str(dialogues),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"naive_error": proc.stderr.strip()[-500:]}
    return dict(json.loads(proc.stdout))


def table(result: dict[str, Any]) -> str:
    rows = [
        (
            "rows (knowledge, feedback)",
            f"{result['knowledge_rows']:,} + {result['feedback_rows']:,}",
        ),
        ("aggregation", f"{result['aggregate_s']} s"),
        ("rendering", f"{result['render_s']} s"),
        ("verification", f"{result['verify_s']} s"),
        ("total wall", f"{result['rollup_total_s']} s (goal ≤ {GOAL_S:.0f} s)"),
        ("total CPU", f"{result['rollup_cpu_s']} s"),
        (
            "peak RSS",
            f"{result['peak_rss_after_rollup_mb']} MB (goal ≤ {GOAL_MB:.0f} MB; "
            f"{result['peak_rss_after_fixture_mb']} MB after the fixture)",
        ),
        ("workbooks / bytes", f"{result['workbooks']} / {result['total_bytes']:,}"),
    ]
    if "naive_to_excel_s" in result:
        rows += [
            (
                "naive to_excel wall",
                f"{result['naive_to_excel_s']} s ({result['naive_cpu_s']} s CPU)",
            ),
            ("naive to_excel peak RSS", f"{result['naive_peak_rss_mb']} MB (own process)"),
            ("naive to_excel bytes", f"{result['naive_bytes']:,}"),
        ]
    elif "naive_error" in result:
        rows.append(("naive to_excel", f"failed: {result['naive_error']}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", default=None, help="K,F: knowledge and feedback rows (default 100000,50000)"
    )
    parser.add_argument("--knowledge", type=int, default=100_000, help=argparse.SUPPRESS)
    parser.add_argument("--feedback", type=int, default=50_000, help=argparse.SUPPRESS)
    parser.add_argument("--dialogues-per-county", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="only JSON on stdout (table on stderr)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--naive-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    knowledge, feedback = args.knowledge, args.feedback
    if args.rows:
        k, _, f = args.rows.partition(",")
        knowledge, feedback = int(k), int(f)

    if args.naive_child:
        print(json.dumps(naive_child(knowledge, feedback, args.dialogues_per_county)))
        return 0

    t0 = time.perf_counter()
    snaps = snapshots(knowledge, feedback, args.dialogues_per_county)
    quality = make_quality(snaps)
    t_fixture = time.perf_counter() - t0
    mem_fixture = peak_mb()

    phases: dict[str, float] = {}
    c0 = cpu_s()
    t0 = time.perf_counter()
    workbooks = build_workbooks(
        snaps,
        quality,
        None,
        site_url=SITE,
        generated_at=GENERATED_AT,
        time_zone=STHLM,
        timings=phases,
    )
    t_total = time.perf_counter() - t0
    cpu = cpu_s() - c0
    mem_rollup = peak_mb()

    result: dict[str, Any] = {
        "knowledge_rows": knowledge,
        "feedback_rows": feedback,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "workbooks": len(workbooks),
        "total_bytes": sum(w.size for w in workbooks),
        "fixture_s": round(t_fixture, 2),
        "aggregate_s": round(phases["aggregate_s"], 2),
        "render_s": round(phases["render_s"], 2),
        "verify_s": round(phases["verify_s"], 2),
        "rollup_total_s": round(t_total, 2),
        "rollup_cpu_s": round(cpu, 2),
        "peak_rss_after_fixture_mb": round(mem_fixture),
        "peak_rss_after_rollup_mb": round(mem_rollup),
        "peak_rss_workers_mb": round(peak_mb(resource.RUSAGE_CHILDREN)),
        "goal_met": t_total <= GOAL_S and mem_rollup <= GOAL_MB,
    }
    # Kept for benchmarks/__main__.py, which reads the older key.
    result["aggregate_only_s"] = result["aggregate_s"]
    del workbooks, snaps, quality
    if not args.skip_naive:
        result.update(run_naive(knowledge, feedback, args.dialogues_per_county))
        if "naive_peak_rss_mb" in result:
            result["peak_rss_end_mb"] = result["naive_peak_rss_mb"]
    text = table(result)
    if args.json:
        print(text, file=sys.stderr)
        print(json.dumps(result, indent=2))
    else:
        print(text)
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
