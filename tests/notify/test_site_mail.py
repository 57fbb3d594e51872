"""One site's mail run from committed state: the digest through Graph, dry run, health notice."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from sp_emulator import SharePointEmulator
from sp_emulator.graph import GraphService
from sp_sync.auth import ManagedIdentityTokenProvider
from sp_sync.errors import ConfigurationError, SettingsError, StateError
from sp_sync.notify import (
    GRAPH_RESOURCE,
    MailSettings,
    Outcome,
    check_site_health,
    run_site_digest,
)
from sp_sync.report.tables import FEEDBACK
from sp_sync.schema import SchemaSet, load_schemas
from sp_sync.state.base import SyncCheckpoint
from sp_sync.state.local import LocalStateStore
from tests.notify.helpers import ADMIN, NOW, SENDER, Sleeps, seeded_feedback

SITE = "https://contoso.sharepoint.com/sites/regionarbete"
WORKBOOK = "/sites/regionarbete/Shared Documents/Sammanställningar/Återkoppling – Företag.xlsx"


@pytest.fixture
def schemas(tmp_path: Path) -> SchemaSet:
    """The repository's schemas, with department addresses in a copy of reference.yaml."""
    folder = tmp_path / "schemas"
    shutil.copytree(load_schemas().directory, folder)
    text = (folder / "reference.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "{name: Företag, en: Business}",
        "{name: Företag, en: Business, mail: foretag@myndighet.example}",
    ).replace(
        "{name: Regioner, en: Regions}",
        "{name: Regioner, en: Regions, mail: regioner@myndighet.example}",
    )
    (folder / "reference.yaml").write_text(text, encoding="utf-8")
    return load_schemas(folder)


def seed(
    store: LocalStateStore,
    *,
    last_sync: dt.datetime = NOW,
    status: str = "ok",
    feedback: pd.DataFrame | None = None,
) -> None:
    checkpoint = SyncCheckpoint(
        last_sync=last_sync, extra={"time_zone": "Europe/Stockholm", "site_url": SITE}
    )
    store.commit_list_state(
        SITE,
        FEEDBACK,
        seeded_feedback() if feedback is None else feedback,
        pd.DataFrame(),
        checkpoint,
        expected_etag=None,
    )
    store.write_json(
        "summaries/regionarbete/last.json",
        {
            "run_id": "r-1",
            "status": status,
            "started": (NOW - dt.timedelta(hours=4)).isoformat(),
            "finished": (NOW - dt.timedelta(hours=4)).isoformat(),
            "errors": [] if status == "ok" else [{"error": "TransientError", "message": "503"}],
            "workbooks": [{"name": "Återkoppling – Företag.xlsx", "server_relative_url": WORKBOOK}],
        },
    )


def mail_settings(emu: SharePointEmulator) -> MailSettings:
    return MailSettings(SENDER, ADMIN, stale_days=3, graph_url=emu.url, settle_seconds=0)


def test_digests_go_through_graph_once_with_workbook_links(
    emu: SharePointEmulator,
    graph: GraphService,
    mi_env: None,
    tmp_path: Path,
    schemas: SchemaSet,
) -> None:
    store = LocalStateStore(tmp_path / "state")
    seed(store)
    kwargs = dict(
        store=store,
        site_url=SITE,
        site_name="regionarbete",
        schemas=schemas,
        mail=mail_settings(emu),
        token_provider=ManagedIdentityTokenProvider(GRAPH_RESOURCE),
        policy=Sleeps().policy(),
    )
    result = run_site_digest(now=NOW, **kwargs)  # type: ignore[arg-type]
    assert result.period == "2026-W49"
    outcomes = sorted(d.outcome.value for d in result.deliveries)
    assert outcomes.count("sent") == 2 and not result.needs_retry
    by_to = {m["to"][0]: m for m in graph.messages()}
    assert set(by_to) == {"foretag@myndighet.example", "regioner@myndighet.example"}
    link = (
        "https://contoso.sharepoint.com/sites/regionarbete/Shared%20Documents/"
        "Sammanst%C3%A4llningar/%C3%85terkoppling%20%E2%80%93%20F%C3%B6retag.xlsx"
    )
    assert f'href="{link}"' in by_to["foretag@myndighet.example"]["html"]
    assert by_to["regioner@myndighet.example"]["subject"] == (
        "Återkoppling till Regioner: 1 ny, 0 försenade"
    )
    again = run_site_digest(now=NOW + dt.timedelta(hours=1), **kwargs)  # type: ignore[arg-type]
    assert {d.outcome for d in again.deliveries} == {Outcome.ALREADY_DONE, Outcome.NOTHING}
    assert len(graph.messages()) == 2
    assert "redan skickad för perioden" in again.format_text()


