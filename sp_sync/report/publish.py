"""Build, verify, store and upload the Excel rollups.

    workbooks = build_workbooks(snapshots, quality, reference, sync_info,
                                site_url=..., generated_at=..., time_zone=..., language="sv")
    write_local_copies(workbooks, out_dir)                 # optional, atomic
    uploaded = upload_workbooks(client, workbooks)         # into "Sammanställningar"

`build_workbooks` is pure (no clock, no I/O besides loading the repository's list_schemas/ when no
schemas are given) and verifies every workbook by opening it again before returning it, so nothing
half-generated can reach the site. Uploads overwrite, so SharePoint keeps the previous workbook as
a version; a failed upload leaves the previous workbook untouched and raises UploadError.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import pandas as pd

from sp_sync.errors import SpSyncError, UploadError
from sp_sync.i18n import normalise_language
from sp_sync.report.layouts import RollupWorkbook, render_workbooks
from sp_sync.report.safe_text import MAX_ROWS
from sp_sync.report.tables import (
    ListSyncInfo,
    RollupReference,
    RollupTables,
    aggregate,
    drift_frame,
)
from sp_sync.run.summary import UploadedWorkbook
from sp_sync.schema import SchemaSet, load_schemas
from sp_sync.schema.drift import DriftFinding, DriftReport
from sp_sync.settings import default_of

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_FOLDER",
    "RollupWorkbook",
    "UploadedWorkbook",
    "build_tables",
    "build_workbooks",
    "upload_workbooks",
    "verify_workbook",
    "write_local_copies",
]

log = logging.getLogger(__name__)

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


def _sync_info(sync_info: Mapping[str, Any] | None) -> dict[str, ListSyncInfo]:
    out: dict[str, ListSyncInfo] = {}
    for title, info in (sync_info or {}).items():
        if isinstance(info, ListSyncInfo):
            out[title] = info
        elif isinstance(info, Mapping):
            out[title] = ListSyncInfo(
                list_title=title,
                item_count=int(info.get("item_count", info.get("items", 0)) or 0),
                last_synced=info.get("last_synced"),
            )
        else:
            raise TypeError(f"sync_info[{title!r}] must be ListSyncInfo or a mapping")
    return out


def build_tables(
    snapshots: Mapping[str, pd.DataFrame],
    quality: pd.DataFrame | None,
    schemas: SchemaSet | RollupReference | None,
    sync_info: Mapping[str, Any] | None = None,
    *,
    site_url: str,
    generated_at: dt.datetime,
    time_zone: ZoneInfo | str | None = None,
) -> RollupTables:
    """The aggregated tables (sp_sync.report.tables) for the given snapshots."""
    tz = (
        ZoneInfo(time_zone)
        if isinstance(time_zone, str)
        else (time_zone or ZoneInfo("Europe/Stockholm"))
    )
    return aggregate(
        snapshots,
        quality,
        _reference(schemas),
        _sync_info(sync_info),
        site_url=site_url,
        generated_at=generated_at,
        time_zone=tz,
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
    reopened with openpyxl before it is returned (`verify=False` skips that, for benchmarks).
    When `timings` is given, the wall-clock seconds of each phase are stored in it under
    "aggregate_s", "render_s" and "verify_s". `drift` (the run's DriftReport, or its findings)
    is listed on the overview's *Om rapporten* sheet.
    """
    clock = time.perf_counter
    t0 = clock()
    tables = build_tables(
        snapshots,
        quality,
        schemas,
        sync_info,
        site_url=site_url,
        generated_at=generated_at,
        time_zone=time_zone,
    )
    findings = _findings(drift)
    if findings:
        lang = normalise_language(language)
        tables = dataclasses.replace(tables, drift=drift_frame(findings, lang))
    t1 = clock()
    workbooks = render_workbooks(tables, language=normalise_language(language), max_rows=max_rows)
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


def verify_workbook(
    data: bytes, *, expected_sheets: Sequence[str] | None = None, name: str = "workbook"
) -> tuple[str, ...]:
    """Open `data` again with openpyxl; raise UploadError when it is not a readable workbook.

    Returns the sheet names. A workbook is uploaded only after this succeeded.
    """
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True)
        try:
            sheets = tuple(wb.sheetnames)
            for ws in wb.worksheets:
                # Touch the first rows so a broken sheet part fails here, not in a user's Excel.
                for _ in ws.iter_rows(min_row=1, max_row=5, values_only=True):
                    pass
        finally:
            wb.close()
    except Exception as exc:  # openpyxl raises many kinds for a broken file
        raise UploadError(
            f"The workbook {name} could not be opened again after it was generated: {exc}"
        ) from exc
    if expected_sheets is not None and tuple(expected_sheets) != sheets:
        raise UploadError(
            f"The workbook {name} has sheets {sheets}, expected {tuple(expected_sheets)}"
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
    `progress(name, done_bytes, total_bytes)` is called while uploading.
    """
    for wb in workbooks:
        verify_workbook(wb.data, expected_sheets=wb.sheets, name=wb.name)
    try:
        folder_url = client.ensure_folder(folder)
    except SpSyncError as exc:
        raise UploadError(
            f"Could not create or open the folder '{folder}' in the site's document library: {exc}",
            status=exc.status,
            code=exc.code,
            request_id=exc.request_id,
        ) from exc
    uploaded: list[UploadedWorkbook] = []
    for wb in workbooks:

        def report(done: int, total: int, _name: str = wb.name) -> None:
            if progress is not None:
                progress(_name, done, total)

        try:
            info = client.upload_file(
                folder_url, wb.name, wb.data, chunk_size=chunk_size, progress=report
            )
        except SpSyncError as exc:
            raise UploadError(
                f"Uploading {wb.name} to {folder_url} failed; the previous version of the file is "
                f"unchanged. Cause: {exc}",
                status=exc.status,
                code=exc.code,
                request_id=exc.request_id,
            ) from exc
        result = UploadedWorkbook(
            name=wb.name,
            server_relative_url=str(
                getattr(info, "server_relative_url", f"{folder_url}/{wb.name}")
            ),
            size=int(getattr(info, "size", wb.size)),
        )
        log.info("Uploaded %s (%d bytes)", result.server_relative_url, result.size)
        uploaded.append(result)
    return uploaded
