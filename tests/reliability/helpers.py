"""Support for the reliability suite: one emulator per test, holding a copy of a site provisioned
and seeded with a small deterministic data set, plus the checks every scenario ends with.

Every scenario drives the WHOLE pipeline (`pipeline.run_pipeline` in-process, or the
`python -m sp_sync run` process) and ends by proving that nothing was lost:

- `World.assert_exact(store)`: the committed snapshot of every list equals what the emulator's
  backend holds, row for row and column for column (every one of the schema's columns, plus ID, version,
  Created, Modified, Author and Editor; see exactness.py);
- `World.site_workbooks()`: the workbooks in the site's document library, byte for byte, so a
  scenario can compare them with what was there before a failed upload, and check they open.
"""

from __future__ import annotations

import atexit
import datetime as dt
import io
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

from sp_emulator import SharePointEmulator
from sp_emulator.persistence import Persistence
from sp_sync.demo.runner import DEMO_SITE, managed_identity_env, seed
from sp_sync.run import pipeline
from sp_sync.run.runtime import Runtime
from sp_sync.schema import load_schemas
from sp_sync.settings import Settings
from tests.helpers import forkserver
from tests.reliability import exactness
from tests.reliability.exactness import assert_list_exact

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = load_schemas()
IDENTITY_VARS = (
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT",
    "MSI_SECRET", "IMDS_ENDPOINT",
)  # fmt: skip
ROLLUP_FOLDER = "Sammanställningar"


class RequestTrigger:
    """Runs an action when the n-th request matching a predicate reaches the emulator.

    Wraps `emu.faults.take` (the emulator runs in the test process), so an action such as
    `emu.faults.inject(...)`, `expire_tokens()` or killing the client process happens at an exact
    point of a run instead of after a guessed delay. The action runs before the request is
    answered, so a rule it injects applies to that very request.
    """

    def __init__(self, emu: SharePointEmulator) -> None:
        self._faults = emu.faults
        self._original = emu.faults.take
        self._rules: list[list[Any]] = []  # [predicate, remaining count, action, fired]
        self.fired: list[str] = []
        self._faults.take = self._take  # type: ignore[method-assign]

    def when(
        self,
        predicate: Callable[[str, str], bool],
        nth: int,
        action: Callable[[], object],  # its result is ignored
        label: str = "",
    ) -> None:
        self._rules.append([predicate, nth, action, label])

    def _take(self, method: str, path: str, is_batch_sub: bool) -> Any:
        for rule in list(self._rules):
            predicate, remaining, action, label = rule
            if remaining > 0 and predicate(method, path):
                rule[1] = remaining - 1
                if rule[1] == 0:
                    self.fired.append(label or path)
                    action()
        return self._original(method, path, is_batch_sub)

    def clear(self) -> None:
        self._rules.clear()


def is_sync_request(method: str, path: str) -> bool:
    low = path.lower()
    return "/items" in low or "getchanges" in low or "$batch" in low


def is_upload_request(method: str, path: str) -> bool:
    low = path.lower()
    return method == "POST" and ("/files/add" in low or "upload(" in low)


