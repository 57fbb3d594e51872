"""The one pipeline: settings → drift check → sync → validate → aggregate → workbooks → upload →
run summary.

The CLI, the demo and the Functions app all call these functions; they differ only in where
settings come from and how progress is shown. Each step's real work lives in its own module
(provision, sync, rollup); this module only sequences them and records the run summary.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sp_sync import __version__
from sp_sync.errors import SpSyncError
from sp_sync.i18n import label
from sp_sync.run.progress import Progress
from sp_sync.run.summary import ListSyncResult, RunSummary, UploadedWorkbook
from sp_sync.schema import SchemaSet, load_schemas
from sp_sync.settings import Settings, SiteConfig

log = logging.getLogger(__name__)

TokenProviderFactory = Callable[[Settings, SiteConfig], Any]

#: Optional override of how tokens are obtained (the demo and tests inject the emulator's).
_token_provider_factory: TokenProviderFactory | None = None


def set_token_provider_factory(factory: TokenProviderFactory | None) -> None:
    global _token_provider_factory
    _token_provider_factory = factory


def load_settings() -> Settings:
    return Settings.from_env()


def select_sites(settings: Settings, wanted: str | None) -> list[SiteConfig]:
    sites = settings.sites
    if not wanted:
        return sites
    key = wanted.rstrip("/").lower()
    chosen = [s for s in sites if s.name.lower() == key or s.url.rstrip("/").lower() == key]
    if not chosen:
        from sp_sync.errors import SettingsError

        raise SettingsError("--site", f"{wanted!r} is not a configured site")
    return chosen


def _client(settings: Settings, site: SiteConfig, *, deadline: float | None = None) -> Any:
    from sp_sync.sharepoint import SharePointClient

    provider = _token_provider_factory(settings, site) if _token_provider_factory else None
    return SharePointClient.from_settings(
        settings, site, deadline=deadline, token_provider=provider
    )


def _store(settings: Settings) -> Any:
    from sp_sync.state import open_state_store

    return open_state_store(settings)


def _schemas(settings: Settings) -> SchemaSet:
    return load_schemas(settings.schema_dir)


def _deadline(settings: Settings) -> float:
    return time.monotonic() + settings.time_budget_seconds


def _lists_for(
    settings: Settings, site: SiteConfig, lists: Sequence[str] | None
) -> list[str] | None:
    chosen = list(lists or site.lists or settings.lists or ())
    return chosen or None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------------------------- provisioning


def run_provision(
    settings: Settings, site: SiteConfig, *, apply: bool, allow_destructive: bool
) -> tuple[Any, Any]:
    from sp_sync.schema import provision

    client = _client(settings, site)
    return provision.run_provision(
        client, _schemas(settings), apply=apply, allow_destructive=allow_destructive
    )


def run_check(settings: Settings, site: SiteConfig, *, client: Any = None) -> Any:
    from sp_sync.schema import provision

    return provision.run_check(client or _client(settings, site), _schemas(settings))


# ---------------------------------------------------------------------------------- sync


def _sync(
    settings: Settings,
    site: SiteConfig,
    *,
    client: Any,
    store: Any,
    schemas: SchemaSet,
    full: bool,
    lists: Sequence[str] | None,
    deadline: float | None,
    progress: Progress,
) -> Any:
    from sp_sync.sync.engine import sync_site

    counts: dict[str, int] = {}
    lang = settings.language

    def on_page(title: str, rows_read: int) -> None:
        if counts.get(title) is None:
            progress.start(
                label("progress_sync", lang, title=title), unit=label("progress_rows", lang)
            )
            counts[title] = 0
        progress.advance(rows_read - counts[title])
        counts[title] = rows_read

    result = sync_site(
        client,
        store,
        site.url,
        schemas,
        lists=_lists_for(settings, site, lists),
        full=full,
        deadline=deadline,
        now=_now(),
        progress=on_page,
    )
    if counts:
        progress.finish(label("progress_synced", lang, rows=sum(counts.values())))
    return result


def run_sync(
    settings: Settings,
    site: SiteConfig,
    *,
    full: bool = False,
    lists: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    started = _now()
    deadline = _deadline(settings)
    client = _client(settings, site, deadline=deadline)
    result = _sync(
        settings,
        site,
        client=client,
        store=_store(settings),
        schemas=_schemas(settings),
        full=full,
        lists=lists,
        deadline=deadline,
        progress=progress or Progress(),
    )
    return _summary(site, started, result.lists, (), result.errors)


def run_sync_job(
    settings: Settings, site: SiteConfig, lists: Sequence[str], *, full: bool, store: Any
) -> Any:
    """What one queue message does: sync the given lists of one site (no rollup)."""
    deadline = _deadline(settings)
    client = _client(settings, site, deadline=deadline)
    schemas = _schemas(settings)
    drift = _drift_check(client, schemas, settings.language)
    result = _sync(
        settings,
        site,
        client=client,
        store=store,
        schemas=schemas,
        full=full,
        lists=lists,
        deadline=deadline,
        progress=Progress(),
    )
    return dataclasses.replace(result, lists=_with_drift(result.lists, drift))


# ---------------------------------------------------------------------------------- rollup


def _rollup(
    settings: Settings,
    site: SiteConfig,
    *,
    client: Any | None,
    store: Any,
    schemas: SchemaSet,
    out_dir: Path | None,
    upload: bool,
    progress: Progress,
    drift: Any = None,
) -> list[UploadedWorkbook]:
    import pandas as pd

    from sp_sync.report import publish as rollup

    snapshots: dict[str, pd.DataFrame] = {}
    quality: list[pd.DataFrame] = []
    sync_info: dict[str, dict[str, Any]] = {}
    time_zone: str | None = None
    for title in schemas.lists:
        state = store.read_list_state(site.url, title)
        if state is None:
            continue
        # The sync records the site's time zone in every checkpoint: no need to ask SharePoint
        # again (and `rollup --no-upload` has no client to ask).
        time_zone = time_zone or state.checkpoint.extra.get("time_zone")
        snapshots[title] = state.rows
        if state.quality is not None and len(state.quality):
            quality.append(state.quality)
        sync_info[title] = {
            "item_count": len(state.rows),
            "last_synced": state.checkpoint.last_sync,
        }
    if not snapshots:
        from sp_sync.errors import StateError

        raise StateError(
            f"There are no synchronised lists for {site.url} yet: run `sp-sync sync` first."
        )
    lang = settings.language
    progress.start(label("progress_build", lang))
    workbooks = rollup.build_workbooks(
        snapshots,
        pd.concat(quality, ignore_index=True) if quality else None,
        schemas,
        sync_info,
        site_url=site.url,
        generated_at=_now(),
        time_zone=time_zone,
        language=settings.language,
        drift=drift.findings if drift is not None else None,
    )
    progress.finish(label("progress_built", lang, count=len(workbooks)))
    if out_dir is not None:
        rollup.write_local_copies(workbooks, out_dir)
    if not upload or client is None:
        return []
    total = sum(len(w.data) for w in workbooks)
    progress.start(label("progress_upload", lang), total=total, unit="byte")

    sent: dict[str, int] = {}

    def on_upload(name: str, done: int, size: int) -> None:
        # Callbacks report cumulative bytes per workbook; the bar wants increments.
        progress.advance(max(0, done - sent.get(name, 0)))
        sent[name] = max(done, sent.get(name, 0))

    uploaded = rollup.upload_workbooks(
        client,
        workbooks,
        folder=site.rollup_folder or settings.rollup_folder,
        chunk_size=settings.upload_chunk_bytes,
        progress=on_upload,
    )
    progress.advance(max(0, total - sum(sent.values())))  # workbooks sent without callbacks
    folder = site.rollup_folder or settings.rollup_folder
    progress.finish(label("progress_uploaded", lang, count=len(uploaded), folder=folder))
    return uploaded


def run_rollup(
    settings: Settings,
    site: SiteConfig,
    *,
    out_dir: Path | None = None,
    upload: bool = True,
    progress: Progress | None = None,
) -> RunSummary:
    started = _now()
    client = _client(settings, site) if upload else None
    files = _rollup(
        settings,
        site,
        client=client,
        store=_store(settings),
        schemas=_schemas(settings),
        out_dir=out_dir,
        upload=upload,
        progress=progress or Progress(),
    )
    return _summary(site, started, (), files, ())


def run_rollup_job(
    settings: Settings, site: SiteConfig, *, store: Any, failed_lists: Sequence[str] = ()
) -> RunSummary:
    """The site's rollup after its list jobs finished (run exactly once per run and site)."""
    started = _now()
    client = _client(settings, site)
    files = _rollup(
        settings,
        site,
        client=client,
        store=store,
        schemas=_schemas(settings),
        out_dir=None,
        upload=True,
        progress=Progress(),
    )
    errors = tuple(
        {"list": t, "message": "sync failed; workbook shows the previous data"}
        for t in failed_lists
    )
    return _summary(site, started, (), files, errors)


