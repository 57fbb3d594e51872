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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sp_sync import __version__
from sp_sync.errors import RetryableError, SettingsError, SpSyncError
from sp_sync.i18n import Text, format_number, format_seconds, label, log_text, seconds_text
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
    from sp_sync.state.base import ListState
    from sp_sync.sync.changes import ListChanges
    from sp_sync.sync.engine import SiteSyncResult

log = logging.getLogger(__name__)

# Warnings a person may read on the command line (issue 13 item 4): the log line stays English,
# the CLI shows the configured language. The state store's own error follows as its sentence.
_CHECK_NOT_RECORDED = Text(
    sv="Kunde inte spara den senaste kontrollen av {site}: {error}",
    en="Could not record the last check of {site}: {error}",
)
_OLDER_SNAPSHOTS = Text(
    sv="Sammanställningen av {site} byggdes av äldre ögonblicksbilder än webbplatsens "
    "arbetsböcker ({newer}); inget laddades upp",
    en="The rollup of {site} was built from older snapshots than the site's workbooks "
    "({newer}); nothing uploaded",
)
_FINGERPRINTS_NOT_STORED = Text(
    sv="Kunde inte spara sammanställningens fingeravtryck: {error}",
    en="Could not store the rollup fingerprints: {error}",
)
_GENERATIONS_NOT_RECORDED = Text(
    sv="Kunde inte spara de publicerade generationerna för {site}: {error}",
    en="Could not record the published generations of {site}: {error}",
)
_SUMMARY_NOT_STORED = Text(
    sv="Kunde inte spara körningens sammanfattning: {error}",
    en="Could not store the run summary: {error}",
)


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


def check_workbook_names(schemas: SchemaSet, language: str) -> None:
    """Refuse departments whose workbooks would get the same file name (SharePoint compares
    names without regard to case): one would overwrite the other every night (issue 11, item
    10). Raises SchemaError naming the departments and the file."""
    from sp_sync.errors import SchemaError
    from sp_sync.i18n import choice_label
    from sp_sync.report.safe_text import safe_file_name

    translations = schemas.choice_translations()
    problems: list[str] = []
    for lang in ("sv", "en"):  # the workbooks are named in the run's language; check both
        by_file: dict[str, list[str]] = {}
        files: dict[str, str] = {}
        for dept in (d.name for d in schemas.reference.departments):
            shown = choice_label(dept, lang, translations)
            file_name = safe_file_name(label("wb_department", lang, name=shown))
            by_file.setdefault(file_name.casefold(), []).append(dept)
            files.setdefault(file_name.casefold(), file_name)
        for key, depts in by_file.items():
            if len(depts) > 1:
                problems.append(
                    _SAME_WORKBOOK.render(
                        language, departments=", ".join(repr(d) for d in depts), file=files[key]
                    )
                )
    if problems:
        raise SchemaError(list(dict.fromkeys(problems)))


_SAME_WORKBOOK = Text(
    sv="Avdelningarna {departments} får samma arbetsboksnamn ({file}); den ena skulle skriva "
    "över den andra varje natt. Byt namn på en av dem i referensdata.",
    en="The departments {departments} get the same workbook name ({file}); one would overwrite "
    "the other every night. Rename one of them in the reference data.",
)


def run_provision(
    runtime: Runtime, site: SiteConfig, *, apply: bool, allow_destructive: bool
) -> tuple[Plan, ApplyResult | None]:
    from sp_sync.schema import provision

    check_workbook_names(runtime.schemas, runtime.language)

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

    check_workbook_names(runtime.schemas, runtime.language)
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


def _checks_key(site: SiteConfig) -> str:
    return f"checks/{site.name}.json"