@dataclass
class World:
    """One emulator site with the three lists provisioned and seeded; helpers to run and check."""

    emu: SharePointEmulator
    tmp: Path
    counts: dict[str, int]
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def site_url(self) -> str:
        return self.emu.site_url(DEMO_SITE)

    def env(self, **extra: str) -> dict[str, str]:
        """App settings (as a Functions deployment has them) pointing at the emulator."""
        env = {
            "SP_SYNC_SITE_URL": self.site_url,
            "SP_SYNC_AUTH": "managed_identity",
            "SP_SYNC_RESOURCE": self.emu.url,
            "SP_SYNC_ORGANISATION": "Reliability",
            "SP_SYNC_STATE": "local",
            "SP_SYNC_STATE_DIR": str(self.tmp / "state"),
            "SP_SYNC_LANGUAGE": "sv",
        }
        env.update(self.extra_env)
        env.update(extra)
        return env

    def settings(self, **extra: str) -> Settings:
        return Settings.from_env(self.env(**extra))

    def run(self, **extra: str) -> Any:
        """The whole nightly pipeline in this process (managed identity via the emulator)."""
        settings = self.settings(**extra)
        return pipeline.run_pipeline(Runtime(settings=settings), settings.sites[0])

    def store(self, **extra: str) -> Any:
        from sp_sync.state import open_state_store

        return open_state_store(self.settings(**extra))

    # --- the `sp-sync run` process ---------------------------------------------------------

    def process_env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items()
            if not k.startswith("SP_SYNC_") and k not in IDENTITY_VARS and k != "AzureWebJobsStorage"
        }  # fmt: skip
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONIOENCODING"] = "utf-8"
        env["IDENTITY_ENDPOINT"] = self.emu.identity_endpoint
        env["IDENTITY_HEADER"] = self.emu.identity_header
        env.update(self.env(**extra))
        return env

    def spawn(self, *args: str, **extra: str) -> Any:
        """`python -m sp_sync run -q ARGS` as a child process (Popen's surface)."""
        return forkserver.popen(
            ["-m", "sp_sync", "run", "-q", *args],
            cwd=self.tmp, env=self.process_env(**extra), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
        )  # fmt: skip

    def cli_run(
        self, *args: str, timeout: float = 120, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        proc = self.spawn(*args, **extra)
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    # --- what the site holds -----------------------------------------------------------------

    def list_rows(self, title: str) -> dict[int, dict[str, Any]]:
        """ID → every compared value, straight from the emulator's backend."""
        return exactness.backend_rows(self.emu, DEMO_SITE, title)

    def snapshot_rows(self, store: Any, title: str) -> dict[int, dict[str, Any]] | None:
        """ID → every compared value of the committed snapshot (None when there is none)."""
        state = store.read_list_state(self.site_url, title)
        return None if state is None else exactness.snapshot_rows(state.rows, title)

    def assert_exact(self, store: Any | None = None) -> dict[str, int]:
        """Every list's committed snapshot equals the list, row for row and column for column
        (all schema columns, see exactness.py); returns rows per list."""
        store = store if store is not None else self.store()
        sizes: dict[str, int] = {}
        for title in SCHEMAS.lists:
            state = store.read_list_state(self.site_url, title)
            rows = state.rows if state is not None else None
            sizes[title] = assert_list_exact(self.emu, DEMO_SITE, title, rows)
        return sizes

    def site_workbooks(self) -> dict[str, bytes]:
        """Name → content of every workbook in the rollup folder of the site's library."""
        backend = self.emu.backend
        with backend.lock:
            lib = backend.files.default_library(DEMO_SITE)
            if lib is None:
                return {}
            folder = lib.root.folders.get(ROLLUP_FOLDER.lower())
            if folder is None:
                return {}
            return {f.name: bytes(f.content) for f in folder.files.values()}

    def site_versions(self) -> dict[str, int]:
        """Name → number of previous versions SharePoint keeps of each workbook."""
        backend = self.emu.backend
        with backend.lock:
            lib = backend.files.default_library(DEMO_SITE)
            folder = lib.root.folders.get(ROLLUP_FOLDER.lower()) if lib else None
            return {f.name: len(f.versions) for f in folder.files.values()} if folder else {}

    def assert_workbooks_open(self, expected: int | None = None) -> dict[str, bytes]:
        books = self.site_workbooks()
        assert books, "no workbook on the site"
        if expected is not None:
            assert len(books) == expected, sorted(books)
        for name, data in books.items():
            try:
                wb = load_workbook(io.BytesIO(data), read_only=True)
            except Exception as exc:
                raise AssertionError(f"{name} on the site does not open: {exc!r}") from exc
            assert wb.sheetnames, name
            wb.close()
        return books

    def change_items(self, rng: Any, *, edits: int = 6, deletes: int = 2, adds: int = 3) -> None:
        """Edits, deletions and additions as staff make them between runs (backend, no HTTP)."""
        backend = self.emu.backend
        site = backend.get_site(DEMO_SITE)
        with backend.lock:
            feedback = backend.get_list(site, title="Dialogåterkoppling")
            knowledge = backend.get_list(site, title="Länskunskap")
            fb_ids = sorted(feedback.items)
            kn_ids = sorted(knowledge.items)
            for item_id in rng.sample(fb_ids, min(edits, len(fb_ids))):
                item = backend.get_item(feedback, item_id)
                backend.update_item(
                    site,
                    feedback,
                    item,
                    {
                        "Status": rng.choice(["Ny", "Pågående", "Klar"]),
                        "Title": f"Ändrad {rng.randrange(10**6)}",
                    },
                    if_match=None,
                )
            for item_id in rng.sample(kn_ids, min(deletes, len(kn_ids) - 1)):
                backend.delete_item(site, knowledge, backend.get_item(knowledge, item_id))
            for i in range(adds):
                backend.add_item(site, feedback, {
                    "Title": f"Ny återkoppling {rng.randrange(10**6)} {i}",
                    "County": "Gotlands län",
                    "DialogueDate": dt.date(2026, 5, 1).isoformat(),
                    "ReceivingDepartment": rng.choice(["Företag", "Regioner", "Analys"]),
                    "Status": "Ny",
                    "DueDate": dt.date(2026, 7, 1).isoformat(),
                })  # fmt: skip


#: The provisioned, seeded sites this process (one xdist worker) has built, by data-set size:
#: an emulator snapshot (sp_emulator.persistence, as `--data` writes it) and the seeded counts.
#: Provisioning through the pipeline and seeding cost about 0.7 CPU-s per world; loading the
#: snapshot a fraction of it. Each World loads its own copy into its own emulator, so no test
#: sees another's changes.
_TEMPLATES: dict[tuple[int, int], tuple[Path, dict[str, int]]] = {}


def _template(knowledge_per_county: int, feedback_per_county: int) -> tuple[Path, dict[str, int]]:
    key = (knowledge_per_county, feedback_per_county)
    if key not in _TEMPLATES:
        folder = Path(tempfile.mkdtemp(prefix="sp-sync-world-"))
        atexit.register(shutil.rmtree, folder, True)
        with (
            SharePointEmulator(sites=[DEMO_SITE]) as emu,
            managed_identity_env(emu.identity_endpoint, emu.identity_header),
        ):
            settings = World(emu, folder, {}).settings()
            pipeline.run_provision(
                Runtime(settings=settings), settings.sites[0], apply=True, allow_destructive=False
            )
            counts = seed(
                emu, base_date=dt.date(2026, 6, 1), knowledge_per_county=knowledge_per_county,
                feedback_per_county=feedback_per_county, user_count=4,
            )  # fmt: skip
            Persistence(emu.backend, folder).save()
        _TEMPLATES[key] = (folder, counts)
    return _TEMPLATES[key]


def make_world(
    tmp: Path, *, knowledge_per_county: int = 8, feedback_per_county: int = 6
) -> Iterator[World]:
    """A World on its own emulator whose backend is a copy of the provisioned, seeded site (the
    lists, their items, users and change log, the document library): as if provisioned and
    seeded through the pipeline just before."""
    folder, counts = _template(knowledge_per_county, feedback_per_county)
    with SharePointEmulator(sites=[DEMO_SITE]) as emu:
        if not Persistence(emu.backend, folder).load():
            raise AssertionError(f"no emulator snapshot in {folder}")
        with managed_identity_env(emu.identity_endpoint, emu.identity_header):
            world = World(emu, tmp, dict(counts))
            emu.reset_stats()
            yield world