# ---------------------------------------------------------------------------------- whole run


def _drift_check(client: Any, schemas: SchemaSet, language: str) -> Any:
    """Harmless drift is reported; drift that breaks the reports stops the run, naming it."""
    from sp_sync.schema import provision

    report = provision.run_check(client, schemas)
    report.raise_if_breaking(language)
    return report


def _with_drift(lists: Sequence[ListSyncResult], report: Any) -> tuple[ListSyncResult, ...]:
    if report is None or not report.has_drift:
        return tuple(lists)
    by_list: dict[str, list[str]] = {}
    for f in report.findings:
        by_list.setdefault(f.list_title, []).append(f.message_en)
    return tuple(dataclasses.replace(r, drift=tuple(by_list.get(r.list, ()))) for r in lists)


def run_pipeline(
    settings: Settings,
    site: SiteConfig,
    *,
    full: bool = False,
    out_dir: Path | None = None,
    upload: bool = True,
    progress: Progress | None = None,
    lists: Sequence[str] | None = None,
) -> RunSummary:
    """The nightly job for one site, start to finish, with its run summary stored."""
    progress = progress or Progress()
    started = _now()
    deadline = _deadline(settings)
    client = _client(settings, site, deadline=deadline)
    store = _store(settings)
    schemas = _schemas(settings)
    drift = _drift_check(client, schemas, settings.language)
    result = _sync(
        settings,
        site,
        client=client,
        store=store,
        schemas=schemas,
        full=full,
        lists=lists,
        deadline=deadline,
        progress=progress,
    )
    list_results = _with_drift(result.lists, drift)
    errors = list(result.errors)
    files: list[UploadedWorkbook] = []
    try:
        files = _rollup(
            settings,
            site,
            client=client,
            store=store,
            schemas=schemas,
            out_dir=out_dir,
            upload=upload,
            progress=progress,
            drift=drift,
        )
    except SpSyncError as exc:
        errors.append({"step": "rollup", **exc.details()})
        summary = _summary(site, started, list_results, files, errors)
        _store_summary(store, site, summary)
        raise
    summary = _summary(site, started, list_results, files, errors)
    _store_summary(store, site, summary)
    return summary


