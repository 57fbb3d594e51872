"""Fingerprints that decide which rollup workbooks are rebuilt and which are uploaded (issue 12
item 9, issue 14 goal 4).

Three fingerprints, each a SHA-256 hex digest:

* `snapshot_fingerprint` — everything the aggregation reads (the snapshots, the data-quality
  records, the drift findings), the reference date, the language, the site and the code. Equal to
  the last run's: nothing can have changed, so not even the aggregation runs. The rollup names
  each list's snapshot and records by their commit in the state store (`state_source`) instead
  of hashing them.
* `workbook_input_fingerprints` — per workbook, the aggregated tables its layout reads (the
  overview: every table but the per-county and per-department ones; a department's workbook:
  its entry of the per-department tables; a county's workbook: its entry of the per-county
  tables), plus the reference date and the code. Equal to the last upload's: the workbook is not
  rendered again. `tests/rollup/test_publish_changes.py` guards that no layout reads a table its
  fingerprint leaves out.
* `content_fingerprint` — the rendered workbook's parts, with its generation time masked and its
  document properties left out. Equal to the copy on the site: the workbook is not uploaded.

Freshness (generation time, the lists' last-synced times) is left out of every fingerprint: it is
shown in the run summary and `sp-sync status`, and a new version of a workbook on the site then
always means that something in it changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import numpy as np
import pandas as pd

from sp_sync import __version__
from sp_sync.i18n import label
from sp_sync.report.digests import TableDigest, column_hashes, update_frame
from sp_sync.report.tables import RollupReference, RollupTables, RowSource

__all__ = [
    "CODE_FINGERPRINT",
    "KEYED_TABLES",
    "WorkbookKey",
    "content_fingerprint",
    "freshness_times",
    "snapshot_fingerprint",
    "state_source",
    "workbook_input_fingerprints",
    "workbook_keys",
]

#: ("overview", ""), ("department", name) or ("county", name): one workbook of a site's rollup.
WorkbookKey = tuple[str, str]

#: Fields of RollupTables that are freshness, not content.
_FRESHNESS_FIELDS = frozenset({"generated_at", "generated_local"})
#: Columns of the tables that are freshness (the lists' last-synced and last-checked times on
#: *Om rapporten*).
_FRESHNESS_COLUMNS = frozenset({"last_synced", "last_checked"})
#: Fields of RollupTables that are not tables.
_NOT_TABLES = frozenset({"row_sources", "scope"})
#: The per-county tables (by county) a county's workbook reads, its entry of each; the
#: per-department tables a department's workbook reads. The overview reads every other table.
KEYED_TABLES: Mapping[str, tuple[str, ...]] = {
    "county": (
        "county_prep",
        "county_recent_knowledge",
        "county_knowledge",
        "county_dialogues",
        "county_feedback",
    ),
    "department": ("by_department", "department_summary"),
}
#: Document-property parts: they carry the creation time and our own fingerprint property.
_SKIPPED_PARTS = frozenset({"docProps/core.xml", "docProps/custom.xml"})


def _code_fingerprint() -> str:
    """The package version plus the source of the modules that decide a workbook's content, so
    a change to a layout rebuilds every workbook even before the version number moves."""
    h = hashlib.sha256(__version__.encode())
    here = Path(__file__).resolve().parent
    for name in (
        "tables.py",
        "layouts.py",
        "xlsx_writer.py",
        "safe_text.py",
        "fingerprint.py",
        "digests.py",
    ):
        path = here / name
        if path.exists():
            h.update(name.encode())
            h.update(path.read_bytes())
    i18n = here.parent / "i18n.py"
    if i18n.exists():
        h.update(i18n.read_bytes())
    return h.hexdigest()


CODE_FINGERPRINT = _code_fingerprint()


def _update_frame(h: Any, df: pd.DataFrame | None, drop: Iterable[str] = ()) -> None:
    # Column by column, through sp_sync.report.digests (issue 14 goal 4: hashing was most of a
    # quiet night).
    update_frame(h, df, drop)


def _update_value(h: Any, value: Any) -> None:
    if isinstance(value, pd.DataFrame):
        _update_frame(h, value, drop=_FRESHNESS_COLUMNS)
    elif isinstance(value, Mapping):
        for key in sorted(value, key=str):
            h.update(f"<key {key!s}>".encode())
            _update_value(h, value[key])
    else:
        h.update(repr(value).encode())


def snapshot_fingerprint(
    snapshots: Mapping[str, pd.DataFrame],
    quality: pd.DataFrame | None,
    *,
    reference_date: dt.date,
    language: str,
    site_url: str,
    extra: Iterable[str] = (),
    sources: Mapping[str, str] | None = None,
) -> str:
    """Everything the aggregation reads, except freshness (see the module docstring).

    `extra` takes further inputs as text (the drift findings, the schemas' version).

    `sources` names, per list of `snapshots`, the committed state its snapshot and quality
    records come from (see `state_source`). Given, the fingerprint is taken from those names
    instead of hashing every frame (issue 14 goal 4: hashing the snapshots was a large part of
    a quiet night): a state store's commit is named by its manifest's ETag, which changes with
    every commit and names the content's SHA-256. Two commits of the same data get different
    names; that costs one aggregation, never a stale workbook.
    """
    h = hashlib.sha256(CODE_FINGERPRINT.encode())
    h.update(f"{reference_date.isoformat()}|{language}|{site_url}".encode())
    for item in extra:
        h.update(f"<extra {item}>".encode())
    if sources is not None:
        if set(sources) != set(snapshots):
            raise ValueError("sources must name the state of every snapshot")
        h.update(b"<sources>")
        for title in sorted(sources):
            h.update(f"<list {title}>{sources[title]}".encode())
        return h.hexdigest()
    for title in sorted(snapshots):
        h.update(f"<list {title}>".encode())
        _update_frame(h, snapshots[title])
    h.update(b"<quality>")
    _update_frame(h, quality)
    return h.hexdigest()


def state_source(generation: int, etag: str | None) -> str | None:
    """What names a list's committed state in `snapshot_fingerprint(sources=…)`: its manifest's
    ETag with the generation; None when the store gave no ETag (then hash the frames)."""
    return None if not etag else f"{generation}:{etag}"


def workbook_keys(tables: RollupTables | RollupReference) -> list[WorkbookKey]:
    """Every workbook of a rollup (of its tables or its reference data), in the order
    sp_sync.report.layouts.render_workbooks writes them."""
    reference = tables.reference if isinstance(tables, RollupTables) else tables
    return (
        [("overview", "")]
        + [("department", d) for d in reference.departments]
        + [("county", c.name) for c in reference.counties]
    )


def workbook_input_fingerprints(
    tables: RollupTables,
    *,
    language: str,
    max_rows: int,
    keys: Iterable[WorkbookKey] | None = None,
) -> dict[WorkbookKey, str]:
    """Per workbook of `keys` (default: every one), a digest of the tables its layout reads
    (see the module docstring and KEYED_TABLES). The reference date is part of every workbook
    (overdue is relative to it). Only the tables of the asked workbooks are hashed; the tables
    must hold them (RollupTables.covers)."""
    wanted = workbook_keys(tables) if keys is None else list(keys)
    missing = [key for key in wanted if not tables.covers(*key)]
    if missing:
        raise ValueError(f"the tables do not hold the workbooks {missing}")
    common = hashlib.sha256(CODE_FINGERPRINT.encode())
    common.update(f"{language}|{max_rows}|{tables.site_url}|{tables.time_zone}".encode())
    common.update(tables.reference_date.isoformat().encode())
    common.update(repr(tables.reference).encode())
    keyed = {name for names in KEYED_TABLES.values() for name in names}
    frames = {
        f.name: getattr(tables, f.name)
        for f in dataclasses.fields(tables)
        if f.name not in _FRESHNESS_FIELDS
        and f.name not in _NOT_TABLES
        and f.name not in keyed
        and isinstance(getattr(tables, f.name), pd.DataFrame | Mapping)
    }
    # The tables the asked workbooks read, each hashed once (issue 14 goal 4).
    every: dict[int, pd.DataFrame] = {}

    def collect(value: Any) -> None:
        if isinstance(value, pd.DataFrame):
            every.setdefault(id(value), value)
        elif isinstance(value, Mapping):
            for item in value.values():
                collect(item)

    if ("overview", "") in wanted:
        for value in frames.values():
            collect(value)
    for kind, name in wanted:
        for field_name in KEYED_TABLES.get(kind, ()):
            value = getattr(tables, field_name)
            if name in value:
                collect(value[name])
    # A table cut from another's rows (the per-department and per-county tables, see
    # RowSource) takes its cells from its source's, each source column hashed once: the
    # feedback rows behind the department, county and open-feedback tables were hashed twice.
    sourced = {
        key: source
        for key, df in every.items()
        if (source := tables.row_sources.get(key)) is not None
        and source.table is df
        and [str(c) for c in df.columns] == list(source.columns)
    }
    plain = [key for key in every if key not in sourced]
    digests = dict(
        zip(
            plain,
            TableDigest.many([every[key] for key in plain], drop=_FRESHNESS_COLUMNS),
            strict=True,
        )
    )
    hashed: dict[tuple[int, str], np.ndarray] = {}

    def source_column(source: RowSource, name: str) -> np.ndarray:
        found = hashed.get((id(source.source), name))
        if found is None:
            found = hashed[(id(source.source), name)] = column_hashes(source.source[name])
        return found

    for key, source in sourced.items():
        kept = [c for c in source.columns if c not in _FRESHNESS_COLUMNS]
        cells = np.empty((len(kept), len(source.positions)), dtype=np.uint64)
        for row, name in enumerate(kept):
            cells[row] = source_column(source, name)[source.positions]
        digests[key] = TableDigest(every[key], _FRESHNESS_COLUMNS, cells=cells)

    def update(h: Any, value: Any) -> None:
        if isinstance(value, pd.DataFrame):
            digests[id(value)].update(h)
        elif isinstance(value, Mapping):
            for key in sorted(value, key=str):
                h.update(f"<key {key!s}>".encode())
                update(h, value[key])
        else:
            h.update(repr(value).encode())

    out: dict[WorkbookKey, str] = {}
    for kind, name in wanted:
        h = common.copy()
        h.update(f"<{kind} {name}>".encode())
        if kind == "overview":
            for field_name in sorted(frames):
                h.update(f"<{field_name}>".encode())
                update(h, frames[field_name])
            # The headline block's figures (a dataclass, not a table).
            h.update(f"<headline>{tables.headline!r}".encode())
        else:
            for field_name in KEYED_TABLES[kind]:
                value = getattr(tables, field_name)
                if name in value:
                    h.update(f"<{field_name}>".encode())
                    update(h, value[name])
        out[(kind, name)] = h.hexdigest()
    return out


#: _serial_mark's answers, by the moment as written (see _serial_key): every workbook rendered
#: in a night asks for the same few moments (the generation time and the lists' last checks).
_SERIAL_MARKS: dict[tuple[Any, ...], bytes] = {}


def _serial_key(moment: dt.datetime) -> tuple[Any, ...]:
    # Not the moment itself: two aware moments of the same instant in different time zones are
    # equal (and hash alike) but are written as different wall-clock times.
    return (type(moment), moment.isoformat(), repr(moment.tzinfo))


def _serial_mark(moment: dt.datetime) -> bytes:
    # A date-time cell's value exactly as the writer puts it: `<v>46356.08333333333</v>`.
    key = _serial_key(moment)
    found = _SERIAL_MARKS.get(key)
    if found is None:
        from sp_sync.report.xlsx_writer import _excel_serials  # openpyxl: for a rendered one

        _missing, serial = _excel_serials([moment])
        found = f"<v>{float(serial[0])!r}</v>".encode()
        if len(_SERIAL_MARKS) < 256:  # a night asks for a handful; a long process for more
            _SERIAL_MARKS[key] = found
    return found


def _generation_marks(generated_local: dt.datetime) -> list[bytes]:
    # How the layouts write the generation time as text ("2026-11-30 02:00" in each sheet's
    # subtitle).
    return sorted(
        {
            generated_local.strftime("%Y-%m-%d %H:%M:%S").encode(),
            generated_local.strftime("%Y-%m-%d %H:%M").encode(),
        },
        key=len,
        reverse=True,
    )


#: The sheet that shows freshness as date-time cells, in both languages (label "sheet_about").
_ABOUT_SHEETS = tuple(label("sheet_about", lang) for lang in ("sv", "en"))


def _about_part(parts: Mapping[str, bytes]) -> str | None:
    """The zip part of the *Om rapporten* sheet, or None when the workbook has none.

    Freshness serials are masked there only: elsewhere the same number may be data (an item
    modified in the very second the rollup was generated)."""
    try:
        book = parts["xl/workbook.xml"].decode("utf-8")
        rels = parts["xl/_rels/workbook.xml.rels"].decode("utf-8")
    except KeyError:
        return None
    for name in _ABOUT_SHEETS:
        escaped = xml_escape(name, {'"': "&quot;"})
        found = re.search(rf'<sheet [^>]*name="{re.escape(escaped)}"[^>]*r:id="(\w+)"', book)
        if found is None:
            continue
        target = re.search(rf'Target="([^"]+)"[^>]*Id="{found.group(1)}"', rels) or re.search(
            rf'Id="{found.group(1)}"[^>]*Target="([^"]+)"', rels
        )
        if target is not None:
            path = target.group(1)
            return path.lstrip("/") if path.startswith("/") else f"xl/{path}"
    return None


def freshness_times(tables: RollupTables) -> list[dt.datetime]:
    """The lists' last checks as *Om rapporten* shows them (site-local), for content_fingerprint."""
    about = tables.about_lists
    if "last_checked" not in about.columns:
        return []
    return [v for v in about["last_checked"].tolist() if isinstance(v, dt.datetime)]


def content_fingerprint(
    data: bytes,
    generated_local: dt.datetime,
    checked: Iterable[dt.datetime] = (),
    *,
    parts: Mapping[str, bytes] | None = None,
) -> str:
    """A digest of an .xlsx file's content: every part but the document properties, with the
    generation time and the lists' last checks (`checked`, see freshness_times) masked, so the
    same figures rendered at another time give the same digest.

    The generation time is masked as text everywhere (sheet subtitles); as a date-time cell
    ("Skapad") and the last checks only on *Om rapporten*. `parts` are the file's parts by
    name when they were read already (see publish.verify_workbook); then `data` is not opened.
    """
    marks = _generation_marks(generated_local)
    serials = sorted(
        {_serial_mark(generated_local), *(_serial_mark(c) for c in checked if not pd.isna(c))},
        key=len,
        reverse=True,
    )
    if parts is None:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = {name: archive.read(name) for name in archive.namelist()}
    h = hashlib.sha256()
    about = _about_part(parts)
    for name in sorted(parts):
        if name in _SKIPPED_PARTS:
            continue
        part = parts[name]
        for mark in marks:
            part = part.replace(mark, b"\x00generated\x00")
        if name == about:
            for mark in serials:
                part = part.replace(mark, b"<v>\x00fresh\x00</v>")
        h.update(f"<part {name} {len(part)}>".encode())
        h.update(part)
    return h.hexdigest()
