"""The fast cell writer (sp_sync.report.xlsx_writer renders cells straight to XML) read back independently."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from python_calamine import CalamineWorkbook

from sp_sync.report.layouts import MATRIX_COLUMN_WIDTH, render_county, render_overview
from sp_sync.report.publish import build_tables, build_workbooks, verify_workbook
from sp_sync.report.safe_text import safe_text, safe_texts
from sp_sync.report.tables import FEEDBACK, KNOWLEDGE, RollupTables
from sp_sync.report.xlsx_writer import PLAIN_NUMBER_FORMAT
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_snapshots

ROOT = Path(__file__).resolve().parents[2]


def county_table_rows(ws: Worksheet) -> tuple[int, int]:
    """First and last data row of Översikt's county table."""
    ref = ws.tables["Oversikt"].ref
    start, end = ref.split(":")
    return int(re.sub(r"\D", "", start)) + 1, int(re.sub(r"\D", "", end))


def _tables(snaps: dict[str, pd.DataFrame]) -> RollupTables:
    return build_tables(
        snaps, None, None, site_url=SITE, generated_at=GENERATED_AT, time_zone=STHLM
    )


@pytest.fixture(scope="module")
def small_tables() -> RollupTables:
    return _tables(make_snapshots(knowledge=120, feedback=60, seed=7))


def test_safe_texts_equals_safe_text_cell_by_cell() -> None:
    values = [
        "plain",
        "",
        "a\r\nb\rc",
        "ctl\x00\x01\x08\x0b\x0c\x1f end",
        "=1+1",
        " leading and trailing ",
        "y" * 40_000,
        "å ä ö & <b>",
    ]
    assert safe_texts(values) == [safe_text(v) for v in values]
    assert safe_texts(values, limit=10, language="en") == [
        safe_text(v, limit=10, language="en") for v in values
    ]
    # A value holding the column separator falls back to cell-by-cell cleaning, same result.
    odd = ["x\ue000y\x01", "z"]
    assert safe_texts(odd) == [safe_text(v) for v in odd] == ["x\ue000y", "z"]
    assert safe_texts([]) == []


def test_text_edge_cases_round_trip_in_openpyxl_and_calamine() -> None:
    snaps = make_snapshots(knowledge=6, feedback=3, seed=9)
    kn = snaps[KNOWLEDGE].copy()
    kn["County"] = "Skåne län"
    kn["Status"] = "Aktuell"
    kn["ValidUntil"] = None
    texts = [
        "  två blanksteg före",
        "efter ",
        "A & B <c> \"d\" 'e'",
        "rad 1\nrad 2",
        "-5",
        "€ 😀 ü",
    ]
    kn["Title"] = texts
    wb = render_county(_tables({**snaps, KNOWLEDGE: kn}), "Skåne län")
    verify_workbook(wb.data, expected_sheets=wb.sheets)
    ws = load_workbook(io.BytesIO(wb.data))["Kunskap"]
    got = {ws.cell(row=r, column=2).value for r in range(5, 5 + len(texts))}
    assert got == set(texts)
    minus = next(
        ws.cell(row=r, column=2) for r in range(5, 11) if ws.cell(row=r, column=2).value == "-5"
    )
    assert minus.data_type == "s" and minus.quotePrefix
    # Multi-line text wraps, top-aligned (otherwise LibreOffice draws the lines over each other);
    # so does all text of a column declared to wrap (the title), with a row height for its
    # lines; one-line text of other columns (the owner) keeps the default alignment.
    cells = {ws.cell(row=r, column=2).value: ws.cell(row=r, column=2) for r in range(5, 11)}
    assert (
        cells["rad 1\nrad 2"].alignment.wrap_text
        and cells["rad 1\nrad 2"].alignment.vertical == "top"
    )
    assert cells["efter "].alignment.wrap_text
    assert ws.row_dimensions[cells["rad 1\nrad 2"].row].height >= 30
    owner = ws.cell(row=5, column=7)
    assert isinstance(owner.value, str) and not owner.alignment.wrap_text
    book = CalamineWorkbook.from_filelike(io.BytesIO(wb.data))
    rows = book.get_sheet_by_name("Kunskap").to_python()
    assert {r[1] for r in rows[4 : 4 + len(texts)]} == set(texts)


def test_dimension_hyperlinks_and_relationships_are_consistent(small_tables: RollupTables) -> None:
    wb = render_overview(small_tables)
    n_open = len(small_tables.open_feedback)
    with zipfile.ZipFile(io.BytesIO(wb.data)) as z:
        assert z.testzip() is None
        sheet = z.read("xl/worksheets/sheet3.xml").decode()  # Återkoppling
        rels = z.read("xl/worksheets/_rels/sheet3.xml.rels").decode()
    assert f'<dimension ref="A1:O{4 + n_open}"/>' in sheet
    link_ids = re.findall(r'<hyperlink ref="O\d+" r:id="(rId\d+)"/>', sheet)
    rel_ids = re.findall(r'Id="(rId\d+)"', rels)
    assert len(link_ids) == n_open
    assert len(rel_ids) == len(set(rel_ids)) == n_open + 1  # + the table
    assert set(link_ids) < set(rel_ids)
    assert re.search(r'<tablePart [^>]*r:id="rId1"/>', sheet)
    # Read-only readers (pandas) size the sheet from the dimension.
    ro = load_workbook(io.BytesIO(wb.data), read_only=True)
    assert ro["Återkoppling"].max_row == 4 + n_open and ro["Återkoppling"].max_column == 15
    frame = pd.read_excel(
        io.BytesIO(wb.data), sheet_name="Återkoppling", header=3, engine="openpyxl"
    )
    assert len(frame) == n_open
    full = load_workbook(io.BytesIO(wb.data))["Återkoppling"]
    targets = [full.cell(row=r, column=15).hyperlink.target for r in range(5, 5 + n_open)]
    assert targets == list(small_tables.open_feedback["link"])