def _summary(
    site: SiteConfig,
    started: dt.datetime,
    lists: Sequence[ListSyncResult],
    files: Sequence[UploadedWorkbook],
    errors: Sequence[Any],
) -> RunSummary:
    return RunSummary(
        run_id=f"{started.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}",
        site=site.url,
        started=started,
        finished=_now(),
        lists=tuple(lists),
        workbooks=tuple(files),
        errors=tuple(errors),
        status=RunSummary.status_for(lists, errors),
    )


def _store_summary(store: Any, site: SiteConfig, summary: RunSummary) -> None:
    try:
        store.write_json(f"summaries/{site.name}/last.json", summary.to_dict())
    except SpSyncError as exc:  # the run itself succeeded; say so rather than fail it
        log.warning("Could not store the run summary: %s", exc)


# ---------------------------------------------------------------------------------- status


def site_status(settings: Settings, site: SiteConfig) -> dict[str, Any]:
    store = _store(settings)
    summary, _ = store.read_json(f"summaries/{site.name}/last.json")
    lists: dict[str, Any] = {}
    for title in _schemas(settings).lists:
        state = store.read_list_state(site.url, title)
        lists[title] = (
            None
            if state is None
            else {
                "rows": len(state.rows),
                "last_sync": state.checkpoint.last_sync,
                "last_full_sync": state.checkpoint.last_full_sync,
                "continues": state.checkpoint.resume_after_id is not None,
            }
        )
    return {"site": site.url, "version": __version__, "lists": lists, "last_run": summary}


def format_status(status: dict[str, Any], language: str = "sv") -> str:
    en = language == "en"
    lines = [f"{'Site' if en else 'Webbplats'}: {status['site']}"]
    for title, info in status["lists"].items():
        if info is None:
            lines.append(f"  {title}: {'never synchronised' if en else 'aldrig synkad'}")
        else:
            lines.append(
                f"  {title}: {info['rows']} {'rows' if en else 'rader'}, "
                f"{'last sync' if en else 'senast synkad'} {info['last_sync']}"
            )
    last = status.get("last_run")
    if last:
        lines.append(
            f"{'Last run' if en else 'Senaste körning'}: {last.get('run_id')} — {last.get('status')}"
        )
    return "\n".join(lines)
