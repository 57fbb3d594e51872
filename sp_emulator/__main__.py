"""`python -m sp_emulator [--host 127.0.0.1] [--port 0] [--site NAME ...] [--data DIR]`.

The emulator has an unauthenticated admin API that mints tokens, so it listens on loopback only
unless `--allow-remote` is given with a non-loopback `--host` (and then warns on stderr)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
import threading
from types import FrameType

from sp_emulator.server import SharePointEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sp_emulator", description="SharePoint Online emulator (loopback)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other than loopback (exposes the unauthenticated admin API)",
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--site", action="append", default=[], help="site to create (repeatable); default: x"
    )
    parser.add_argument("--data", default=None, help="directory to persist state in")
    parser.add_argument("--log-level", default="WARNING")
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
    emu = SharePointEmulator(
        sites=args.site or ["x"], data_dir=args.data, host=args.host, port=args.port
    )
    emu.start()
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


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
