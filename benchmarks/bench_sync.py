"""Sync benchmark: `sp-sync sync` through the CLI against the raw floor and the naive client read.

    .venv/bin/python benchmarks/bench_sync.py [--sizes 10000,100000] [--million] [--json-only]

For each size N a fresh emulator runs in its OWN process (`python -m sp_emulator`, so the
reader and the server do not share a GIL); the lists are provisioned with `sp-sync provision
--apply` and N Länskunskap items with every column filled (rich-text note, person, date, five
choices) are seeded through the admin API. Then, side by side in one run:

* floor    – the raw floor: plain `requests`, keyset pages of 5,000 (`ID gt last`, `$orderby=ID`),
             `odata=nometadata`, the same `$select`/`$expand` as sp-sync, JSON decoded, nothing
             else; read twice and the second (warm) pass reported
* naive    – office365 `items.get_all(page_size=5000)` → DataFrame (what a simple script does;
             its entity layer is most of its cost). Skipped at 1,000,000 (about 15 minutes).
* full     – `sp-sync sync --full --list Länskunskap` as a child process
* incr-0   – `sp-sync sync`, nothing changed
* incr-1   – `sp-sync sync` after 1 % of the items were edited (spread over the list)

Per case: wall seconds, requests and bytes as the emulator counts them, and the peak RSS of the
process doing the read (`wait4` of the CLI child; the floor and naive read run in this process,
so theirs is the growth of this process's high-water mark). After each sp-sync case the whole
snapshot is compared with the list, row for row and column for column (every row is read back
raw and normalised, then compared with the committed snapshot).

Prints one JSON document (and a table unless `--json-only`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

LIST = "Länskunskap"
SITE = "bench"
PAGE = 5000
NOMETADATA = "application/json;odata=nometadata"
#: Identity variables msal looks at; the CLI child gets only the emulator's.
_IDENTITY_VARS = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET")


def _rss_self_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class EmulatorProcess:
    """`python -m sp_emulator` in a child process; admin API over HTTP."""

    def __init__(self, site: str = SITE) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sp_emulator", "--site", site],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip().rsplit(" ", 1)[1]
        facts = {}
        for _ in range(2):
            key, _, value = self.proc.stdout.readline().strip().partition("=")
            facts[key] = value
        self.identity_endpoint = facts["IDENTITY_ENDPOINT"]
        self.identity_header = facts["IDENTITY_HEADER"]
        self.site_url = f"{self.url}/sites/{site}"
        self.http = requests.Session()
        self.token = self.admin("POST", "/token", {})["access_token"]

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        r = self.http.request(method, f"{self.url}/_emulator{path}", json=body, timeout=600)
        r.raise_for_status()
        return r.json() if r.content else None

    def cpu_seconds(self) -> float:
        """CPU seconds the emulator process has used so far (user + system, from /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stats(self) -> dict[str, Any]:
        return dict(self.admin("GET", "/stats"))

    def reset_stats(self) -> None:
        self.admin("POST", "/stats/reset", {})

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cli_env(emu: EmulatorProcess, state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _IDENTITY_VARS}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "SP_SYNC_SITE_URL": emu.site_url,
            "SP_SYNC_AUTH": "managed_identity",
            "SP_SYNC_RESOURCE": emu.url,
            "SP_SYNC_ORGANISATION": "Bench",
            "SP_SYNC_STATE": "local",
            "SP_SYNC_STATE_DIR": str(state_dir),
            "SP_SYNC_LANGUAGE": "en",
            "SP_SYNC_TIME_BUDGET_SECONDS": "7200",
            "IDENTITY_ENDPOINT": emu.identity_endpoint,
            "IDENTITY_HEADER": emu.identity_header,
        }
    )
    return env


# Children are started by a small spawner process, never by this one: Linux keeps a process's
# peak RSS across execve (exec_mmap records the old mm's high-water mark), and a child forked
# from this process starts with this process's pages, so `wait4` of a child forked here reports
# at least this process's RSS (600+ MB after the naive read) instead of the child's own peak.
_SPAWNER = r"""
import json, os, subprocess, sys, time
for line in sys.stdin:
    job = json.loads(line)
    started = time.perf_counter()
    with open(job["out"], "wb") as out, open(job["err"], "wb") as err:
        proc = subprocess.Popen(job["argv"], stdout=out, stderr=err, cwd=job["cwd"], env=job["env"])
        _, status, usage = os.wait4(proc.pid, 0)
    print(json.dumps({"wall": time.perf_counter() - started,
                      "code": os.waitstatus_to_exitcode(status),
                      "maxrss_kb": usage.ru_maxrss,
                      "cpu": usage.ru_utime + usage.ru_stime}), flush=True)
"""
_spawner: subprocess.Popen[str] | None = None


