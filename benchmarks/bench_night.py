"""Benchmark: a night that costs what changed (issue 14 goal 4).

    .venv/bin/python benchmarks/bench_night.py [--items 150000] [--edits 50] [--json]
                                               [--in-process [--profile FILE]]

As the issue measured it: every night is `sp-sync run` as a child process (interpreter start,
imports and the managed-identity token included), against the emulator in its own process:

1. seed       – `items` rows, two thirds Länskunskap (100,000 at the default), one third
                Dialogåterkoppling, two dialogues per county, through the emulator's admin API
                after `sp-sync provision --apply` (not timed)
2. first      – full night: every workbook built and uploaded (sets the fingerprints)
3. unchanged  – incremental night with no list change: nothing rebuilt, nothing uploaded
4. floor      – the raw floor: Länskunskap read with plain `requests` from this process, keyset
                pages of 5,000 (`ID gt last`, `$orderby=ID`), `odata=nometadata`, the sync's own
                `$select`, warm
5. edited     – `edits` Länskunskap items of one county edited over REST (one MERGE each, as
                staff would), then an incremental night

Goal: the edited night ≤ 0.5 × the floor end to end and ≤ 3 workbooks uploaded. Wall seconds,
the child's CPU and peak RSS (`wait4`), requests and workbooks uploaded / unchanged per step.

By default the same nights also run through `sp_sync.run.pipeline.run_pipeline` in this process
beside an in-process emulator (no interpreter start; but the emulator's million objects are then
the night's garbage collector's work too): the library's own cost, not the goal's measure.
--cli-only skips them; --in-process runs only them, and with --profile FILE the edited night runs
under cProfile, its statistics written to FILE (read them with `python -c "import pstats;
pstats.Stats('FILE').sort_stats('cumulative').print_stats(40)"`; its times are then inflated).
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
    """Read Länskunskap raw from the in-process emulator (see `_read_raw`)."""
    from sp_sync.sharepoint.client import quote_path_literal

    url = f"{emu.site_url(DEMO_SITE)}/_api/web/lists/GetByTitle({quote_path_literal(KNOWLEDGE)})/items"
    return _read_raw(url, {"Authorization": f"Bearer {emu.issue_token()}", "Accept": NOMETADATA})


def _read_raw(url: str, headers: dict[str, str]) -> dict[str, Any]:
    """Read the list at `url` raw: keyset pages of 5,000, nometadata, the sync's $select/$expand
    for Länskunskap, JSON decoded and nothing else."""
    from sp_sync.schema import load_schemas
    from sp_sync.sync.normalize import plan_select

    plan = plan_select(load_schemas().lists[KNOWLEDGE])
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


def _cli_night(emu: Any, env: dict[str, str], name: str, args: list[str]) -> dict[str, Any]:
    """One `sp-sync run` child: wall, its own CPU and peak RSS, the emulator's count of the
    SharePoint requests it served, and what its summary says it did."""
    from bench_sync import run_cli_measured

    emu.reset_stats()
    server0 = emu.cpu_seconds()
    wall, rss, cpu, doc = run_cli_measured(["run", *args], env)
    stats = emu.stats()
    summary = doc[0] if isinstance(doc, list) else doc
    return {
        "step": name,
        "wall_s": round(wall, 2),
        "pipeline_cpu_s": round(cpu, 2),
        "server_cpu_s": round(emu.cpu_seconds() - server0, 2),
        "requests": stats.get("requests"),
        "bytes_sent": stats.get("bytes_sent"),
        "peak_rss_mb": round(rss),
        "routes": dict(sorted((stats.get("routes") or {}).items())),
        "status": summary["status"],
        "updated": summary["totals"]["updated"],
        "uploaded": summary["workbooks_uploaded"],
        "unchanged": summary["workbooks_unchanged"],
        "uploaded_names": [w["name"] for w in summary["workbooks"] if w["status"] == "uploaded"],
    }


def _rest_headers(emu: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.token}", "Accept": NOMETADATA}


def _seed_cli(emu: Any, items: int, base_date: Any) -> dict[str, int]:
    """The same rows as `bench_pipeline.seed`, through the emulator's admin API."""
    from sp_sync.demo.data import generate_demo_data
    from sp_sync.schema import load_schemas

    reference = load_schemas().reference
    with_data = max(1, len(reference.counties) - 1)  # the demo leaves one county quiet
    users = emu.http.get(
        f"{emu.site_url}/_api/web/siteusers", headers=_rest_headers(emu), timeout=60
    ).json()["value"]
    data = generate_demo_data(
        reference,
        user_ids=sorted(int(u["Id"]) for u in users)[:8],
        base_date=base_date,
        knowledge_per_county=max(1, round(items * 2 / 3 / with_data)),
        feedback_per_county=max(1, round(items / 3 / with_data)),
    )
    counts = {}
    for title, rows in (
        ("Dialoger", data.dialogues),
        (KNOWLEDGE, data.knowledge),
        ("Dialogåterkoppling", data.feedback),
    ):
        for start in range(0, len(rows), PAGE):
            chunk = rows[start : start + PAGE]
            emu.admin("POST", "/seed", {"site": DEMO_SITE, "list": title, "items": chunk})
        counts[title] = len(rows)
    return counts


