"""`python -m sp_emulator [--host 127.0.0.1] [--port 0] [--site NAME ...] [--data DIR]`."""

from __future__ import annotations

import argparse
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
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--site", action="append", default=[], help="site to create (repeatable); default: x"
    )
    parser.add_argument("--data", default=None, help="directory to persist state in")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    raise SystemExit(main())
