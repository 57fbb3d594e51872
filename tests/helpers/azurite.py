"""Azurite (the Azure Storage emulator) for tests: started on loopback, ports read from its output.

    with Azurite() as az:                     # in-memory, ~0.5 s to start
        BlobServiceClient.from_connection_string(az.connection_string)
    with Azurite(persistent=True) as az:      # on-disk: data survives az.restart()
        ...; az.restart(); ...

Azurite 3.35.0 is pinned in package.json (`make test` runs `npm ci`). `--skipApiVersionCheck` is
needed because current azure-storage SDKs send an x-ms-version newer than Azurite 3.35 knows.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "devstoreaccount1"
#: The well-known development key every Azurite instance accepts (public, not a secret).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_LISTENING = re.compile(
    r"Azurite (Blob|Queue|Table) service is successfully listening at \S+:(\d+)"
)


class AzuriteMissingError(RuntimeError):
    pass


def azurite_binary() -> Path:
    """node_modules/.bin/azurite, or a clear error saying how to install it."""
    if shutil.which("node") is None:
        raise AzuriteMissingError(
            "Node.js is not installed, so Azurite cannot run: install Node 20, then `make test` "
            "(or `npm ci`)."
        )
    binary = REPO_ROOT / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise AzuriteMissingError(
            f"Azurite is not installed ({binary} is missing): run `make test` or `npm ci` in "
            f"{REPO_ROOT}."
        )
    return binary


def unique_container(prefix: str = "t") -> str:
    """A fresh container name (3–63 lower-case letters/digits), so tests sharing Azurite never clash."""
    return f"{prefix}{uuid.uuid4().hex[:16]}"


class Azurite:
    """One Azurite process bound to 127.0.0.1 on free ports."""

    def __init__(self, *, persistent: bool = False, startup_timeout: float = 30.0) -> None:
        self.persistent = persistent
        self.startup_timeout = startup_timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="azurite-")
        self.location = Path(self._tmp.name)
        self.blob_port = 0
        self.queue_port = 0
        self.table_port = 0
        self._proc: subprocess.Popen[str] | None = None
        self._output: list[str] = []

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> Azurite:
        """Start on the current ports (0 = any free port) and wait until all three services listen."""
        binary = azurite_binary()
        args = [
            str(binary),
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
            "--blobPort", str(self.blob_port),
            "--queuePort", str(self.queue_port),
            "--tablePort", str(self.table_port),
        ]  # fmt: skip
        if self.persistent:
            args += ["--location", str(self.location)]
        else:
            # Azurite refuses --location together with --inMemoryPersistence; run it inside the
            # temp folder instead so nothing it might write lands in the working tree.
            args += ["--inMemoryPersistence"]
        self._output = []
        self._proc = subprocess.Popen(
            args,
            cwd=self.location,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # Ctrl-C in the test run must not reach it before cleanup
        )
        ports: dict[str, int] = {}
        ready = threading.Event()
        proc = self._proc

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:  # keep draining so Azurite never blocks on a full pipe
                self._output.append(line.rstrip())
                m = _LISTENING.search(line)
                if m:
                    ports[m.group(1)] = int(m.group(2))
                    if len(ports) == 3:
                        ready.set()
            ready.set()

        threading.Thread(target=pump, name="azurite-output", daemon=True).start()
        if not ready.wait(self.startup_timeout) or len(ports) < 3:
            output = "\n".join(self._output[-20:])
            self._terminate(kill=True)
            raise RuntimeError(f"Azurite did not start within {self.startup_timeout} s:\n{output}")
        self.blob_port, self.queue_port, self.table_port = (
            ports["Blob"], ports["Queue"], ports["Table"]
        )  # fmt: skip
        return self

    def stop(self, *, kill: bool = False) -> None:
        """Stop Azurite (SIGTERM so a persistent instance saves its data; `kill=True`: SIGKILL)."""
        self._terminate(kill=kill)

    def restart(self) -> None:
        """Stop and start again on the same ports (if still free; otherwise new ones).

        With `persistent=True` the data survives; in-memory instances come back empty.
        """
        self.stop()
        try:
            self.start()
        except RuntimeError:
            # Someone took a port meanwhile: fall back to fresh ports (connection_string changes).
            self.blob_port = self.queue_port = self.table_port = 0
            self.start()

    def close(self) -> None:
        self._terminate(kill=False)
        self._tmp.cleanup()

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _terminate(self, *, kill: bool) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        # Give the OS a moment to release the listening sockets before a restart reuses them.
        time.sleep(0.05)

    # --- endpoints -------------------------------------------------------------------------

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.blob_port}/{ACCOUNT}"

    @property
    def queue_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.queue_port}/{ACCOUNT}"

    @property
    def table_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.table_port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        """The explicit devstoreaccount1 form with the real ports (UseDevelopmentStorage=true
        would assume the default ports 10000–10002)."""
        return (
            "DefaultEndpointsProtocol=http;"
            f"AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};"
            f"QueueEndpoint={self.queue_endpoint};"
            f"TableEndpoint={self.table_endpoint};"
        )

    def output(self) -> str:
        """What Azurite printed (for failure messages)."""
        return "\n".join(self._output)
