"""Benchmark: a night that costs what changed (issue 14 goal 4).

    .venv/bin/python benchmarks/bench_night.py [--items 150000] [--edits 50] [--json]
                                               [--profile FILE]

Against one in-process emulator and through the managed-identity path, as `sp-sync run` does it
(sp_sync.run.pipeline.run_pipeline, no local copies):

1. seed       – `items` rows, two thirds Länskunskap (100,000 at the default), one third
                Dialogåterkoppling, two dialogues per county (not timed as part of a night)
2. first      – full night: every workbook built and uploaded (sets the fingerprints)
3. unchanged  – incremental night with no list change: nothing rebuilt, nothing uploaded
4. floor      – the raw floor: Länskunskap read with plain `requests`, keyset pages of 5,000
                (`ID gt last`, `$orderby=ID`), `odata=nometadata`, the sync's own `$select`, warm.
                Written here rather than imported from bench_sync.py (engineer PERF's floor
                reader works against an emulator in its own process; this one is in-process).
5. edited     – `edits` Länskunskap items of one county edited, then an incremental night

Goal: the edited night ≤ 0.5 × the floor end to end and ≤ 3 workbooks uploaded. Wall seconds,
requests, workbooks uploaded / unchanged and the peak RSS are reported per step. With --profile,
the edited night runs under cProfile and its statistics are written to FILE (read them with
`python -c "import pstats; pstats.Stats('FILE').sort_stats('cumulative').print_stats(40)"`);
its times are then inflated by the profiler.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "benchmarks"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from bench_pipeline import KNOWLEDGE, _Quiet, measure, rss_mb, seed  # noqa: E402

from sp_emulator import SharePointEmulator  # noqa: E402
from sp_sync.demo.runner import DEMO_SITE, demo_env, managed_identity_env  # noqa: E402
from sp_sync.run import pipeline  # noqa: E402
from sp_sync.run.runtime import Runtime  # noqa: E402
from sp_sync.settings import Settings  # noqa: E402

GOAL_X_FLOOR = 0.5
GOAL_UPLOADS = 3
PAGE = 5000
NOMETADATA = "application/json;odata=nometadata"


def floor_read(emu: Any) -> dict[str, Any]:
    """Read Länskunskap raw: keyset pages of 5,000, nometadata, the sync's $select/$expand."""
    from sp_sync.schema import load_schemas
    from sp_sync.sharepoint.client import quote_path_literal
    from sp_sync.sync.normalize import plan_select

    plan = plan_select(load_schemas().lists[KNOWLEDGE])
    url = f"{emu.site_url(DEMO_SITE)}/_api/web/lists/GetByTitle({quote_path_literal(KNOWLEDGE)})/items"
    headers = {"Authorization": f"Bearer {emu.issue_token()}", "Accept": NOMETADATA}
    session = requests.Session()
    last, rows = 0, 0
    while True:
        params = {
            "$select": ",".join(plan.select),
            "$expand": ",".join(plan.expand),
            "$filter": f"ID gt {last}",
            "$orderby": "ID",
            "$top": str(PAGE),
        }
        r = session.get(url, params=params, headers=headers, timeout=600)
        r.raise_for_status()
        page = r.json()["value"]
        rows += len(page)
        if len(page) < PAGE:
            return {"rows": rows}
        last = int(page[-1]["ID"])


def edit_one_county(emu: Any, edits: int) -> tuple[str, int]:
    """Edit the title and priority of `edits` Länskunskap items of the first county with data."""
    backend = emu.backend
    site = backend.get_site(DEMO_SITE)
    lst = backend.get_list(site, title=KNOWLEDGE)
    ids = sorted(lst.items)
    county = str(lst.items[ids[0]].values["County"])
    chosen = [i for i in ids if lst.items[i].values.get("County") == county][:edits]
    for n, item_id in enumerate(chosen):
        item = backend.get_item(lst, item_id)
        values = {"Title": f"Reviderad kunskap {n}", "Priority": "Hög"}
        backend.update_item(site, lst, item, values, if_match=None)
    return county, len(chosen)


def _night(runtime: Runtime, site: Any, *, full: bool) -> dict[str, Any]:
    summary = pipeline.run_pipeline(runtime, site, full=full, progress=_Quiet()).to_dict()
    return {
        "status": summary["status"],
        "updated": summary["totals"]["updated"],
        "uploaded": summary["workbooks_uploaded"],
        "unchanged": summary["workbooks_unchanged"],
        "uploaded_names": [w["name"] for w in summary["workbooks"] if w["status"] == "uploaded"],
    }


