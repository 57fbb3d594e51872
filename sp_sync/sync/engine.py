"""The sync engine: full, incremental, resumed and reconciling reads of SharePoint lists.

Per list, one of:

* **full** – the first time, on `--full`, or when the schema version changed. The change token is
  taken FIRST (with the list's facts, in one request), so anything changed while the pages are
  read is replayed by the next run; then keyset pages of 5,000 with exactly the schema's
  `$select`. Rows are counted against the list's `ItemCount`. Requests: contextinfo (once per
  client) + the site (web with its time zone; not when the checkpoint has it) + list info with
  the change token + ceil(N/5000) pages (no page at all when ItemCount is 0) ≤ ceil(N/5000) + 3.
* **incremental** – `GetChanges` since the stored token; the ids whose last change is not a delete
  are fetched (≤ 50: by id in one `$batch`; more: by `Modified ≥` the oldest change, one GET
  per 5,000, then by id for what that misses); deleted ids and ids that can no longer be
  fetched are removed. Nothing changed: contextinfo + getchanges = 2 requests
  (the time zone and site URL live in the checkpoint, so neither the web nor the list is read).
  k changed: 2 + ceil(k/5000) ≤ 3 + ceil(k/5000) (+1 `$batch` for restored or system-updated
  items, which keep their old `Modified`). Cases that cost more: more than 1,000 change records
  (SharePoint returns the log in batches of 1,000, one request each); more than 5,000 changed
  items on a list above the threshold (an indexed `Modified` filter matching > 5,000 rows is
  refused, so the change log's times cut the range into windows of ≤ 5,000 changes, one GET
  each: still ceil(k/5000); only when one second holds more than 5,000 changes is the list
  read by ID pages — ceil(N/5000) — or by id in `$batch`es, whichever is cheaper); person
  columns beyond the 12-lookup limit or Author/Editor fallbacks that need the site users
  (+1 request).
  Lookup titles of unchanged rows are re-resolved from the target lists' snapshots (a renamed
  target changes no source item), which costs no request — only for lookup columns whose
  target titles moved since the stored rows were resolved (a digest in the checkpoint), and
  when the target was synced tonight from the map the stored rows hold, only on the rows
  pointing at a target id whose title moved (`sync.titles`; the target's commit records the
  sums its lookups' digests need, so no pass over the target is made either).
  What a night with k changes costs is k, not the list (issue 14 goal 4): only the touched rows
  are validated while nothing they are checked against changed (`_carried_validation`), and
  the commit writes only the changed rows: a delta over the stored base rows file, or, when
  the delta grows past its share, a full file converting only the changed cells and taking
  the rest from the base file (`sp_sync.state.delta`; a read returns the same frame).
* **reread** – the stored token is missing or SharePoint no longer knows it (retention, list
  recreated): a full read reconciled against the snapshot; ids that vanished count as deleted.
* **resumed** – a full read that a deadline cut short continues after the last id it read.

Crash safety: the list's committed state (rows + quality + checkpoint) only moves through
`store.commit_list_state`, after everything it describes is known; a partial full read is kept
under a separate "pending" key (`<list>~pending`) whose checkpoint names the generation of the
list state it started from and the change token taken before it; the list's own state, and so
everything the rollups read, stays the previous complete snapshot until the read completes.
Applying changes is idempotent (upsert by ID, delete by ID), so a run killed at any instant and
rerun converges to exactly the list's content.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from sp_sync.errors import (
    NotFoundError,
    PermissionDeniedError,
    RetryableError,
    RunLockedError,
    SpSyncError,
    ThresholdError,
)
from sp_sync.run.summary import ListSyncResult
from sp_sync.sharepoint.changes import ChangeTokenExpiredError
from sp_sync.state.base import Changes, ListState, StateStore, SyncCheckpoint
from sp_sync.state.hooks import crash_point
from sp_sync.sync.changes import ListChanges
from sp_sync.sync.normalize import (
    apply_lookup_titles,
    lookup_title_map,
    normalize_page,
    plan_select,
)
from sp_sync.sync.ports import SharePointSource
from sp_sync.sync.quality import (
    PUBLISHED_GENERATION,
    PUBLISHED_KEY,
    DataQualityIssue,
    county_key,
    cross_list_inputs,
    issues_to_frame,
    published_of,
    rule_columns,
    title_key,
    validate_rows,
)
from sp_sync.sync.titles import (
    TitleSums,
    county_sums,
    positions_of,
    rows_pointing_at,
    title_sums,
    titles_at,
)

logger = logging.getLogger(__name__)

PAGE_SIZE = 5000
#: Up to this many changed ids are fetched by id (one `$batch` holding one GET).
BY_ID_LIMIT = 50
#: Ids per GET inside a `$batch` (the SharePoint client's filter size).
IDS_PER_GET = 50
PENDING_SUFFIX = "~pending"
#: Column added to the stored quality table: "normalize" issues come from reading the raw value
#: and are only recomputed for refetched rows; "validate" issues are recomputed for the touched
#: rows, and for every row when what the checks compare against changed (`_carried_validation`).
SOURCE_COLUMN = "source"
#: Checkpoint key: the digest (`quality.cross_list_inputs`) of what the stored validation read
#: from other rows; an incremental run re-validates only its touched rows while it matches.
VALIDATION_INPUTS = "validation_inputs"
#: Checkpoint key: per lookup column, the digest of the target titles the stored rows were
#: resolved against (`ListSyncer._title_sums`, sync.titles).
LOOKUP_TITLES = "lookup_titles"

#: Re-resolve a lookup column only on the rows that can have moved when its target's changes
#: tonight are known (`ListSyncer._scoped_titles`); False: every row (the differential tests).
SCOPED_TITLES = True

#: (list title, items read so far, items expected or None): the CLI draws a bar with a total.
ProgressFn = Callable[[str, int, int | None], None]


def _resolve(value: Any) -> Any:
    """`value`, or `value()` for a lazy provider (used to avoid reading web/users needlessly)."""
    return value() if callable(value) else value


@dataclass
class _StatsMark:
    requests: int = 0
    retries: int = 0
    wait_seconds: float = 0.0
    bytes_received: int = 0

    @classmethod
    def of(cls, client: Any) -> _StatsMark:
        stats = getattr(client, "stats", None)
        if stats is None:
            return cls()
        return cls(
            int(getattr(stats, "requests", 0)),
            int(getattr(stats, "retries", 0)),
            float(getattr(stats, "wait_seconds", 0.0)),
            int(getattr(stats, "bytes_received", 0)),
        )

    def since(self, before: _StatsMark) -> _StatsMark:
        return _StatsMark(
            self.requests - before.requests,
            self.retries - before.retries,
            round(self.wait_seconds - before.wait_seconds, 3),
            self.bytes_received - before.bytes_received,
        )


@dataclass
class _Outcome:
    """What `_sync_list` worked out, before it becomes a ListSyncResult."""

    mode: str
    rows: pd.DataFrame
    added: int = 0
    updated: int = 0
    deleted: int = 0
    quality_issues: int = 0
    item_count_mismatch: tuple[int, int] | None = None
    continues_next_run: bool = False
    notes: list[tuple[str, str]] = field(default_factory=list)  # (sv, en)
    #: The list's state as the store now holds it (committed tonight, or left as it was), so
    #: the run's rollup need not read the snapshot back (issue 14 goal 4). None when the read
    #: continues next run.
    committed: ListState | None = None
    #: The rows this incremental sync changed, for the rollup (None: a full read, unknown).
    changes: ListChanges | None = None


def _items_of(page: Any) -> list[Mapping[str, Any]]:
    items = getattr(page, "items", page)
    return list(items)


def _ids(frame: pd.DataFrame) -> set[int]:
    if frame is None or frame.empty:
        return set()
    return {int(i) for i in frame["ID"].tolist()}


_ISSUE_FIELDS = [f.name for f in dataclasses.fields(DataQualityIssue)]


@functools.cache
def _empty_issues() -> pd.DataFrame:
    """`issues_to_frame([])`, built once (callers get a copy)."""
    return issues_to_frame([])


def _quality_frame(issues: Iterable[DataQualityIssue], source: str) -> pd.DataFrame:
    """`issues_to_frame` plus the source column, built column-wise: `dataclasses.asdict` per
    issue costs seconds for 100,000 issues (one per row is common: a missing required value)."""
    items = list(issues)
    if not items:
        frame = _empty_issues().copy()
    else:
        data: dict[str, Any] = {}
        for name in _ISSUE_FIELDS:
            values = [getattr(i, name) for i in items]
            data[name] = (
                pd.array(values, dtype="int64")
                if name == "item_id"
                else pd.Series(values, dtype=object)
            )
        frame = pd.DataFrame(data)
    frame[SOURCE_COLUMN] = pd.Series([source] * len(frame), index=frame.index, dtype=object)
    return frame


def _concat(frames: Sequence[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    usable = [f for f in frames if f is not None and len(f)]
    if not usable:
        return empty
    out = usable[0] if len(usable) == 1 else pd.concat(usable, ignore_index=True)
    if out["ID"].is_monotonic_increasing:
        # Keyset pages arrive in ID order: sorting would only copy every column once more.
        return out.reset_index(drop=True)
    return out.sort_values("ID", kind="stable").reset_index(drop=True)


def _share_text(frame: pd.DataFrame, shared: dict[str, dict[str, str]]) -> None:
    """Make equal text values of a page share one object, across the pages of a read.

    Choices, names, e-mails, counties repeat on most rows; decoded JSON gives each cell its
    own `str` (50–500 bytes each), so a large list's frame held tens of copies of the same
    value. One object per distinct value per column keeps the frame at a fraction (the values
    and dtypes are unchanged; a snapshot read back from Parquet shares them the same way).
    Only columns of text (and None) are touched, and only where values repeat.
    """
    for name in frame.columns:
        column = frame[name]
        if column.dtype != object or len(column) < 2:
            continue
        values = column.tolist()
        kinds = set(map(type, values))
        if not kinds <= {str, type(None)} or str not in kinds:
            continue
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        if len(uniques) * 2 > len(values):
            continue  # mostly distinct (titles, links): nothing to share
        pool = shared.setdefault(name, {})
        table = np.empty(len(uniques) + 1, dtype=object)
        table[:-1] = [pool.setdefault(v, v) for v in uniques.tolist()]
        table[-1] = None  # code -1: the column's missing values, all None (checked above)
        frame[name] = pd.Series(table[codes], index=frame.index, dtype=object)


_PAGE, _DONE, _FAILED = "page", "done", "failed"


def _merge(old: pd.DataFrame, drop: set[int], frame: pd.DataFrame) -> pd.DataFrame:
    """`old` without the rows whose ID is in `drop`, plus `frame` (aligned to `old`), in ID
    order — what `_concat` of the kept rows and `frame` gives, built one column at a time.

    `old` is taken apart as the merged columns are built (the caller no longer needs it): the
    kept rows, the concatenation and the sort each copied every column of a large snapshot
    at once, so a 1 % night held the old snapshot about four times over.
    """
    ids_old = old["ID"].to_numpy()
    replaced = _replaced_in_place(ids_old, drop, frame)
    if replaced is not None:
        return _merge_in_place(old, frame, replaced)
    keep = ~np.isin(ids_old, np.fromiter(drop, dtype=ids_old.dtype, count=len(drop)))
    ids = ids_old[keep]
    if len(frame):
        ids = np.concatenate([ids, frame["ID"].to_numpy(dtype=ids_old.dtype)])
    order = None if bool((ids[1:] > ids[:-1]).all()) else np.argsort(ids, kind="stable")
    out = pd.DataFrame(index=pd.RangeIndex(len(ids)))
    for name in list(old.columns):
        column = old.pop(name)
        if len(frame):
            merged = pd.concat([column[keep], frame[name]], ignore_index=True)
        else:  # only deletions: an empty frame must not decide any column's dtype
            merged = column[keep].reset_index(drop=True)
        if order is not None:
            merged = merged.take(order).reset_index(drop=True)
        out[name] = merged
        del column, merged
    return out


def _replaced_in_place(ids_old: np.ndarray, drop: set[int], frame: pd.DataFrame) -> Any:
    """When `_merge` only replaces rows (every id of `drop` is in `old` and refetched in
    `frame`, `old` in ID order): the positions in `old` of `frame`'s rows, else None."""
    if not len(frame) or len(frame) != len(drop) or ids_old.dtype.kind not in "iu":
        return None
    ids_new = frame["ID"].to_numpy()
    if ids_new.dtype.kind not in "iu" or not bool((ids_old[1:] > ids_old[:-1]).all()):
        return None
    at = np.searchsorted(ids_old, ids_new)
    if bool((at >= len(ids_old)).any()) or not bool((ids_old[at] == ids_new).all()):
        return None
    if len(np.unique(at)) != len(at) or {int(i) for i in ids_new.tolist()} != drop:
        return None
    return at