def _record_checks(
    runtime: Runtime, site: SiteConfig, results: Sequence[ListSyncResult]
) -> dict[str, str]:
    """Record when each list was last checked successfully, separately from its last change: a
    quiet list commits nothing (its last change stays old), yet it is up to date (item 13)."""
    from sp_sync.errors import StateConflictError

    when = runtime.now().isoformat()
    done = [r.list for r in results if not r.continues_next_run]
    store = runtime.store
    for _ in range(10):
        doc, etag = store.read_json(_checks_key(site))
        doc = dict(doc or {})
        doc.update({title: when for title in done})
        try:
            if etag is None:
                store.write_json(_checks_key(site), doc, create_only=True)
            else:
                store.write_json(_checks_key(site), doc, expected_etag=etag)
            return {k: str(v) for k, v in doc.items()}
        except StateConflictError:
            continue
        except SpSyncError as exc:  # the sync itself is committed; say so rather than fail it
            text = _CHECK_NOT_RECORDED.fill(site=site.url, error=exc.as_text())
            log.warning("%s", text.en, extra=log_text(text))
            break
    return {}


def last_checked(runtime: Runtime, site: SiteConfig) -> dict[str, str]:
    """List title → when it was last checked successfully (ISO 8601, UTC)."""
    doc, _ = runtime.store.read_json(_checks_key(site))
    return {str(k): str(v) for k, v in (doc or {}).items()}


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
    checked = _record_checks(runtime, site, result.lists)
    return _summary(runtime, site, started, result.lists, (), result.errors, checked=checked)


