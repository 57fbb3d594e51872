"""Serving speed of the SharePoint emulator: items per second in 5,000-item pages.

Starts `python -m sp_emulator` in a child process, provisions the real Länskunskap list
(`sp-sync provision --apply`), seeds it with every column filled through the admin API and reads
the 100,000 items page by page (`$top=5000`, following the next link) with plain `requests` over
one keep-alive connection: all columns in verbose twice (the first pass builds the per-item JSON
caches, the second is the steady state), then sp-sync's own `$select`/`$expand` in
`odata=nometadata` twice. Finally a Title-only list is read through the office365 client (much
slower than the server because it builds an object per property). Each read case also reports
the emulator process's own CPU per item (`server_cpu_us_per_item`, from /proc).

Run: `.venv/bin/python benchmarks/bench_emulator.py [--items 100000] [--json]`.

`--keyset 100000,300000,1000000` measures instead how the cost of one page grows with the list:
for each size a fresh emulator process is seeded with that many Länskunskap items (the same
generator as `bench_sync.py`) and read twice exactly as bench_sync's raw floor reads it (keyset
pages of 5,000: `$filter=ID gt last`, `$orderby=ID`, sp-sync's `$select`/`$expand`,
`odata=nometadata`, plain `requests`). Per pass: the emulator's CPU seconds per page (from
/proc, steadier than wall time on a shared machine), wall seconds per page, the first and the
last page, the slowest page, and the emulator's RSS after the pass. Seeding 1,000,000 items takes
minutes and several GB of RAM: run it once, not in a loop.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests


def _read_all(
    session: requests.Session, url: str, headers: dict[str, str]
) -> tuple[int, int, float]:
    started = time.perf_counter()
    items = pages = 0
    next_url: str | None = url
    while next_url:
        doc = session.get(next_url, headers=headers, timeout=300).json()
        if "d" in doc:
            rows, next_url = doc["d"]["results"], doc["d"].get("__next")
        else:
            rows, next_url = doc["value"], doc.get("odata.nextLink")
        items += len(rows)
        pages += 1
    return items, pages, time.perf_counter() - started


class _EmulatorProcess:
    """`python -m sp_emulator` in a child process, so the reader does not share its GIL."""

    def __init__(self) -> None:
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": str(root)}
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sp_emulator", "--site", "bench"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=root,
            env=env,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip().rsplit(" ", 1)[1]
        # From process start to the "ready" line (it is printed once the socket accepts).
        self.start_seconds = time.perf_counter() - started

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def run(n_items: int, client_items: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    starts = []
    for _ in range(3):
        probe = _EmulatorProcess()
        starts.append(probe.start_seconds)
        probe.close()
    results.append(
        {
            "case": "start `python -m sp_emulator` (slowest of 3; goal < 2 s)",
            "items": 0,
            "seconds": round(max(starts), 3),
            "items_per_s": 0,
        }
    )
    # The serving rate is measured on the real schema: Länskunskap provisioned by
    # `sp-sync provision --apply`, every column filled (rich-text note, person, date, choices).
    from benchmarks import bench_sync

    served = bench_sync.EmulatorProcess()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = bench_sync.cli_env(served, Path(tmp) / "state")
            bench_sync.run_cli_measured(["provision", "--apply"], env)
            started = time.perf_counter()
            bench_sync.seed(served, n_items)
            seed_s = time.perf_counter() - started
        results.append(
            {
                "case": "seed Länskunskap via /_emulator/seed (bulk, every column)",
                "items": n_items,
                "seconds": round(seed_s, 3),
                "items_per_s": round(n_items / seed_s),
            }
        )
        list_url = (
            f"{served.site_url}/_api/web/lists/GetByTitle('{bench_sync.LIST}')/items?$top=5000"
        )
        select, expand = bench_sync.select_plan()
        selected = f"{list_url}&$select={','.join(select)}&$expand={','.join(expand)}"
        session = requests.Session()
        for label, url, accept in (
            ("requests, all columns, verbose, first pass (cold caches)", list_url, "verbose"),
            ("requests, all columns, verbose, second pass (warm)", list_url, "verbose"),
            ("requests, sp-sync's $select, nometadata (cold)", selected, "nometadata"),
            ("requests, sp-sync's $select, nometadata (warm)", selected, "nometadata"),
        ):
            headers = {
                "Authorization": f"Bearer {served.token}",
                "Accept": f"application/json;odata={accept}",
            }
            cpu_before = served.cpu_seconds()
            items, pages, secs = _read_all(session, url, headers)
            server_cpu = served.cpu_seconds() - cpu_before
            results.append(
                {
                    "case": label,
                    "items": items,
                    "pages": pages,
                    "seconds": round(secs, 3),
                    "items_per_s": round(items / secs),
                    # The emulator's own CPU per item (from /proc): steadier than wall time
                    # on a busy machine, and what the server-side optimisations change.
                    "server_cpu_us_per_item": round(server_cpu / items * 1e6, 1),
                }
            )
    finally:
        served.close()

    emu = _EmulatorProcess()
    try:
        admin = emu.url + "/_emulator"
        token = requests.post(admin + "/token", json={}, timeout=30).json()["access_token"]
        site_url = emu.url + "/sites/bench"
        if client_items:
            from office365.sharepoint.client_context import ClientContext

            if client_items % 5000 == 0:
                # A full last page without __next makes the pinned client loop on $skip (README).
                client_items += 1

            rows = [{"Title": f"rad {i}"} for i in range(client_items)]
            requests.post(
                admin + "/seed",
                json={"site": "bench", "list": "Klient", "items": rows},
                timeout=300,
            ).raise_for_status()
            ctx = ClientContext(site_url).with_access_token(
                lambda: {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
            )
            for label, select in (
                ("office365 client, all columns", None),
                ("office365 client, $select=Id,Title", ["Id", "Title"]),
            ):
                col = ctx.web.lists.get_by_title("Klient").items
                if select:
                    col = col.select(select)
                started = time.perf_counter()
                got = col.get_all(page_size=5000).execute_query()
                secs = time.perf_counter() - started
                results.append(
                    {
                        "case": label,
                        "items": len(got),
                        "seconds": round(secs, 3),
                        "items_per_s": round(len(got) / secs),
                    }
                )
    finally:
        emu.close()
    return results


def _proc_status_mb(pid: int, key: str) -> float:
    """A `VmRSS`/`VmHWM` line of /proc/PID/status in MB (nan when it cannot be read)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def keyset(sizes: list[int]) -> list[dict[str, Any]]:
    """Per-page cost of bench_sync's raw floor read at each list size (see the module doc)."""
    from benchmarks import bench_sync

    results: list[dict[str, Any]] = []
    for n in sizes:
        served = bench_sync.EmulatorProcess()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                env = bench_sync.cli_env(served, Path(tmp) / "state")
                bench_sync.run_cli_measured(["provision", "--apply"], env)
                cpu0, started = served.cpu_seconds(), time.perf_counter()
                bench_sync.seed(served, n)
                seed_wall, seed_cpu = time.perf_counter() - started, served.cpu_seconds() - cpu0
            rss_seeded = _proc_status_mb(served.proc.pid, "VmRSS")
            for label in ("cold", "warm"):
                session = requests.Session()
                walls: list[float] = []
                cpus: list[float] = []
                rows = 0
                pages = bench_sync.raw_pages(served, session)
                while True:
                    cpu0, t0 = served.cpu_seconds(), time.perf_counter()
                    page = next(pages, None)
                    if page is None:
                        break
                    walls.append(time.perf_counter() - t0)
                    cpus.append(served.cpu_seconds() - cpu0)
                    rows += len(page)
                full = cpus[:-1] or cpus  # every page but the (possibly short) last
                results.append(
                    {
                        "n": n,
                        "pass": label,
                        "rows": rows,
                        "pages": len(cpus),
                        "seed_s": round(seed_wall, 1),
                        "seed_server_cpu_s": round(seed_cpu, 1),
                        "server_cpu_s": round(sum(cpus), 2),
                        "server_cpu_s_per_page": round(sum(cpus) / len(cpus), 3),
                        "wall_s": round(sum(walls), 2),
                        "wall_s_per_page": round(sum(walls) / len(walls), 3),
                        # The last page is short when N is not a multiple of 5,000; the
                        # slowest full page shows a collector pause or a per-page scan.
                        "first_page_cpu_s": round(cpus[0], 3),
                        "last_page_cpu_s": round(cpus[-1], 3),
                        "max_page_cpu_s": round(max(full), 3),
                        "first_page_wall_s": round(walls[0], 3),
                        "last_page_wall_s": round(walls[-1], 3),
                        "rss_seeded_mb": round(rss_seeded),
                        "rss_mb": round(_proc_status_mb(served.proc.pid, "VmRSS")),
                        "peak_rss_mb": round(_proc_status_mb(served.proc.pid, "VmHWM")),
                    }
                )
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        finally:
            served.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument(
        "--client-items", type=int, default=7_500, help="items read through office365 (0 to skip)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--keyset",
        default="",
        help="comma-separated list sizes: per-page cost of the raw keyset read at each size",
    )
    args = parser.parse_args()
    if args.keyset:
        rows = keyset([int(s) for s in args.keyset.split(",") if s.strip()])
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        head = (
            f"{'N':>9} {'pass':<5} {'pages':>5} {'cpu s/page':>10} {'first':>7} {'last':>7} "
            f"{'max':>7} {'wall s/page':>11} {'RSS MB':>7} {'seed s':>7}"
        )
        print(head)
        print("-" * len(head))
        for r in rows:
            print(
                f"{r['n']:>9} {r['pass']:<5} {r['pages']:>5} {r['server_cpu_s_per_page']:>10} "
                f"{r['first_page_cpu_s']:>7} {r['last_page_cpu_s']:>7} {r['max_page_cpu_s']:>7} "
                f"{r['wall_s_per_page']:>11} {r['rss_mb']:>7} {r['seed_s']:>7}"
            )
        return 0
    results = run(args.items, args.client_items)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'case':58} {'items':>8} {'seconds':>8} {'items/s':>9} {'server µs/item':>15}")
    for r in results:
        cpu = r.get("server_cpu_us_per_item", "")
        print(f"{r['case']:58} {r['items']:>8} {r['seconds']:>8} {r['items_per_s']:>9} {cpu:>15}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
