"""Fixtures for the `sp-sync` command-line tests.

The CLI runs in subprocesses (`python -m sp_sync …`) with app settings in the environment; the
emulator runs in the test process and serves HTTP on loopback, so the managed-identity path
(IDENTITY_ENDPOINT / IDENTITY_HEADER) works across the process boundary exactly as on Azure.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sp_emulator import SharePointEmulator
from tests.helpers import forkserver

ROOT = Path(__file__).resolve().parents[2]
IDENTITY_VARS = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IMDS_ENDPOINT",
)
#: `fresh` and `readonly`: nothing provisioned (on `readonly` the managed identity may only
#: read); `main`: provisioned and seeded; `drift`: provisioned, a column is removed by hand.
SITES = ("fresh", "main", "readonly", "drift")


def base_env() -> dict[str, str]:
    """The test process's environment without any sp-sync or identity setting."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SP_SYNC_") and k not in IDENTITY_VARS and k != "AzureWebJobsStorage"
    }
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONIOENCODING"] = "utf-8"
    return env


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


@dataclass
class Cli:
    """Runs `python -m sp_sync` against one emulator site with its own state directory."""

    emu: Any
    site: str
    state_dir: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = base_env()
        env.update(
            {
                "SP_SYNC_SITE_URL": self.emu.site_url(self.site),
                "SP_SYNC_AUTH": "managed_identity",
                "SP_SYNC_RESOURCE": self.emu.url,
                "SP_SYNC_ORGANISATION": "Test",
                "SP_SYNC_STATE": "local",
                "SP_SYNC_STATE_DIR": str(self.state_dir),
                "SP_SYNC_LANGUAGE": "sv",
                "IDENTITY_ENDPOINT": self.emu.identity_endpoint,
                "IDENTITY_HEADER": self.emu.identity_header,
            }
        )
        env.update(extra)
        return env

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return forkserver.run(
            ["-m", "sp_sync", *args],
            cwd=self.state_dir.parent,
            env=env if env is not None else self.env(),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def in_process(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`sp-sync ARGS` through the same entry point in this process (`sp_sync.cli.main`, the
        environment swapped for `env`, stdout and stderr captured): for the variations of a
        behaviour that a subprocess test asserts once; it saves the interpreter's start and
        imports (about 1 CPU-second). Log lines (retry warnings) are not captured here:
        assert them through `run`."""
        return run_in_process(list(args), env if env is not None else self.env(), self.cwd)

    @property
    def cwd(self) -> Path:
        return self.state_dir.parent

    def json(
        self,
        *args: str,
        code: int = 0,
        env: dict[str, str] | None = None,
        in_process: bool = False,
    ) -> Any:
        """Run with --json (in a subprocess, or `in_process`), check the exit code, return the
        parsed output."""
        run = self.in_process if in_process else self.run
        done = run(*args, "--json", env=env)
        assert done.returncode == code, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
        assert "Traceback" not in done.stderr, done.stderr
        return json.loads(done.stdout)


def run_in_process(
    args: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """`sp_sync.cli.main(args)` with `env` as the whole environment and `cwd` as the working
    directory, as `python -m sp_sync` would run; the exit code, stdout and stderr as a
    CompletedProcess. The environment, directory and root logger are restored afterwards."""
    from sp_sync import cli

    saved_env = dict(os.environ)
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.clear()
        os.environ.update(env)
        with (
            contextlib.chdir(cwd),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            try:
                code = cli.main(args)
            except SystemExit as exc:  # argparse: --help, usage errors
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    return subprocess.CompletedProcess(["sp-sync", *args], code, out.getvalue(), err.getvalue())


class SeededEmulator(SharePointEmulator):
    """The emulator plus what each site was seeded with: site → list title → rows."""

    seed_counts: dict[str, dict[str, int]]


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    """One emulator per module; `main` and `drift` provisioned in-process."""
    from sp_sync.demo.runner import managed_identity_env
    from sp_sync.run import pipeline
    from sp_sync.run.runtime import Runtime
    from sp_sync.settings import Settings

    with SeededEmulator(sites=list(SITES)) as emulator, tempfile.TemporaryDirectory() as tmp:
        with managed_identity_env(emulator.identity_endpoint, emulator.identity_header):
            for name in ("main", "drift"):
                settings = Settings.from_env(
                    {
                        "SP_SYNC_SITE_URL": emulator.site_url(name),
                        "SP_SYNC_RESOURCE": emulator.url,
                        "SP_SYNC_STATE_DIR": tmp,
                    }
                )
                pipeline.run_provision(
                    Runtime(settings=settings),
                    settings.sites[0],
                    apply=True,
                    allow_destructive=False,
                )
        emulator.seed_counts = {"main": seed_site(emulator, "main")}
        yield emulator


@pytest.fixture
def cli_factory(emu: Any, tmp_path: Path) -> Any:
    def make(site: str = "main") -> Cli:
        state = tmp_path / f"state-{site}"
        return Cli(emu, site, state)

    return make
