"""Benchmark: rollups for 100,000 knowledge + 50,000 feedback rows vs a naive DataFrame.to_excel.

    .venv/bin/python benchmarks/bench_rollup.py [--knowledge 100000] [--feedback 50000] [--json]

Measures, in one process run: building the snapshots (not timed), aggregate + render + verify of
every workbook (sp_sync.rollup.build_workbooks), and for comparison pandas' `to_excel` of the raw
knowledge and feedback frames (openpyxl engine, no formatting). Peak memory is the process's
max RSS (ru_maxrss), so the naive run is done last. Target: ≤ 30 s and ≤ 1.5 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "rollup"))

from rollup_fixtures import GENERATED_AT, SITE, STHLM, make_quality, make_snapshots  # noqa: E402

from sp_sync.aggregate import FEEDBACK, KNOWLEDGE  # noqa: E402
from sp_sync.rollup import build_tables, build_workbooks  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--knowledge", type=int, default=100_000)
    parser.add_argument("--feedback", type=int, default=50_000)
    parser.add_argument("--dialogues-per-county", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()

    t0 = time.perf_counter()
    snaps = make_snapshots(
        knowledge=args.knowledge, feedback=args.feedback,
        dialogues_per_county=args.dialogues_per_county, empty_counties=(),
    )
    quality = make_quality(snaps)
    t_fixture = time.perf_counter() - t0
    mem_fixture = peak_mb()

    t0 = time.perf_counter()
    build_tables(snaps, quality, None, site_url=SITE, generated_at=GENERATED_AT, time_zone=STHLM)
    t_aggregate = time.perf_counter() - t0

    t0 = time.perf_counter()
    workbooks = build_workbooks(snaps, quality, None, site_url=SITE, generated_at=GENERATED_AT, time_zone=STHLM)
    t_rollup = time.perf_counter() - t0
    mem_rollup = peak_mb()

    result: dict[str, object] = {
        "knowledge_rows": args.knowledge,
        "feedback_rows": args.feedback,
        "workbooks": len(workbooks),
        "total_bytes": sum(w.size for w in workbooks),
        "fixture_s": round(t_fixture, 2),
        "aggregate_only_s": round(t_aggregate, 2),
        "rollup_total_s": round(t_rollup, 2),
        "peak_rss_after_fixture_mb": round(mem_fixture),
        "peak_rss_after_rollup_mb": round(mem_rollup),
    }
    if not args.skip_naive:
        t0 = time.perf_counter()
        buf = io.BytesIO()
        import pandas as pd

        with pd.ExcelWriter(buf, engine="openpyxl") as writer:
            for title in (KNOWLEDGE, FEEDBACK):
                frame = snaps[title].copy()
                for col in frame.columns:
                    if frame[col].map(lambda v: isinstance(v, list)).any():
                        frame[col] = frame[col].map(str)
                    if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
                        frame[col] = frame[col].dt.tz_localize(None)
                frame.to_excel(writer, sheet_name=title, index=False)
        result["naive_to_excel_s"] = round(time.perf_counter() - t0, 2)
        result["naive_bytes"] = len(buf.getvalue())
        result["peak_rss_end_mb"] = round(peak_mb())
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:28} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
