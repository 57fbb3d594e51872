"""The request budgets of `sp-sync sync`, measured where they are promised: the CLI as a
subprocess against the emulator, which counts every request it serves (issue 14, request budgets).

Full read ≤ ceil(N/5000) + 3, nothing changed ≤ 2, k changed ≤ 3 + ceil(k/5000). The site and
list checks of issue 13 cost nothing on these paths: they are derived from the sync's own first
requests, and only a 404 pays for asking the site again.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sp_emulator import SharePointEmulator
from tests.cli.conftest import base_env
from tests.helpers import forkserver

LIST = "Länskunskap"
SITES = ("budget", "renamed")


def _provision(emulator: SharePointEmulator, site: str, state_dir: str) -> None:
    from sp_sync.run import pipeline
    from sp_sync.run.runtime import Runtime
    from sp_sync.settings import Settings

    settings = Settings.from_env(
        {
            "SP_SYNC_SITE_URL": emulator.site_url(site),
            "SP_SYNC_RESOURCE": emulator.url,
            "SP_SYNC_STATE_DIR": state_dir,
        }
    )
    pipeline.run_provision(
        Runtime(settings=settings), settings.sites[0], apply=True, allow_destructive=False
    )


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    """`budget`: provisioned, Länskunskap above one page of 5,000; `renamed`: provisioned, then
    Länskunskap renamed by hand to "Lanskunskap"."""
    from sp_sync.demo.runner import managed_identity_env, seed

    with SharePointEmulator(sites=list(SITES)) as emulator, tempfile.TemporaryDirectory() as tmp:
        with managed_identity_env(emulator.identity_endpoint, emulator.identity_header):
            for name in SITES:
                _provision(emulator, name, tmp)
        counts = seed(
            emulator,
            site="budget",
            base_date=dt.date(2026, 6, 1),
            knowledge_per_county=260,
            feedback_per_county=1,
            user_count=4,
        )
        assert counts[LIST] > 5000  # two pages at least
        backend = emulator.backend
        site = backend.get_site("renamed")
        lst = backend.get_list(site, title=LIST)
        backend.update_list(site, lst, {"Title": "Lanskunskap"})
        emulator.item_count = counts[LIST]  # type: ignore[attr-defined]
        yield emulator


def _env(emu: Any, site: str, state_dir: Path, **extra: str) -> dict[str, str]:
    env = base_env()
    env.update(
        {
            "SP_SYNC_SITE_URL": emu.site_url(site),
            "SP_SYNC_AUTH": "managed_identity",
            "SP_SYNC_RESOURCE": emu.url,
            "SP_SYNC_ORGANISATION": "Test",
            "SP_SYNC_STATE": "local",
            "SP_SYNC_STATE_DIR": str(state_dir),
            "SP_SYNC_LANGUAGE": "sv",
            "IDENTITY_ENDPOINT": emu.identity_endpoint,
            "IDENTITY_HEADER": emu.identity_header,
        }
    )
    env.update(extra)
    return env


def _sync(
    emu: Any, env: dict[str, str], *args: str
) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run `sp-sync sync …`; return the process and the SharePoint requests the emulator served
    for it (the managed-identity token endpoint and the admin API are not SharePoint)."""
    emu.reset_stats()
    done = forkserver.run(
        ["-m", "sp_sync", "sync", *args],
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    routes: dict[str, int] = emu.stats().get("routes") or {}
    served = sum(n for name, n in routes.items() if not name.startswith(("identity.", "admin.")))
    return done, served


def _token_requests(emu: Any) -> int:
    """Token requests the emulator served since its last stats reset (managed identity or the
    certificate authority; the authority's discovery calls are identity traffic, not tokens)."""
    routes: dict[str, int] = emu.stats().get("routes") or {}
    return sum(n for name, n in routes.items() if name in _TOKEN_ROUTES)


_TOKEN_ROUTES = ("identity.token", "identity.authority_token")


def _edit(emu: Any, ids: list[int]) -> None:
    backend = emu.backend
    site = backend.get_site("budget")
    lst = backend.get_list(site, title=LIST)
    for item_id in ids:
        item = backend.get_item(lst, item_id)
        backend.update_item(site, lst, item, {"Title": f"ändrad {item_id}"}, if_match="*")


def test_full_none_and_some_changed_stay_within_their_budgets(emu: Any, tmp_path: Path) -> None:
    env = _env(emu, "budget", tmp_path / "state")
    n = int(emu.item_count)

    done, served = _sync(emu, env, "--full", "--list", LIST, "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["lists"][0]["rows"] == n
    assert served <= math.ceil(n / 5000) + 3, (served, emu.stats()["routes"])
    # The CLI's own view agrees with the server's count (nothing outside the sync was sent):
    # SharePoint requests plus the managed-identity token requests, as the emulator counted
    # them (the summary counts token calls with the list that made them: issue 11, item 7).
    tokens = _token_requests(emu)
    assert tokens >= 1, emu.stats()["routes"]
    assert doc["lists"][0]["requests"] == served + tokens

    done, served = _sync(emu, env, "--list", LIST, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["lists"][0]["mode"] == "incremental"
    assert served <= 2, emu.stats()["routes"]

    changed = [1, 2, 3, 4000, n]
    _edit(emu, changed)
    done, served = _sync(emu, env, "--list", LIST, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)["lists"][0]
    assert result["updated"] == len(changed) and result["rows"] == n
    assert served <= 3 + math.ceil(len(changed) / 5000), emu.stats()["routes"]


def test_a_list_missing_on_the_site_exits_2_naming_the_closest_list(
    emu: Any, tmp_path: Path
) -> None:
    env = _env(emu, "renamed", tmp_path / "state")
    done, _ = _sync(emu, env, "--list", LIST)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"Listan '{LIST}' finns inte på webbplatsen {emu.site_url('renamed')}" in done.stderr
    assert "(menade du Lanskunskap?)" in done.stderr
    assert "Traceback" not in done.stderr
    english = _env(emu, "renamed", tmp_path / "state", SP_SYNC_LANGUAGE="en")
    done, _ = _sync(emu, english, "--list", LIST)
    assert done.returncode == 2
    assert f"The list '{LIST}' does not exist on the site" in done.stderr
    assert "(did you mean Lanskunskap?)" in done.stderr


def test_a_missing_site_costs_one_request_per_attempt_and_exits_2(emu: Any, tmp_path: Path) -> None:
    url = emu.site_url("budge")  # one letter short
    env = _env(emu, "budget", tmp_path / "state", SP_SYNC_SITE_URL=url)
    done, served = _sync(emu, env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert url in done.stderr and "finns inte (SharePoint svarar 404)" in done.stderr
    assert "provision" not in done.stderr and "Traceback" not in done.stderr
    # The first list's first request failed and one more asked whether the site exists; the
    # other lists were not tried.
    assert served <= 2, emu.stats()["routes"]
