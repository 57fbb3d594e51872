"""The one pipeline: settings → drift check → sync → validate → aggregate → workbooks → upload →
run summary.

The CLI, the demo and the Functions app all call these functions with a `Runtime` (settings
and every dependency, see runtime.py); they differ only in how they build it and how progress
is shown. Each step's real work lives in its own module
(provision, sync, rollup); this module only sequences them and records the run summary.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sp_sync import __version__
from sp_sync.errors import SettingsError, SpSyncError
from sp_sync.i18n import Text, format_number, format_seconds, label
from sp_sync.run.progress import Progress
from sp_sync.run.runtime import Runtime
from sp_sync.run.summary import ListSyncResult, RunSummary, UploadedWorkbook
from sp_sync.settings import Settings, SiteConfig

if TYPE_CHECKING:  # heavy modules, imported where a run needs them (see runtime.py)
    from sp_sync.schema.drift import DriftReport
    from sp_sync.schema.model import SchemaSet
    from sp_sync.schema.provision import ApplyResult, Plan
    from sp_sync.sharepoint import SharePointClient
    from sp_sync.state import StateStore
    from sp_sync.sync.engine import SiteSyncResult

log = logging.getLogger(__name__)


def select_sites(settings: Settings, wanted: str | None) -> list[SiteConfig]:
    sites = settings.sites
    if not wanted:
        return sites
    key = wanted.rstrip("/").lower()
    chosen = [s for s in sites if s.name.lower() == key or s.url.rstrip("/").lower() == key]
    if not chosen:
        raise SettingsError(
            "--site",
            Text(
                sv=f"{wanted!r} är ingen inställd webbplats",
                en=f"{wanted!r} is not a configured site",
            ),
        )
    return chosen


def _lists_for(
    settings: Settings, site: SiteConfig, lists: Sequence[str] | None
) -> list[str] | None:
    chosen = list(lists or site.lists or settings.lists or ())
    return chosen or None


# ---------------------------------------------------------------------------------- provisioning


def run_provision(
    runtime: Runtime, site: SiteConfig, *, apply: bool, allow_destructive: bool
) -> tuple[Plan, ApplyResult | None]:
    from sp_sync.schema import provision

    return provision.run_provision(
        runtime.client(site),
        runtime.schemas,
        apply=apply,
        allow_destructive=allow_destructive,
    )


def run_check(
    runtime: Runtime, site: SiteConfig, *, client: SharePointClient | None = None
) -> DriftReport:
    from sp_sync.schema import drift

    return drift.run_check(client or runtime.client(site), runtime.schemas)


# ---------------------------------------------------------------------------------- sync


def _sync(
    runtime: Runtime,
    site: SiteConfig,
    *,
    client: SharePointClient,
    full: bool,
    lists: Sequence[str] | None,
    deadline: float | None,
    progress: Progress,
) -> SiteSyncResult:
    from sp_sync.sync.engine import sync_site

    settings = runtime.settings
    counts: dict[str, int] = {}
    lang = settings.language
    sync_started = time.monotonic()

    def on_page(title: str, rows_read: int, expected: int | None) -> None:
        if counts.get(title) is None:
            if counts:  # the previous list is done: its own line, with its own duration
                progress.finish()
            progress.start(
                label("progress_sync", lang, title=title),
                total=expected,
                unit=label("progress_rows", lang),
            )
            counts[title] = 0
        progress.advance(rows_read - counts[title])
        counts[title] = rows_read

    result = sync_site(
        client,
        runtime.store,
        site.url,
        runtime.schemas,
        lists=_lists_for(settings, site, lists),
        full=full,
        deadline=deadline,
        now=runtime.now(),
        progress=on_page,
    )
    if counts:
        progress.finish()
        # The total line covers every list: its duration is the whole sync's.
        rows = format_number(sum(counts.values()), lang)
        took = format_seconds(time.monotonic() - sync_started, lang)
        progress.note(f"{label('progress_synced', lang, rows=rows)} ({took})")
    return result


def run_sync(
    runtime: Runtime,
    site: SiteConfig,
    *,
    full: bool = False,
    lists: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    started = runtime.now()
    deadline = runtime.deadline()
    result = _sync(
        runtime,
        site,
        client=runtime.client(site, deadline=deadline),
        full=full,
        lists=lists,
        deadline=deadline,
        progress=progress or Progress(),
    )
    return _summary(runtime, site, started, result.lists, (), result.errors)


def run_sync_job(
    runtime: Runtime, site: SiteConfig, lists: Sequence[str], *, full: bool
) -> SiteSyncResult:
    """What one queue message does: sync the given lists of one site (no rollup)."""
    deadline = runtime.deadline()
    client = runtime.client(site, deadline=deadline)
    drift = _drift_check(client, runtime.schemas, runtime.language)
    result = _sync(
        runtime,
        site,
        client=client,
        full=full,
        lists=lists,
        deadline=deadline,
        progress=Progress(),
    )
    return dataclasses.replace(result, lists=_with_drift(result.lists, drift))


# ---------------------------------------------------------------------------------- rollup


def _rollup(
    runtime: Runtime,
    site: SiteConfig,
    *,
    client: SharePointClient | None,
    out_dir: Path | None,
    upload: bool,
    progress: Progress,
    drift: DriftReport | None = None,
) -> list[UploadedWorkbook]:
    import pandas as pd

    from sp_sync.report import publish as rollup

    settings = runtime.settings
    store = runtime.store
    schemas = runtime.schemas
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

        text = Text(
            sv=f"Inga listor är synkroniserade för {site.url} ännu: kör `sp-sync sync` först.",
            en=f"There are no synchronised lists for {site.url} yet: run `sp-sync sync` first.",
        )
        raise StateError(text.en, text=text)
    lang = settings.language
    progress.start(label("progress_build", lang))
    workbooks = rollup.build_workbooks(
        snapshots,
        pd.concat(quality, ignore_index=True) if quality else None,
        schemas,
        sync_info,
        site_url=site.url,
        generated_at=runtime.now(),
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
    runtime: Runtime,
    site: SiteConfig,
    *,
    out_dir: Path | None = None,
    upload: bool = True,
    progress: Progress | None = None,
) -> RunSummary:
    started = runtime.now()
    files = _rollup(
        runtime,
        site,
        client=runtime.client(site) if upload else None,
        out_dir=out_dir,
        upload=upload,
        progress=progress or Progress(),
    )
    return _summary(runtime, site, started, (), files, ())


def run_rollup_job(
    runtime: Runtime, site: SiteConfig, *, failed_lists: Sequence[str] = ()
) -> RunSummary:
    """The site's rollup after its list jobs finished (run exactly once per run and site)."""
    started = runtime.now()
    files = _rollup(
        runtime,
        site,
        client=runtime.client(site),
        out_dir=None,
        upload=True,
        progress=Progress(),
    )
    errors = tuple(
        {"list": t, "message": "sync failed; workbook shows the previous data"}
        for t in failed_lists
    )
    return _summary(runtime, site, started, (), files, errors)