def _merge_in_place(old: pd.DataFrame, frame: pd.DataFrame, at: np.ndarray) -> pd.DataFrame:
    """`_merge` of rows that only replace rows of `old` (positions `at`): each column of the
    same numpy dtype in both is `old`'s values with `frame`'s written over them (what the
    concatenation and the sort by ID give); any other column goes through them as before."""
    out = pd.DataFrame(index=pd.RangeIndex(len(old)))
    keep = np.ones(len(old), dtype=bool)
    keep[at] = False
    order: np.ndarray | None = None
    for name in list(old.columns):
        column = old.pop(name)
        new = frame[name]
        if column.dtype == new.dtype and isinstance(column.dtype, np.dtype):
            values = column.to_numpy(copy=True)
            values[at] = new.to_numpy()
            out[name] = pd.Series(values, index=out.index, dtype=column.dtype)
        else:
            if order is None:  # the old positions, in the concatenation's order, sorted
                order = np.argsort(np.concatenate([np.flatnonzero(keep), at]), kind="stable")
            merged = pd.concat([column[keep], new], ignore_index=True)
            out[name] = merged.take(order).reset_index(drop=True)
        del column
    return out


def _read_ahead(pages: Iterator[Any]) -> Generator[Any, None, None]:
    """Yield the pages of `pages`, fetching the next one in a thread while the caller works on
    this one.

    A full read spends about as long waiting for the server as normalising what it sent; with
    one page read ahead the two overlap (sockets and JSON decoding release the GIL or run while
    the caller waits). At most one page waits in the queue, so memory stays bounded by pages.
    The client is used by the reading thread only while this iterator is open: when the caller
    stops early the page in flight is awaited before returning, so the client is never used by
    two threads at once. An error of the read is raised to the caller at the page it replaces.
    """
    slot: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                slot.put((kind, value), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for page in pages:
                if not put(_PAGE, page):
                    return
            put(_DONE, None)
        except BaseException as exc:  # handed to the caller, who decides
            put(_FAILED, exc)

    reader = threading.Thread(target=produce, name="sp-sync-read-ahead", daemon=True)
    reader.start()
    interrupted = False
    try:
        while True:
            kind, value = slot.get()
            if kind == _PAGE:
                yield value
            elif kind == _FAILED:
                raise value
            else:
                return
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        stop.set()
        # Ctrl-C must not wait for a slow page; any other exit waits for the page in flight.
        reader.join(timeout=1.0 if interrupted else None)
        if not reader.is_alive():
            close = getattr(pages, "close", None)
            if close is not None:
                close()


def _align(frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """Give `frame` the columns and dtypes of `like` (e.g. an old snapshot after a refetch)."""
    out = frame.reindex(columns=like.columns)
    for name in like.columns:
        if str(out[name].dtype) != str(like[name].dtype):
            try:
                out[name] = out[name].astype(like[name].dtype)
            except (TypeError, ValueError):
                pass
    return out


class ListSyncer:
    """Syncs one list; built per list by `sync_list`/`sync_site`. Not reused across runs."""

    def __init__(
        self,
        client: Any,
        store: StateStore,
        site_key: str,
        schema: Any,
        *,
        web: Any,
        users: Any,
        now: datetime,
        deadline: float | None,
        progress: ProgressFn | None,
        schema_set: Any | None,
        lookup_rows: Mapping[str, pd.DataFrame] | None,
        page_size: int = PAGE_SIZE,
        lookup_changes: Mapping[str, ListChanges] | None = None,
        lookup_published: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.client = client
        self.store = store
        #: Set by `run`: the list's state after it (see _Outcome.committed).
        self.committed: ListState | None = None
        #: Set by `run`: the rows it changed (see _Outcome.changes).
        self.changes: ListChanges | None = None
        self.site_key = site_key
        self.schema = schema
        self.title: str = schema.title
        self._web = web
        self._users = users
        self.now = now
        self.deadline = deadline
        self.progress = progress
        self.schema_set = schema_set
        self.lookup_rows = dict(lookup_rows or {})
        self.page_size = page_size
        # The list's URL segment as the site reports it (RootFolder/Name): item links are built
        # from it, not from the schema's URL, so a list created by hand elsewhere still links.
        self._list_url: str | None = None
        self.plan = plan_select(schema)
        self.pending_key = f"{self.title}{PENDING_SUFFIX}"
        self._tz: ZoneInfo | None = None
        self._site_url: str | None = None
        self._users_cache: Mapping[int, Any] | None = None
        self._maps: dict[str, dict[int, str]] = {}
        self._sums: dict[tuple[int, str], TitleSums] = {}
        #: Per lookup target synced earlier tonight, the rows its sync changed (`sync_site`).
        self.lookup_changes = dict(lookup_changes or {})
        #: Per lookup target, what its state's commit recorded of its rows (`PUBLISHED_KEY`),
        #: for the snapshot in `lookup_rows` (`sync_site`).
        self.lookup_published = dict(lookup_published or {})

    # ----- site facts, read lazily -------------------------------------------------------

    def _site_facts(self, checkpoint: SyncCheckpoint | None) -> tuple[ZoneInfo, str]:
        if self._tz is not None and self._site_url is not None:
            return self._tz, self._site_url
        extra = dict(checkpoint.extra) if checkpoint is not None else {}
        tz_name = extra.get("time_zone")
        site_url = extra.get("site_url")
        if not tz_name or not site_url:
            web = _resolve(self._web)
            tz = getattr(web, "time_zone", None)
            tz_name = str(tz.key if isinstance(tz, ZoneInfo) else (tz or "Europe/Stockholm"))
            site_url = str(getattr(web, "url", "") or "")
        self._tz = ZoneInfo(str(tz_name))
        self._site_url = str(site_url)
        return self._tz, self._site_url

    def _users_map(self) -> Mapping[int, Any]:
        needs_users = (
            any(
                c.type == "person" and c.name not in self.plan.expanded for c in self.schema.columns
            )
            or not {"Author", "Editor"} <= self.plan.expanded
        )
        if not needs_users:
            return {}
        if self._users_cache is None:
            self._users_cache = _resolve(self._users) or {}
        return self._users_cache

    def _lookup_targets(self) -> dict[str, tuple[pd.DataFrame, str]]:
        """Per lookup column whose target snapshot is at hand: (target rows, title column)."""
        targets: dict[str, tuple[pd.DataFrame, str]] = {}
        for col in self.schema.columns:
            if col.type not in ("lookup", "multi_lookup") or not col.lookup_list:
                continue
            target = self.lookup_rows.get(col.lookup_list)
            if target is None:
                continue
            targets[col.name] = (target, col.lookup_column or "Title")
        return targets

    def _lookup_maps(self, only: Iterable[str] | None = None) -> dict[str, dict[int, str]]:
        """`{target id: title}` per lookup column (only the columns in `only`, when given),
        built once per column: a 100,000-row target's map costs a tenth of a second."""
        targets = self._lookup_targets()
        wanted = targets if only is None else [c for c in only if c in targets]
        for name in wanted:
            if name not in self._maps:
                target, column = targets[name]
                self._maps[name] = lookup_title_map(target, column)
        return {name: self._maps[name] for name in wanted}

    def _resolve_rows(self, rows: pd.DataFrame, ids: set[int], columns: list[str]) -> pd.DataFrame:
        """`rows` with the lookup titles of `columns` re-resolved on the rows of `ids` only."""
        positions = np.flatnonzero(rows["ID"].isin(list(ids)).to_numpy(dtype=bool))
        if not len(positions):
            return rows
        part = rows.iloc[positions]
        maps = {name: self._titles_for(name, part) for name in columns}
        fixed = apply_lookup_titles(part, self.schema, maps)
        out = rows.copy(deep=False)
        for name in columns:
            if name in part.columns and not fixed[name].equals(part[name]):
                values = out[name].to_numpy(dtype=object).copy()
                values[positions] = fixed[name].to_numpy(dtype=object)
                out[name] = pd.Series(values, index=out.index, dtype=object)
        return out

    def _title_sums(self) -> dict[str, TitleSums]:
        """Per lookup column, the digest parts of its `{target id: title}` map
        (`lookup_title_map`; see sync.titles): equal digests, equal maps. One pass per target
        and title column."""
        sums: dict[str, TitleSums] = {}
        lists = {c.name: c.lookup_list for c in self.schema.columns}
        for name, (target, column) in self._lookup_targets().items():
            key = (id(target), column)
            if key not in self._sums:
                published = self.lookup_published.get(str(lists.get(name))) or {}
                known = TitleSums.parse(published.get(title_key(column)))
                if (
                    known is None
                    or known.column != column
                    or known.rows != len(target)
                    or lists.get(name) == self.title
                ):
                    known = title_sums(target, column)
                self._sums[key] = known
            sums[name] = self._sums[key]
        return sums

    def _publish_keys(self) -> list[tuple[str, str | None]]:
        """What the lists looking this one up read of its rows: ("title", column) per title
        column they show, and ("county", county column or None) for their validation."""
        if self.schema_set is None:
            return []
        titles: set[str] = set()
        for other in self.schema_set.lists.values():
            for col in other.columns:
                if col.is_lookup and col.lookup_list == self.title:
                    titles.add(col.lookup_column or "Title")
        if not titles:
            return []
        county = self.schema.county_column
        keys: list[tuple[str, str | None]] = [("title", t) for t in sorted(titles)]
        keys.append(("county", county.name if county is not None else None))
        return keys

    def _published(
        self, state: ListState | None, rows: pd.DataFrame, changes: ListChanges | None
    ) -> dict[str, Any]:
        """What this commit records of its rows for the lists that look it up (`PUBLISHED_KEY`):
        from the base state's record and the rows `changes` names (every row that differs from
        the base state's), or from every row (a full read, no record, a column this list
        re-resolves itself). It names the generation this commit becomes (`published_of`)."""
        keys = self._publish_keys()
        if not keys:
            return {}
        base: Mapping[str, Any] = {}
        if changes is not None and state is not None:
            base = published_of(state)
        own_lookups = {c.name for c in self.schema.columns if c.is_lookup}
        at: np.ndarray | None = None
        generation = (state.checkpoint.generation if state is not None else 0) + 1
        out: dict[str, Any] = {PUBLISHED_GENERATION: generation}
        for kind, column in keys:
            if column is not None and column not in rows.columns:
                column = None if kind == "county" else column
            key = title_key(str(column)) if kind == "title" else county_key(column)

            def sums(
                frame: pd.DataFrame, positions: Any, column: str | None = column, kind: str = kind
            ) -> TitleSums:
                if kind == "title":
                    return title_sums(frame, str(column), positions)
                return county_sums(frame, column, positions)

            known = TitleSums.parse(base.get(key))
            if known is not None and changes is not None and column not in own_lookups:
                if at is None:
                    at = positions_of(rows, changes.ids)
                before = changes.before
                if len(before) and column is not None and column not in before.columns:
                    known = None
                else:
                    known = known.minus(sums(before, None)).plus(sums(rows, at))
            else:
                known = None
            if known is None:
                known = sums(rows, None)
            out[key] = known.digest()
        return out

    def _titles_for(self, name: str, part: pd.DataFrame) -> dict[int, str]:
        """The lookup map of column `name`, restricted to the target ids `part` points at:
        `apply_lookup_titles` on `part` gives with it what it gives with the whole map."""
        target, column = self._lookup_targets()[name]
        ids = _referenced_ids(part[f"{name}Id"]) if f"{name}Id" in part.columns else set()
        if ids is None:
            return self._lookup_maps([name])[name]
        return titles_at(target, column, ids)

    def _moved_titles(self, name: str, changes: ListChanges) -> tuple[str, set[int]] | None:
        """For lookup column `name` whose target's sync tonight made `changes`: the digest of
        the map the night started from, and the target ids whose title moved since."""
        target, column = self._lookup_targets()[name]
        before = changes.before
        if len(before) and column not in before.columns:
            return None
        now_at = positions_of(target, changes.ids)
        now_sums = title_sums(target, column, now_at)
        base = self._title_sums()[name].minus(now_sums).plus(title_sums(before, column))
        missing = object()
        was: dict[int, Any] = titles_at(before, column, changes.ids) if len(before) else {}
        now = titles_at(target, column, changes.ids)
        moved = {i for i in changes.ids if was.get(i, missing) != now.get(i, missing)}
        return base.digest(), moved

    def _scoped_titles(
        self,
        rows: pd.DataFrame,
        stored: Mapping[str, Any],
        titles: Mapping[str, str],
        touched: set[int] | None,
    ) -> dict[str, np.ndarray]:
        """Per lookup column whose stored rows were resolved against the map this night
        started from (its stored digest is that map's; the target was synced tonight and its
        `ListChanges` say which of its rows moved), the positions of the rows to re-resolve:
        those pointing at a target id whose title moved tonight, and the touched rows. Every
        other row's titles are tonight's already: they were resolved against the starting map
        (a commit stores the digest of the map its rows hold), and that map gives tonight's
        titles for every id but the moved ones."""
        if touched is None or not len(rows) or not SCOPED_TITLES:
            return {}
        out: dict[str, np.ndarray] = {}
        touched_at: np.ndarray | None = None
        for col in self.schema.columns:
            name = col.name
            if name not in titles or stored.get(name) in (None, titles[name]):
                continue
            if col.type not in ("lookup", "multi_lookup") or col.lookup_list == self.title:
                continue
            changes = self.lookup_changes.get(col.lookup_list)
            if changes is None or name not in rows.columns or f"{name}Id" not in rows.columns:
                continue
            if rows[name].dtype != object:
                continue
            moved = self._moved_titles(name, changes)
            if moved is None or stored.get(name) != moved[0]:
                continue
            pointing = rows_pointing_at(rows, name, col.type, moved[1])
            if pointing is None:
                continue
            if touched_at is None:
                touched_at = positions_of(rows, touched)
            out[name] = np.union1d(pointing, touched_at).astype(np.intp)
        return out

    def _normalize(
        self, items: Sequence[Mapping[str, Any]], checkpoint: SyncCheckpoint | None
    ) -> tuple[pd.DataFrame, list[DataQualityIssue]]:
        tz, site_url = self._site_facts(checkpoint)
        if self._list_url is None and checkpoint is not None:
            self._list_url = str(checkpoint.extra.get("list_url") or "") or None
        return normalize_page(
            items,
            self.schema,
            tz=tz,
            site_url=site_url,
            list_url=self._list_url or self.schema.url,
            users=self._users_map() if items else {},
            lookup_titles=self._lookup_maps() if items else {},
        )

    def _empty(self) -> pd.DataFrame:
        tz = self._tz or ZoneInfo("UTC")
        return normalize_page([], self.schema, tz=tz, site_url="", list_url=self.schema.url)[0]

    def _out_of_time(self, last_page_seconds: float) -> bool:
        if self.deadline is None:
            return False
        # Stop when the next page would probably not finish before the deadline.
        return time.monotonic() + last_page_seconds > self.deadline

    # ----- entry -------------------------------------------------------------------------

    def run(self, *, full: bool) -> tuple[ListSyncResult, pd.DataFrame]:
        started = time.monotonic()
        before = _StatsMark.of(self.client)
        outcome = self._decide_and_sync(full=full)
        self.committed = None if outcome.continues_next_run else outcome.committed
        self.changes = None if outcome.continues_next_run else outcome.changes
        used = _StatsMark.of(self.client).since(before)
        rows = outcome.rows
        unchanged = max(0, len(rows) - outcome.added - outcome.updated)
        result = ListSyncResult(
            list=self.title,
            mode=outcome.mode,
            added=outcome.added,
            updated=outcome.updated,
            deleted=outcome.deleted,
            unchanged=unchanged if not outcome.continues_next_run else 0,
            rows=len(rows),
            requests=used.requests,
            retries=used.retries,
            wait_seconds=used.wait_seconds,
            bytes_received=used.bytes_received,
            duration_seconds=round(time.monotonic() - started, 3),
            quality_issues=outcome.quality_issues,
            item_count_mismatch=outcome.item_count_mismatch,
            continues_next_run=outcome.continues_next_run,
            notes=tuple(en for _, en in outcome.notes),
            notes_sv=tuple(sv for sv, _ in outcome.notes),
        )
        logger.info(
            "Synced %s (%s): %d rows, +%d ~%d -%d, %d requests, %d retries%s",
            self.title,
            result.mode,
            result.rows,
            result.added,
            result.updated,
            result.deleted,
            result.requests,
            result.retries,
            "; continues next run" if result.continues_next_run else "",
        )
        return result, rows

    def _decide_and_sync(self, *, full: bool) -> _Outcome:
        state = self.store.read_list_state(self.site_key, self.title)
        version = str(getattr(self.schema_set, "version", "") or "")
        pending = self.store.read_list_state(self.site_key, self.pending_key)
        base_generation = state.checkpoint.generation if state is not None else 0
        if (
            pending is not None
            and pending.checkpoint.resume_after_id is not None
            and pending.checkpoint.extra.get("base_generation") == base_generation
            and pending.checkpoint.schema_version == version
            and not full
        ):
            return self._full(_counting_only(state), pending=pending, mode="resumed")

        notes: list[tuple[str, str]] = []
        if state is None or full:
            mode = "full"
        elif version and state.checkpoint.schema_version != version:
            mode = "full"
            notes.append(
                (
                    "listschemat har ändrats; fullständig läsning",
                    "the list schema changed; full read",
                )
            )
        elif not state.checkpoint.change_token:
            mode = "reread"
            notes.append(
                (
                    "ändringstoken saknas; fullständig omläsning",
                    "change token missing; full re-read",
                )
            )
        else:
            try:
                return self._incremental(state)
            except ChangeTokenExpiredError:
                logger.info("Change token of %s expired; re-reading the whole list", self.title)
                mode = "reread"
                notes.append(
                    (
                        "ändringstoken har gått ut; fullständig omläsning",
                        "change token expired; full re-read",
                    )
                )
        state = _counting_only(state)
        outcome = self._full(state, pending=pending, mode=mode)
        outcome.notes[:0] = notes
        return outcome

    # ----- full / resumed / reread --------------------------------------------------------

    def _full(self, state: ListState | None, *, pending: ListState | None, mode: str) -> _Outcome:
        resuming = mode == "resumed" and pending is not None
        checkpoint_for_facts = state.checkpoint if state is not None else None
        if resuming:
            assert pending is not None
            token = pending.checkpoint.change_token
            after_id = int(pending.checkpoint.resume_after_id or 0)
            parts: list[pd.DataFrame] = [pending.rows]
            issues: list[DataQualityIssue] = []
            kept_quality = pending.quality
            started_iso = pending.checkpoint.extra.get("started")
            run_mode = str(pending.checkpoint.extra.get("mode") or "full")
            checkpoint_for_facts = pending.checkpoint
        else:
            token = None
            after_id = 0
            parts = []
            issues = []
            kept_quality = None
            started_iso = self.now.isoformat()
            run_mode = mode
        # The list's facts and (for a new read) its change token come in one request, before
        # the first page: anything changed while the pages are read is replayed next run.
        info = self.client.get_list(self.title)
        if not resuming:
            token = getattr(info, "change_token", None) or self.client.get_current_change_token(
                self.title
            )
        self._list_url = str(getattr(info, "url", "") or "") or None
        item_count = int(getattr(info, "item_count", 0) or 0)
        list_id = getattr(info, "id", None)
        tz, site_url = self._site_facts(checkpoint_for_facts)

        read = sum(len(p) for p in parts)
        pages = 0
        stopped = False
        last_id = after_id
        if self.progress is not None:  # the list starts now (its bar, with the total)
            self.progress(self.title, read, item_count or None)
        if item_count > 0 or resuming:
            # Read the site users (when needed at all) before the read-ahead thread owns the
            # client for the rest of the read.
            self._users_map()
            page_started = time.monotonic()
            last_page_seconds = 0.0
            reader = _read_ahead(
                self.client.iter_item_pages(
                    self.title,
                    select=list(self.plan.select),
                    expand=list(self.plan.expand),
                    after_id=after_id,
                    page_size=self.page_size,
                )
            )
            try:
                shared: dict[str, dict[str, str]] = {}
                for page in reader:
                    items = _items_of(page)
                    frame, page_issues = self._normalize(items, checkpoint_for_facts)
                    _share_text(frame, shared)
                    parts.append(frame)
                    issues.extend(page_issues)
                    read += len(frame)
                    pages += 1
                    if len(frame):
                        last_id = max(last_id, int(frame["ID"].max()))
                    if self.progress is not None:
                        self.progress(self.title, read, item_count or None)
                    crash_point("sync-page")
                    now_mono = time.monotonic()
                    last_page_seconds = now_mono - page_started
                    page_started = now_mono
                    full_page = len(items) >= self.page_size
                    del items, page
                    if full_page and self._out_of_time(last_page_seconds):
                        stopped = True
                        break
            finally:
                reader.close()

        empty = self._empty()
        rows = _concat(parts, empty)
        parts.clear()  # the pages' frames are in `rows` now; do not hold them twice
        normalize_quality = _quality_frame(issues, "normalize")
        if kept_quality is not None and len(kept_quality):
            normalize_quality = pd.concat([kept_quality, normalize_quality], ignore_index=True)

        if stopped:
            cp = SyncCheckpoint(
                change_token=token,
                last_full_sync=None,
                last_sync=self.now,
                item_count=len(rows),
                schema_version=str(getattr(self.schema_set, "version", "") or ""),
                list_id=list_id,
                resume_after_id=last_id,
                extra={
                    "base_generation": state.checkpoint.generation if state is not None else 0,
                    "mode": run_mode,
                    "started": started_iso,
                    "time_zone": tz.key,
                    "site_url": site_url,
                    "list_url": self._list_url or self.schema.url,
                },
            )
            self.store.commit_list_state(
                self.site_key,
                self.pending_key,
                rows,
                normalize_quality,
                cp,
                expected_etag=pending.etag if pending is not None else None,
            )
            logger.info(
                "Read of %s stopped at ID %d by the deadline; continues next run",
                self.title,
                last_id,
            )
            outcome = _Outcome(
                mode=mode,
                rows=rows,
                continues_next_run=True,
                notes=[
                    (
                        f"avbröts vid ID {last_id} av tidsgränsen; fortsätter nästa körning",
                        f"stopped at ID {last_id} by the time budget; continues next run",
                    )
                ],
            )
            # What the previous complete snapshot still says is what readers see.
            outcome.added = 0
            return outcome

        old = state.rows if state is not None else empty
        old_ids = _ids(old)
        new_ids = _ids(rows)
        outcome = _Outcome(mode=mode, rows=rows)
        if state is None:
            outcome.added = len(new_ids)
        else:
            outcome.added = len(new_ids - old_ids)
            outcome.updated = len(new_ids & old_ids)
            outcome.deleted = len(old_ids - new_ids)
            if outcome.updated:
                outcome.updated = _count_changed(old, rows, new_ids & old_ids)
        if not resuming and item_count != len(rows):
            outcome.item_count_mismatch = (item_count, len(rows))
            logger.warning(
                "List %s: ItemCount %d but %d rows read", self.title, item_count, len(rows)
            )
        if resuming:
            outcome.notes.append(
                (
                    "läsningen från förra körningen slutfördes",
                    "the read started by the previous run was completed",
                )
            )
        self._commit(
            state,
            rows,
            normalize_quality,
            token=token,
            list_id=list_id,
            full=True,
            outcome=outcome,
        )
        return outcome

    # ----- incremental --------------------------------------------------------------------

    def _incremental(self, state: ListState) -> _Outcome:
        cp = state.checkpoint
        assert cp.change_token
        changes = self.client.get_changes(self.title, cp.change_token)
        last_kind: dict[int, str] = {}
        for ch in changes:
            item_id = getattr(ch, "item_id", None)
            if item_id is None:
                continue
            last_kind[int(item_id)] = str(getattr(ch, "kind", "update"))
        token = (
            str(getattr(changes[-1], "token", "") or cp.change_token)
            if changes
            else cp.change_token
        )

        old = state.rows
        to_fetch = sorted(i for i, k in last_kind.items() if k != "delete")
        if self.progress is not None:  # an incremental run shows progress too: its changes
            self.progress(self.title, 0, len(to_fetch))
        fetched = self._fetch_changed(to_fetch, changes, len(old))
        if self.progress is not None:
            self.progress(self.title, len(fetched), len(to_fetch))
        frame, issues = self._normalize(fetched, cp)
        fetched_ids = _ids(frame)
        touched = set(last_kind)
        gone = touched - fetched_ids

        # The touched rows as they were, taken before the merge takes the old snapshot apart
        # (found by position: the old snapshot is in ID order; no pass building its id set).
        before = old.iloc[positions_of(old, touched)] if touched and len(old) else old.iloc[0:0]
        old_ids = _ids(before)  # the touched ids the old snapshot holds
        if len(frame) and len(old):
            frame = _align(frame, old)
        # Counted against the old versions before the merge takes the old snapshot apart.
        updated = _count_changed(before, frame, fetched_ids & old_ids)
        if len(old) and touched:
            rows = _merge(old, touched, frame)
        else:
            # Untouched rows are kept as they are (no copy of a large snapshot when nothing
            # changed).
            rows = _concat([old, frame], old if len(old) == 0 else old.iloc[0:0])
        outcome = _Outcome(mode="incremental", rows=rows)
        outcome.changes = ListChanges(cp.generation, state.etag, frozenset(touched), before)
        outcome.added = len(fetched_ids - old_ids)
        # A refetched row whose version did not move (a restore, a permissions change) is not
        # counted as updated.
        outcome.updated = updated
        outcome.deleted = len(gone & old_ids)

        old_quality = state.quality
        if len(old_quality) and SOURCE_COLUMN in old_quality.columns:
            keep_q = old_quality[
                (old_quality[SOURCE_COLUMN] == "normalize")
                & ~old_quality["item_id"].isin(list(touched))
            ]
        else:
            keep_q = old_quality.iloc[0:0] if len(old_quality) else None
        normalize_quality = _quality_frame(issues, "normalize")
        if keep_q is not None and len(keep_q):
            normalize_quality = pd.concat([keep_q, normalize_quality], ignore_index=True)

        self._commit(
            state,
            rows,
            normalize_quality,
            token=token,
            list_id=cp.list_id,
            full=False,
            outcome=outcome,
            skip_if_unchanged=not changes,
            touched=touched,
        )
        return outcome

    def _fetch_by_modified(
        self,
        wanted: set[int],
        reads: Sequence[Callable[[], Iterable[Any]]],
        select: list[str],
        expand: list[str],
    ) -> list[Mapping[str, Any]]:
        """The items of `wanted` from `reads` (paged GETs filtered on `Modified`: one open
        range, or windows of `_modified_windows`), then by id the ids none returned: restores
        and system updates keep an old `Modified`, items changed after the log was read have a
        later one, and a read the server refuses (threshold) returns nothing. Items a read
        returns that are not wanted are left for the next run, which sees their change (taking
        them now would count them twice)."""
        found: dict[int, Mapping[str, Any]] = {}
        for read in reads:
            try:
                for page in read():
                    for item in _items_of(page):
                        item_id = item.get("ID", item.get("Id"))
                        if item_id is not None and int(item_id) in wanted:
                            found[int(item_id)] = item
            except ThresholdError:
                logger.info("A Modified filter on %s exceeds the threshold; by id", self.title)
        missing = sorted(wanted - set(found))
        if missing:
            for item in self.client.get_items_by_ids(
                self.title, missing, select=select, expand=expand
            ):
                found[int(item.get("ID", item.get("Id")))] = item
        return [found[i] for i in sorted(found)]

    def _fetch_by_reading_all(self, wanted: set[int]) -> list[Mapping[str, Any]]:
        found: list[Mapping[str, Any]] = []
        for page in self.client.iter_item_pages(
            self.title,
            select=list(self.plan.select),
            expand=list(self.plan.expand),
            after_id=0,
            page_size=self.page_size,
        ):
            for item in _items_of(page):
                item_id = item.get("ID", item.get("Id"))
                if item_id is not None and int(item_id) in wanted:
                    found.append(item)
        return found

    def _fetch_changed(
        self, ids: list[int], changes: Sequence[Any], known_rows: int
    ) -> list[Mapping[str, Any]]:
        """The current items for `ids` in as few requests as the threshold allows.

        Few ids: one `$batch` by id. Many: the items modified since the oldest of these changes
        (`Modified` is indexed by provisioning), one GET per 5,000 — cheaper than a `$batch` of
        ids, whose sub-requests SharePoint meters one by one. Ids that query does not return
        (restores and system updates keep their old `Modified`, or the item is gone) are then
        fetched by id; a threshold error (more than 5,000 matches on a big list) falls back to
        fetching by id what it had not returned.
        """
        if not ids:
            return []
        select, expand = list(self.plan.select), list(self.plan.expand)
        wanted = set(ids)
        times: list[datetime] = [
            ch.time
            for ch in changes
            if getattr(ch, "item_id", None) in wanted
            and getattr(ch, "kind", "") != "delete"
            and isinstance(getattr(ch, "time", None), datetime)
        ]
        by_modified = getattr(self.client, "iter_items_modified_since", None)
        if len(ids) > PAGE_SIZE and known_rows > PAGE_SIZE:
            # A `Modified ≥` filter matching more than 5,000 items on a list above the
            # threshold is refused. The change log dates every change, so the range is cut
            # into windows of at most 5,000 items each (`Modified ge a and Modified lt b`),
            # one GET per window: ceil(k/5000) requests.
            windows = _modified_windows(changes, wanted, PAGE_SIZE)
            between = getattr(self.client, "iter_items_modified_between", None)
            if windows is not None and between is not None:
                reads = [
                    functools.partial(
                        between, self.title, a, b, select=select, expand=expand, page_size=PAGE_SIZE
                    )
                    for a, b in windows
                ]
                return self._fetch_by_modified(wanted, reads, select, expand)
            # No windows (one second holds more than 5,000 changes): ids by the 50 in a
            # `$batch` cost ceil(k/50) metered sub-requests; reading the whole list by ID
            # pages costs ceil(N/5000): take that when it is cheaper.
            if math.ceil(known_rows / PAGE_SIZE) < math.ceil(len(ids) / IDS_PER_GET):
                return self._fetch_by_reading_all(wanted)
            return list(self.client.get_items_by_ids(self.title, ids, select=select, expand=expand))
        if len(ids) <= BY_ID_LIMIT or not times or by_modified is None:
            return list(self.client.get_items_by_ids(self.title, ids, select=select, expand=expand))
        since = min(times) - timedelta(seconds=1)
        read = functools.partial(by_modified, self.title, since, select=select, expand=expand)
        return self._fetch_by_modified(wanted, [read], select, expand)

    # ----- commit -------------------------------------------------------------------------

    def _carried_validation(
        self,
        state: ListState | None,
        touched: set[int] | None,
        inputs: str,
        retitled: set[str],
    ) -> pd.DataFrame | None:
        """The stored "validate" records of the rows not touched tonight, when they are
        exactly what validating those rows again would give; None when every row must be
        validated: a full read, no stored record of what the last validation read from other
        lists (state from before this was recorded) or a different one, a schema set without a
        version, or a rule naming a lookup column whose titles were re-resolved."""
        if touched is None or state is None or self.schema_set is None:
            return None
        if not str(getattr(self.schema_set, "version", "") or ""):
            return None
        if state.checkpoint.extra.get(VALIDATION_INPUTS) != inputs:
            return None
        if retitled & rule_columns(self.schema):
            return None
        quality = state.quality
        if not len(quality):
            return _quality_frame([], "validate")
        if SOURCE_COLUMN not in quality.columns:
            return None
        keep = (quality[SOURCE_COLUMN] == "validate").to_numpy(dtype=bool)
        if touched:
            keep = keep & ~quality["item_id"].isin(list(touched)).to_numpy(dtype=bool)
        return quality[keep].reset_index(drop=True)

    def _commit(
        self,
        state: ListState | None,
        rows: pd.DataFrame,
        normalize_quality: pd.DataFrame,
        *,
        token: str | None,
        list_id: str | None,
        full: bool,
        outcome: _Outcome,
        skip_if_unchanged: bool = False,
        touched: set[int] | None = None,
    ) -> None:
        """Commit `rows` with their quality records. `touched` (incremental runs): the ids
        fetched or deleted tonight; the other rows may keep their stored validation records."""
        titles = {name: sums.digest() for name, sums in self._title_sums().items()}
        stored_titles = (
            dict(state.checkpoint.extra.get(LOOKUP_TITLES) or {})
            if touched is not None and state is not None
            else {}
        )
        # A lookup column whose target titles are what the stored rows were resolved against
        # (same digest) already holds current titles on every untouched row, and the touched
        # rows were resolved tonight: only the other columns are re-resolved. A column whose
        # stored digest is that of the map this night started from (its target synced tonight)
        # is re-resolved on the rows pointing at a target id whose title moved tonight, and on
        # the touched rows (`_scoped_titles`); any other column on every row.
        scoped = self._scoped_titles(rows, stored_titles, titles, touched)
        maps = self._lookup_maps(
            [c for c in titles if stored_titles.get(c) != titles[c] and c not in scoped]
        )
        settled = [c for c in titles if c not in maps and c not in scoped]
        if settled and touched and len(rows):
            # The rows fetched tonight got their titles while normalizing, where an id the
            # target snapshot lacks keeps SharePoint's own title; re-resolving every row
            # would have replaced it, so they are re-resolved here as before.
            rows = self._resolve_rows(rows, touched, settled)
        retitled: set[str] = set()
        #: Per re-resolved lookup column, the rows whose title moved (incremental runs only).
        retitled_rows: dict[str, np.ndarray] = {}
        if (maps or scoped) and len(rows):
            resolved = apply_lookup_titles(rows, self.schema, maps) if maps else rows
            retitled = {c for c in maps if c in rows.columns and not resolved[c].equals(rows[c])}
            if touched is not None and retitled:
                retitled_rows = {c: _changed_cells(rows[c], resolved[c]) for c in retitled}
            if scoped:
                # Exactly what resolving the whole column gives: the other rows' titles are
                # those of tonight's map already (see `_scoped_titles`).
                resolved = resolved.copy(deep=False)
                for name, positions in scoped.items():
                    part = rows.iloc[positions]
                    maps_part = {name: self._titles_for(name, part)}
                    fixed = apply_lookup_titles(part, self.schema, maps_part)[name]
                    if fixed.equals(part[name]):
                        continue
                    retitled.add(name)
                    values = rows[name].to_numpy(dtype=object).copy()
                    values[positions] = fixed.to_numpy(dtype=object)
                    resolved[name] = pd.Series(values, index=rows.index, dtype=object)
                    if touched is not None:
                        moved_here = np.zeros(len(rows), dtype=bool)
                        moved_here[positions] = _changed_cells(part[name], fixed)
                        retitled_rows[name] = moved_here
            if touched is not None and retitled:
                if outcome.changes is not None:  # rows whose titles move are changed rows too
                    moved = np.logical_or.reduce(list(retitled_rows.values()))
                    outcome.changes = outcome.changes.with_rows(rows[moved])
                # Titles re-resolved on the rows fetched tonight do not matter (those rows are
                # validated again): only the other rows' titles decide whether records carry.
                untouched = np.ones(len(rows), dtype=bool)
                untouched[positions_of(rows, touched)] = False
                retitled = {c for c in retitled if bool((retitled_rows[c] & untouched).any())}
            rows = resolved
        titles_changed = bool(retitled)
        outcome.rows = rows
        if (
            skip_if_unchanged
            and state is not None
            and not titles_changed
            and (not self.lookup_rows or not self.schema_set)
        ):
            # Nothing changed on SharePoint and no lookup target is involved: the rows and so
            # the validation result are what is committed; leave the state as it is.
            outcome.quality_issues = len(state.quality)
            outcome.committed = state
            return

        inputs: str | None = None
        if self.schema_set is not None:
            # A self-lookup is checked against tonight's rows, not the snapshot stored before
            # this sync (which `lookup_rows` holds when the list is its own lookup target): the
            # digest below reads tonight's rows too, so carried records never lag a night.
            lookups = {**self.lookup_rows, self.title: rows}
            inputs = cross_list_inputs(
                self.schema, rows, self.schema_set, lookups, self.lookup_published
            )
            carried = self._carried_validation(state, touched, inputs, retitled)
            if carried is not None:
                # Only the touched rows are validated; the others keep their records (see
                # "What a validation depends on" in sync.quality for why that is exact).
                subset = rows.iloc[positions_of(rows, touched or ())].reset_index(drop=True)
                fresh = _quality_frame(
                    validate_rows(self.schema, subset, self.schema_set, lookup_rows=lookups),
                    "validate",
                )
                validated = _merge_by_item(carried, fresh)
            else:
                validated = _quality_frame(
                    validate_rows(self.schema, rows, self.schema_set, lookup_rows=lookups),
                    "validate",
                )
        else:
            validated = _quality_frame([], "validate")
        quality = pd.concat([normalize_quality, validated], ignore_index=True)
        outcome.quality_issues = len(quality)

        if (
            skip_if_unchanged
            and state is not None
            and not titles_changed
            and _same_quality(state.quality, quality)
        ):
            # Nothing changed on SharePoint or in what we derive: leave the committed state as
            # it is (the rows are identical; only last_sync would move).
            outcome.committed = state
            return

        tz, site_url = self._site_facts(state.checkpoint if state is not None else None)
        prev = state.checkpoint if state is not None else SyncCheckpoint()
        extra = {
            k: v
            for k, v in dict(prev.extra).items()
            if k not in ("base_generation", "mode", "started")
        }
        extra.update({"time_zone": tz.key, "site_url": site_url})
        extra.pop(VALIDATION_INPUTS, None)
        extra.pop(LOOKUP_TITLES, None)
        extra.pop(PUBLISHED_KEY, None)
        published = self._published(state, rows, outcome.changes if touched is not None else None)
        if published:
            extra[PUBLISHED_KEY] = published
        if titles:
            extra[LOOKUP_TITLES] = titles
        if inputs is not None:
            extra[VALIDATION_INPUTS] = inputs
        if self._list_url:
            extra["list_url"] = self._list_url
        checkpoint = replace(
            prev,
            change_token=token,
            last_full_sync=self.now if full else prev.last_full_sync,
            last_sync=self.now,
            item_count=len(rows),
            schema_version=str(getattr(self.schema_set, "version", "") or prev.schema_version),
            list_id=list_id or prev.list_id,
            resume_after_id=None,
            extra=extra,
        )
        crash_point("sync-before-commit")
        changes = None
        if touched is not None and state is not None and state.stored is not None:
            # Only the touched rows (and re-resolved titles) are written: a delta over the
            # stored base file, or a full file taking the other rows' stored values from it
            # (sp_sync.state.delta; a later read returns the same frame either way).
            changes = Changes(state.stored, frozenset(touched), retitled_rows, state.rows_file)
        etag = self.store.commit_list_state(
            self.site_key,
            self.title,
            rows,
            quality,
            checkpoint,
            expected_etag=state.etag if state is not None else None,
            changes=changes,
        )
        # What a read of the store now returns: the commit was conditional on `state`'s
        # manifest, so the store numbered it the generation after that one (build_manifest),
        # and the snapshot round-trips exactly (sp_sync.state.frames).
        generation = (state.checkpoint.generation if state is not None else 0) + 1
        outcome.committed = ListState(
            checkpoint=replace(checkpoint, generation=generation),
            rows=rows,
            quality=quality,
            etag=etag,
        )


def _referenced_ids(cells: pd.Series) -> set[int] | None:
    """The target ids lookup cells point at (`int(id)`, as `apply_lookup_titles` reads them);
    None for a cell of another shape."""
    ids: set[int] = set()
    try:
        for value in cells.tolist():
            if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
                continue  # a blank single lookup (an Int64 column's <NA>): no id
            if isinstance(value, list):
                ids.update(int(i) for i in value)
            elif isinstance(value, int | float | np.integer):
                ids.add(int(value))
            else:
                return None
    except (TypeError, ValueError, OverflowError):
        return None
    return ids


def _same_cell(before: Any, after: Any) -> bool:
    """Equal value of the same type (list elements too): such a cell is stored the same."""
    if before is after:
        return True
    if type(before) is not type(after):
        return False
    if isinstance(before, list):
        return bool(before == after) and list(map(type, before)) == list(map(type, after))
    return bool(before == after)


def _changed_cells(before: pd.Series, after: pd.Series) -> np.ndarray:
    """Where `after` differs from `before` (positions), by `_same_cell`."""
    pairs = zip(before.to_numpy(dtype=object), after.to_numpy(dtype=object), strict=True)
    return np.array([not _same_cell(a, b) for a, b in pairs], dtype=bool)


def _modified_windows(
    changes: Sequence[Any], wanted: set[int], limit: int
) -> list[tuple[datetime, datetime]] | None:
    """`[since, until)` ranges of `Modified` that together hold the last change of every id in
    `wanted`, each holding at most `limit` of them, cut only between whole seconds (SharePoint
    stores `Modified` to the second). An item's `Modified` is the time of its last change, so
    a window matches about as many items as it holds ids; an id whose item does not match (a
    restore, a system update, a later change) is fetched by id afterwards. None when a change
    has no time or a single second holds more than `limit` changes (a bulk import)."""
    last: dict[int, datetime] = {}
    for ch in changes:
        item_id = getattr(ch, "item_id", None)
        if item_id is None or int(item_id) not in wanted or getattr(ch, "kind", "") == "delete":
            continue
        when = getattr(ch, "time", None)
        if not isinstance(when, datetime) or when.tzinfo is None:
            return None
        last[int(item_id)] = when.replace(microsecond=0)
    if len(last) < len(wanted):
        return None
    per_second: dict[datetime, int] = {}
    for when in last.values():
        per_second[when] = per_second.get(when, 0) + 1
    seconds = sorted(per_second)
    windows: list[tuple[datetime, datetime]] = []
    start, held = seconds[0], 0
    for second in seconds:
        count = per_second[second]
        if count > limit:
            return None
        if held + count > limit:
            windows.append((start, second))
            start, held = second, 0
        held += count
    windows.append((start, seconds[-1] + timedelta(seconds=1)))
    return windows


def _merge_by_item(carried: pd.DataFrame, fresh: pd.DataFrame) -> pd.DataFrame:
    """Two runs of validation records, each in `validate_rows` order (by item id, then per
    item as the checks ran), for disjoint sets of items: one run in that same order. A stable
    sort by item id keeps each item's records together and in their own order."""
    if not len(fresh):
        return carried.reset_index(drop=True)
    if not len(carried):
        return fresh
    merged = pd.concat([carried, fresh], ignore_index=True)
    order = np.argsort(merged["item_id"].to_numpy(), kind="stable")
    return merged.take(order).reset_index(drop=True)


#: What a full read needs of the previous snapshot: ids and versions, to count adds, updates
#: and deletes.
_COUNTING_COLUMNS = ("ID", "_version", "Modified")


def _counting_only(state: ListState | None) -> ListState | None:
    """`state` with only the columns a full read compares against: the previous snapshot of a
    large list would otherwise stay in memory beside the one being read (twice the list)."""
    if state is None:
        return None
    keep = [c for c in _COUNTING_COLUMNS if c in state.rows.columns]
    # A full read writes every row anyway: the previous rows file is not needed either.
    return replace(state, rows=state.rows[keep], rows_file=None, stored=None)


def _same_quality(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    if len(a) != len(b):
        return False
    if not len(a):
        return True
    cols = [c for c in ("item_id", "column", "problem_en", "value") if c in a.columns]
    try:
        return bool(
            a[cols]
            .reset_index(drop=True)
            .astype(str)
            .equals(b[cols].reset_index(drop=True).astype(str))
        )
    except KeyError:
        return False


def _count_changed(old: pd.DataFrame, new: pd.DataFrame, common: set[int]) -> int:
    """Rows present before and after whose SharePoint version or Modified time moved."""
    if not common:
        return 0
    keys = [c for c in ("_version", "Modified") if c in old.columns and c in new.columns]
    if not keys:
        return len(common)
    a = old[old["ID"].isin(list(common))].set_index("ID")[keys].sort_index()
    b = new[new["ID"].isin(list(common))].set_index("ID")[keys].sort_index()
    diff = (a != b).any(axis=1)
    return int(diff.sum())


# --------------------------------------------------------------------------- public API


def sync_list(
    client: Any,
    store: StateStore,
    site_key: str,
    schema: Any,
    *,
    web: Any,
    users: Any = None,
    full: bool = False,
    deadline: float | None = None,
    now: datetime,
    progress: ProgressFn | None = None,
    schema_set: Any | None = None,
    lookup_rows: Mapping[str, pd.DataFrame] | None = None,
    page_size: int = PAGE_SIZE,
) -> ListSyncResult:
    """Bring one list's snapshot up to date and return what happened.

    `web` (WebInfo) and `users` (site users map) may be given as zero-argument callables; they
    are only called when needed (an incremental run with nothing changed reads neither).
    `deadline` is a `time.monotonic()` value: a full read stops at a page boundary before it,
    keeps its progress and reports `continues_next_run`. The caller holds the run lock
    (`sync_site` does). `schema_set` enables validation; `lookup_rows` maps target list titles
    to their snapshots for lookup titles and lookup validation.
    """
    syncer = ListSyncer(
        client,
        store,
        site_key,
        schema,
        web=web,
        users=users,
        now=now,
        deadline=deadline,
        progress=progress,
        schema_set=schema_set,
        lookup_rows=lookup_rows,
        page_size=page_size,
    )
    return syncer.run(full=full)[0]


class SiteNotFoundError(NotFoundError):
    """The site itself answered 404 (a mistyped or deleted site): no list can be synced.

    There is no separate check before a sync (it would cost requests every night): a list's
    first request answering 404 is the check, and only then is the site asked whether it
    exists at all."""


def _site_is_missing(client: Any, exc: NotFoundError) -> bool:
    """On the error path of a 404: does the site itself exist? (one request, error path only)."""
    get_web = getattr(client, "get_web", None)
    if get_web is None:
        return False
    try:
        get_web()
    except NotFoundError as web_exc:
        return web_exc.status == 404
    except SpSyncError:
        return False
    return False


@dataclass(frozen=True)
class SiteSyncResult:
    """Per-list results of `sync_site` plus the errors of lists that failed."""

    lists: tuple[ListSyncResult, ...]
    errors: tuple[Mapping[str, Any], ...] = ()
    #: Each synced list's state as the store holds it after this sync (the frames the sync
    #: had in hand): the run's rollup uses them instead of reading every snapshot back.
    states: Mapping[str, ListState] = field(default_factory=dict, compare=False, repr=False)
    #: Per list synced incrementally, the rows it changed (the rollup rebuilds what shows them).
    changes: Mapping[str, ListChanges] = field(default_factory=dict, compare=False, repr=False)


class _Lazy:
    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn
        self._done = False
        self._value: Any = None

    def __call__(self) -> Any:
        if not self._done:
            self._value = self._fn()
            self._done = True
        return self._value


def sync_site(
    client: SharePointSource,
    store: StateStore,
    site_key: str,
    schema_set: Any,
    *,
    lists: Sequence[str] | None = None,
    full: bool = False,
    deadline: float | None = None,
    now: datetime,
    progress: ProgressFn | None = None,
    web: Any = None,
    users: Any = None,
    lock_ttl_seconds: float = 60,
    page_size: int = PAGE_SIZE,
) -> SiteSyncResult:
    """Sync every list of `schema_set` (or only `lists`) in dependency order under the store's
    run lock. A second concurrent run gets RunLockedError and changes nothing.

    Lookup titles are resolved from the target lists' snapshots (synced earlier in the same
    run, or read from the store when the target is not part of this run). A list that fails
    is reported in `errors` and the others continue; once the deadline has passed, the lists
    not yet started are reported as continuing next run.
    """
    web_p = web if web is not None else _Lazy(client.get_web)
    users_p = users if users is not None else _Lazy(client.get_site_users)
    wanted = set(lists) if lists else None
    results: list[ListSyncResult] = []
    errors: list[Mapping[str, Any]] = []
    snapshots: dict[str, pd.DataFrame] = {}
    states: dict[str, ListState] = {}
    changes: dict[str, ListChanges] = {}
    #: Per list in `snapshots`, what its state's commit recorded for the lists looking it up.
    published: dict[str, Mapping[str, Any]] = {}
    stop: SpSyncError | None = None

    with store.lock(f"sync-{site_key}", ttl_seconds=lock_ttl_seconds) as lock:
        for schema in schema_set.lists.values():
            if wanted is not None and schema.title not in wanted:
                continue
            lock.check()
            targets = {c.lookup_list for c in schema.columns if getattr(c, "lookup_list", None)}
            for target in targets:
                if target not in snapshots:
                    st = store.read_list_state(site_key, target)
                    if st is not None:
                        snapshots[target] = st.rows
                        published[target] = published_of(st)
            if deadline is not None and time.monotonic() >= deadline:
                results.append(
                    ListSyncResult(
                        list=schema.title,
                        mode="incremental",
                        continues_next_run=True,
                        notes=("not started before the time budget ran out",),
                        notes_sv=("hann inte påbörjas inom tidsgränsen",),
                    )
                )
                continue
            try:
                syncer = ListSyncer(
                    client,
                    store,
                    site_key,
                    schema,
                    web=web_p,
                    users=users_p,
                    now=now,
                    deadline=deadline,
                    progress=progress,
                    schema_set=schema_set,
                    lookup_rows={t: snapshots[t] for t in targets if t in snapshots},
                    page_size=page_size,
                    # A target synced tonight: its snapshot above is the one it committed.
                    lookup_changes={t: changes[t] for t in targets if t in changes},
                    lookup_published={t: published[t] for t in targets if t in published},
                )
                result, rows = syncer.run(full=full)
            except RunLockedError:
                raise
            except NotFoundError as exc:
                if exc.status == 404 and _site_is_missing(client, exc):
                    raise SiteNotFoundError(
                        f"The site {getattr(client, 'site_url', site_key)} does not exist "
                        "(SharePoint answers 404)",
                        status=404,
                        code=exc.code,
                        request_id=exc.request_id,
                    ) from exc
                logger.error("Sync of %s failed: %s", schema.title, exc)
                errors.append({"list": schema.title, **exc.details()})
                continue
            except SpSyncError as exc:
                logger.error("Sync of %s failed: %s", schema.title, exc)
                errors.append({"list": schema.title, **exc.details()})
                if isinstance(exc, RetryableError | PermissionDeniedError):
                    # The site, the token or the state store failed, not this list: the other
                    # lists would only spend their own retry budgets on the same failure.
                    stop = exc
                    break
                continue
            results.append(result)
            if syncer.committed is not None:
                states[schema.title] = syncer.committed
            if syncer.changes is not None:
                changes[schema.title] = syncer.changes
            published.pop(schema.title, None)
            if not result.continues_next_run:
                snapshots[schema.title] = rows
                if syncer.committed is not None:
                    published[schema.title] = published_of(syncer.committed)
            else:
                st = store.read_list_state(site_key, schema.title)
                if st is not None:
                    snapshots[schema.title] = st.rows
                    published[schema.title] = published_of(st)
    if stop is not None:
        done = {r.list for r in results} | {str(e["list"]) for e in errors}
        for schema in schema_set.lists.values():
            if (wanted is None or schema.title in wanted) and schema.title not in done:
                errors.append(
                    {
                        "list": schema.title,
                        "error": "NotStarted",
                        "message": f"Not started: an earlier list failed ({stop}).",
                    }
                )
    return SiteSyncResult(tuple(results), tuple(errors), states, changes)


__all__ = [
    "PAGE_SIZE",
    "ChangeTokenExpiredError",
    "ListSyncer",
    "SiteNotFoundError",
    "SiteSyncResult",
    "sync_list",
    "sync_site",
]