def run_sync_job(
    runtime: Runtime,
    site: SiteConfig,
    lists: Sequence[str],
    *,
    full: bool,
    not_after: float | None = None,
) -> SiteSyncResult:
    """What one queue message does: sync the given lists of one site (no rollup), by
    `not_after` (`time.monotonic()`), the invocation's deadline, when given."""
    deadline = runtime.deadline(not_after=not_after)
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
    _record_checks(runtime, site, result.lists)
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
    guard: UploadGuard | None = None,
    states: Mapping[str, ListState] | None = None,
    changes: Mapping[str, ListChanges] | None = None,
) -> list[UploadedWorkbook]:
    """Build the site's workbooks from its snapshots and upload the changed ones.

    `states` holds lists' states as this run's sync left them in the store (the frames it had
    in hand); only the other lists are read back (issue 14 goal 4: a night read every snapshot
    twice). The rollup then shows exactly the generations this run's sync committed.
    `changes` are the rows that sync changed (per list read incrementally): the rollup then
    builds only the workbooks that can show them, when its last record allows (see
    sp_sync.report.publish)."""
    import pandas as pd

    from sp_sync.report import publish as rollup
    from sp_sync.report.fingerprint import state_source

    settings = runtime.settings
    store = runtime.store
    schemas = runtime.schemas
    snapshots: dict[str, pd.DataFrame] = {}
    quality: list[pd.DataFrame] = []
    sync_info: dict[str, dict[str, Any]] = {}
    time_zone: str | None = None
    checks = last_checked(runtime, site)
    generations: dict[str, int] = {}
    sources: dict[str, str | None] = {}
    for title in schemas.lists:
        state = (states or {}).get(title)
        if state is None:
            state = store.read_list_state(site.url, title)
        if state is None:
            continue
        generations[title] = state.checkpoint.generation
        sources[title] = state_source(state.checkpoint.generation, state.etag)
        # The sync records the site's time zone in every checkpoint: no need to ask SharePoint
        # again (and `rollup --no-upload` has no client to ask).
        time_zone = time_zone or state.checkpoint.extra.get("time_zone")
        snapshots[title] = state.rows
        if state.quality is not None and len(state.quality):
            quality.append(state.quality)
        sync_info[title] = {
            "item_count": len(state.rows),
            "last_synced": state.checkpoint.last_sync,
            # When the list was last checked (a quiet list's last change stays old). For Om
            # rapporten; kept out of the workbook fingerprint, or every night would re-upload.
            "last_checked": checks.get(title),
        }
    if not snapshots:
        from sp_sync.errors import StateError

        text = Text(
            sv=f"Inga listor är synkroniserade för {site.url} ännu: kör `sp-sync sync` först.",
            en=f"There are no synchronised lists for {site.url} yet: run `sp-sync sync` first.",
        )
        raise StateError(text.en, text=text)
    lang = settings.language
    merged_quality = pd.concat(quality, ignore_index=True) if quality else None
    findings = drift.findings if drift is not None else None
    if not upload or client is None:
        progress.start(label("progress_build", lang))
        workbooks = rollup.build_workbooks(
            snapshots,
            merged_quality,
            schemas,
            sync_info,
            site_url=site.url,
            generated_at=runtime.now(),
            time_zone=time_zone,
            language=settings.language,
            drift=findings,
        )
        progress.finish(label("progress_built", lang, count=len(workbooks)))
        if out_dir is not None:
            rollup.write_local_copies(workbooks, out_dir)
        return []

    # Only what changed is rebuilt and uploaded: the fingerprints of the last upload are kept
    # in the state store beside the snapshots (see sp_sync.report.publish).
    record_key = f"rollups/{site.name}/fingerprints.json"
    previous, _ = store.read_json(record_key)
    folder = site.rollup_folder or settings.rollup_folder
    progress.start(label("progress_upload", lang), unit="byte")
    sent: dict[str, int] = {}

    def on_upload(name: str, done: int, size: int) -> None:
        # Callbacks report cumulative bytes per workbook; the bar wants increments.
        progress.advance(max(0, done - sent.get(name, 0)))
        sent[name] = max(done, sent.get(name, 0))

    # Each snapshot named by its committed state: the snapshot fingerprint without hashing.
    named = {title: name for title, name in sources.items() if name is not None}
    guard = guard or UploadGuard(runtime, site)
    newer = guard.start(generations)
    if newer:
        # This rollup's snapshots are older than what a newer run already published (e.g. its
        # invocation stalled past its lock's lease while a newer run finished): uploading now
        # would put older data over newer. The site keeps the newer workbooks.
        text = _OLDER_SNAPSHOTS.fill(site=site.url, newer=", ".join(newer))
        log.warning("%s", text.en, extra=log_text(text))
        progress.finish(label("progress_uploaded", lang, count=0, folder=folder))
        return []
    result = rollup.publish_workbooks(
        client,
        snapshots,
        merged_quality,
        schemas,
        sync_info,
        inputs=rollup.RollupInputs.of(
            site_url=site.url,
            generated_at=runtime.now(),
            time_zone=time_zone,
            language=settings.language,
            drift=findings,
        ),
        previous=previous,
        folder=folder,
        chunk_size=settings.upload_chunk_bytes,
        progress=on_upload,
        render_all=out_dir is not None,
        before_upload=guard.before_upload,
        sources=named if len(named) == len(sources) else None,
        changes=changes,
    )
    if out_dir is not None:
        rollup.write_local_copies(result.rendered, out_dir)
    try:
        if not guard.superseded:  # a newer run's record describes the site now
            store.write_json(record_key, result.record)
    except SpSyncError as exc:  # the uploads stand; the next run compares against the site
        text = _FINGERPRINTS_NOT_STORED.fill(error=exc.as_text())
        log.warning("%s", text.en, extra=log_text(text))
    uploaded = [f for f in result.files if f.status == "uploaded"]
    progress.finish(label("progress_uploaded", lang, count=len(uploaded), folder=folder))
    return list(result.files)


def _published_key(site: SiteConfig) -> str:
    return f"rollups/{site.name}/generations.json"


def _newer_on_site(
    runtime: Runtime, site: SiteConfig, ours: Mapping[str, int], recorded: Mapping[str, Any] | None
) -> list[str]:
    """The lists whose workbooks on the site were built from a newer snapshot generation than
    `ours` (issue 11, item 3: an older rollup never overwrites a newer one), by the published
    record `recorded` (the document at `_published_key`). A recorded generation above the
    list's current one is stale (its state was reset) and ignored."""
    store = runtime.store
    newer: list[str] = []
    for title, generation in ours.items():
        at = int((recorded or {}).get(title, 0))
        if at <= generation:
            continue
        current = store.read_list_state(site.url, title)
        if current is not None and current.checkpoint.generation >= at:
            newer.append(f"{title}: {generation} < {at}")
    return newer