def test_dry_run_renders_and_writes_files_without_sending(
    emu: SharePointEmulator, graph: GraphService, tmp_path: Path, schemas: SchemaSet
) -> None:
    store = LocalStateStore(tmp_path / "state")
    seed(store)
    out = tmp_path / "out"
    result = run_site_digest(
        store=store,
        site_url=SITE,
        site_name="regionarbete",
        schemas=schemas,
        mail=mail_settings(emu),
        token_provider=None,
        now=NOW,
        dry_run=True,
        department="Business",  # the English label works as well as the stored name
        out_dir=out,
        language="en",
    )
    assert [p.department for p in result.previews] == ["Företag"]
    assert sorted(p.name for p in out.iterdir()) == [
        "Digest – Business.eml",
        "Digest – Business.html",
    ]
    assert graph.messages() == []
    assert store.list_keys("notify/") == []  # a dry run records nothing
    assert result.to_dict()["previews"][0]["subject"].startswith("Feedback to Business: 2 new")
    with pytest.raises(ConfigurationError, match="no department called 'Ekonomi'"):
        run_site_digest(
            store=store,
            site_url=SITE,
            site_name="regionarbete",
            schemas=schemas,
            mail=mail_settings(emu),
            token_provider=None,
            now=NOW,
            dry_run=True,
            department="Ekonomi",
        )


def test_never_synced_feedback_is_a_clear_state_error(
    emu: SharePointEmulator, tmp_path: Path, schemas: SchemaSet
) -> None:
    with pytest.raises(StateError, match="sp-sync sync"):
        run_site_digest(
            store=LocalStateStore(tmp_path),
            site_url=SITE,
            site_name="regionarbete",
            schemas=schemas,
            mail=mail_settings(emu),
            token_provider=None,
            now=NOW,
            dry_run=True,
        )


def test_mail_settings_are_validated() -> None:
    with pytest.raises(SettingsError, match="SP_SYNC_MAIL_SENDER"):
        MailSettings("not an address")
    with pytest.raises(SettingsError, match="SP_SYNC_ADMIN_MAIL"):
        MailSettings(SENDER, "it@")
    with pytest.raises(SettingsError, match="SP_SYNC_STALE_DAYS"):
        MailSettings(SENDER, ADMIN, stale_days=0)


def test_health_check_notices_a_partial_night_and_stale_lists_once(
    emu: SharePointEmulator,
    graph: GraphService,
    mi_env: None,
    tmp_path: Path,
    schemas: SchemaSet,
) -> None:
    store = LocalStateStore(tmp_path / "state")
    seed(store, status="partial", last_sync=NOW - dt.timedelta(days=5))
    kwargs = dict(
        store=store,
        site_url=SITE,
        site_name="regionarbete",
        schemas=schemas,
        mail=mail_settings(emu),
        token_provider=ManagedIdentityTokenProvider(GRAPH_RESOURCE),
        policy=Sleeps().policy(),
    )
    first = check_site_health(now=NOW, **kwargs)  # type: ignore[arg-type]
    assert first is not None and first.outcome is Outcome.SENT
    [message] = graph.messages()
    assert message["to"] == [ADMIN]
    assert "ofullständig" in message["subject"]
    # The other lists were never synchronised, Dialogåterkoppling is 5 days old: all stale.
    assert "Dialogåterkoppling: senast kontrollerad" in message["text"]
    assert "Länskunskap: aldrig synkroniserad" in message["text"]
    second = check_site_health(now=NOW + dt.timedelta(hours=6), **kwargs)  # type: ignore[arg-type]
    assert second is not None and second.outcome is Outcome.ALREADY_DONE
    assert len(graph.messages()) == 1


@dataclasses.dataclass(frozen=True)
class FakeRuntime:
    store: LocalStateStore
    schemas: SchemaSet
    at: dt.datetime = NOW

    def now(self) -> dt.datetime:
        return self.at


@dataclasses.dataclass(frozen=True)
class FakeSettings:
    mail_sender: str | None = SENDER
    admin_mail: str | None = ADMIN
    stale_days: int = 3
    graph_url: str = ""
    language: str = "sv"


@dataclasses.dataclass(frozen=True)
class FakeSite:
    url: str = SITE
    name: str = "regionarbete"
    lists: tuple[str, ...] = ()


def test_entry_points_for_cli_and_triggers(
    emu: SharePointEmulator,
    graph: GraphService,
    mi_env: None,
    tmp_path: Path,
    schemas: SchemaSet,
) -> None:
    from sp_sync.notify.entry import digest_site, health_check_site

    store = LocalStateStore(tmp_path / "state")
    seed(store, status="failed")
    runtime = FakeRuntime(store, schemas)
    settings = FakeSettings(graph_url=emu.url)
    provider = ManagedIdentityTokenProvider(GRAPH_RESOURCE)
    preview = digest_site(runtime, FakeSettings(mail_sender=None), FakeSite(), dry_run=True)
    assert len(preview.previews) == 2 and graph.messages() == []
    with pytest.raises(SettingsError, match="SP_SYNC_MAIL_SENDER"):
        digest_site(runtime, FakeSettings(mail_sender=None), FakeSite())
    sent = digest_site(runtime, settings, FakeSite(), token_provider=provider)
    assert sum(d.outcome is Outcome.SENT for d in sent.deliveries) == 2
    # No admin address: no notice, and no error either.
    assert health_check_site(runtime, FakeSettings(admin_mail=None), FakeSite()) is None
    notice = health_check_site(runtime, settings, FakeSite(), token_provider=provider)
    assert notice is not None and notice.outcome is Outcome.SENT
    assert sorted(m["to"][0] for m in graph.messages()) == sorted(
        [ADMIN, "foretag@myndighet.example", "regioner@myndighet.example"]
    )
    # Mail trouble never fails the caller (the night's run): it is logged and retried later.
    graph.throttle(count=100, retry_after=1000)
    store2 = LocalStateStore(tmp_path / "state2")
    seed(store2, status="failed")
    assert (
        health_check_site(
            FakeRuntime(store2, schemas), settings, FakeSite(), token_provider=provider
        )
        is not None
    )


