"""Build, verify, store and upload the Excel rollups.

    workbooks = build_workbooks(snapshots, quality, reference, sync_info,
                                site_url=..., generated_at=..., time_zone=..., language="sv")
    write_local_copies(workbooks, out_dir)                 # optional, atomic
    uploaded = upload_workbooks(client, workbooks)         # into "Sammanställningar"
    inputs = RollupInputs.of(site_url=..., generated_at=..., time_zone=..., language="sv")
    result = publish_workbooks(client, snapshots, quality, schemas, sync_info,
                               inputs=inputs, previous=record)      # only what changed

`build_workbooks` is pure (no clock, no I/O besides loading the repository's list_schemas/ when no
schemas are given) and verifies every workbook by opening it again before returning it, so nothing
half-generated can reach the site. Uploads overwrite, so SharePoint keeps the previous workbook as
a version; a failed upload leaves the previous workbook untouched and raises UploadError.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import io
import logging
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from xml.etree import ElementTree as ET
from xml.parsers import expat
from zoneinfo import ZoneInfo

import pandas as pd

from sp_sync.errors import SpSyncError, UploadError
from sp_sync.i18n import Text, normalise_language
from sp_sync.report.fingerprint import (
    WorkbookKey,
    content_fingerprint,
    freshness_times,
    snapshot_fingerprint,
    state_source,
    workbook_input_fingerprints,
    workbook_keys,
)
from sp_sync.report.safe_text import MAX_ROWS
from sp_sync.report.scope import affected
from sp_sync.report.tables import (
    ListSyncInfo,
    RollupReference,
    RollupTables,
    Scope,
    aggregate,
    drift_frame,
    reference_date,
)
from sp_sync.report.workbook import RollupWorkbook
from sp_sync.run.summary import UploadedWorkbook
from sp_sync.schema import SchemaSet, load_schemas
from sp_sync.schema.drift import DriftFinding, DriftReport
from sp_sync.schema.provision import DATA_CHANGED_COLUMN, LAST_CHECKED_COLUMN
from sp_sync.settings import default_of
from sp_sync.sharepoint.files import TEMP_PREFIX

if TYPE_CHECKING:
    from sp_sync.sync.changes import ListChanges

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_FOLDER",
    "PublishResult",
    "RollupInputs",
    "RollupWorkbook",
    "UploadedWorkbook",
    "build_tables",
    "build_workbooks",
    "publish_workbooks",
    "upload_workbooks",
    "verify_workbook",
    "write_local_copies",
]

log = logging.getLogger(__name__)

# Errors a person reads on the command line (both languages; the cause keeps its own text).
_NOT_REOPENED = Text(
    sv="Arbetsboken {name} gick inte att öppna igen efter att den skapats: ”{error}”",
    en="The workbook {name} could not be opened again after it was generated: {error}",
)
_WRONG_SHEETS = Text(
    sv="Arbetsboken {name} har bladen {sheets}, väntade {expected}",
    en="The workbook {name} has sheets {sheets}, expected {expected}",
)
_FOLDER_FAILED = Text(
    sv="Kunde inte skapa eller öppna mappen '{folder}' i webbplatsens dokumentbibliotek: {cause}",
    en="Could not create or open the folder '{folder}' in the site's document library: {cause}",
)
_UPLOAD_FAILED = Text(
    sv="Uppladdningen av {name} till {folder} misslyckades; den tidigare versionen av filen är "
    "oförändrad. Orsak: {cause}",
    en="Uploading {name} to {folder} failed; the previous version of the file is unchanged. "
    "Cause: {cause}",
)
_LISTING_FAILED = Text(
    sv="Kunde inte lista filerna i {folder}: {cause}",
    en="Could not list the files in {folder}: {cause}",
)

DEFAULT_FOLDER = default_of("SP_SYNC_ROLLUP_FOLDER")  # the one default, in the settings table
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024


class FileClient(Protocol):
    """What upload_workbooks needs from SharePointClient (its FilesMixin)."""

    def ensure_folder(self, path: str) -> str: ...

    def upload_file(
        self,
        folder: str,
        name: str,
        data: bytes,
        *,
        chunk_size: int = ...,
        progress: Callable[[int, int], None] | None = ...,
    ) -> Any: ...

    def list_files(self, folder: str) -> Any: ...

    def delete_file(self, server_relative_url: str) -> None: ...

    def update_file_fields(
        self, folder: str, values: Mapping[int, Mapping[str, str]]
    ) -> tuple[Any, list[str]]: ...


def _reference(schemas: SchemaSet | RollupReference | None) -> RollupReference:
    if isinstance(schemas, RollupReference):
        return schemas
    # The run's SchemaSet carries the reference data and every English choice label; without
    # one (tests, benchmarks) the repository's list_schemas/ is loaded by the one loader.
    return RollupReference.from_schemas(schemas if schemas is not None else load_schemas())


def _findings(drift: DriftReport | Sequence[DriftFinding] | None) -> Sequence[DriftFinding]:
    if drift is None:
        return ()
    return drift.findings if isinstance(drift, DriftReport) else drift


def _zone(time_zone: ZoneInfo | str | None) -> ZoneInfo:
    if isinstance(time_zone, str):
        return ZoneInfo(time_zone)
    return time_zone or ZoneInfo("Europe/Stockholm")


def _moment(value: Any) -> dt.datetime | None:
    # The state store keeps the last check as ISO 8601 text; checkpoints hold datetimes.
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    return value if isinstance(value, dt.datetime) else None


def _sync_info(sync_info: Mapping[str, Any] | None) -> dict[str, ListSyncInfo]:
    out: dict[str, ListSyncInfo] = {}
    for title, info in (sync_info or {}).items():
        if isinstance(info, ListSyncInfo):
            out[title] = info
        elif isinstance(info, Mapping):
            out[title] = ListSyncInfo(
                list_title=title,
                item_count=int(info.get("item_count", info.get("items", 0)) or 0),
                last_synced=_moment(info.get("last_synced")),
                last_checked=_moment(info.get("last_checked")),
            )
        else:
            raise TypeError(f"sync_info[{title!r}] must be ListSyncInfo or a mapping")
    return out


@dataclass(frozen=True)
class RollupInputs:
    """What a site's rollup is built for besides the data: the site, the run's time, the site's
    time zone, the language, the row limit and the drift found. One value, so building and
    publishing cannot disagree about them (`RollupInputs.of` normalises loose arguments)."""

    site_url: str
    generated_at: dt.datetime
    time_zone: ZoneInfo
    language: str = "sv"
    max_rows: int = MAX_ROWS
    drift: tuple[DriftFinding, ...] = ()

    @classmethod
    def of(
        cls,
        *,
        site_url: str,
        generated_at: dt.datetime,
        time_zone: ZoneInfo | str | None = None,
        language: str = "sv",
        max_rows: int = MAX_ROWS,
        drift: DriftReport | Sequence[DriftFinding] | None = None,
    ) -> RollupInputs:
        """The time zone by name or None (Europe/Stockholm), the language as configured, the
        drift as a DriftReport or its findings."""
        return cls(
            site_url=site_url,
            generated_at=generated_at,
            time_zone=_zone(time_zone),
            language=normalise_language(language),
            max_rows=max_rows,
            drift=tuple(_findings(drift)),
        )

    @property
    def reference_date(self) -> dt.date:
        return reference_date(self.generated_at, self.time_zone)


def _tables(
    snapshots: Mapping[str, pd.DataFrame],
    quality: pd.DataFrame | None,
    schemas: SchemaSet | RollupReference | None,
    sync_info: Mapping[str, Any] | None,
    inputs: RollupInputs,
    scope: Scope | None = None,
) -> RollupTables:
    """The aggregated tables with the drift findings for *Om rapporten*."""
    tables = build_tables(
        snapshots,
        quality,
        schemas,
        sync_info,
        site_url=inputs.site_url,
        generated_at=inputs.generated_at,
        time_zone=inputs.time_zone,
        scope=scope,
    )
    if inputs.drift:
        tables = dataclasses.replace(tables, drift=drift_frame(inputs.drift, inputs.language))
    return tables


def build_tables(
    snapshots: Mapping[str, pd.DataFrame],
    quality: pd.DataFrame | None,
    schemas: SchemaSet | RollupReference | None,
    sync_info: Mapping[str, Any] | None = None,
    *,
    site_url: str,
    generated_at: dt.datetime,
    time_zone: ZoneInfo | str | None = None,
    scope: Scope | None = None,
) -> RollupTables:
    """The aggregated tables (sp_sync.report.tables) for the given snapshots; with a `scope`,
    the per-county and per-department tables of its counties and departments only."""
    tz = _zone(time_zone)
    return aggregate(
        snapshots,
        quality,
        _reference(schemas),
        _sync_info(sync_info),
        site_url=site_url,
        generated_at=generated_at,
        time_zone=tz,
        scope=scope,
    )


def build_workbooks(
    snapshots: Mapping[str, pd.DataFrame],
    quality: pd.DataFrame | None,
    schemas: SchemaSet | RollupReference | None,
    sync_info: Mapping[str, Any] | None = None,
    *,
    site_url: str,
    generated_at: dt.datetime,
    time_zone: ZoneInfo | str | None = None,
    language: str = "sv",
    max_rows: int = MAX_ROWS,
    verify: bool = True,
    timings: dict[str, float] | None = None,
    drift: DriftReport | Sequence[DriftFinding] | None = None,
) -> list[RollupWorkbook]:
    """Every rollup workbook (Länsöversikt, one per department, one per county), verified.

    Pure: the same inputs give the same cell contents. `schemas` is the run's SchemaSet (its
    reference data and English choice labels), a RollupReference built from one, or None for the
    repository's list_schemas/. Each workbook is
    checked by verify_workbook before it is returned (`verify=False` skips that, for benchmarks).
    When `timings` is given, the wall-clock seconds of each phase are stored in it under
    "aggregate_s", "render_s" and "verify_s". `drift` (the run's DriftReport, or its findings)
    is listed on the overview's *Om rapporten* sheet.
    """
    inputs = RollupInputs.of(
        site_url=site_url,
        generated_at=generated_at,
        time_zone=time_zone,
        language=language,
        max_rows=max_rows,
        drift=drift,
    )
    from sp_sync.report.layouts import render_workbooks  # openpyxl: only when rendering

    clock = time.perf_counter
    t0 = clock()
    tables = _tables(snapshots, quality, schemas, sync_info, inputs)
    t1 = clock()
    workbooks = render_workbooks(tables, language=inputs.language, max_rows=inputs.max_rows)
    t2 = clock()
    if verify:
        for wb in workbooks:
            verify_workbook(wb.data, expected_sheets=wb.sheets, name=wb.name)
    t3 = clock()
    if timings is not None:
        timings.update(aggregate_s=t1 - t0, render_s=t2 - t1, verify_s=t3 - t2)
    log.info(
        "Built %d rollup workbook(s), %d bytes", len(workbooks), sum(w.size for w in workbooks)
    )
    return workbooks


#: Parts up to this size are parsed whole; a larger one (a data sheet of tens of MB) is parsed at
#: its start and checked to close its root element at its end. Every part's bytes are still
#: read whole, so a damaged part fails its CRC check.
_PARSED_WHOLE = 1 << 20
#: The parts an .xlsx package cannot be opened without.
_REQUIRED_PARTS = (
    "[Content_Types].xml",
    "_rels/.rels",
    "xl/workbook.xml",
    "xl/_rels/workbook.xml.rels",
)
_MAIN_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_RELATIONSHIP = re.compile(rb"<(?:\w+:)?Relationship\s([^>]*)>")
_ATTRIBUTE = re.compile(rb'(\w+)\s*=\s*"([^"]*)"')
_TYPES_NS = "{http://schemas.openxmlformats.org/package/2006/content-types}"
_WORKSHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"


class _BrokenPackage(ValueError):
    """What verify_workbook found wrong in a package (its text names the part)."""


def _root_name(part: str, data: bytes) -> str:
    """Check that the XML part `data` is well formed; returns its root element's name.

    A part larger than _PARSED_WHOLE is parsed up to that size and must end by closing its
    root element: what a writer that stopped half-way, or wrote two sheets into one, leaves
    is caught, without parsing every cell of a large sheet (expat reads ~100 MB/s; a night's
    overview holds ~30 MB of sheets)."""
    root: list[str] = []

    def start(name: str, _attrs: object) -> None:
        if not root:
            root.append(name)
            parser.StartElementHandler = None

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    try:
        if len(data) <= _PARSED_WHOLE:
            parser.Parse(data, True)
        else:
            parser.Parse(data[:_PARSED_WHOLE], False)
            if not data.rstrip().endswith(f"</{root[0] if root else ''}>".encode()):
                raise _BrokenPackage(f"{part} does not end its root element")
    except expat.ExpatError as exc:
        raise _BrokenPackage(f"{part}: {exc}") from exc
    if not root:
        raise _BrokenPackage(f"{part} holds no XML element")
    return root[0]


def _target(rels_part: str, target: str) -> str:
    """The part a relationship in `rels_part` points at (absolute, or relative to the part the
    .rels file belongs to)."""
    if target.startswith("/"):
        return target.lstrip("/")
    folder = rels_part.rsplit("_rels/", 1)[0]
    parts: list[str] = [p for p in folder.split("/") if p]
    for step in target.split("/"):
        if step == "..":
            if parts:
                parts.pop()
        elif step and step != ".":
            parts.append(step)
    return "/".join(parts)


#: A zip entry's local header (PKWARE APPNOTE 4.3.7): its signature and where the flags, the
#: name's and the extra field's lengths are.
_LOCAL_HEADER = b"PK\x03\x04"
_LOCAL_HEADER_SIZE = 30
#: Flag bits zipfile refuses or needs a password for (encrypted, compressed patch data, strong
#: encryption): such an entry is read by zipfile itself, which raises what it raises.
_ZIPFILE_FLAGS = 0x01 | 0x20 | 0x40
_UTF8_NAME = 0x800


def _read_part(archive: zipfile.ZipFile, data: bytes, name: str) -> bytes:
    """`archive.read(name)` with the same checks, a deflated entry inflated by zlib-ng (the
    same deflate format at twice zlib's speed; the writer deflates with it too) and its CRC-32
    computed once (zipfile computed it twice). The entry's local header must carry its name as
    the central directory does, its data must inflate to a complete stream of exactly its size,
    and the CRC-32 must match. Stored entries and anything unusual go to zipfile itself."""
    info = archive.getinfo(name)  # the last entry of a name, as archive.read takes it
    if info.compress_type != zipfile.ZIP_DEFLATED or info.flag_bits & _ZIPFILE_FLAGS:
        return archive.read(name)
    from zlib_ng import zlib_ng  # imported with the writer when a workbook is rendered

    at = info.header_offset
    header = data[at : at + _LOCAL_HEADER_SIZE]
    if len(header) != _LOCAL_HEADER_SIZE or header[:4] != _LOCAL_HEADER:
        raise zipfile.BadZipFile(f"bad local file header of {name}")
    flags = int.from_bytes(header[6:8], "little")
    name_length = int.from_bytes(header[26:28], "little")
    extra_length = int.from_bytes(header[28:30], "little")
    raw_name = data[at + _LOCAL_HEADER_SIZE : at + _LOCAL_HEADER_SIZE + name_length]
    local_name = raw_name.decode("utf-8" if flags & _UTF8_NAME else "cp437")
    if local_name != info.orig_filename:
        raise zipfile.BadZipFile(
            f"file name in directory {name!r} and header {local_name!r} differ"
        )
    start = at + _LOCAL_HEADER_SIZE + name_length + extra_length
    raw = data[start : start + info.compress_size]
    if len(raw) != info.compress_size:
        raise zipfile.BadZipFile(f"{name} is cut short")
    inflater = zlib_ng.decompressobj(-15)
    part = inflater.decompress(raw) + inflater.flush()
    if not inflater.eof or len(part) != info.file_size:
        raise zipfile.BadZipFile(f"{name} does not inflate to its {info.file_size} bytes")
    if zlib_ng.crc32(part) != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {name!r}")
    return part


def _check_package(data: bytes, keep: dict[str, bytes] | None = None) -> tuple[str, ...]:
    """The sheet names of the .xlsx package `data`; raises _BrokenPackage, or whatever zipfile,
    zlib or ElementTree raise, for a broken one. See verify_workbook. Every part read is put
    into `keep` when given (the content fingerprint then needs no second pass)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        present = set(names)
        missing = [p for p in _REQUIRED_PARTS if p not in present]
        if missing:
            raise _BrokenPackage(f"missing {', '.join(missing)}")
        small: dict[str, bytes] = {}
        for name in names:
            # Read whole: each part's CRC-32 is checked at its end.
            part = _read_part(archive, data, name)
            if keep is not None:
                keep[name] = part
            if name.endswith((".xml", ".rels")):
                _root_name(name, part)
            if name.endswith(".rels") or name in _REQUIRED_PARTS:
                small[name] = part  # read again below
    types = ET.fromstring(small["[Content_Types].xml"])
    kinds: dict[str, str] = {}
    for override in types.iter(f"{_TYPES_NS}Override"):
        part_name = str(override.get("PartName", "")).lstrip("/")
        if part_name not in present:
            raise _BrokenPackage(f"[Content_Types].xml names {part_name}, which is missing")
        kinds[part_name] = str(override.get("ContentType"))
    targets: dict[str, dict[str, str]] = {}
    for name in names:
        if not name.endswith(".rels"):
            continue
        found = targets.setdefault(name, {})
        # By pattern, not as a tree: a data sheet's .rels holds a hyperlink per row (external,
        # skipped), and the part was parsed above.
        # The relationships' attribute texts listed at once (a hyperlink's are most of them:
        # one match object each, looked at in Python, was 8 ms of a night's two workbooks).
        for rel in _RELATIONSHIP.findall(small[name]):
            if b'"External"' in rel:
                continue  # a hyperlink (TargetMode="External"), not a part
            attributes = {k.decode(): html.unescape(v.decode()) for k, v in _ATTRIBUTE.findall(rel)}
            target = _target(name, attributes.get("Target", ""))
            if target not in present:
                raise _BrokenPackage(f"{name} points at {target}, which is missing")
            found[attributes.get("Id", "")] = target
    book = ET.fromstring(small["xl/workbook.xml"])
    sheets = []
    for sheet in book.iter(f"{_MAIN_NS}sheet"):
        sheet_part = targets["xl/_rels/workbook.xml.rels"].get(str(sheet.get(f"{_REL_NS}id")))
        if sheet_part is None or kinds.get(sheet_part) != _WORKSHEET_TYPE:
            raise _BrokenPackage(f"the sheet {sheet.get('name')!r} has no worksheet part")
        sheets.append(str(sheet.get("name")))
    if not sheets:
        raise _BrokenPackage("xl/workbook.xml names no sheet")
    return tuple(sheets)


def verify_workbook(
    data: bytes,
    *,
    expected_sheets: Sequence[str] | None = None,
    name: str = "workbook",
    parts: dict[str, bytes] | None = None,
) -> tuple[str, ...]:
    """Check that `data` is a complete, readable workbook; raise UploadError when it is not.

    Returns the sheet names. A workbook is uploaded only after this succeeded. The package is
    checked as Excel opens it, without openpyxl (issue 14 goal 4: loading each written
    workbook again with openpyxl cost more than writing its charts): every part is read whole
    (each part's CRC-32 is checked), every XML part is well formed (a data sheet larger than
    1 MiB: its start, and it closes its root element), the package's required parts are there,
    every part the content types and relationships name exists, and every sheet of the
    workbook has its worksheet part. `parts`, when given, receives every part by name.
    """
    try:
        sheets = _check_package(data, parts)
    except Exception as exc:  # the check is pure: any failure means a broken file
        # Not only BadZipFile and ParseError: a damaged deflate stream raises zlib.error, a
        # mangled header NotImplementedError (compression method), RuntimeError (the encrypted
        # flag) or ValueError, and each of them means the same to the user.
        raise UploadError(_NOT_REOPENED.fill(name=name, error=str(exc))) from exc
    if expected_sheets is not None and tuple(expected_sheets) != sheets:
        raise UploadError(
            _WRONG_SHEETS.fill(
                name=name, sheets=", ".join(sheets), expected=", ".join(expected_sheets)
            )
        )
    return sheets


def write_local_copies(
    workbooks: Sequence[RollupWorkbook], out_dir: str | os.PathLike[str]
) -> list[Path]:
    """Write each workbook into `out_dir` atomically (temporary file + rename)."""
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for wb in workbooks:
        path = target / wb.name
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".xlsx", dir=target)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(wb.data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        written.append(path)
    return written


def _upload_error(message: Text, exc: SpSyncError) -> UploadError:
    """`message` as an UploadError carrying the SharePoint failure's status, code and id."""
    return UploadError(message, status=exc.status, code=exc.code, request_id=exc.request_id)


def _open_folder(client: FileClient, folder: str) -> str:
    try:
        return client.ensure_folder(folder)
    except SpSyncError as exc:
        raise _upload_error(_FOLDER_FAILED.fill(folder=folder, cause=exc.as_text()), exc) from exc


def _upload_one(
    client: FileClient,
    folder_url: str,
    wb: RollupWorkbook,
    *,
    chunk_size: int,
    progress: Callable[[str, int, int], None] | None,
) -> tuple[UploadedWorkbook, str | None]:
    """Upload one verified workbook; (what the summary shows, the file's new ETag)."""

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(wb.name, done, total)

    try:
        info = client.upload_file(
            folder_url, wb.name, wb.data, chunk_size=chunk_size, progress=report
        )
    except SpSyncError as exc:
        raise _upload_error(
            _UPLOAD_FAILED.fill(name=wb.name, folder=folder_url, cause=exc.as_text()), exc
        ) from exc
    result = UploadedWorkbook(
        name=wb.name,
        server_relative_url=str(getattr(info, "server_relative_url", f"{folder_url}/{wb.name}")),
        size=int(getattr(info, "size", wb.size)),
    )
    log.info("Uploaded %s (%d bytes)", result.server_relative_url, result.size)
    etag = getattr(info, "etag", None)
    return result, str(etag) if etag else None


def upload_workbooks(
    client: FileClient,
    workbooks: Sequence[RollupWorkbook],
    *,
    folder: str = DEFAULT_FOLDER,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[UploadedWorkbook]:
    """Upload the workbooks into `folder` of the site's default document library.

    The folder (nested paths too) is created when missing. Each workbook is verified again, then
    uploaded with overwrite so SharePoint keeps the previous one as a version; above `chunk_size`
    an upload session is used that replaces the content only when complete. On the first failure
    an UploadError names the workbook and the folder; the previous file stays as it was.
    `progress(name, done_bytes, total_bytes)` is called while uploading. Every workbook is sent;
    `publish_workbooks` sends only the ones whose content changed.
    """
    for wb in workbooks:
        verify_workbook(wb.data, expected_sheets=wb.sheets, name=wb.name)
    folder_url = _open_folder(client, folder)
    return [
        _upload_one(client, folder_url, wb, chunk_size=chunk_size, progress=progress)[0]
        for wb in workbooks
    ]


# ---------------------------------------------------------------------------------------------
# Only real changes uploaded (issue 12 item 9, issue 14 goal 4)
#
# The fingerprints (sp_sync.report.fingerprint) of what was uploaded are kept in the run's state
# store together with the ETag SharePoint gave each file. Before uploading, one request lists the
# folder's files with their ETags: a file whose ETag is still the recorded one holds exactly the
# recorded content, so equal fingerprints mean the workbook need not be sent again; a file that
# someone replaced or deleted on the site has another ETag (or none) and is uploaded again.
#
# Why not a column of the document library: writing a list field of the file creates a second
# version unless it goes through ValidateUpdateListItem with bNewDocumentUpdate=true, which
# "will call the UpdateOverwriteVersion method, which will update the item without incrementing
# the version" (https://robertschouten.com/2018/04/30/update-file-metadata-with-rest-api-using-
# validateupdatelistitem-method/). The emulator has neither ListItemAllFields nor that call, so
# the fingerprint lives in the state store, keyed by the ETag, where both can be tested.

#: The state document's format; a record of another format is ignored (everything is rebuilt).
RECORD_FORMAT = 1


@dataclass(frozen=True)
class PublishResult:
    """What publish_workbooks did: the summary lines, the workbooks it rendered (only those), the
    record to keep for the next run, and whether the aggregation could be skipped entirely."""

    files: list[UploadedWorkbook]
    rendered: list[RollupWorkbook]
    record: dict[str, Any]
    aggregated: bool
    #: Why uploading stopped before every changed workbook was sent (`before_upload` said so),
    #: or None. The files sent before the stop are complete and in `files`; the others are
    #: left as they are on the site and kept in `record` as they were, so the next run sends them.
    stopped: Text | None = None


def _remove_stale_temporaries(
    client: FileClient, folder_url: str, on_site: dict[str, str | None]
) -> None:
    """Remove what a killed upload left: a new workbook's temporary file (TEMP_PREFIX, see
    sp_sync.sharepoint.files). The rollup holds the site's run lock, so no upload of another
    run can be using it; nothing is sent when there is none."""
    for name in [n for n in on_site if n.startswith(TEMP_PREFIX)]:
        try:
            client.delete_file(f"{folder_url}/{name}")
        except SpSyncError as exc:  # harmless: it has a name nobody opens; next time again
            log.warning("Could not remove the temporary file %s/%s: %s", folder_url, name, exc)
            continue
        log.info("Removed %s/%s, left by an upload that did not finish", folder_url, name)
        del on_site[name]


def _known_folder(previous: Mapping[str, Any] | None, folder: str) -> str | None:
    """The server-relative URL of `folder` that the last run's record holds, or None (another
    folder configured, or a record without one)."""
    if not previous or previous.get("format") != RECORD_FORMAT:
        return None
    known = previous.get("folder")
    if not isinstance(known, Mapping) or known.get("path") != folder:
        return None
    url = known.get("url")
    return url if isinstance(url, str) and url else None


def _listing(client: FileClient, folder_url: str) -> list[Any]:
    try:
        return list(client.list_files(folder_url))
    except SpSyncError as exc:
        raise _upload_error(
            _LISTING_FAILED.fill(folder=folder_url, cause=exc.as_text()), exc
        ) from exc


def _key_text(key: WorkbookKey) -> str:
    return f"{key[0]}:{key[1]}"


def _render(tables: RollupTables, key: WorkbookKey, inputs: RollupInputs) -> RollupWorkbook:
    # The layouts (and openpyxl) are imported when a workbook is rendered: a night whose
    # workbooks are all unchanged needs neither.
    from sp_sync.report.layouts import render_county, render_department, render_overview

    kind, name = key
    if not tables.covers(kind, name):  # its tables were not built: it would render empty
        raise ValueError(f"the tables do not hold the workbook {key}")
    lang, rows = inputs.language, inputs.max_rows
    if kind == "overview":
        return render_overview(tables, language=lang, max_rows=rows)
    if kind == "department":
        return render_department(tables, name, language=lang, max_rows=rows)
    return render_county(tables, name, language=lang, max_rows=rows)


def publish_workbooks(
    client: FileClient,
    snapshots: Mapping[str, pd.DataFrame],
    quality: pd.DataFrame | None,
    schemas: SchemaSet | RollupReference | None,
    sync_info: Mapping[str, Any] | None = None,
    *,
    inputs: RollupInputs,
    previous: Mapping[str, Any] | None = None,
    folder: str = DEFAULT_FOLDER,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[str, int, int], None] | None = None,
    render_all: bool = False,
    before_upload: Callable[[str], Text | None] | None = None,
    sources: Mapping[str, str] | None = None,
    changes: Mapping[str, ListChanges] | None = None,
) -> PublishResult:
    """Build, verify and upload the workbooks whose content changed since `previous`.

    `previous` is the record a former call returned (None: upload everything). Per workbook:
    when its input fingerprint and the site's ETag equal the record's, it is neither rendered nor
    uploaded; when it is rendered and its content fingerprint and the ETag equal the record's, it
    is not uploaded. When the snapshot fingerprint is unchanged too, nothing is aggregated.
    Every workbook appears in `files`, with status "uploaded" or "unchanged". `render_all`
    renders every workbook (for local copies) and still uploads only the changed ones.
    `before_upload(name)` is asked before each upload starts; a reason (not None) stops the
    uploads there (a newer run's workbooks are on the site, or too little time is left): no
    later workbook is rendered or sent, and the library's freshness columns are not updated.
    `sources` names the committed state of each snapshot (see snapshot_fingerprint): the
    snapshot fingerprint then needs no hashing of the frames. `changes` are the rows this run's
    sync changed, per list it synchronised incrementally: when `previous` was built from
    exactly the states they start from (and the other lists' states), in the same context, only
    the overview and the workbooks those rows (as they were and as they are) can show are
    aggregated and fingerprinted (sp_sync.report.scope); every other workbook keeps its record
    and is "unchanged". Anything else builds everything.
    """
    reference = _reference(schemas)
    version = getattr(schemas, "version", "") if isinstance(schemas, SchemaSet) else ""
    snap_fp = snapshot_fingerprint(
        snapshots,
        quality,
        reference_date=inputs.reference_date,
        language=inputs.language,
        site_url=inputs.site_url,
        extra=[str(version), inputs.max_rows.__repr__(), *(repr(f) for f in inputs.drift)],
        sources=sources,  # the committed states the snapshots are (see snapshot_fingerprint)
    )
    tz, generated_at = inputs.time_zone, inputs.generated_at
    # The folder as the last run found it: its files are listed straight away (issue 14 goal
    # 4: finding the library root and the folder were two of a quiet night's requests). A
    # listing finds no file in a folder that is gone, and then nothing is skipped: the folder
    # is opened (created when missing) as on a first run, before anything is uploaded.
    known = _known_folder(previous, folder)
    folder_url = known or _open_folder(client, folder)
    listing = _listing(client, folder_url)
    if known and not listing:
        folder_url = _open_folder(client, folder)
        listing = _listing(client, folder_url)
    on_site = {str(f.name): getattr(f, "etag", None) for f in listing}
    item_ids = {str(f.name): getattr(f, "item_id", None) for f in listing}
    _remove_stale_temporaries(client, folder_url, on_site)
    old: dict[str, Any] = {}
    if previous and previous.get("format") == RECORD_FORMAT:
        old = dict(previous.get("workbooks") or {})

    def intact(rec: Mapping[str, Any] | None) -> bool:
        # The site still holds exactly what we uploaded last time.
        return bool(rec and rec.get("etag") and on_site.get(str(rec.get("name"))) == rec["etag"])

    def unchanged(rec: Mapping[str, Any]) -> UploadedWorkbook:
        name = str(rec["name"])
        return UploadedWorkbook(
            name=name,
            server_relative_url=f"{folder_url}/{name}",
            size=int(rec.get("size") or 0),
            status="unchanged",
        )

    if (
        not render_all
        and previous
        and old
        and previous.get("snapshot") == snap_fp
        and all(intact(rec) for rec in old.values())
    ):
        log.info("Rollup inputs unchanged: no workbook rebuilt or uploaded")
        return PublishResult(
            files=[unchanged(rec) for rec in old.values()],
            rendered=[],
            record=_record_freshness(
                client,
                folder_url,
                {**previous, "folder": {"path": folder, "url": folder_url}},
                on_site,
                item_ids,
                generated_at,
                tz,
            ),
            aggregated=False,
        )

    context = _context_fingerprint(reference, inputs, str(version))
    scope = None
    if not render_all and changes is not None and sources is not None:
        scope = _scope(
            previous,
            old,
            intact,
            context=context,
            sources=sources,
            changes=changes,
            snapshots=snapshots,
            reference=reference,
            now=generated_at,
        )
    tables = _tables(snapshots, quality, reference, sync_info, inputs, scope)
    keys = workbook_keys(reference)
    fingerprints = workbook_input_fingerprints(
        tables,
        language=inputs.language,
        max_rows=inputs.max_rows,
        keys=[key for key in keys if tables.covers(*key)],
    )
    files: list[UploadedWorkbook] = []
    rendered: list[RollupWorkbook] = []
    record: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "snapshot": snap_fp,
        "workbooks": {},
        "folder": {"path": folder, "url": folder_url},
        # What the next run's scope compares (see _scope): the states and the context these
        # workbooks were built from, and the time their 30-day figures were counted to.
        "sources": dict(sources) if sources is not None else None,
        "context": context,
        "generated_at": generated_at.isoformat(),
    }
    stopped: Text | None = None
    for key in keys:
        rec = old.get(_key_text(key))
        input_fp = fingerprints.get(key)
        if input_fp is None:
            # Outside the scope: nothing it shows changed since its record (whose file the
            # site still holds, or it would be in the scope).
            assert rec is not None
            files.append(unchanged(rec))
            record["workbooks"][_key_text(key)] = dict(rec)
            continue
        if not render_all and rec and rec.get("input") == input_fp and intact(rec):
            files.append(unchanged(rec))
            record["workbooks"][_key_text(key)] = dict(rec)
            continue
        if stopped is not None:
            if rec:  # as it was: the site still holds that upload, and the next run compares
                record["workbooks"][_key_text(key)] = dict(rec)
            continue
        wb = _render(tables, key, inputs)
        # Every rendered workbook is checked (a local copy too, and one found unchanged: the
        # check reads the parts the content fingerprint reads, in the same pass).
        parts: dict[str, bytes] = {}
        verify_workbook(wb.data, expected_sheets=wb.sheets, name=wb.name, parts=parts)
        rendered.append(wb)
        content = content_fingerprint(
            wb.data, tables.generated_local, freshness_times(tables), parts=parts
        )
        del parts
        if rec and rec.get("name") == wb.name and rec.get("content") == content and intact(rec):
            files.append(unchanged(rec))
            record["workbooks"][_key_text(key)] = {**rec, "input": input_fp}
            continue
        stopped = before_upload(wb.name) if before_upload is not None else None
        if stopped is not None:  # the caller says why (it logs the reason)
            if rec:
                record["workbooks"][_key_text(key)] = dict(rec)
            continue
        result, etag = _upload_one(client, folder_url, wb, chunk_size=chunk_size, progress=progress)
        files.append(result)
        on_site[wb.name] = etag
        record["workbooks"][_key_text(key)] = {
            "name": wb.name,
            "input": input_fp,
            "content": content,
            "etag": etag,
            "size": wb.size,
            # When its content last changed: "Data ändrad" in the library.
            "changed_at": generated_at.isoformat(),
        }
    names = [f.name.casefold() for f in files]
    if len(set(names)) != len(names):
        raise ValueError("two workbooks would get the same file name")
    log.info(
        "Rollup: %d workbook(s) rendered, %d uploaded, %d unchanged (%s)",
        len(rendered),
        sum(1 for f in files if f.status == "uploaded"),
        sum(1 for f in files if f.status == "unchanged"),
        "every workbook's inputs built"
        if scope is None
        else f"inputs built for the overview, {len(scope.counties)} county and "
        f"{len(scope.departments)} department workbook(s)",
    )
    if stopped is not None:
        # Not every workbook shows this snapshot: the next run must not skip the aggregation
        # as "inputs unchanged". No more requests now; the next run updates the columns too.
        record["snapshot"] = None
        return PublishResult(files, rendered, record, aggregated=True, stopped=stopped)
    record = _record_freshness(client, folder_url, record, on_site, item_ids, generated_at, tz)
    return PublishResult(files=files, rendered=rendered, record=record, aggregated=True)


def _context_fingerprint(reference: RollupReference, inputs: RollupInputs, version: str) -> str:
    """Everything global a workbook's content depends on besides its rows: the code, reference
    date, language, site, schema version, row limit, drift findings, time zone and reference
    data. A scoped rollup (see _scope) needs the last one's to be the same."""
    return snapshot_fingerprint(
        {},
        None,
        reference_date=inputs.reference_date,
        language=inputs.language,
        site_url=inputs.site_url,
        extra=[
            version,
            repr(inputs.max_rows),
            str(inputs.time_zone.key),
            repr(reference),
            *(repr(f) for f in inputs.drift),
        ],
        sources={},
    )


def _scope(
    previous: Mapping[str, Any] | None,
    old: Mapping[str, Any],
    intact: Callable[[Mapping[str, Any] | None], bool],
    *,
    context: str,
    sources: Mapping[str, str],
    changes: Mapping[str, ListChanges],
    snapshots: Mapping[str, pd.DataFrame],
    reference: RollupReference,
    now: dt.datetime,
) -> Scope | None:
    """The workbooks to build tonight besides the overview (see publish_workbooks), or None:
    build everything. Scoped only when the last rollup's record is complete (no stopped
    upload), in the same context, built from exactly the states the changes start from (each
    other list: the state it has now) and has every workbook, with the time it counted its
    30-day figures to; a workbook whose file on the site is not what was uploaded is built too."""
    if not previous or previous.get("format") != RECORD_FORMAT or not previous.get("snapshot"):
        return None
    if previous.get("context") != context:
        return None
    recorded = previous.get("sources")
    if not isinstance(recorded, Mapping) or set(recorded) != set(sources):
        return None
    for title, name in sources.items():
        change = changes.get(title)
        base = name if change is None else state_source(change.base_generation, change.base_etag)
        if base is None or recorded.get(title) != base:
            return None
    since = _moment(previous.get("generated_at"))
    if since is None or since.tzinfo is None:
        return None
    found = affected(changes, snapshots, reference, since=since, now=now)
    if found is None:
        return None
    counties, departments = set(found.counties), set(found.departments)
    for kind, name in workbook_keys(reference):
        rec = old.get(_key_text((kind, name)))
        if kind == "overview" or (rec and rec.get("input") and intact(rec)):
            continue
        (counties if kind == "county" else departments).add(name)
    return Scope(frozenset(counties), frozenset(departments))


# ---------------------------------------------------------------------------------------------
# Freshness in the library's own columns (issue 12 item 9), without a new version
#
# Every night, for every workbook (uploaded or unchanged; one new tonight from the next night
# on, when the listing has its item id), "Senast kontrollerad" gets the run's time and
# "Data ändrad" the time its content last changed, through ValidateUpdateListItem with
# bNewDocumentUpdate=true: the item is updated without a new version
# (https://learn.microsoft.com/en-us/previous-versions/office/jj171078(v=office.15): "whether
# the list item is a document being updated after upload"; the REST form is
# lists(id)/items(id)/validateUpdateListItem,
# https://learn.microsoft.com/en-us/previous-versions/office/sharepoint-visio/jj246412(v=office.15);
# https://robertschouten.com/2018/04/30/update-file-metadata-with-rest-api-using-validateupdatelistitem-method/:
# it "will call the UpdateOverwriteVersion method, which will update the item without
# incrementing the version"). All of it is one `$batch` request, which also lists the folder
# again: a metadata update may give a file a new ETag, and the record must hold the file's
# current ETag or the next night would upload it again. Form values are text as a person
# types them, in the site's time zone; "2026-03-30 07:15" is the Swedish regional format
# (not verified for sites with other regional settings).


def _form_time(moment: dt.datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _record_freshness(
    client: FileClient,
    folder_url: str,
    record: dict[str, Any],
    before: Mapping[str, str | None],
    item_ids: Mapping[str, int | None],
    checked_at: dt.datetime,
    tz: ZoneInfo,
) -> dict[str, Any]:
    """Write the freshness columns of every workbook in `record` (one request); returns the
    record with the files' ETags after the update. A failure is logged, never fatal: the
    workbooks on the site are right, only their freshness columns are not."""
    workbooks: dict[str, Any] = dict(record.get("workbooks") or {})
    if not workbooks:
        return record
    try:
        values: dict[int, dict[str, str]] = {}
        for rec in workbooks.values():
            item_id = item_ids.get(str(rec.get("name")))
            if item_id is None:
                # A workbook new tonight: its item id is not in the night's listing. Its
                # columns are written from the next night on (its "changed_at" is recorded);
                # asking for the id now would cost one more request.
                continue
            fields = {LAST_CHECKED_COLUMN: _form_time(checked_at, tz)}
            changed = rec.get("changed_at")
            if changed:
                fields[DATA_CHANGED_COLUMN] = _form_time(dt.datetime.fromisoformat(changed), tz)
            values[int(item_id)] = fields
        if not values:
            return record
        after, problems = client.update_file_fields(folder_url, values)
    except (SpSyncError, ValueError) as exc:
        log.warning("Could not record the workbooks' last check in %s: %s", folder_url, exc)
        return record
    if problems:
        distinct = sorted({p.split(": ", 1)[-1] for p in problems})
        log.warning(
            "The library did not take the freshness columns of %d workbook(s) (run `sp-sync "
            "provision --apply` to add them): %s",
            len(values),
            "; ".join(distinct[:3]),
        )
    etags = {str(f.name): f.etag for f in after}
    refreshed = {}
    for key, rec in workbooks.items():
        name = str(rec.get("name"))
        # Only a file that still held what we recorded takes its new ETag.
        if rec.get("etag") and before.get(name) == rec["etag"] and etags.get(name):
            rec = {**rec, "etag": etags[name]}
        refreshed[key] = rec
    return {**record, "workbooks": refreshed}