def _record_published(runtime: Runtime, site: SiteConfig, ours: Mapping[str, int]) -> list[str]:
    """Before the first upload, record the snapshot generations the site's workbooks are about
    to show, in one conditional write, unless a newer run's are recorded: then return those
    (and write nothing). Recording before the uploads (not after) lets an older rollup that
    stalls mid-way see a newer one as soon as it starts, at its next per-file check."""
    from sp_sync.errors import StateConflictError

    store = runtime.store
    key = _published_key(site)
    for _ in range(10):
        doc, etag = store.read_json(key)
        newer = _newer_on_site(runtime, site, ours, doc)
        if newer:
            return newer
        record = {str(k): int(v) for k, v in (doc or {}).items()}
        record.update({str(title): int(generation) for title, generation in ours.items()})
        try:
            if etag is None:
                store.write_json(key, record, create_only=True)
            else:
                store.write_json(key, record, expected_etag=etag)
            return []
        except StateConflictError:
            continue
        except SpSyncError as exc:  # the uploads go ahead; the next rollup records again
            text = _GENERATIONS_NOT_RECORDED.fill(site=site.url, error=exc.as_text())
            log.warning("%s", text.en, extra=log_text(text))
            return []
    return []


#: The least time an upload is given: below it, no further workbook upload is started (the
#: floor of every SharePoint request's timeout, sp_sync.sharepoint.client.MIN_REQUEST_TIMEOUT).
MIN_UPLOAD_SECONDS = 5.0
_NEWER_PUBLISHED_MEANWHILE = Text(
    sv="En nyare körning har publicerat {site} under tiden ({newer}); {name} och följande "
    "arbetsböcker laddas inte upp",
    en="A newer run published {site} meanwhile ({newer}); {name} and the workbooks after it "
    "are not uploaded",
)
_UPLOADS_OUT_OF_TIME = Text(
    sv="Tidsbudgeten räcker inte till fler uppladdningar för {site} ({left} kvar); {name} och "
    "följande arbetsböcker laddas upp vid nästa försök",
    en="The time budget leaves too little for more uploads to {site} ({left} left); {name} "
    "and the workbooks after it are uploaded at the next attempt",
)


class RollupSupersededError(SpSyncError):
    """A Functions rollup stopped because a newer run's workbooks are on the site: the site
    keeps them; nothing is retried (the newer run published newer data)."""


class RollupOutOfTimeError(RetryableError):
    """A Functions rollup stopped before another upload because too little of its time budget
    was left; the files it sent are complete, and the redelivered message continues it."""


class UploadGuard:
    """Asked before each workbook upload of a rollup (`before_upload`): a reason stops the
    uploads when a newer run's workbooks are on the site by now (re-read per file: a small
    state read, so an older rollup that stalled between files is stopped too), or when less
    than one upload's time is left before `deadline` (`time.monotonic()`; None: no budget)."""

    def __init__(self, runtime: Runtime, site: SiteConfig, deadline: float | None = None) -> None:
        self._runtime = runtime
        self._site = site
        self.deadline = deadline
        self._ours: dict[str, int] = {}
        #: Why a newer run's workbooks win ("Title: ours < theirs"), once found.
        self.superseded: list[str] = []
        self.out_of_time = False
        self.stopped: Text | None = None
        self._last: float | None = None
        self._longest = 0.0

    def start(self, generations: Mapping[str, int]) -> list[str]:
        """Record ours before the first upload, unless newer ones are recorded (then those)."""
        self._ours = dict(generations)
        self.superseded = _record_published(self._runtime, self._site, self._ours)
        return self.superseded

    def before_upload(self, name: str) -> Text | None:
        now = time.monotonic()
        if self._last is not None:  # the longest render + upload so far: what one more needs
            self._longest = max(self._longest, now - self._last)
        self._last = now
        site = self._site.url
        if self.deadline is not None and now + max(MIN_UPLOAD_SECONDS, self._longest) > (
            self.deadline
        ):
            self.out_of_time = True
            left = seconds_text(max(0.0, self.deadline - now))
            self.stopped = _UPLOADS_OUT_OF_TIME.fill(site=site, left=left, name=name)
        else:
            recorded, _ = self._runtime.store.read_json(_published_key(self._site))
            newer = _newer_on_site(self._runtime, self._site, self._ours, recorded)
            if newer:
                self.superseded = newer
                self.stopped = _NEWER_PUBLISHED_MEANWHILE.fill(
                    site=site, newer=", ".join(newer), name=name
                )
        if self.stopped is not None:
            log.warning("%s", self.stopped.en, extra=log_text(self.stopped))
        return self.stopped