def test_digest_jobs_fan_out_per_site_and_redelivery_sends_nothing_twice(
    emu: SharePointEmulator,
    graph: GraphService,
    mi_env: None,
    tmp_path: Path,
    schemas: SchemaSet,
) -> None:
    from sp_sync.notify.entry import digest_jobs, handle_digest_job

    other = "https://contoso.sharepoint.com/sites/annan"
    sites = [FakeSite(), FakeSite(url=other, name="annan")]
    messages = digest_jobs(sites)
    assert [json.loads(m)["site"] for m in messages] == [SITE, other]
    store = LocalStateStore(tmp_path / "state")
    seed(store, status="partial")
    runtime = FakeRuntime(store, schemas)
    settings = FakeSettings(graph_url=emu.url)
    provider = ManagedIdentityTokenProvider(GRAPH_RESOURCE)
    first = handle_digest_job(messages[0], runtime, settings, sites, token_provider=provider)
    assert sum(d.outcome is Outcome.SENT for d in first.deliveries) == 2
    assert first.failure_notice is not None and first.failure_notice.outcome is Outcome.SENT
    redelivered = handle_digest_job(messages[0], runtime, settings, sites, token_provider=provider)
    assert {d.outcome for d in redelivered.deliveries} <= {Outcome.ALREADY_DONE, Outcome.NOTHING}
    assert redelivered.failure_notice is not None
    assert redelivered.failure_notice.outcome is Outcome.ALREADY_DONE
    assert len(graph.messages()) == 3
    # The other site was never synchronised: a clear error for that message only.
    with pytest.raises(StateError, match="sp-sync sync"):
        handle_digest_job(messages[1], runtime, settings, sites, token_provider=provider)
    with pytest.raises(SettingsError, match="no longer a configured site"):
        handle_digest_job(
            '{"kind": "digest", "site": "https://x.example/sites/gone"}',
            runtime,
            settings,
            sites,
            token_provider=provider,
        )
    with pytest.raises(SettingsError, match="not a digest job"):
        handle_digest_job("{}", runtime, settings, sites, token_provider=provider)


def test_demo_digests_go_to_example_addresses_and_files(
    emu: SharePointEmulator,
    graph: GraphService,
    mi_env: None,
    tmp_path: Path,
) -> None:
    from sp_sync.notify.demo import demo_digests

    store = LocalStateStore(tmp_path / "state")
    seed(store)
    out = tmp_path / "rollups"
    result = demo_digests(
        FakeRuntime(store, load_schemas()),  # the repository's schemas: no addresses in them
        FakeSite(),
        graph_url=emu.url,
        token_provider=ManagedIdentityTokenProvider(GRAPH_RESOURCE),
        out_dir=out,
    )
    assert sorted(m["to"][0] for m in graph.messages()) == [
        "foretag@regionarbete.example",
        "regioner@regionarbete.example",
    ]
    assert sum(d.outcome is Outcome.SENT for d in result.deliveries) == 2
    assert sorted(p.name for p in out.iterdir()) == [
        "Veckosammanfattning – Företag.eml",
        "Veckosammanfattning – Företag.html",
        "Veckosammanfattning – Regioner.eml",
        "Veckosammanfattning – Regioner.html",
    ]


def test_workbook_links_from_either_summary_shape(schemas: SchemaSet) -> None:
    from sp_sync.notify.site import workbook_urls

    uploaded = [{"name": "Återkoppling – Företag.xlsx", "server_relative_url": WORKBOOK}]
    expected = {
        "Företag": "https://contoso.sharepoint.com/sites/regionarbete/Shared%20Documents/"
        "Sammanst%C3%A4llningar/%C3%85terkoppling%20%E2%80%93%20F%C3%B6retag.xlsx"
    }
    assert workbook_urls({"workbooks": uploaded}, SITE, schemas, "sv") == expected
    assert workbook_urls({"rollup": {"workbooks": uploaded}}, SITE, schemas, "sv") == expected
    assert workbook_urls(None, SITE, schemas, "sv") == {}
    english = [{"name": "Feedback – Business.xlsx", "server_relative_url": "/sites/x/F.xlsx"}]
    assert workbook_urls({"workbooks": english}, SITE, schemas, "en") == {
        "Företag": "https://contoso.sharepoint.com/sites/x/F.xlsx"
    }
