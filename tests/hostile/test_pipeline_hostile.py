"""Hostile list items through the whole pipeline (certificate auth, sync, rollup, upload), with
canaries that must never surface.

One emulator for the module; the lists are provisioned once with sp_sync's own provisioning.
Each hypothesis example seeds a few hostile items into both data lists (emulator backend, no
HTTP) and runs the nightly pipeline; then the snapshot must equal the list row for row and every
workbook must open with openpyxl and python-calamine with text as text.

Canaries: a marker line and the private key inside the certificate PEM file, an AccountKey in
the storage connection string, and every bearer token the pipeline was handed (recorded by a
wrapping token provider; emulator tokens are JWTs, so the whole token and its payload and
signature segments are searched). None may appear in any log record (DEBUG, every logger), in
error messages, in the stored run summary or in any workbook's XML.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sp_emulator import SharePointEmulator
from sp_emulator.identity import generate_client_certificate
from sp_sync.errors import SpSyncError
from sp_sync.run import pipeline
from sp_sync.run.runtime import Runtime, TokenProviderFactory
from sp_sync.settings import Settings
from tests.hostile.helpers import (
    PAYLOADS,
    formula_cells,
    hostile,
    hostile_date,
    hostile_text,
    open_both,
    short_hostile_text,
)
from tests.reliability.exactness import SCHEMAS, assert_list_exact

SITE = "hostile"
KNOWLEDGE = "Länskunskap"
FEEDBACK = "Dialogåterkoppling"
PEM_CANARY = f"KANARIE-PEM-{uuid.uuid4().hex}"
ACCOUNT_KEY = "KANARIEkonto" + uuid.uuid4().hex + "=="


class _RecordingProvider:
    """Wraps the real token provider and remembers every token it hands to the pipeline."""

    def __init__(self, inner: Any, seen: set[str]) -> None:
        self._inner = inner
        self._seen = seen

    def get_token(self, *args: Any, **kwargs: Any) -> Any:
        token = self._inner.get_token(*args, **kwargs)
        value = getattr(token, "token", token)
        if isinstance(value, str):
            self._seen.add(value)
        return token

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class World:
    def __init__(
        self,
        emu: SharePointEmulator,
        settings: Settings,
        out_dir: Path,
        secrets: list[str],
        tokens: set[str],
        client_id: str,
        token_provider_factory: TokenProviderFactory,
    ) -> None:
        self.emu, self.settings, self.out_dir = emu, settings, out_dir
        self.runtime = Runtime(settings=settings, token_provider_factory=token_provider_factory)
        self.site = settings.sites[0]
        self.secrets, self.tokens, self.client_id = secrets, tokens, client_id
        self.runs = 0

    def canaries(self) -> list[str]:
        out = list(self.secrets)
        for t in self.tokens:
            out.append(t)
            out += [seg for seg in t.split(".")[1:] if len(seg) >= 16]
        return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from sp_sync.auth import CertificateTokenProvider  # noqa: F401  (the real provider is wrapped)
    from sp_sync.sharepoint import SharePointClient

    tmp = tmp_path_factory.mktemp("hostile-pipeline")
    tokens: set[str] = set()
    with SharePointEmulator(sites=[SITE]) as emu:
        key_pem, cert_pem, _ = generate_client_certificate("sp-sync-hostile")
        client_id = str(uuid.uuid4())
        emu.register_app(client_id, cert_pem, grants={SITE: "write"})
        pem = tmp / "app.pem"
        # Text outside the BEGIN/END blocks is allowed in PEM files ("explanatory text").
        pem.write_text(f"{PEM_CANARY}\n{key_pem.decode()}{cert_pem.decode()}", encoding="ascii")
        key_body = "".join(line for line in key_pem.decode().splitlines() if "-----" not in line)
        env = {
            "SP_SYNC_SITE_URL": emu.site_url(SITE),
            "SP_SYNC_AUTH": "certificate",
            "SP_SYNC_CLIENT_ID": client_id,
            "SP_SYNC_AUTHORITY_URL": emu.authority_url,
            "SP_SYNC_CERT_PATH": str(pem),
            "SP_SYNC_CA_BUNDLE": emu.ca_cert_path,
            "SP_SYNC_RESOURCE": emu.url,
            "SP_SYNC_STATE": "local",
            "SP_SYNC_STATE_DIR": str(tmp / "state"),
            "AzureWebJobsStorage": (
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                f"AccountKey={ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
            ),
            "SP_SYNC_ORGANISATION": "Hostile Test",
        }
        settings = Settings.from_env(env)

        def factory(s: Settings, site: Any) -> Any:
            real = SharePointClient.from_settings(s, site)._token_provider
            return _RecordingProvider(real, tokens)

        secrets = [PEM_CANARY, ACCOUNT_KEY, key_body[:40], key_body[-40:]]
        world = World(emu, settings, tmp / "rollups", secrets, tokens, client_id, factory)
        pipeline.run_provision(world.runtime, world.site, apply=True, allow_destructive=False)
        yield world


# ------------------------------------------------------------------------------------ rows


def _choice_or_hostile(valid: list[str]) -> st.SearchStrategy[str | None]:
    return st.one_of(st.sampled_from(valid), st.none(), short_hostile_text(60))


@st.composite
def _knowledge(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "Title": draw(short_hostile_text(255)),
        "County": draw(_choice_or_hostile(["Skåne län", "Gotlands län", "Stockholms län"])),
        "SubjectArea": draw(_choice_or_hostile(["Kompetensförsörjning"])),
        "Department": draw(_choice_or_hostile(["Analys", "Företag"])),
        "Description": draw(
            st.one_of(
                st.none(),
                hostile_text(),
                st.sampled_from(PAYLOADS).map(
                    lambda p: f"<div><p>{p}</p><script>{p}</script></div>"
                ),
            )
        ),
        "Priority": draw(_choice_or_hostile(["Hög", "Låg"])),
        "ValidUntil": draw(hostile_date()),
        "Status": draw(_choice_or_hostile(["Aktuell", "Utkast"])),
    }


@st.composite
def _feedback(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "Title": draw(short_hostile_text(255)),
        "County": draw(_choice_or_hostile(["Skåne län", "Uppsala län"])),
        "DialogueDate": draw(hostile_date()),
        "ReceivingDepartment": draw(_choice_or_hostile(["Analys", "Regioner"])),
        "Feedback": draw(st.one_of(st.none(), hostile_text())),
        "Action": draw(st.one_of(st.none(), hostile_text())),
        "DueDate": draw(hostile_date()),
        "Status": draw(_choice_or_hostile(["Ny", "Klar"])),
    }


def _check_snapshot(world: World) -> None:
    """Every list's snapshot equals the list in every schema column (see exactness.py)."""
    from sp_sync.state import open_state_store

    store = open_state_store(world.settings)
    for title in SCHEMAS.lists:
        state = store.read_list_state(world.site.url, title)
        assert_list_exact(world.emu, SITE, title, state.rows if state is not None else None)