def _knowledge_url(emu: Any) -> str:
    from sp_sync.sharepoint.client import quote_path_literal

    return f"{emu.site_url}/_api/web/lists/GetByTitle({quote_path_literal(KNOWLEDGE)})/items"


def _floor_read_cli(emu: Any) -> dict[str, Any]:
    """`floor_read` against the emulator in its own process."""
    return _read_raw(_knowledge_url(emu), _rest_headers(emu))


def _measure_floor_cli(emu: Any) -> dict[str, Any]:
    emu.reset_stats()
    server0, cpu0, wall0 = emu.cpu_seconds(), time.process_time(), time.perf_counter()
    extra = _floor_read_cli(emu)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    stats = emu.stats()
    return {
        "step": "floor (raw keyset read)",
        "wall_s": round(wall, 2),
        "pipeline_cpu_s": round(cpu, 2),
        "server_cpu_s": round(emu.cpu_seconds() - server0, 2),
        "requests": stats.get("requests"),
        "bytes_sent": stats.get("bytes_sent"),
        "peak_rss_mb": round(rss_mb()),
        **extra,
    }


def _edit_one_county_cli(emu: Any, edits: int) -> tuple[str, int]:
    """`edit_one_county` over REST: the first county's first `edits` items, one MERGE each."""
    session = requests.Session()
    by_county: dict[str, list[int]] = {}
    last = 0
    while True:  # ID and County of every item, keyset pages (not timed)
        params = {
            "$select": "ID,County",
            "$filter": f"ID gt {last}",
            "$orderby": "ID",
            "$top": str(PAGE),
        }
        r = session.get(_knowledge_url(emu), params=params, headers=_rest_headers(emu), timeout=600)
        r.raise_for_status()
        page = r.json()["value"]
        for item in page:
            by_county.setdefault(str(item["County"]), []).append(int(item["ID"]))
        if len(page) < PAGE:
            break
        last = int(page[-1]["ID"])
    county = next(iter(by_county))
    chosen = by_county[county][:edits]
    headers = {
        **_rest_headers(emu),
        "Content-Type": "application/json",
        "X-HTTP-Method": "MERGE",
        "IF-MATCH": "*",
    }
    for n, item_id in enumerate(chosen):
        body = {"Title": f"Reviderad kunskap {n}", "Priority": "Hög"}
        r = session.post(
            f"{_knowledge_url(emu)}({item_id})", data=json.dumps(body), headers=headers, timeout=60
        )
        r.raise_for_status()
    return county, len(chosen)