def _profiled(fn: Any, path: str | None) -> Any:
    """`fn` run under cProfile with its statistics dumped to `path` (as it is without one)."""
    if not path:
        return fn

    def run_profiled() -> Any:
        import cProfile

        profile = cProfile.Profile()
        try:
            return profile.runcall(fn)
        finally:
            profile.dump_stats(path)

    return run_profiled


def run(items: int, edits: int, profile: str | None = None) -> dict[str, Any]:
    logging.getLogger("sp_sync").setLevel(logging.WARNING)
    import datetime as dt

    steps: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="sp-sync-night-") as tmp,
        SharePointEmulator(sites=[DEMO_SITE]) as emu,
        managed_identity_env(emu.identity_endpoint, emu.identity_header),
    ):
        env = demo_env(emu, Path(tmp) / "state")
        env["SP_SYNC_TIME_BUDGET_SECONDS"] = "3600"
        settings = Settings.from_env(env)
        runtime = Runtime(settings=settings)
        site = settings.sites[0]
        pipeline.run_provision(runtime, site, apply=True, allow_destructive=False)
        t0 = time.perf_counter()
        counts = seed(emu, items, base_date=dt.date.today() - dt.timedelta(days=60))
        seed_s = round(time.perf_counter() - t0, 2)
        steps.append(measure("first night (full)", emu, lambda: _night(runtime, site, full=True)))
        steps.append(measure("night, no change", emu, lambda: _night(runtime, site, full=False)))
        floor_read(emu)  # warm, as the sync's own reads are
        steps.append(measure("floor (raw keyset read)", emu, lambda: floor_read(emu)))
        county, edited = edit_one_county(emu, edits)
        steps.append(
            {
                **measure(
                    f"night, {edited} edits in one county",
                    emu,
                    _profiled(lambda: _night(runtime, site, full=False), profile),
                ),
                "county": county,
            }
        )
    floor = next(s for s in steps if s["step"].startswith("floor"))["wall_s"]
    last = steps[-1]
    x_floor = round(last["wall_s"] / floor, 2) if floor else None
    return {
        "benchmark": "night",
        "items": sum(counts.values()),
        "lists": counts,
        "edits": edits,
        "seed_s": seed_s,
        "steps": steps,
        "floor_s": floor,
        "edited_night_s": last["wall_s"],
        "edited_night_x_floor": x_floor,
        "edited_night_uploaded": last["uploaded"],
        "goal_x_floor": GOAL_X_FLOOR,
        "goal_uploads": GOAL_UPLOADS,
        "goal_met": bool(
            x_floor is not None and x_floor <= GOAL_X_FLOOR and last["uploaded"] <= GOAL_UPLOADS
        ),
        "peak_rss_mb": round(rss_mb()),
    }


def table(doc: dict[str, Any]) -> str:
    lines = [
        f"{doc['items']:,} items ({doc['lists']}); seeded in {doc['seed_s']} s",
        f"{'step':<34} {'wall s':>7} {'cpu s':>6} {'req':>6} {'uploaded':>8} {'unchanged':>9}",
    ]
    for s in doc["steps"]:
        lines.append(
            f"{s['step']:<34} {s['wall_s']:>7} {s['pipeline_cpu_s']:>6} {s['requests']!s:>6} "
            f"{s.get('uploaded', ''):>8} {s.get('unchanged', ''):>9}"
        )
    lines.append(
        f"edited night = {doc['edited_night_x_floor']} × floor (goal ≤ {GOAL_X_FLOOR}), "
        f"{doc['edited_night_uploaded']} uploaded (goal ≤ {GOAL_UPLOADS}): "
        + ("met" if doc["goal_met"] else "not met")
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=150_000)
    parser.add_argument("--edits", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="only JSON on stdout (table on stderr)")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the edited night into FILE")
    args = parser.parse_args(argv)
    doc = run(args.items, args.edits, args.profile)
    if args.json:
        print(table(doc), file=sys.stderr)
        print(json.dumps(doc, ensure_ascii=False, indent=1))
    else:
        print(table(doc))
        print(json.dumps(doc, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
