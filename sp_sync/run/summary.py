"""Run summary values: what one sync run did, per list and in total.

Frozen dataclasses with `to_dict()` (JSON-serialisable, never a secret: only counts, names,
server-relative URLs and plain sentences) and `format_text(language)` for people.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sp_sync.i18n import (
    Plural,
    Text,
    format_number,
    format_seconds,
    format_size,
    normalise_language,
)
from sp_sync.run.status import RunStatus, checked

MODES = ("full", "incremental", "resumed", "reread")

_MODE_TEXT = {
    "full": Text(sv="fullständig läsning", en="full read"),
    "incremental": Text(sv="ändringar", en="incremental"),
    "resumed": Text(sv="återupptagen läsning", en="resumed read"),
    "reread": Text(sv="fullständig omläsning", en="full re-read"),
}
_STATUS_TEXT = {
    "ok": Text(sv="klar", en="done"),
    "partial": Text(sv="delvis klar", en="partly done"),
    "failed": Text(sv="misslyckades", en="failed"),
}
# A list's result in three short lines (each well under 100 columns, so a terminal never wraps
# them mid-number): what was read, what changed, what it cost.
_LIST_LINE = Text(sv="{list}: {rows}, {mode}, {duration}", en="{list}: {rows}, {mode}, {duration}")
_CHANGES_LINE = Text(
    sv="  +{added} nya, {updated} ändrade, -{deleted} borttagna, {unchanged} oförändrade",
    en="  +{added} added, {updated} updated, -{deleted} deleted, {unchanged} unchanged",
)
_COST_LINE = Text(
    sv="  {requests}, {retries}, {wait} väntan, {size} mottaget; {quality}",
    en="  {requests}, {retries}, {wait} waiting, {size} received; {quality}",
)
_ROWS = Plural("rad", "rader", "row", "rows")
_REQUESTS = Plural("anrop", "anrop", "request", "requests")
_RETRIES = Plural("omförsök", "omförsök", "retry", "retries")
_QUALITY = Plural(
    "datakvalitetsproblem", "datakvalitetsproblem", "data-quality issue", "data-quality issues"
)
_COUNT_MISMATCH = Text(
    sv="SharePoint anger {count} objekt men {read} lästes",
    en="SharePoint reports {count} items but {read} were read",
)
_CONTINUES = Text(sv="fortsätter nästa körning", en="continues next run")
_DRIFT = Text(sv="avvikelser: {findings}", en="drift: {findings}")
_RUN_HEAD = Text(
    sv="Körning {run_id}: {status} ({duration})\n  {site}",
    en="Run {run_id}: {status} ({duration})\n  {site}",
)
_WORKBOOKS_UPLOADED = Text(
    sv="{count} arbetsböcker uppladdade till {folder} ({size})",
    en="{count} workbooks uploaded to {folder} ({size})",
)
_WORKBOOK_UPLOADED = Text(
    sv="Arbetsbok uppladdad: {url} ({size})", en="Workbook uploaded: {url} ({size})"
)
_WORKBOOK_UNCHANGED = Text(
    sv="Arbetsbok oförändrad (inte uppladdad): {url}",
    en="Workbook unchanged (not uploaded): {url}",
)
_WORKBOOKS_UNCHANGED = Text(
    sv="{count} arbetsböcker oförändrade i {folder} (inte uppladdade)",
    en="{count} workbooks unchanged in {folder} (not uploaded)",
)
_ERROR = Text(sv="Fel: {message}", en="Error: {message}")


# The same lines when the path makes them wider than a terminal: the path goes on a line of
# its own (shortened in the middle if even that is too wide).
_WORKBOOKS_UPLOADED_TO = Text(
    sv="{count} arbetsböcker uppladdade ({size}) till", en="{count} workbooks uploaded ({size}) to"
)
_WORKBOOK_UPLOADED_TO = Text(sv="Arbetsbok uppladdad ({size}):", en="Workbook uploaded ({size}):")
_WORKBOOK_UNCHANGED_AT = Text(
    sv="Arbetsbok oförändrad (inte uppladdad):", en="Workbook unchanged (not uploaded):"
)
_WORKBOOKS_UNCHANGED_IN = Text(
    sv="{count} arbetsböcker oförändrade (inte uppladdade) i",
    en="{count} workbooks unchanged (not uploaded) in",
)

#: Terminal columns every summary and progress line fits in (issue 13: lines of about 150
#: characters wrapped mid-number in an 80–100 column terminal).
WIDTH = 100
_PATH_START = re.compile(r"(?<=\s)(?:/|https?://)")


def _folder(workbooks: Sequence[UploadedWorkbook]) -> str:
    return workbooks[0].server_relative_url.rsplit("/", 1)[0]


def elide_middle(text: str, width: int) -> str:
    """`text` in at most `width` characters, its middle replaced by "…" (a long URL keeps its
    start and the end that names the folder or file)."""
    if len(text) <= width:
        return text
    keep = max(width - 1, 2)
    head = keep * 2 // 5
    return text[:head] + "…" + text[len(text) - (keep - head) :]


def fit_line(
    line: str, width: int = WIDTH, *, path_last: bool = False, keep_paths: bool = False
) -> list[str]:
    """`line` as lines of at most `width` columns.

    Prose wraps at spaces, continuation lines indented two more than the line; a word longer
    than a line (a URL) is shortened in the middle. With `path_last` the line ends with a path
    (and perhaps a parenthesis): it is broken before the path, which stays whole on its own line
    when it fits, instead of wrapping at a space inside a folder name. With `keep_paths` a
    path or URL is never shortened (it is there to be copied): it only gets a line of its own."""
    if len(line) <= width:
        return [line]
    lead = line[: len(line) - len(line.lstrip())]
    indent = lead + "  "
    if path_last:
        match = _PATH_START.search(line, len(lead))
        if match is not None:
            head, rest = line[: match.start()].rstrip(), line[match.start() :]
            if keep_paths:
                return [*fit_line(head, width), indent + rest] if head.strip() else [line]
            if not head.strip():
                return [lead + elide_middle(rest, width - len(lead))]
            return [*fit_line(head, width), indent + elide_middle(rest, width - len(indent))]
    wrapped = textwrap.wrap(
        line.strip(),
        width,
        initial_indent=lead,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    out: list[str] = []
    for part in wrapped:
        if len(part) <= width or keep_paths:
            out.append(part)
            continue
        # One word longer than the line: shorten it where it stands.
        words = part.split(" ")
        longest = max(range(len(words)), key=lambda i: len(words[i]))
        spare = width - (len(part) - len(words[longest]))
        words[longest] = elide_middle(words[longest], max(spare, 8))
        out.append(" ".join(words)[:width])
    return out


def fit_text(text: str, width: int = WIDTH, *, keep_paths: bool = False) -> str:
    """Every line of `text` fitted to `width` columns (see `fit_line`)."""
    return "\n".join(
        part for line in text.split("\n") for part in fit_line(line, width, keep_paths=keep_paths)
    )


def _path_lines(whole: str, broken: str, path: str) -> list[str]:
    """`whole` when it fits, else `broken` and the path on a line of its own."""
    if len(whole) <= WIDTH:
        return [whole]
    return [broken, "  " + elide_middle(path, WIDTH - 2)]


_ROLLUP_CONTINUES = Text(
    sv="  Tidsbudgeten räckte inte till sammanställningen; nästa körning fortsätter.",
    en="  The time budget ran out before the rollup; the next run continues.",
)


def _text(value: Text | None, fallback: str, language: str) -> str:
    return value.render(language) if value is not None else fallback


def status_text(status: str, language: str) -> str:
    """A run status ("ok", "partial", "failed") as a person reads it."""
    return _text(_STATUS_TEXT.get(status), status, language)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


@dataclass(frozen=True)
class ListSyncResult:
    """What syncing one list did.

    `mode` is one of "full", "incremental", "resumed" (a full read continued from a previous
    run's partial read) or "reread" (a full read reconciled against the snapshot because the
    change token was missing or expired). `notes` are plain sentences in English, each with a
    Swedish twin in `notes_sv` (same order).
    """

    list: str
    mode: str
    added: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    rows: int = 0
    requests: int = 0
    retries: int = 0
    wait_seconds: float = 0.0
    bytes_received: int = 0
    duration_seconds: float = 0.0
    quality_issues: int = 0
    drift: tuple[str, ...] = ()
    item_count_mismatch: tuple[int, int] | None = None  # (SharePoint's ItemCount, rows read)
    continues_next_run: bool = False
    notes: tuple[str, ...] = ()
    notes_sv: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}
        if self.item_count_mismatch is not None:
            out["item_count_mismatch"] = {
                "item_count": self.item_count_mismatch[0],
                "rows_read": self.item_count_mismatch[1],
            }
        return out

    def format_text(self, language: str = "sv") -> str:
        lang = normalise_language(language)
        num = format_number
        line = "\n".join(
            (
                _LIST_LINE.render(
                    lang,
                    list=self.list,
                    rows=_ROWS.render(lang, self.rows),
                    mode=_text(_MODE_TEXT.get(self.mode), self.mode, lang),
                    duration=format_seconds(self.duration_seconds, lang),
                ),
                _CHANGES_LINE.render(
                    lang,
                    added=num(self.added, lang),
                    updated=num(self.updated, lang),
                    deleted=num(self.deleted, lang),
                    unchanged=num(self.unchanged, lang),
                ),
                _COST_LINE.render(
                    lang,
                    requests=_REQUESTS.render(lang, self.requests),
                    retries=_RETRIES.render(lang, self.retries),
                    wait=format_seconds(self.wait_seconds, lang),
                    size=format_size(self.bytes_received, lang),
                    quality=_QUALITY.render(lang, self.quality_issues),
                ),
            )
        )
        extra: list[str] = list(self.notes_sv if lang == "sv" else self.notes)
        if self.item_count_mismatch is not None:
            count, read = self.item_count_mismatch
            extra.append(_COUNT_MISMATCH.render(lang, count=count, read=read))
        if self.continues_next_run:
            extra.append(_CONTINUES.render(lang))
        if self.drift:
            extra.append(_DRIFT.render(lang, findings="; ".join(self.drift)))
        # De-duplicate: the "continues next run" sentence may also be among the notes.
        extra = list(dict.fromkeys(extra))
        return fit_text(line + ("\n  - " + "\n  - ".join(extra) if extra else ""))


#: What a run did with a workbook: sent it to the site, or left the site's copy because its
#: content (everything but the generation time) is the same.
WORKBOOK_STATUSES = ("uploaded", "unchanged")


@dataclass(frozen=True)
class UploadedWorkbook:
    """A workbook of the run on the site (server-relative URL: no host, no secrets).

    `status` is "uploaded" (a new version was written) or "unchanged" (the site's copy already
    had this content, so no version was added)."""

    name: str
    server_relative_url: str
    size: int
    status: str = "uploaded"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "server_relative_url": self.server_relative_url,
            "size": self.size,
            "status": self.status,
        }


@dataclass(frozen=True)
class RunSummary:
    """One run: per-list results, uploaded workbooks, errors and the overall status
    ("ok", "partial" — some list continues next run or failed — or "failed")."""

    run_id: str
    site: str
    started: datetime
    finished: datetime
    lists: tuple[ListSyncResult, ...] = ()
    workbooks: tuple[UploadedWorkbook, ...] = ()
    errors: tuple[Mapping[str, Any], ...] = ()
    status: str = "ok"
    #: The time budget ran out before the rollup: the sync is committed and the next run
    #: builds the workbooks (exit 6, "continues next time").
    continues: bool = False
    #: (list title, ISO time) of every list checked successfully, this run or earlier: a quiet
    #: list's last change stays old while its last check is recent.
    last_checked: tuple[tuple[str, str], ...] = ()
    #: Every SharePoint request of the run, as its client counted them (drift check, list reads,
    #: uploads, digests): requests, retries, wait_seconds, throttled_responses. None when the
    #: run had no client of its own (e.g. `rollup --no-upload`); totals then sum the lists.
    traffic: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        # One set of status words (RunStatus): a typo is refused here, never stored or shown.
        object.__setattr__(self, "status", checked(RunStatus, self.status))

    @staticmethod
    def status_for(
        lists: Sequence[ListSyncResult], errors: Sequence[Any], *, continues: bool = False
    ) -> RunStatus:
        """ "failed" when nothing was synced and something went wrong, "partial" when some list
        failed or continues next run (or the run's rollup does), else "ok"."""
        if errors and not lists:
            return RunStatus.FAILED
        if errors or continues or any(r.continues_next_run for r in lists):
            return RunStatus.PARTIAL
        return RunStatus.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "site": self.site,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat(),
            "duration_seconds": round((self.finished - self.started).total_seconds(), 3),
            "status": self.status,
            "continues": self.continues,
            "last_checked": dict(self.last_checked),
            "lists": [r.to_dict() for r in self.lists],
            "workbooks": [w.to_dict() for w in self.workbooks],
            "workbooks_uploaded": sum(1 for w in self.workbooks if w.status != "unchanged"),
            "workbooks_unchanged": sum(1 for w in self.workbooks if w.status == "unchanged"),
            "errors": [_jsonable(dict(e)) for e in self.errors],
            "totals": self.totals(),
        }

    def totals(self) -> dict[str, Any]:
        keys = (
            "added",
            "updated",
            "deleted",
            "unchanged",
            "rows",
            "requests",
            "retries",
            "bytes_received",
            "quality_issues",
        )
        out: dict[str, Any] = {k: sum(int(getattr(r, k)) for r in self.lists) for k in keys}
        out["wait_seconds"] = round(sum(r.wait_seconds for r in self.lists), 3)
        if self.traffic is not None:
            # The whole run, not only the list reads: the drift check, uploads and every retry
            # and wait between them count too.
            for key in ("requests", "retries", "bytes_received"):
                out[key] = max(out[key], int(self.traffic.get(key, 0)))
            out["wait_seconds"] = max(
                out["wait_seconds"], round(float(self.traffic.get("wait_seconds", 0.0)), 3)
            )
            out["throttled_responses"] = int(self.traffic.get("throttled_responses", 0))
        return out

    def format_text(self, language: str = "sv") -> str:
        lang = normalise_language(language)
        status = status_text(self.status, lang)
        secs = (self.finished - self.started).total_seconds()
        lines = [
            _RUN_HEAD.render(
                lang,
                run_id=self.run_id,
                site=self.site,
                status=status,
                duration=format_seconds(secs, lang),
            )
        ]
        lines.extend(r.format_text(lang) for r in self.lists)
        uploaded = [w for w in self.workbooks if w.status != "unchanged"]
        unchanged = [w for w in self.workbooks if w.status == "unchanged"]
        if len(uploaded) > 3:
            # A site has one workbook per county and department: name the folder, not 27 lines
            # (the JSON summary lists every file).
            fmt = {
                "count": len(uploaded),
                "size": format_size(sum(w.size for w in uploaded), lang),
            }
            folder = _folder(uploaded)
            lines += _path_lines(
                _WORKBOOKS_UPLOADED.render(lang, folder=folder, **fmt),
                _WORKBOOKS_UPLOADED_TO.render(lang, **fmt),
                folder,
            )
        else:
            for w in uploaded:
                size = format_size(w.size, lang)
                lines += _path_lines(
                    _WORKBOOK_UPLOADED.render(lang, url=w.server_relative_url, size=size),
                    _WORKBOOK_UPLOADED_TO.render(lang, size=size),
                    w.server_relative_url,
                )
        if len(unchanged) > 3:
            folder = _folder(unchanged)
            lines += _path_lines(
                _WORKBOOKS_UNCHANGED.render(lang, count=len(unchanged), folder=folder),
                _WORKBOOKS_UNCHANGED_IN.render(lang, count=len(unchanged)),
                folder,
            )
        else:
            for w in unchanged:
                lines += _path_lines(
                    _WORKBOOK_UNCHANGED.render(lang, url=w.server_relative_url),
                    _WORKBOOK_UNCHANGED_AT.render(lang),
                    w.server_relative_url,
                )
        for e in self.errors:
            lines.append(_ERROR.render(lang, message=_error_message(e, lang)))
        if self.continues:
            lines.append(_ROLLUP_CONTINUES.render(lang))
        return fit_text("\n".join(lines))


def _error_message(error: Mapping[str, Any], language: str) -> str:
    """A stored error's message in `language`: `details()` keeps the Swedish twin beside the
    English message where the error was written in both."""
    if language == "sv" and error.get("message_sv"):
        return str(error["message_sv"])
    return str(error.get("message", error))


__all__ = [
    "MODES",
    "WIDTH",
    "WORKBOOK_STATUSES",
    "ListSyncResult",
    "RunSummary",
    "UploadedWorkbook",
    "elide_middle",
    "fit_line",
    "fit_text",
]