def run_rollup(
    runtime: Runtime,
    site: SiteConfig,
    *,
    out_dir: Path | None = None,
    upload: bool = True,
    progress: Progress | None = None,
) -> RunSummary:
    started = runtime.now()
    with runtime.store.lock(run_lock_name(site)):
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
    runtime: Runtime,
    site: SiteConfig,
    *,
    failed_lists: Sequence[str] = (),
    not_after: float | None = None,
) -> RunSummary:
    """The site's rollup after its list jobs finished (run exactly once per run and site).

    It has the run's time budget (SP_SYNC_TIME_BUDGET_SECONDS, as the sync): its SharePoint
    and storage calls are capped by the time left, and when less than one upload's time is
    left it starts no further upload and raises RollupOutOfTimeError (retryable: the claim is
    given back and the redelivered message continues, the files sent so far being complete
    and recorded). When a newer run's workbooks are on the site, before or between uploads,
    it raises RollupSupersededError and uploads nothing more. `not_after` (`time.monotonic()`)
    is the invocation's own deadline when the rollup follows a sync in the same invocation."""
    started = runtime.now()
    deadline = runtime.deadline(not_after=not_after)  # binds the store's calls to it too
    # The run lock: two runs' rollups of one site never interleave, and each reads the
    # state when it holds the lock, so the last upload is always built from the newest data.
    client = runtime.client(site, deadline=deadline)
    guard = UploadGuard(runtime, site, deadline)
    with runtime.store.lock(run_lock_name(site)):
        files = _rollup(
            runtime,
            site,
            client=client,
            out_dir=None,
            upload=True,
            progress=Progress(),
            guard=guard,
        )
    if guard.out_of_time and guard.stopped is not None:
        raise RollupOutOfTimeError(guard.stopped)
    if guard.superseded:
        raise RollupSupersededError(
            guard.stopped or _OLDER_SNAPSHOTS.fill(site=site.url, newer=", ".join(guard.superseded))
        )
    errors = tuple(
        {"list": t, "message": "sync failed; workbook shows the previous data"}
        for t in failed_lists
    )
    return _summary(runtime, site, started, (), files, errors, client=client)


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


def run_lock_name(site: SiteConfig) -> str:
    """The lock a whole run (sync to upload) and every rollup of the site hold, so that an
    older, slower run's uploads can never land after a newer run's (issue 11, item 3)."""
    from sp_sync.state.base import site_key

    return f"run-{site_key(site.url)}"


#: A run whose time budget is spent before the rollup skips it (its sync is committed) and
#: ends "continues next time"; the next run, starting from the committed state, completes it.
_NO_TIME_LEFT = Text(
    sv="Tidsbudgeten räckte inte till sammanställningen; nästa körning fortsätter.",
    en="The time budget ran out before the rollup; the next run continues.",
)


def run_pipeline(
    runtime: Runtime,
    site: SiteConfig,
    *,
    full: bool = False,
    out_dir: Path | None = None,
    upload: bool = True,
    progress: Progress | None = None,
    lists: Sequence[str] | None = None,
    not_after: float | None = None,
) -> RunSummary:
    """The nightly job for one site, start to finish, with its run summary stored; `not_after`
    (`time.monotonic()`) caps the run's deadline, e.g. when its budget started before it.

    The whole run holds the site's run lock, so a second run waits its turn (exit 7) instead
    of racing this one to the upload; the time budget bounds the whole run: when it is spent
    after the sync, the rollup is left to the next run and the run ends "continues" (exit 6)."""
    progress = progress or Progress()
    summary, error = _run_locked(
        runtime,
        site,
        full=full,
        out_dir=out_dir,
        upload=upload,
        progress=progress,
        lists=lists,
        not_after=not_after,
    )
    # The administrators' notice reads the summary just stored (a failed rollup stores its
    # summary too: that night deserves the notice); sent outside the run lock and never
    # failing the run (issue 16).
    after_run_notice(runtime, site)
    if error is not None:
        raise error
    return summary