def run_cli(items: int, edits: int) -> dict[str, Any]:
    """The night as the issue measures it: `sp-sync run` children, the emulator in its own
    process (see the module docstring)."""
    import datetime as dt
    import subprocess

    from bench_sync import EmulatorProcess, cli_env

    emu = EmulatorProcess(DEMO_SITE)
    steps: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="sp-sync-night-") as tmp:
            env = cli_env(emu, Path(tmp) / "state")
            # The demo's settings, as the in-process variant's demo_env gives them.
            env.update({"SP_SYNC_ORGANISATION": "Demo", "SP_SYNC_LANGUAGE": "sv"})
            subprocess.run(
                [sys.executable, "-m", "sp_sync", "provision", "--apply", "-q"],
                env=env,
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            t0 = time.perf_counter()
            counts = _seed_cli(emu, items, dt.date.today() - dt.timedelta(days=60))
            seed_s = round(time.perf_counter() - t0, 2)
            steps.append(_cli_night(emu, env, "first night (full)", ["--full", "-q"]))
            steps.append(_cli_night(emu, env, "night, no change", ["-q"]))
            _floor_read_cli(emu)  # warm, as the sync's own reads are
            steps.append(_measure_floor_cli(emu))
            county, edited = _edit_one_county_cli(emu, edits)
            steps.append(
                {
                    **_cli_night(emu, env, f"night, {edited} edits in one county", ["-q"]),
                    "county": county,
                }
            )
    finally:
        emu.close()
    return _result(steps, counts, edits, seed_s, mode="cli")


def _result(
    steps: list[dict[str, Any]], counts: dict[str, int], edits: int, seed_s: float, *, mode: str
) -> dict[str, Any]:
    floor = next(s for s in steps if s["step"].startswith("floor"))["wall_s"]
    last = steps[-1]
    x_floor = round(last["wall_s"] / floor, 2) if floor else None
    return {
        "benchmark": "night",
        "mode": mode,
        "items": sum(counts.values()),
        "lists": counts,
        "edits": edits,
        "seed_s": seed_s,
        "steps": steps,
        "floor_s": floor,
        "edited_night_s": last["wall_s"],
        "edited_night_cpu_s": last["pipeline_cpu_s"],
        "edited_night_x_floor": x_floor,
        "edited_night_uploaded": last["uploaded"],
        "goal_x_floor": GOAL_X_FLOOR,
        "goal_uploads": GOAL_UPLOADS,
        "goal_met": bool(
            x_floor is not None and x_floor <= GOAL_X_FLOOR and last["uploaded"] <= GOAL_UPLOADS
        ),
        "peak_rss_mb": round(rss_mb()),
    }


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
    return _result(steps, counts, edits, seed_s, mode="in-process")


def table(doc: dict[str, Any]) -> str:
    lines = [
        f"{doc['items']:,} items ({doc['lists']}); seeded in {doc['seed_s']} s; {doc['mode']}",
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
    if "in_process" in doc:
        lines += ["", table(doc["in_process"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=150_000)
    parser.add_argument("--edits", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="only JSON on stdout (table on stderr)")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="only the nights through run_pipeline beside an in-process emulator (profiling)",
    )
    parser.add_argument(
        "--cli-only",
        action="store_true",
        help="only the `sp-sync run` children (the goal's measure), not the in-process nights too",
    )
    parser.add_argument(
        "--profile", metavar="FILE", help="with --in-process: cProfile the edited night into FILE"
    )
    args = parser.parse_args(argv)
    if args.profile and not args.in_process:
        parser.error("--profile needs --in-process (a child process is not profiled from here)")
    if args.in_process:
        doc = run(args.items, args.edits, args.profile)
    else:
        doc = run_cli(args.items, args.edits)
        if not args.cli_only:
            # The library's own cost beside it: no interpreter start, same data and edits.
            doc["in_process"] = run(args.items, args.edits)
    if args.json:
        print(table(doc), file=sys.stderr)
        print(json.dumps(doc, ensure_ascii=False, indent=1))
    else:
        print(table(doc))
        print(json.dumps(doc, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