def _check_workbooks(world: World) -> None:
    """Every workbook opens with both readers and holds no formula at all: whatever a user typed
    (=, +, -, @, DDE…) is a string cell. (Which items each workbook shows is the rollup suite's
    business; that formula-looking text is kept verbatim is checked in test_cells_and_names.)"""
    files = sorted(world.out_dir.glob("*.xlsx"))
    assert files, "no workbooks written"
    for path in files:
        data = path.read_bytes()
        assert not formula_cells(data), f"{path.name}: data became formulas"
        op, cm = open_both(data)
        assert op and cm, path.name


def _check_no_canary(world: World, texts: dict[str, str]) -> None:
    for canary in world.canaries():
        for where, text in texts.items():
            assert canary not in text, f"a canary ({canary[:12]}…) leaked into {where}"


def _workbook_xml() -> Any:
    def read(path: Path) -> str:
        with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as zf:
            return "".join(zf.read(n).decode("utf-8", "replace") for n in zf.namelist())

    return read


@pytest.mark.slow
@hostile(4, shrink=False)
@given(
    knowledge=st.lists(_knowledge(), min_size=1, max_size=4),
    feedback=st.lists(_feedback(), min_size=1, max_size=3),
)
def test_hostile_items_survive_sync_and_rollup(
    world: World,
    caplog: pytest.LogCaptureFixture,
    knowledge: list[dict[str, Any]],
    feedback: list[dict[str, Any]],
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = world.emu.backend
    backend.bulk_add_items(SITE, KNOWLEDGE, knowledge)
    backend.bulk_add_items(SITE, FEEDBACK, feedback)
    summary = pipeline.run_pipeline(
        world.runtime, world.site, full=world.runs == 0, out_dir=world.out_dir
    )
    world.runs += 1
    assert summary.status in ("ok", "partial"), summary.to_dict()
    assert not summary.errors, summary.errors
    _check_snapshot(world)
    _check_workbooks(world)
    read = _workbook_xml()
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    _check_no_canary(
        world,
        {
            "logs": logs,
            "run summary": json.dumps(summary.to_dict(), ensure_ascii=False, default=str),
            **{f"workbook {p.name}": read(p) for p in world.out_dir.glob("*.xlsx")},
        },
    )
    assert world.tokens, "the recording provider saw no token: the canary check would be empty"


def test_canaries_stay_out_of_errors_when_things_go_wrong(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused grant, expired tokens and server errors: messages and logs stay clean."""
    caplog.set_level(logging.DEBUG)
    if world.runs == 0:  # the property test may have been deselected
        world.emu.backend.bulk_add_items(
            SITE, KNOWLEDGE, [{"Title": "=1+1", "County": "Skåne län"}]
        )
        pipeline.run_pipeline(world.runtime, world.site, full=True, out_dir=world.out_dir)
        world.runs += 1
    messages: list[str] = []
    world.emu.faults.expire_tokens()
    world.emu.grant(world.client_id, SITE, None)
    try:
        with pytest.raises(SpSyncError) as info:
            pipeline.run_pipeline(world.runtime, world.site, out_dir=world.out_dir)
        messages += [
            str(info.value),
            json.dumps(info.value.details(), default=str),
            repr(info.value),
        ]
    finally:
        world.emu.grant(world.client_id, SITE, "write")
    world.emu.faults.inject(status=500, count=50, path=r"/items")
    try:
        try:
            summary = pipeline.run_pipeline(world.runtime, world.site, out_dir=world.out_dir)
            messages.append(json.dumps(summary.to_dict(), default=str))
        except SpSyncError as exc:
            messages += [str(exc), json.dumps(exc.details(), default=str), repr(exc)]
    finally:
        world.emu.faults.clear()
    stored = (Path(world.settings.state_dir) / "summaries").rglob("*.json")
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    _check_no_canary(
        world,
        {
            "logs": logs,
            "errors": "\n".join(messages),
            **{f"stored {p.name}": p.read_text(encoding="utf-8") for p in stored},
        },
    )
    assert messages


def _run_and_read(world: World, ids: list[int]) -> dict[str, Any]:
    from sp_sync.state import open_state_store

    summary = pipeline.run_pipeline(
        world.runtime, world.site, full=world.runs == 0, out_dir=world.out_dir
    )
    world.runs += 1
    assert not summary.errors, summary.errors
    state = open_state_store(world.settings).read_list_state(world.site.url, KNOWLEDGE)
    assert state is not None, "the run committed no state for the list"
    rows = state.rows.set_index("ID")
    return {rows.at[i, "Title"]: rows.at[i, "ValidUntil"] for i in ids}


def test_dates_within_pandas_range_round_trip(world: World) -> None:
    days = ("1900-01-01", "1900-03-01", "2099-12-31", "2262-04-10")
    ids = world.emu.backend.bulk_add_items(
        SITE,
        KNOWLEDGE,
        [{"Title": f"datum {d}", "County": "Skåne län", "ValidUntil": d} for d in days],
    )
    assert _run_and_read(world, ids) == {f"datum {d}": dt.date.fromisoformat(d) for d in days}


def test_dates_up_to_sharepoints_limit_round_trip(world: World) -> None:
    """8900-12-31 is a valid SharePoint date: it must reach the snapshot as a date, and must not
    stop the list's sync. (Runs last in this module; it removes its items again.)"""
    days = ("2262-04-12", "8900-12-31")
    backend = world.emu.backend
    ids = backend.bulk_add_items(
        SITE,
        KNOWLEDGE,
        [{"Title": f"datum {d}", "County": "Skåne län", "ValidUntil": d} for d in days],
    )
    try:
        assert _run_and_read(world, ids) == {f"datum {d}": dt.date.fromisoformat(d) for d in days}
    finally:
        site = backend.get_site(SITE)
        lst = backend.get_list(site, title=KNOWLEDGE)
        for i in ids:
            backend.delete_item(site, lst, lst.items[i])