def _run_locked(
    runtime: Runtime,
    site: SiteConfig,
    *,
    full: bool,
    out_dir: Path | None,
    upload: bool,
    progress: Progress,
    lists: Sequence[str] | None,
    not_after: float | None = None,
) -> tuple[RunSummary, SpSyncError | None]:
    """The run under the site's run lock: (the stored summary, the error that ends the run).
    An error before a summary was stored raises; a failed rollup returns its stored summary
    and its error, so that the caller sends the failure notice and then raises the error."""
    started = runtime.now()
    deadline = runtime.deadline(not_after=not_after)
    store = runtime.store
    with store.lock(run_lock_name(site)):
        client = runtime.client(site, deadline=deadline)
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
        _stop_on_local_disk_trouble(errors)
        checked = _record_checks(runtime, site, list_results)
        files: list[UploadedWorkbook] = []
        if not result.lists:
            # Nothing was synced (every list failed): workbooks from the old snapshots with a
            # fresh "generated" stamp would pass stale data off as new. The summary says what failed.
            summary = _summary(
                runtime, site, started, list_results, files, errors, checked=checked, client=client
            )
            _store_summary(store, site, summary)
            return summary, None
        if time.monotonic() >= deadline or (
            any(r.continues_next_run for r in list_results) and not _has_snapshot(runtime, site)
        ):
            log.warning("%s", _NO_TIME_LEFT.render("en"), extra=log_text(_NO_TIME_LEFT))
            summary = _summary(
                runtime,
                site,
                started,
                list_results,
                files,
                errors,
                continues=True,
                checked=checked,
                client=client,
            )
            _store_summary(store, site, summary)
            return summary, None
        try:
            files = _rollup(
                runtime,
                site,
                client=client,
                out_dir=out_dir,
                upload=upload,
                progress=progress,
                drift=drift,
                states=result.states,
                changes=result.changes,
            )
        except SpSyncError as exc:
            errors.append({"step": "rollup", **exc.details()})
            summary = _summary(
                runtime, site, started, list_results, files, errors, checked=checked, client=client
            )
            _store_summary(store, site, summary)
            return summary, exc
        summary = _summary(
            runtime, site, started, list_results, files, errors, checked=checked, client=client
        )
        _store_summary(store, site, summary)
        return summary, None


def _stop_on_local_disk_trouble(errors: Sequence[Any]) -> None:
    """A full or read-only state directory fails every list alike: stop the run with that
    error (exit 9, naming the directory) instead of reporting it list by list as a partial run
    and building workbooks from state that cannot be updated."""
    from sp_sync.errors import LocalDiskError

    for err in errors:
        if isinstance(err, Mapping) and err.get("error") == LocalDiskError.__name__:
            raise LocalDiskError(str(err.get("message", "")))


def _has_snapshot(runtime: Runtime, site: SiteConfig) -> bool:
    return any(
        runtime.store.read_list_state(site.url, title) is not None
        for title in runtime.schemas.lists
    )


def after_run_notice(runtime: Runtime, site: SiteConfig) -> None:
    """The administrators' failure notice when the run failed or left data stale (issue 16)."""
    settings = runtime.settings
    if not settings.mail_sender or not settings.admin_mail:
        # No notice can be due (`health_check_site` needs a sender and an administrator):
        # a night without mail does not import it (the mail modules cost 0.05 s to import).
        return
    from sp_sync.notify.entry import notify_after_run  # mail is only a concern after a run

    notify_after_run(runtime, site)