# ---------------------------------------------------------------------------------- whole run


def _drift_check(client: SharePointClient, schemas: SchemaSet, language: str) -> DriftReport:
    """Harmless drift is reported; drift that breaks the reports stops the run, naming it."""
    from sp_sync.schema import drift

    report = drift.run_check(client, schemas)
    report.raise_if_breaking(language)
    return report


def _with_drift(
    lists: Sequence[ListSyncResult], report: DriftReport | None
) -> tuple[ListSyncResult, ...]:
    if report is None or not report.has_drift:
        return tuple(lists)
    by_list: dict[str, list[str]] = {}
    for f in report.findings:
        by_list.setdefault(f.list_title, []).append(f.message_en)
    return tuple(dataclasses.replace(r, drift=tuple(by_list.get(r.list, ()))) for r in lists)


def run_pipeline(
    runtime: Runtime,
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
    started = runtime.now()
    deadline = runtime.deadline()
    client = runtime.client(site, deadline=deadline)
    store = runtime.store
    drift = _drift_check(client, runtime.schemas, runtime.language)
    result = _sync(
        runtime,
        site,
        client=client,
        full=full,
        lists=lists,
        deadline=deadline,
        progress=progress,
    )
    list_results = _with_drift(result.lists, drift)
    errors = list(result.errors)
    files: list[UploadedWorkbook] = []
    if not result.lists:
        # Nothing was synced (every list failed): workbooks from the old snapshots with a fresh
        # "generated" stamp would pass stale data off as new. The summary says what failed.
        summary = _summary(runtime, site, started, list_results, files, errors)
        _store_summary(store, site, summary)
        return summary
    try:
        files = _rollup(
            runtime,
            site,
            client=client,
            out_dir=out_dir,
            upload=upload,
            progress=progress,
            drift=drift,
        )
    except SpSyncError as exc:
        errors.append({"step": "rollup", **exc.details()})
        summary = _summary(runtime, site, started, list_results, files, errors)
        _store_summary(store, site, summary)
        raise
    summary = _summary(runtime, site, started, list_results, files, errors)
    _store_summary(store, site, summary)
    return summary


def _summary(
    runtime: Runtime,
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
        finished=runtime.now(),
        lists=tuple(lists),
        workbooks=tuple(files),
        errors=tuple(errors),
        status=RunSummary.status_for(lists, errors),
    )


def _store_summary(store: StateStore, site: SiteConfig, summary: RunSummary) -> None:
    try:
        store.write_json(f"summaries/{site.name}/last.json", summary.to_dict())
    except SpSyncError as exc:  # the run itself succeeded; say so rather than fail it
        log.warning("Could not store the run summary: %s", exc)


# ---------------------------------------------------------------------------------- status


def site_status(runtime: Runtime, site: SiteConfig) -> dict[str, Any]:
    store = runtime.store
    summary, _ = store.read_json(f"summaries/{site.name}/last.json")
    lists: dict[str, Any] = {}
    for title in runtime.schemas.lists:
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
    lines = [_STATUS_SITE.render(language, site=status["site"])]
    for title, info in status["lists"].items():
        if info is None:
            lines.append(_STATUS_NEVER.render(language, title=title))
        else:
            lines.append(
                _STATUS_LIST.render(
                    language, title=title, rows=info["rows"], last_sync=info["last_sync"]
                )
            )
    last = status.get("last_run")
    if last:
        lines.append(
            _STATUS_LAST_RUN.render(language, run_id=last.get("run_id"), status=last.get("status"))
        )
    return "\n".join(lines)


_STATUS_SITE = Text(sv="Webbplats: {site}", en="Site: {site}")
_STATUS_NEVER = Text(sv="  {title}: aldrig synkad", en="  {title}: never synchronised")
_STATUS_LIST = Text(
    sv="  {title}: {rows} rader, senast synkad {last_sync}",
    en="  {title}: {rows} rows, last sync {last_sync}",
)
_STATUS_LAST_RUN = Text(
    sv="Senaste körning: {run_id} — {status}", en="Last run: {run_id} — {status}"
)
