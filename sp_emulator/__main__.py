"""`sp-emulator [--host 127.0.0.1] [--port 0] [--site NAME ...] [--data DIR] [--demo]`.

The console script `sp-emulator` (pyproject's `[project.scripts]`) and `python -m sp_emulator`
run the same `main`.

The emulator has an unauthenticated admin API that mints tokens, so it listens on loopback only
unless `--allow-remote` is given with a non-loopback `--host` (and then warns on stderr).
`--demo` (what `make emulator` runs) also provisions the demo site with sp-sync's lists, seeds
the demo data and prints the settings that point `sp-sync` at it."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from sp_emulator.server import SharePointEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        # `sp-emulator` when run as the installed console script, else the module form.
        prog="sp-emulator" if Path(sys.argv[0]).stem == "sp-emulator" else "python -m sp_emulator",
        description=(
            "A local stand-in for SharePoint Online's REST API (/_api: lists, items, fields, "
            "views, CAML, folders and files, change log, $batch, throttling) with its own token "
            "service, for tests and demos. It listens on loopback, prints its URL and the "
            "managed-identity variables, and serves until SIGINT or SIGTERM. Get a token with "
            "POST /_emulator/token, seed lists with POST /_emulator/seed. Not affiliated with "
            "Microsoft; see sp_emulator/README.md for what is emulated."
        ),
        epilog="Example: sp-emulator --port 8080 --site team --data ./sp-state",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other than loopback (exposes the unauthenticated admin API)",
    )
    parser.add_argument("--port", type=int, default=0, help="port; 0 (default) picks a free one")
    parser.add_argument(
        "--site", action="append", default=[], help="site to create (repeatable); default: x"
    )
    parser.add_argument("--data", default=None, help="directory to persist state in")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="create, provision and seed sp-sync's demo site; print the settings to use it",
    )
    args = parser.parse_args(argv)
    if not _is_loopback(args.host):
        if not args.allow_remote:
            parser.error(
                f"--host {args.host} is not a loopback address: anyone who can reach it can use "
                "the unauthenticated admin API, which mints tokens. Add --allow-remote to do it "
                "anyway."
            )
        print(
            f"WARNING: the emulator listens on {args.host}; its admin API (/_emulator, which "
            "mints tokens) is open to every host that can reach it. Use it on trusted "
            "networks only.",
            file=sys.stderr,
            flush=True,
        )
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sites = list(args.site) or ([] if args.demo else ["x"])
    if args.demo:
        from sp_sync.demo.runner import DEMO_SITE

        sites.append(DEMO_SITE)
    _tune_collector()
    emu = SharePointEmulator(sites=sites, data_dir=args.data, host=args.host, port=args.port)
    emu.start()
    if args.demo:
        _seed_demo(emu)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"SharePoint emulator ready at {emu.url}", flush=True)
    print(f"IDENTITY_ENDPOINT={emu.identity_endpoint}", flush=True)
    print(f"IDENTITY_HEADER={emu.identity_header}", flush=True)
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
    return 0


#: Full (generation 2) collections at most once per this many generation-1 collections.
FULL_COLLECTION_THRESHOLD = 1000


def _tune_collector() -> None:
    """Make the cyclic collector's full passes rare in the emulator's own process.

    A full pass walks every live container: with 1,000,000 items seeded (several tracked
    objects each, and the per-item JSON caches a first read builds) one pass takes seconds,
    and with the default thresholds (700, 10, 10) one comes each time the old generation has
    grown by a quarter, so a first read of a big list stalled for seconds at a time (3.1 s,
    the slowest page of a cold 1,000,000-item read). Raising the third threshold is the
    documented knob (https://docs.python.org/3/library/gc.html#gc.set_threshold): young
    objects are still collected as before; a full pass now needs 1,000 generation-1 passes
    (about 7,000,000 net new containers), which a whole first read of 1,000,000 items does
    not reach. Only here, in a process that is nothing but the server; an emulator started
    inside a test process leaves that process's collector alone.
    """
    first, second, _ = gc.get_threshold()
    gc.set_threshold(first, second, FULL_COLLECTION_THRESHOLD)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _seed_demo(emu: SharePointEmulator) -> None:
    """The sp-sync demo site, provisioned and seeded, and the lines to paste into a shell."""
    from sp_sync.demo.runner import DEFAULT_DEMO_DIR, provision_and_seed, settings_to_paste
    from sp_sync.settings import language_or_default

    language = language_or_default()
    state_dir = (DEFAULT_DEMO_DIR / "emulator-state").resolve()
    counts = provision_and_seed(emu, Path(state_dir), language=language)
    print(", ".join(f"{title}: {rows}" for title, rows in counts.items()), flush=True)
    for line in settings_to_paste(emu, state_dir, language):
        print(line, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