def _spawn_measured(argv: list[str], env: dict[str, str], out: str, err: str) -> dict[str, Any]:
    global _spawner
    if _spawner is None or _spawner.poll() is not None:
        _spawner = subprocess.Popen(
            [sys.executable, "-S", "-c", _SPAWNER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={"PATH": os.environ.get("PATH", "")},
        )
    assert _spawner.stdin is not None and _spawner.stdout is not None
    job = {"argv": argv, "env": env, "cwd": str(ROOT), "out": out, "err": err}
    _spawner.stdin.write(json.dumps(job) + "\n")
    _spawner.stdin.flush()
    answer: dict[str, Any] = json.loads(_spawner.stdout.readline())
    return answer


def run_cli_measured(args: list[str], env: dict[str, str]) -> tuple[float, float, float, Any]:
    """(wall s, the child's own peak RSS MB and CPU s from `wait4`, parsed JSON output) of one
    `sp-sync` command (RUSAGE_CHILDREN would give the largest child so far, not this one),
    started through the spawner (see _SPAWNER) so its peak is its own."""
    with tempfile.TemporaryDirectory() as tmp:
        out_path, err_path = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        result = _spawn_measured(
            [sys.executable, "-m", "sp_sync", *args, "--json"], env, out_path, err_path
        )
        with open(out_path, "rb") as fh:
            out = fh.read()
        with open(err_path, "rb") as fh:
            err = fh.read()
    if result["code"] != 0:
        raise RuntimeError(
            f"sp-sync {' '.join(args)} exited {result['code']}: {err.decode()[-2000:]}"
        )
    wall = float(result["wall"])
    return (
        wall,
        result["maxrss_kb"] / 1024,
        float(result["cpu"]),
        json.loads(out.decode() or "null"),
    )


# --------------------------------------------------------------------------- seeding


def knowledge_rows(n: int, user_ids: list[int]) -> Iterator[list[dict[str, Any]]]:
    """N Länskunskap rows in REST write shape, in chunks, every column filled as staff do."""
    from sp_sync.demo.data import generate_demo_data
    from sp_sync.schema import load_schemas

    reference = load_schemas().reference
    per_county = max(1, math.ceil(min(n, 20_000) / max(1, len(reference.counties) - 1)))
    data = generate_demo_data(
        reference,
        user_ids=user_ids,
        base_date=dt.date(2026, 11, 1),
        knowledge_per_county=per_county,
        feedback_per_county=1,
    )
    template = data.knowledge
    made = 0
    while made < n:
        chunk = []
        for _ in range(min(20_000, n - made)):
            row = dict(template[made % len(template)])
            row["Title"] = f"{row['Title']} #{made + 1}"
            chunk.append(row)
            made += 1
        yield chunk


def seed(emu: EmulatorProcess, n: int) -> list[int]:
    headers = {"Authorization": f"Bearer {emu.token}", "Accept": NOMETADATA}
    users = emu.http.get(f"{emu.site_url}/_api/web/siteusers", headers=headers, timeout=60).json()[
        "value"
    ]
    user_ids = sorted(int(u["Id"]) for u in users)[:8] or [1]
    for chunk in knowledge_rows(n, user_ids):
        emu.admin("POST", "/seed", {"site": SITE, "list": LIST, "items": chunk})
    return user_ids


def edit_items(emu: EmulatorProcess, ids: list[int], label: str) -> None:
    """Edit items over REST, one MERGE each, as staff would (each edit is a change-log entry)."""
    from sp_sync.sharepoint.client import quote_path_literal

    base = f"{emu.site_url}/_api/web/lists/GetByTitle({quote_path_literal(LIST)})/items"
    headers = {
        "Authorization": f"Bearer {emu.token}",
        "Accept": NOMETADATA,
        "Content-Type": "application/json",
        "X-HTTP-Method": "MERGE",
        "IF-MATCH": "*",
    }
    for i in ids:
        r = emu.http.post(
            f"{base}({i})",
            data=json.dumps({"Status": "Inaktuell", "Title": f"{label} {i}"}),
            headers=headers,
            timeout=60,
        )
        r.raise_for_status()


# --------------------------------------------------------------------------- the raw floor


def select_plan() -> tuple[list[str], list[str]]:
    from sp_sync.schema import load_schemas
    from sp_sync.sync.normalize import plan_select

    plan = plan_select(load_schemas().lists[LIST])
    return list(plan.select), list(plan.expand)


def raw_pages(emu: EmulatorProcess, session: requests.Session) -> Iterator[list[dict[str, Any]]]:
    """The floor: keyset pages of 5,000 over plain `requests`, `odata=nometadata`, JSON decoded."""
    from sp_sync.sharepoint.client import quote_path_literal

    select, expand = select_plan()
    url = f"{emu.site_url}/_api/web/lists/GetByTitle({quote_path_literal(LIST)})/items"
    headers = {"Authorization": f"Bearer {emu.token}", "Accept": NOMETADATA}
    last = 0
    while True:
        params = {
            "$select": ",".join(select),
            "$expand": ",".join(expand),
            "$filter": f"ID gt {last}",
            "$orderby": "ID",
            "$top": str(PAGE),
        }
        r = session.get(url, params=params, headers=headers, timeout=300)
        r.raise_for_status()
        doc = r.json()
        rows = doc["value"]
        yield rows
        if len(rows) < PAGE or not doc.get("odata.nextLink"):
            return
        last = int(rows[-1]["ID"])


def floor_read(emu: EmulatorProcess) -> dict[str, Any]:
    session = requests.Session()
    n = sum(len(rows) for rows in raw_pages(emu, session))
    return {"rows": n}


def naive_read(emu: EmulatorProcess, n: int) -> dict[str, Any]:
    import pandas as pd
    from office365.sharepoint.client_context import ClientContext

    token = emu.token
    ctx = ClientContext(emu.site_url).with_access_token(
        lambda: {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
    )
    items = ctx.web.lists.get_by_title(LIST).items
    limit = n + PAGE

    class Looped(Exception):
        pass

    def guard(col: Any) -> None:
        if len(col) > limit:
            raise Looped

    looped = False
    try:
        items.get_all(page_size=PAGE, page_loaded=guard).execute_query()
    except Looped:
        looped = True
    frame = pd.DataFrame([i.properties for i in items])
    return {"rows": len(frame) if not looped else None, "looped": looped}


# --------------------------------------------------------------------------- verification


def verify(emu: EmulatorProcess, state_dir: Path) -> dict[str, Any]:
    """Compare the committed snapshot with the list: every row, every column of the contract."""
    import pandas as pd

    from sp_sync.schema import load_schemas
    from sp_sync.state.local import LocalStateStore
    from sp_sync.sync.normalize import normalize_page

    schema = load_schemas().lists[LIST]
    state = LocalStateStore(state_dir).read_list_state(emu.site_url, LIST)
    if state is None:
        return {"verified": False, "problem": "no snapshot"}
    snap = state.rows.set_index("ID", drop=False)
    tz = ZoneInfo(str(state.checkpoint.extra.get("time_zone") or "Europe/Stockholm"))
    site_url = str(state.checkpoint.extra.get("site_url") or emu.site_url)
    seen = 0
    bad: list[str] = []
    for rows in raw_pages(emu, requests.Session()):
        expected, _ = normalize_page(rows, schema, tz=tz, site_url=site_url, list_url=schema.url)
        ids = expected["ID"].tolist()
        missing = [i for i in ids if i not in snap.index]
        if missing:
            bad.append(f"{len(missing)} ids missing, first {missing[:3]}")
            break
        got = snap.loc[ids].reset_index(drop=True)[list(expected.columns)]
        try:
            pd.testing.assert_frame_equal(got, expected, check_dtype=False)
        except AssertionError as exc:
            bad.append(str(exc).splitlines()[0][:300])
            break
        seen += len(ids)
    if not bad and seen != len(snap):
        bad.append(f"snapshot has {len(snap)} rows, the list {seen}")
    return {"verified": not bad, "verified_rows": seen, **({"problem": bad[0]} if bad else {})}


# --------------------------------------------------------------------------- cases


def _traffic(emu: EmulatorProcess, server_cpu0: float) -> dict[str, Any]:
    stats = emu.stats()
    return {
        "requests": stats.get("requests"),
        "bytes": stats.get("bytes_sent"),
        "server_cpu_s": round(emu.cpu_seconds() - server_cpu0, 2),
        "routes": stats.get("routes"),
    }


#: Prefix of the line each finished sp-sync case writes to stderr: a long run (1,000,000
#: items) that is cut short still leaves the cases it finished (`python -m benchmarks` reads them).
ROW_PREFIX = "BENCH-ROW "


def _report(row: dict[str, Any]) -> None:
    brief = {k: v for k, v in row.items() if k != "routes"}
    print(ROW_PREFIX + json.dumps(brief, ensure_ascii=False), file=sys.stderr, flush=True)


def bench_size(n: int, *, naive: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    emu = EmulatorProcess()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            state_dir = Path(tmp) / "state"
            env = cli_env(emu, state_dir)
            run_cli_measured(["provision", "--apply"], env)
            t0 = time.perf_counter()
            seed(emu, n)
            seed_s = round(time.perf_counter() - t0, 1)

            # Warms the emulator's per-item caches for every reader alike, at every size: a
            # cold page costs the emulator about twice a warm one, so a cold floor at one size
            # only would bend the growth row. (It was skipped at 1,000,000 while each keyset
            # page cost the emulator time in proportion to the rows after it; a page now costs
            # the same at any size, and the warm-up at 1,000,000 is about 40 s of its CPU.)
            floor_read(emu)
            for case, reader in (
                ("floor", lambda: floor_read(emu)),
                ("naive get_all", lambda: naive_read(emu, n)),
            ):
                if case != "floor" and not naive:
                    continue
                emu.reset_stats()
                rss0, server0 = _rss_self_mb(), emu.cpu_seconds()
                cpu0, t0 = time.process_time(), time.perf_counter()
                got = reader()
                wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                out.append(
                    {
                        "n": n,
                        "case": case,
                        "wall_s": round(wall, 3),
                        "client_cpu_s": round(cpu, 2),
                        # Growth of this process's high-water mark: 0 when the read fit in
                        # memory already used (the CLI cases report the child's own peak).
                        "rss_mb": round(max(_rss_self_mb() - rss0, 0.0), 1),
                        "seed_s": seed_s,
                        **got,
                        **_traffic(emu, server0),
                    }
                )

            def sync_case(name: str, args: list[str], changed: int | None = None) -> None:
                emu.reset_stats()
                server0 = emu.cpu_seconds()
                wall, rss, cpu, doc = run_cli_measured(["sync", "--list", LIST, *args], env)
                traffic = _traffic(emu, server0)
                lists = doc.get("lists", []) if isinstance(doc, dict) else []
                res = lists[0] if lists else {}
                row = {
                    "n": n,
                    "case": name,
                    "wall_s": round(wall, 3),
                    "client_cpu_s": round(cpu, 2),
                    "rss_mb": round(rss, 1),
                    "rows": res.get("rows"),
                    "mode": res.get("mode"),
                    "changed": changed,
                    "added": res.get("added"),
                    "updated": res.get("updated"),
                    "quality_issues": res.get("quality_issues"),
                    "client_requests": res.get("requests"),
                    "client_bytes": res.get("bytes_received"),
                    "status": doc.get("status") if isinstance(doc, dict) else None,
                    **traffic,
                }
                row.update(verify(emu, state_dir))
                out.append(row)
                _report(row)

            sync_case("full", ["--full"])
            sync_case("incr-0", [])
            k = max(1, n // 100)
            step = max(1, n // k)
            ids = list(range(1, n + 1, step))[:k]
            edit_items(emu, ids, "incr-1")
            sync_case("incr-1", [], changed=len(ids))
    finally:
        emu.close()
    return out


def ratios(results: list[dict[str, Any]]) -> None:
    """Add `<metric>_x_floor` / `<metric>_x_naive` (this ÷ baseline) for wall, bytes and client
    CPU to every row but the baseline itself."""
    by_n: dict[int, dict[str, dict[str, Any]]] = {}
    for r in results:
        by_n.setdefault(r["n"], {})[r["case"]] = r
    for r in results:
        base = by_n[r["n"]]
        for label, key in (("floor", "floor"), ("naive", "naive get_all")):
            b = base.get(key)
            if b is None or r is b:
                continue
            for metric in ("wall_s", "bytes", "client_cpu_s"):
                if b.get(metric) and r.get(metric) is not None:
                    r[f"{metric}_x_{label}"] = round(r[metric] / b[metric], 3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument(
        "--million",
        action="store_true",
        help="also 1,000,000 items (about 10 minutes on 2 cores; no naive read at that size)",
    )
    p.add_argument("--no-naive", action="store_true", help="skip the office365 get_all read")
    p.add_argument("--json-only", action="store_true")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.million and 1_000_000 not in sizes:
        sizes.append(1_000_000)
    results: list[dict[str, Any]] = []
    for n in sizes:
        results.extend(bench_size(n, naive=not args.no_naive and n < 1_000_000))
    ratios(results)
    doc = {
        "benchmark": "sync",
        "list": LIST,
        "python_peak_rss_mb": round(_rss_self_mb(), 1),
        "results": results,
    }
    print(json.dumps(doc, ensure_ascii=False, indent=1))
    if not args.json_only:
        head = (
            f"{'N':>8} {'case':<14} {'req':>5} {'bytes':>12} {'wall s':>8} {'RSS MB':>7} "
            f"{'×floor':>7} {'×naive':>7} {'B×naive':>7} ok"
        )
        print()
        print(head)
        print("-" * len(head))
        for r in results:
            print(
                f"{r['n']:>8} {r['case']:<14} {r['requests']!s:>5} {r['bytes']!s:>12} "
                f"{r['wall_s']:>8} {r['rss_mb']!s:>7} {r.get('wall_s_x_floor', '')!s:>7} "
                f"{r.get('wall_s_x_naive', '')!s:>7} {r.get('bytes_x_naive', '')!s:>7} "
                f"{r.get('verified', '')}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