def _summary(
    runtime: Runtime,
    site: SiteConfig,
    started: dt.datetime,
    lists: Sequence[ListSyncResult],
    files: Sequence[UploadedWorkbook],
    errors: Sequence[Any],
    *,
    continues: bool = False,
    checked: dict[str, str] | None = None,
    client: SharePointClient | None = None,
) -> RunSummary:
    traffic = None
    stats = getattr(client, "stats", None) if client is not None else None
    if stats is not None:
        traffic = {
            "requests": stats.requests,
            "retries": stats.retries,
            "wait_seconds": stats.wait_seconds,
            "bytes_received": stats.bytes_received,
            "throttled_responses": stats.throttled_responses,
        }
    return RunSummary(
        run_id=f"{started.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}",
        site=site.url,
        started=started,
        finished=runtime.now(),
        lists=tuple(lists),
        workbooks=tuple(files),
        errors=tuple(errors),
        status=RunSummary.status_for(lists, errors, continues=continues),
        continues=continues,
        last_checked=tuple(sorted((checked or {}).items())),
        traffic=traffic,
    )


def _store_summary(store: StateStore, site: SiteConfig, summary: RunSummary) -> None:
    try:
        store.write_json(f"summaries/{site.name}/last.json", summary.to_dict())
    except SpSyncError as exc:  # the run itself succeeded; say so rather than fail it
        text = _SUMMARY_NOT_STORED.fill(error=exc.as_text())
        log.warning("%s", text.en, extra=log_text(text))


# ---------------------------------------------------------------------------------- status


def site_status(runtime: Runtime, site: SiteConfig) -> dict[str, Any]:
    store = runtime.store
    summary, _ = store.read_json(f"summaries/{site.name}/last.json")
    checks = last_checked(runtime, site)
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
                "last_checked": checks.get(title),
            }
        )
    from sp_sync.redact import redact_deep

    # The site URL may carry a user:password; status is printed and sent as JSON: redacted.
    status = {"site": site.url, "version": __version__, "lists": lists, "last_run": summary}
    return dict(redact_deep(status))


def format_status(status: dict[str, Any], language: str = "sv") -> str:
    lines = [_STATUS_SITE.render(language, site=status["site"])]
    for title, info in status["lists"].items():
        if info is None:
            lines.append(_STATUS_NEVER.render(language, title=title))
        else:
            lines.append(
                _STATUS_LIST.render(
                    language,
                    title=title,
                    rows=info["rows"],
                    last_sync=info["last_sync"],
                    last_checked=info.get("last_checked") or "-",
                )
            )
    last = status.get("last_run")
    if last:
        lines.append(
            _STATUS_LAST_RUN.render(language, run_id=last.get("run_id"), status=last.get("status"))
        )
        # Freshness lives here and in the run summary, not in the workbooks' fingerprints: a
        # workbook left unchanged on the site was still checked by this run.
        if last.get("finished"):
            lines.append(_STATUS_FINISHED.render(language, finished=last["finished"]))
        if last.get("workbooks"):
            lines.append(
                _STATUS_WORKBOOKS.render(
                    language,
                    uploaded=int(last.get("workbooks_uploaded", len(last["workbooks"]))),
                    unchanged=int(last.get("workbooks_unchanged", 0)),
                )
            )
    return "\n".join(lines)


_STATUS_SITE = Text(sv="Webbplats: {site}", en="Site: {site}")
_STATUS_NEVER = Text(sv="  {title}: aldrig synkad", en="  {title}: never synchronised")
_STATUS_LIST = Text(
    sv="  {title}: {rows} rader, senast ändrad {last_sync}, senast kontrollerad {last_checked}",
    en="  {title}: {rows} rows, last change {last_sync}, last checked {last_checked}",
)
_STATUS_LAST_RUN = Text(
    sv="Senaste körning: {run_id} — {status}", en="Last run: {run_id} — {status}"
)
_STATUS_FINISHED = Text(sv="  avslutad {finished}", en="  finished {finished}")
_STATUS_WORKBOOKS = Text(
    sv="  arbetsböcker: {uploaded} uppladdade, {unchanged} oförändrade",
    en="  workbooks: {uploaded} uploaded, {unchanged} unchanged",
)
