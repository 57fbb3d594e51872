"""Sync benchmark: sp-sync's full and incremental sync vs a naive office365 `get_all()` read.

    .venv/bin/python benchmarks/bench_sync.py [--sizes 1000,10000,100000] [--json-only]

For each size N a fresh emulator site gets the Dialoger list (provisioned from list_schemas/) and
N items seeded through the emulator backend. Then, each measured separately (requests from the
emulator's counter, bytes the client received, wall and CPU seconds, peak Python memory):

* naive   – office365 `items.get_all(page_size=5000)` → DataFrame (guarded: office365 3.3.0
            loops forever when N is a multiple of the page size, reference §5-B1; the guard stops
            it and the row reports `looped: true`)
* full    – `sync_list(..., full=True)` (normalize, validate, commit the snapshot)
* incr-0  – incremental, nothing changed
* incr-1  – incremental after 1 % of the items were updated
* incr-10 – incremental after 10 % were updated
* del-1   – incremental after 1 % were deleted

Prints one JSON document and a table. The default sizes run in about 2–3 minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sp_emulator import SharePointEmulator  # noqa: E402
from sp_sync.auth import StaticTokenProvider  # noqa: E402
from sp_sync.schema import load_schemas  # noqa: E402
from sp_sync.sharepoint import SharePointClient  # noqa: E402
from sp_sync.state.local import LocalStateStore  # noqa: E402
from sp_sync.sync.engine import sync_list  # noqa: E402

LIST = "Dialoger"
COUNTIES = ["Skåne län", "Uppsala län", "Stockholms län", "Gotlands län"]


def provision(emu: Any, schemas: Any) -> None:
    """Create the schema's lists straight in the emulator's backend (no requests counted)."""
    from tests.sync.sync_emu_support import create_lists

    create_lists(emu, schemas)


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "Title": f"Dialog {i}",
            "County": COUNTIES[i % len(COUNTIES)],
            "Year": 2020 + i % 7,
            "Phase": "Dialog",
            "PlannedDate": "2026-03-29",
        }
        for i in range(start, start + n)
    ]


TRACE_MEMORY = False


def measure(name: str, emu: Any, fn: Callable[[], Any]) -> dict[str, Any]:
    """Run `fn` once; requests as the emulator counts them (every `$batch` sub-request is one,
    as SharePoint meters them) and as HTTP requests (`http_requests`: what crossed the wire)."""
    emu.reset_stats()
    if TRACE_MEMORY:
        tracemalloc.start()
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    extra = fn() or {}
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    peak = tracemalloc.get_traced_memory()[1] if TRACE_MEMORY else 0
    if TRACE_MEMORY:
        tracemalloc.stop()
    stats = emu.stats()
    journal = emu.journal()
    subs = sum(1 for e in journal if e.get("is_batch_sub"))
    return {
        "case": name,
        "requests": stats.get("requests"),
        "http_requests": stats.get("requests", 0) - subs,
        "bytes": stats.get("bytes_sent"),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "peak_mb": round(peak / 2**20, 1) if TRACE_MEMORY else None,
        # Process RSS high-water mark so far (Linux: KiB); it only grows, so read it as "the
        # largest case up to here".
        "rss_high_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **extra,
    }


def naive_read(emu: Any, token: str, n: int) -> dict[str, Any]:
    import pandas as pd
    from office365.sharepoint.client_context import ClientContext

    ctx = ClientContext(emu.site_url("x")).with_access_token(
        lambda: {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
    )
    items = ctx.web.lists.get_by_title(LIST).items
    limit = n + 5000

    class Looped(Exception):
        pass

    def guard(col: Any) -> None:
        if len(col) > limit:
            raise Looped

    looped = False
    try:
        items.get_all(page_size=5000, page_loaded=guard).execute_query()
    except Looped:
        looped = True
    frame = pd.DataFrame([i.properties for i in items])
    return {"rows": len(frame) if not looped else None, "looped": looped}


def bench_size(n: int, schemas: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with SharePointEmulator(sites=["x"]) as emu, tempfile.TemporaryDirectory() as tmp:
        token = emu.issue_token(lifetime=24 * 3600)
        provision(emu, schemas)
        emu.backend.bulk_add_items("x", LIST, rows(n))
        store = LocalStateStore(Path(tmp) / "state")
        schema = schemas[LIST]

        def client() -> SharePointClient:
            return SharePointClient(
                emu.site_url("x"), StaticTokenProvider(token), organisation="Bench"
            )

        web = client().get_web()

        def sync(full: bool = False) -> dict[str, Any]:
            r = sync_list(
                client(),
                store,
                "bench",
                schema,
                web=web,
                users={},
                full=full,
                now=datetime.now(UTC),
                schema_set=schemas,
            )
            return {
                "rows": r.rows,
                "mode": r.mode,
                "added": r.added,
                "updated": r.updated,
                "deleted": r.deleted,
                "client_requests": r.requests,
                "client_bytes": r.bytes_received,
            }

        out.append({"n": n, **measure("naive get_all", emu, lambda: naive_read(emu, token, n))})
        out.append({"n": n, **measure("full", emu, lambda: sync(full=True))})
        out.append({"n": n, **measure("incr-0", emu, sync)})

        ids = list(range(1, n + 1))
        for label, share in (("incr-1", 0.01), ("incr-10", 0.10)):
            k = max(1, math.floor(n * share))
            step = max(1, n // k)
            changed = ids[::step][:k]
            _update(emu, changed, label)
            out.append({"n": n, "changed": len(changed), **measure(label, emu, sync)})
        k = max(1, n // 100)
        _delete(emu, ids[-k:])
        out.append({"n": n, "changed": k, **measure("del-1", emu, sync)})
    return out


def _backend_list(emu: Any) -> tuple[Any, Any]:
    backend = emu.backend
    site = backend.get_site("x")
    return site, backend.get_list(site, title=LIST)


def _update(emu: Any, ids: list[int], label: str) -> None:
    backend = emu.backend
    site, lst = _backend_list(emu)
    for i in ids:
        item = lst.items[i]
        backend.update_item(site, lst, item, {"Title": f"{label} {i}"}, if_match=None)


def _delete(emu: Any, ids: list[int]) -> None:
    backend = emu.backend
    site, lst = _backend_list(emu)
    for i in ids:
        backend.delete_item(site, lst, lst.items[i])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--json-only", action="store_true")
    p.add_argument(
        "--trace-memory",
        action="store_true",
        help="peak Python memory per case via tracemalloc (slows everything ~2x)",
    )
    args = p.parse_args(argv)
    global TRACE_MEMORY
    TRACE_MEMORY = args.trace_memory
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    schemas = load_schemas()
    results: list[dict[str, Any]] = []
    for n in sizes:
        results.extend(bench_size(n, schemas))
    doc = {
        "benchmark": "sync",
        "python_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "results": results,
    }
    print(json.dumps(doc, ensure_ascii=False, indent=1))
    if not args.json_only:
        head = (
            f"{'N':>7} {'case':<14} {'req':>5} {'http':>5} {'budget':>6} {'bytes':>11} "
            f"{'wall s':>7} {'cpu s':>6} {'peak MB':>8} {'rss MB':>7} note"
        )
        print()
        print(head)
        print("-" * len(head))
        for r in results:
            budget = {
                "full": math.ceil(r["n"] / 5000) + 3,
                "incr-0": 2,
            }.get(
                r["case"],
                3 + math.ceil(r.get("changed", 0) / 5000) if r["case"] != "naive get_all" else "",
            )
            note = "LOOPED (office365 B1)" if r.get("looped") else (r.get("mode") or "")
            print(
                f"{r['n']:>7} {r['case']:<14} {r['requests']!s:>5} {r['http_requests']!s:>5} "
                f"{budget!s:>6} {r['bytes']!s:>11} {r['wall_s']:>7} {r['cpu_s']:>6} "
                f"{r['peak_mb']!s:>8} {r['rss_high_mb']!s:>7} {note}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
