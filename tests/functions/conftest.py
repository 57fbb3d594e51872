"""Fixtures for the Functions app tests: the registered functions, an emulator with two
provisioned and seeded sites, Azurite-backed app settings and a reader for the real job queue.

The Functions host cannot run here, so the tests do what the host does: read each function's
bindings from `app.get_functions()` and call the user functions with real `azure.functions`
objects. Queue messages go through Azurite exactly as in Azure (base64, as host.json says).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sp_emulator import SharePointEmulator
from tests.helpers.azurite import Azurite, unique_container

SITES = ("alfa", "beta")
IDENTITY_VARS = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IMDS_ENDPOINT",
)


class SeededEmulator(SharePointEmulator):
    """The emulator plus what each site was seeded with: site → list title → rows."""

    seed_counts: dict[str, dict[str, int]]


@pytest.fixture(scope="session")
def functions() -> dict[str, Any]:
    """name → FunctionBuilder. `get_functions()` may be called only once per process (a second
    call raises a duplicate-function error), hence the session scope."""
    import function_app

    by_name: dict[str, Any] = {}
    for f in function_app.app.get_functions():
        name = f.get_function_name()
        assert name is not None, f"a function without a name: {f}"
        by_name[name] = f
    return by_name


def seed_site(emu: Any, site: str, *, per_county: int = 2) -> dict[str, int]:
    """A little deterministic demo data in the provisioned lists; returns rows per list."""
    from sp_sync.demo.runner import seed

    return seed(
        emu,
        site=site,
        base_date=dt.date(2026, 6, 1),
        knowledge_per_county=per_county,
        feedback_per_county=per_county,
        user_count=4,
    )


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    """One emulator per module with the sites `alfa` and `beta`, provisioned through the real
    managed-identity path and seeded with a little data. Tests only read the lists (and
    overwrite the workbooks), so sharing it is safe; each test has its own state and queue."""
    from sp_sync.demo.runner import managed_identity_env
    from sp_sync.run import pipeline
    from sp_sync.run.runtime import Runtime
    from sp_sync.settings import Settings

    with (
        SeededEmulator(sites=list(SITES)) as emulator,
        managed_identity_env(emulator.identity_endpoint, emulator.identity_header),
        tempfile.TemporaryDirectory() as tmp,
    ):
        emulator.seed_counts = {}
        for name in SITES:
            settings = Settings.from_env(
                {
                    "SP_SYNC_SITE_URL": emulator.site_url(name),
                    "SP_SYNC_RESOURCE": emulator.url,
                    "SP_SYNC_STATE_DIR": tmp,
                }
            )
            pipeline.run_provision(
                Runtime(settings=settings), settings.sites[0], apply=True, allow_destructive=False
            )
            emulator.seed_counts[name] = seed_site(emulator, name)
        yield emulator


@dataclass
class AppEnv:
    """The app settings of one test's Functions app, and a reader for its job queue."""

    emu: Any
    azurite: Azurite
    queue: str
    container: str
    sites_file: Path

    def queue_client(self, name: str | None = None) -> Any:
        from azure.storage.queue import QueueClient

        return QueueClient.from_connection_string(
            self.azurite.connection_string, name or self.queue
        )

    def take_messages(self, name: str | None = None) -> list[bytes]:
        """Receive and delete every message on the queue; returns the decoded bodies (what the
        host hands to the queue trigger after base64-decoding)."""
        from azure.core.exceptions import ResourceNotFoundError

        client = self.queue_client(name)
        bodies: list[bytes] = []
        while True:
            try:
                batch = list(client.receive_messages(messages_per_page=32, visibility_timeout=30))
            except ResourceNotFoundError:  # never created: nothing was ever sent
                return bodies
            if not batch:
                return bodies
            for m in batch:
                bodies.append(base64.b64decode(m.content, validate=True))
                client.delete_message(m)

    def store(self) -> Any:
        from sp_sync.state import BlobStateStore

        return BlobStateStore(self.azurite.connection_string, self.container)

    def uploads(self, site: str, name: str = "Länsöversikt.xlsx") -> int:
        """How many times the workbook `name` was uploaded to `site` (emulator journal)."""
        return sum(
            1
            for e in self.emu.journal()
            if e.get("site") == site
            and e.get("method") == "POST"
            and e.get("status", 500) < 300
            and name in _decoded(e)
        )


def _decoded(entry: dict[str, Any]) -> str:
    from urllib.parse import unquote

    return unquote(str(entry.get("path", ""))) + unquote(
        json.dumps(entry.get("query", {}), ensure_ascii=False)
    )


@pytest.fixture
def app_env(
    emu: Any, azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AppEnv]:
    """App settings as a Functions deployment has them: managed identity (the emulator's
    identity endpoint), state in Azurite blobs, the job queue in Azurite, two sites from a
    sites file. Each test gets its own container and queue."""
    for name in list(os.environ):
        if name.startswith("SP_SYNC_") or name in IDENTITY_VARS:
            monkeypatch.delenv(name)
    sites_file = tmp_path / "sites.json"
    sites_file.write_text(
        json.dumps(
            {
                "sites": [
                    {"url": emu.site_url(s), "rollup_folder": "Sammanställningar"} for s in SITES
                ]
            }
        ),
        encoding="utf-8",
    )
    env = AppEnv(emu, azurite, unique_container("q"), unique_container("s"), sites_file)
    values = {
        "SP_SYNC_SITES_FILE": str(sites_file),
        "SP_SYNC_AUTH": "managed_identity",
        "SP_SYNC_RESOURCE": emu.url,
        "SP_SYNC_ORGANISATION": "Test",
        "SP_SYNC_STATE": "azure",
        "SP_SYNC_STATE_CONTAINER": env.container,
        "SP_SYNC_QUEUE": env.queue,
        "AzureWebJobsStorage": azurite.connection_string,
        "IDENTITY_ENDPOINT": emu.identity_endpoint,
        "IDENTITY_HEADER": emu.identity_header,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    # The triggers build their runtime from these app settings (Runtime.from_env) per call.
    emu.faults.clear()
    try:
        yield env
    finally:
        emu.faults.clear()
