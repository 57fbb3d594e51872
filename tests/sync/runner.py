"""Run one `sync_site` in a child process, for the SIGKILL crash tests.

    python tests/sync/runner.py SITE_URL TOKEN STATE_DIR [--full] [--page-size N]
        [--lists A,B] [--deadline-seconds S]

Prints `PAGE <list> <rows>` after every page (flushed) so a test can kill at a page boundary,
then `DONE <json>` with the per-list results. Crash points inside the engine and the store are
also reachable with SP_SYNC_STATE_CRASH_AT (see sp_sync/state/hooks.py): `sync-page:<n>`,
`sync-before-commit`, and the store's own points (`mid-write`, `before-manifest`, …).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sp_sync.auth import StaticTokenProvider  # noqa: E402
from sp_sync.schema import load_schemas  # noqa: E402
from sp_sync.sharepoint import RetryPolicy, SharePointClient  # noqa: E402
from sp_sync.state.local import LocalStateStore  # noqa: E402
from sp_sync.sync.engine import PAGE_SIZE, sync_site  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("site_url")
    p.add_argument("token")
    p.add_argument("state_dir")
    p.add_argument("--full", action="store_true")
    p.add_argument("--page-size", type=int, default=PAGE_SIZE)
    p.add_argument("--lists", default="")
    p.add_argument("--deadline-seconds", type=float, default=None)
    p.add_argument("--site-key", default="emulator_sites_x")
    p.add_argument("--lock-ttl", type=float, default=60.0)
    args = p.parse_args(argv)

    def progress(title: str, rows: int, expected: int | None = None) -> None:
        if rows:  # the engine also reports a list's start (0 rows): not a page boundary
            print(f"PAGE {title} {rows}", flush=True)

    client = SharePointClient(
        args.site_url,
        StaticTokenProvider(args.token),
        organisation="Test",
        retry=RetryPolicy(max_attempts=8, backoff_base=0.01),
    )
    store = LocalStateStore(Path(args.state_dir))
    deadline = time.monotonic() + args.deadline_seconds if args.deadline_seconds else None
    out = sync_site(
        client,
        store,
        args.site_key,
        load_schemas(),
        lists=[s for s in args.lists.split(",") if s] or None,
        full=args.full,
        deadline=deadline,
        now=datetime.now(UTC),
        progress=progress,
        page_size=args.page_size,
        lock_ttl_seconds=args.lock_ttl,
    )
    print(
        "DONE "
        + json.dumps(
            {"lists": [r.to_dict() for r in out.lists], "errors": [dict(e) for e in out.errors]}
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
