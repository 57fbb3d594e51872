"""Benchmark: xlsx engines side by side for the rollups' tables (issue 14 goal 5).

    .venv/bin/python benchmarks/bench_engines.py [--rows 100000,50000] [--json]

The same aggregated tables (tests/rollup/helpers.py → sp_sync.report.publish.build_tables,
built once and handed to each engine through a pickle) are written by:

* current   – sp_sync.report.layouts.render_workbooks: the whole product (every sheet, table,
              conditional format, chart, print setup), table cells rendered to SpreadsheetML
              with Arrow's string kernels and spliced into the parts openpyxl's public
              `Workbook.save` writes for everything else;
* openpyxl write-only – public `Workbook(write_only=True)`: every table of every workbook, one
              sheet each, appended row by row as values with date/count formats, an Excel table
              per sheet; no hyperlinks (write-only cells cannot carry them), no charts;
* xlsxwriter – public XlsxWriter API: the same tables with formats, an Excel table per sheet
              (`add_table`) and hyperlinks (`write_url`).

Text is cleaned with sp_sync.report.safe_text.safe_texts in every engine (that cost is the same
whatever writes the file). After the timed write, every workbook is read back with openpyxl
(read-only, every row of every sheet, not the first few) and the engine fails unless it holds at
least one non-empty row per row of the tables it was given; that check is timed apart
(`verify_s`). Each engine runs in its own child process, so wall time, CPU time and
peak RSS are its own. On a shared machine compare CPU seconds: wall time includes waiting for
the other processes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import math
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENGINES = ("current", "openpyxl_write_only", "xlsxwriter")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tables(knowledge: int, feedback: int) -> Any:
    from sp_sync.report.publish import build_tables
    from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_quality, make_snapshots

    snaps = make_snapshots(
        knowledge=knowledge, feedback=feedback, dialogues_per_county=8, empty_counties=()
    )
    return build_tables(
        snaps,
        make_quality(snaps),
        None,
        site_url=SITE,
        generated_at=GENERATED_AT,
        time_zone=STHLM,
    )


def _books(tables: Any) -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    """(workbook, [(sheet, frame)]) for every table the current layouts write."""
    yield (
        "overview",
        [
            ("Oversikt", tables.overview),
            ("Matris", tables.matrix),
            ("Aterkoppling", tables.open_feedback),
            ("Dialogplan", tables.dialogue_plan),
            ("Datakvalitet", tables.quality),
            ("Listor", tables.about_lists),
        ],
    )
    for dept in tables.reference.departments:
        yield f"dept-{dept}", [("Aterkoppling", tables.by_department.get(dept))]
    for county in tables.reference.counties:
        c = county.name
        yield (
            f"county-{c}",
            [
                ("Kunskap", tables.county_knowledge.get(c)),
                ("Dialogplan", tables.county_dialogues.get(c)),
                ("Aterkoppling", tables.county_feedback.get(c)),
            ],
        )


def _columns(df: Any) -> list[tuple[str, str, list[Any]]]:
    """(name, kind, values) per column: kind text/number/date/link, values ready to write."""
    import pandas as pd

    from sp_sync.report.safe_text import safe_texts

    out = []
    for name in df.columns:
        raw = df[name].tolist()
        present = [v for v in raw if not _missing(v)]
        sample = present[0] if present else None
        if name == "link" or name.endswith("_url"):
            out.append((str(name), "link", [None if _missing(v) else str(v) for v in raw]))
        elif isinstance(sample, dt.date | pd.Timestamp):
            values = []
            for v in raw:
                if _missing(v):
                    values.append(None)
                    continue
                if isinstance(v, pd.Timestamp):
                    v = v.to_pydatetime()
                if isinstance(v, dt.datetime) and v.tzinfo is not None:
                    v = v.replace(tzinfo=None)
                values.append(v)
            out.append((str(name), "date", values))
        elif isinstance(sample, int | float) and not isinstance(sample, bool):
            out.append((str(name), "number", [None if _missing(v) else float(v) for v in raw]))
        else:
            texts = [
                "; ".join(map(str, v)) if isinstance(v, list | tuple) else str(v)
                for v in raw
                if not _missing(v)
            ]
            cleaned = iter(safe_texts(texts))
            out.append((str(name), "text", [None if _missing(v) else next(cleaned) for v in raw]))
    return out


def _missing(v: Any) -> bool:
    import pandas as pd

    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and math.isnan(v)


def _write_openpyxl(tables: Any) -> list[bytes]:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.table import Table, TableStyleInfo

    files: list[bytes] = []
    for _book, sheets in _books(tables):
        wb = Workbook(write_only=True)
        for n, (sheet, df) in enumerate(sheets):
            if df is None:
                continue
            ws = wb.create_sheet(sheet)
            cols = _columns(df)
            ws.append([c[0] for c in cols] or ["-"])
            fmts = {"date": "yyyy-mm-dd", "number": "#,##0"}
            for r in range(len(df)):
                row = []
                for _name, kind, values in cols:
                    v = values[r]
                    if kind in fmts and v is not None:
                        cell = WriteOnlyCell(ws, value=v)
                        cell.number_format = fmts[kind]
                        row.append(cell)
                    else:
                        row.append(v)
                ws.append(row)
            if cols:
                ref = f"A1:{get_column_letter(len(cols))}{max(2, len(df) + 1)}"
                table = Table(displayName=f"T{n}_{sheet}", ref=ref)
                table.tableStyleInfo = TableStyleInfo(name="TableStyleMedium2", showRowStripes=True)
                ws.add_table(table)
        buf = io.BytesIO()
        wb.save(buf)
        files.append(buf.getvalue())
    return files


def _write_xlsxwriter(tables: Any) -> list[bytes]:
    import xlsxwriter

    files: list[bytes] = []
    for _book, sheets in _books(tables):
        buf = io.BytesIO()
        wb = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_formulas": False})
        fmt = {
            "date": wb.add_format({"num_format": "yyyy-mm-dd"}),
            "number": wb.add_format({"num_format": "#,##0"}),
        }
        for sheet, df in sheets:
            if df is None:
                continue
            ws = wb.add_worksheet(sheet)
            cols = _columns(df)
            ws.write_row(0, 0, [c[0] for c in cols])
            for j, (_name, kind, values) in enumerate(cols):
                for i, v in enumerate(values, start=1):
                    if v is None:
                        continue
                    if kind == "link":
                        ws.write_url(i, j, v, string="Öppna")
                    elif kind == "date":
                        ws.write_datetime(i, j, v, fmt["date"])
                    elif kind == "number":
                        ws.write_number(i, j, v, fmt["number"])
                    else:
                        ws.write_string(i, j, v)
            if cols:
                ws.add_table(
                    0,
                    0,
                    max(1, len(df)),
                    len(cols) - 1,
                    {"columns": [{"header": c[0]} for c in cols], "style": "Table Style Medium 2"},
                )
        wb.close()
        files.append(buf.getvalue())
    return files


def _read_back(files: list[bytes]) -> int:
    """Open every workbook with openpyxl and read every row of every sheet; the non-empty rows."""
    from openpyxl import load_workbook

    rows = 0
    for data in files:
        wb = load_workbook(io.BytesIO(data), read_only=True)
        try:
            for ws in wb.worksheets:
                for row in ws.iter_rows(values_only=True):
                    if any(v is not None for v in row):
                        rows += 1
        finally:
            wb.close()
    return rows


def _table_rows(tables: Any) -> int:
    return sum(
        len(df) for _book, sheets in _books(tables) for _sheet, df in sheets if df is not None
    )


def child(engine: str, pickle_path: str) -> dict[str, Any]:
    with open(pickle_path, "rb") as fh:
        tables = pickle.load(fh)
    base = _peak_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    if engine == "current":
        from sp_sync.report.layouts import render_workbooks

        files = [w.data for w in render_workbooks(tables)]
    elif engine == "openpyxl_write_only":
        files = _write_openpyxl(tables)
    else:
        files = _write_xlsxwriter(tables)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _peak_mb()
    v0 = time.process_time()
    read_back = _read_back(files)
    expected = _table_rows(tables)
    if read_back < expected:
        raise SystemExit(f"{engine}: {read_back:,} rows read back, expected at least {expected:,}")
    return {
        "engine": engine,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "bytes": sum(len(f) for f in files),
        "peak_rss_mb": round(peak),
        "rss_before_mb": round(base),
        "rows_read_back": read_back,
        "table_rows": expected,
        "verify_s": round(time.process_time() - v0, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,50000")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "PICKLE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    k, _, f = args.rows.partition(",")
    tables = _tables(int(k), int(f))
    results = []
    with tempfile.TemporaryDirectory(prefix="sp-sync-engines-") as tmp:
        path = os.path.join(tmp, "tables.pickle")
        with open(path, "wb") as fh:
            pickle.dump(tables, fh)
        del tables
        for engine in args.engines.split(","):
            proc = subprocess.run(
                [sys.executable, __file__, "--child", engine, path],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                results.append({"engine": engine, "error": proc.stderr.strip()[-400:]})
            else:
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    doc = {
        "benchmark": "engines",
        "rows": args.rows,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "engines": results,
    }
    lines = [f"{'engine':<22} {'wall s':>7} {'cpu s':>6} {'peak MB':>8} {'bytes':>12}"]
    for r in results:
        if "error" in r:
            lines.append(f"{r['engine']:<22} failed: {r['error']}")
        else:
            lines.append(
                f"{r['engine']:<22} {r['wall_s']:>7} {r['cpu_s']:>6} {r['peak_rss_mb']:>8} "
                f"{r['bytes']:>12,}"
            )
    print("\n".join(lines), file=sys.stderr if args.json else sys.stdout)
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