def test_same_tables_give_identical_bytes(small_tables: RollupTables) -> None:
    assert render_overview(small_tables).data == render_overview(small_tables).data
    assert (
        render_county(small_tables, "Skåne län").data
        == render_county(small_tables, "Skåne län").data
    )


def test_matrix_headers_turned_and_columns_narrow(small_tables: RollupTables) -> None:
    ws = load_workbook(io.BytesIO(render_overview(small_tables).data))["Kunskapsmatris"]
    assert ws.row_dimensions[4].height >= 60
    team, county, first_area = ws["A4"], ws["B4"], ws["C4"]
    assert team.alignment.textRotation in (0, None) and county.alignment.textRotation in (0, None)
    assert first_area.value == "Kompetensförsörjning"
    assert first_area.alignment.textRotation == 45 and first_area.alignment.wrap_text
    last = ws.cell(row=4, column=2 + len(small_tables.reference.subject_areas))
    assert last.alignment.textRotation == 45
    assert ws.column_dimensions["C"].width == MATRIX_COLUMN_WIDTH
    assert ws.freeze_panes == "C5"


def test_numbers_dates_and_empty_values_are_typed(small_tables: RollupTables) -> None:
    book = load_workbook(io.BytesIO(render_overview(small_tables).data))
    ws = book["Översikt"]
    first, last = county_table_rows(ws)
    for row in ws.iter_rows(min_row=first, max_row=last):
        code, current, share = row[2], row[3], row[12]
        assert code.data_type == "s"
        assert current.data_type == "n" and isinstance(current.value, int)
        assert share.value is None or 0 <= share.value <= 1
    plan = book["Dialogplan"]
    years = [c.value for c in plan["C"][4:] if c.value is not None]
    assert years and all(isinstance(y, int) for y in years)
    assert plan["C5"].number_format == PLAIN_NUMBER_FORMAT


def test_build_workbooks_reports_phase_timings() -> None:
    timings: dict[str, float] = {}
    empty = {KNOWLEDGE: pd.DataFrame(), FEEDBACK: pd.DataFrame()}
    wbs = build_workbooks(
        empty,
        None,
        None,
        site_url=SITE,
        generated_at=GENERATED_AT,
        time_zone=STHLM,
        timings=timings,
    )
    assert len(wbs) == 27
    assert set(timings) == {"aggregate_s", "render_s", "verify_s"}
    assert all(v >= 0 for v in timings.values())


def test_benchmark_script_reports_every_figure() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_rollup.py"),
            "--rows",
            "300,150",
            "--json",
            "--skip-naive",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    )
    doc = json.loads(proc.stdout)
    for key in (
        "aggregate_s",
        "render_s",
        "verify_s",
        "rollup_total_s",
        "rollup_cpu_s",
        "peak_rss_after_rollup_mb",
        "workbooks",
        "total_bytes",
        "aggregate_only_s",
    ):
        assert key in doc, key
    assert doc["knowledge_rows"] == 300 and doc["feedback_rows"] == 150 and doc["workbooks"] == 27
    assert "total wall" in proc.stderr


def test_writer_uses_no_private_openpyxl_module() -> None:
    """Issue 14 goal 5: any openpyxl release may change its private writer classes."""
    import ast

    source = (ROOT / "sp_sync" / "report" / "xlsx_writer.py").read_text(encoding="utf-8")
    modules = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.append(node.module)
        elif isinstance(node, ast.Import):
            modules += [a.name for a in node.names]
    openpyxl_modules = [m for m in modules if m.startswith("openpyxl")]
    assert openpyxl_modules, "the writer builds on openpyxl"
    private = [m for m in openpyxl_modules if any(p.startswith("_") for p in m.split("."))]
    assert private == []
    assert "openpyxl.writer.excel" not in openpyxl_modules
    # Nor private attributes of openpyxl objects (`wb._cell_styles`, `ws._charts`, …).
    assert re.findall(r"\b(?:wb|ws|cell|self\.wb)\._[a-z]", source) == []


def test_sheet_parts_keep_the_schema_order_with_links_and_charts(
    small_tables: RollupTables,
) -> None:
    """<hyperlinks> sits after the conditional formats and before the print setup, as CT_Worksheet
    requires (Excel refuses a file otherwise); every sheet with links has them in its .rels."""
    wb = render_overview(small_tables)
    order = [
        b"<sheetData",
        b"<conditionalFormatting",
        b"<hyperlinks",
        b"<printOptions",
        b"<pageMargins",
        b"<pageSetup",
        b"<drawing",
        b"<tableParts",
    ]
    seen_links = 0
    with zipfile.ZipFile(io.BytesIO(wb.data)) as z:
        for name in z.namelist():
            if not re.fullmatch(r"xl/worksheets/sheet\d+\.xml", name):
                continue
            part = z.read(name)
            positions = [part.find(tag) for tag in order if part.find(tag) >= 0]
            assert positions == sorted(positions), name
            if b"<hyperlinks" in part:
                seen_links += 1
                rels = z.read(name.replace("worksheets/", "worksheets/_rels/") + ".rels")
                ids = re.findall(rb'<hyperlink ref="[A-Z]+\d+" r:id="(rId\d+)"', part)
                assert ids and all(b'Id="' + i + b'"' in rels for i in ids)
    assert seen_links >= 1
