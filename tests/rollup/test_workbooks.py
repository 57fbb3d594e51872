"""Rollup workbooks read back with openpyxl and, independently, python-calamine."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from python_calamine import CalamineWorkbook

from sp_sync.report.layouts import COUNT_FORMAT, DATE_FORMAT, RollupWorkbook, render_county
from sp_sync.report.publish import (
    build_tables,
    build_workbooks,
    verify_workbook,
    write_local_copies,
)
from sp_sync.report.tables import DIALOGUES, FEEDBACK, KNOWLEDGE, load_reference
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_quality, make_snapshots

PAYLOADS = [
    "=1+1",
    "+SUM(A1)",
    "-2+3",
    "@cmd",
    '=HYPERLINK("http://x","y")',
    "\t=1",
    "\r=1",
    "=cmd|' /C calc'!A0",
    '=DDE("cmd";"/C calc";"__DdeLink_60_870516294")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+cmd|' /C notepad'!A0",
]


def build(
    snapshots: dict[str, pd.DataFrame], quality: pd.DataFrame | None = None, **kw: Any
) -> dict[str, RollupWorkbook]:
    kw.setdefault("site_url", SITE)
    kw.setdefault("generated_at", GENERATED_AT)
    kw.setdefault("time_zone", STHLM)
    wbs = build_workbooks(snapshots, quality, None, None, **kw)
    return {w.name: w for w in wbs}


def county_book(
    snapshots: dict[str, pd.DataFrame], county: str = "Skåne län", **kw: Any
) -> Workbook:
    """Only one Länsbild (faster than all 27 workbooks), verified like build_workbooks does."""
    kw.setdefault("site_url", SITE)
    kw.setdefault("generated_at", GENERATED_AT)
    kw.setdefault("time_zone", STHLM)
    wb = render_county(build_tables(snapshots, None, None, **kw), county)
    verify_workbook(wb.data, expected_sheets=wb.sheets)
    return opx(wb)


@pytest.fixture(scope="module")
def demo(snapshots: dict[str, pd.DataFrame], quality: pd.DataFrame) -> dict[str, RollupWorkbook]:
    return build(snapshots, quality)


def opx(wb: RollupWorkbook) -> Workbook:
    return load_workbook(io.BytesIO(wb.data))


def cal(wb: RollupWorkbook) -> dict[str, list[list[Any]]]:
    book = CalamineWorkbook.from_filelike(io.BytesIO(wb.data))
    return {name: book.get_sheet_by_name(name).to_python() for name in book.sheet_names}


def table_rows(
    ws: Worksheet, header_row: int = 4, *, table: str | None = None
) -> list[dict[str, Any]]:
    """The rows of the sheet's table (by name when the sheet has several) as header → value."""
    if table is not None:
        first, last = ws.tables[table].ref.split(":")
        header_row, last_row = int(re.sub(r"\D", "", first)), int(re.sub(r"\D", "", last))
        width = len(ws.tables[table].tableColumns)
        rows = ws.iter_rows(
            min_row=header_row + 1, max_row=last_row, max_col=width, values_only=True
        )
        headers = [c.value for c in ws[header_row]][:width]
    else:
        rows = ws.iter_rows(min_row=header_row + 1, values_only=True)
        headers = [c.value for c in ws[header_row]]
    out = []
    for row in rows:
        if all(v is None for v in row):
            continue
        out.append(dict(zip(headers, row, strict=False)))
    return out


def county_rows(book: Workbook, sheet: str = "Översikt") -> list[dict[str, Any]]:
    return table_rows(book[sheet], table="Oversikt")


def test_file_set_and_names(demo: dict[str, RollupWorkbook]) -> None:
    names = list(demo)
    assert names[0] == "Länsöversikt.xlsx"
    depts = [n for n in names if n.startswith("Återkoppling – ")]
    assert depts == [
        f"Återkoppling – {d}.xlsx"
        for d in ("Företag", "Regioner", "Analys", "Kommunikation", "Verksamhetsstöd")
    ]
    counties = [n for n in names if n.startswith("Länsbild – ")]
    assert len(counties) == 21 and "Länsbild – Gotlands län.xlsx" in counties
    for name in names:
        assert not re.search(r'["*:<>?/\\|]', name)


def test_overview_workbook_structure(demo: dict[str, RollupWorkbook]) -> None:
    wb = demo["Länsöversikt.xlsx"]
    assert wb.sheets == (
        "Översikt",
        "Kunskapsmatris",
        "Återkoppling",
        "Dialogplan",
        "Diagram",
        "Datakvalitet",
        "Om rapporten",
    )
    book = opx(wb)
    assert book.properties.creator == "sp-sync"
    assert book.properties.title == "Länsöversikt"
    assert book.properties.created == GENERATED_AT.replace(tzinfo=None)
    for name in ("Översikt", "Kunskapsmatris", "Återkoppling", "Dialogplan", "Datakvalitet"):
        ws = book[name]
        assert ws.tables, name
        table = next(iter(ws.tables.values()))
        assert table.tableStyleInfo.name.startswith("TableStyleMedium")
        assert table.autoFilter is not None
        assert ws.page_setup.orientation == "landscape"
        if name == "Översikt":
            # The headline block comes first; the county table starts a printed page with its
            # header repeated.
            header = int(re.sub(r"\D", "", ws.tables["Oversikt"].ref.split(":")[0]))
            assert ws.print_title_rows == f"${header}:${header}"
            assert [b.id for b in ws.row_breaks.brk] == [header - 2]
        else:
            assert ws.freeze_panes in ("A5", "C5")
            assert ws.print_title_rows == "$4:$4"
    names = [t for ws in book.worksheets for t in ws.tables]
    assert len(names) == len({n.lower() for n in names})
    # conditional formats: data bars on counts, colour scale on the matrix, overdue rule
    kinds = {r.type for cf in book["Översikt"].conditional_formatting for r in cf.rules}
    assert "dataBar" in kinds
    rules = [r for cf in book["Kunskapsmatris"].conditional_formatting for r in cf.rules]
    assert {(r.type, r.operator, tuple(r.formula)) for r in rules} == {
        ("cellIs", "equal", ("0",)),
        ("cellIs", "between", ("1", "2")),
        ("cellIs", "greaterThanOrEqual", ("3",)),
    }
    rules = [r for cf in book["Återkoppling"].conditional_formatting for r in cf.rules]
    assert [(r.type, r.formula[0]) for r in rules] == [
        ("expression", "$J5>90"),
        ("expression", "$J5>30"),
    ]
    # native charts on Diagram: one stacked, one clustered
    with zipfile.ZipFile(io.BytesIO(wb.data)) as z:
        charts = sorted(n for n in z.namelist() if n.startswith("xl/charts/chart"))
        xml = [z.read(n).decode() for n in charts]
    assert len(charts) == 2
    assert any('grouping val="stacked"' in x for x in xml)
    assert any('grouping val="clustered"' in x for x in xml)


def test_overview_values_all_counties(
    demo: dict[str, RollupWorkbook], snapshots: dict[str, pd.DataFrame]
) -> None:
    book = opx(demo["Länsöversikt.xlsx"])
    rows = county_rows(book)
    assert len(rows) == 21
    assert [r["Team"] for r in rows][:7] == ["Norr"] * 7
    gotland = next(r for r in rows if r["Län"] == "Gotlands län")
    assert gotland["Aktuell kunskap"] == 0 and gotland["Öppen återkoppling"] == 0
    assert gotland["Försenad återkoppling"] == 0 and gotland["Aktuell fas"] is None
    # current knowledge total equals the definition applied to the snapshot
    kn = snapshots[KNOWLEDGE]
    ref = GENERATED_AT.astimezone(STHLM).date()
    current = kn[
        (kn["Status"] == "Aktuell") & kn["ValidUntil"].map(lambda d: d is None or d >= ref)
    ]
    assert sum(r["Aktuell kunskap"] for r in rows) == len(current)
    ws = book["Översikt"]
    first = int(re.sub(r"\D", "", ws.tables["Oversikt"].ref.split(":")[0])) + 1
    assert ws[f"D{first}"].number_format == COUNT_FORMAT
    assert ws[f"M{first}"].number_format == "0 %_ "
    # matrix: 21 counties × 11 subject areas, sums match
    mrows = table_rows(book["Kunskapsmatris"])
    assert len(mrows) == 21 and len(mrows[0]) == 13
    assert sum(sum(v for k, v in r.items() if k not in ("Team", "Län")) for r in mrows) == len(
        current
    )


def test_open_feedback_sorted_linked_and_overdue(
    demo: dict[str, RollupWorkbook], snapshots: dict[str, pd.DataFrame]
) -> None:
    book = opx(demo["Länsöversikt.xlsx"])
    ws = book["Återkoppling"]
    rows = table_rows(ws)
    fb = snapshots[FEEDBACK]
    assert len(rows) == int(fb["Status"].isin(["Ny", "Pågående"]).sum())
    dues = [r["Sista datum"] for r in rows if r["Sista datum"] is not None]
    assert dues == sorted(dues)
    assert isinstance(dues[0], dt.datetime)  # a real Excel date, not text
    assert ws["I5"].number_format == DATE_FORMAT
    overdue = [r for r in rows if r["Dagar försenad"]]
    assert overdue and all(
        r["Sista datum"].date() < GENERATED_AT.astimezone(STHLM).date() for r in overdue
    )
    # every row links to its SharePoint item
    urls = set(fb["_item_url"])
    for r in range(5, 5 + len(rows)):
        cell = ws.cell(row=r, column=15)
        assert cell.value == "Öppna" and cell.hyperlink is not None
        assert cell.hyperlink.target in urls
        assert cell.style == "Hyperlink"


def test_calamine_reads_every_workbook(demo: dict[str, RollupWorkbook]) -> None:
    for wb in demo.values():
        sheets = cal(wb)
        assert tuple(sheets) == wb.sheets
        for rows in sheets.values():
            assert rows[0][0]  # title present
            assert rows[3][0]  # header row present
    overview = cal(demo["Länsöversikt.xlsx"])["Översikt"]
    codes = {c.code for c in load_reference().counties}
    assert len([r for r in overview if len(r) > 2 and r[2] in codes]) == 21


def injection_snapshots() -> dict[str, pd.DataFrame]:
    snaps = make_snapshots(knowledge=40, feedback=40, seed=11)
    fb = snaps[FEEDBACK].copy()
    kn = snaps[KNOWLEDGE].copy()
    n = len(PAYLOADS)
    fb.loc[: n - 1, "Title"] = PAYLOADS
    fb.loc[: n - 1, "Action_text"] = PAYLOADS
    fb.loc[: n - 1, "Owner"] = PAYLOADS
    fb.loc[: n - 1, "Status"] = "Ny"
    kn.loc[: n - 1, "Title"] = PAYLOADS
    kn.loc[: n - 1, "County"] = "Skåne län"
    kn.loc[: n - 1, "Status"] = "Aktuell"
    kn.loc[: n - 1, "ValidUntil"] = None
    fb.loc[: n - 1, "County"] = "Skåne län"
    return {**snaps, KNOWLEDGE: kn, FEEDBACK: fb}


def test_formula_injection_payloads_stay_text() -> None:
    snaps = injection_snapshots()
    quality = pd.DataFrame(
        [
            {
                "list_title": FEEDBACK,
                "item_id": 1,
                "item_url": f"{SITE}/x",
                "column": "Title",
                "problem_sv": p,
                "problem_en": p,
                "value": p,
            }
            for p in PAYLOADS
        ]
    )
    wbs = build(snaps, quality)
    # A carriage return cannot survive XML; it is written (and read back) as a line feed.
    expected = {p.replace("\r", "\n") for p in PAYLOADS}
    for name in ("Länsöversikt.xlsx", "Länsbild – Skåne län.xlsx"):
        wb = wbs[name]
        with zipfile.ZipFile(io.BytesIO(wb.data)) as z:
            for part in z.namelist():
                if part.startswith("xl/worksheets/sheet"):
                    assert "<f>" not in z.read(part).decode() and "<f " not in z.read(part).decode()
        book = opx(wb)
        found = set()
        for ws in book.worksheets:
            for row in ws.iter_rows():
                for c in row:
                    if isinstance(c.value, str) and c.value in expected:
                        assert c.data_type == "s", (c.coordinate, c.value)
                        assert c.quotePrefix, (c.coordinate, c.value)
                        found.add(c.value)
        assert found == expected, expected - found
        cal_found = {
            v
            for rows in cal(wb).values()
            for r in rows
            for v in r
            if isinstance(v, str) and v in expected
        }
        assert cal_found == expected


def test_html_and_control_characters() -> None:
    snaps = make_snapshots(knowledge=10, feedback=5, seed=3)
    kn = snaps[KNOWLEDGE].copy()
    kn = kn.drop(columns=["Description_text"])
    kn["County"] = "Skåne län"
    kn["Status"] = "Aktuell"
    kn["ValidUntil"] = None
    kn.loc[0, "Description"] = (
        '<div class="ExternalClass"><p>Rad&nbsp;ett &amp; två</p><ul><li>Punkt\x01 A</li><li>B\x0b</li></ul><script>x()</script></div>'
    )
    kn.loc[0, "Title"] = "Titel\x00 med\x1f styrtecken"
    book = county_book({**snaps, KNOWLEDGE: kn})
    rows = table_rows(book["Kunskap"])
    row = next(r for r in rows if str(r["Rubrik"]).startswith("Titel"))
    assert row["Rubrik"] == "Titel med styrtecken"
    assert row["Beskrivning"] == "Rad ett & två\n• Punkt A\n• B"


def test_dates_around_daylight_saving_changes() -> None:
    snaps = make_snapshots(knowledge=0, feedback=8, seed=2)
    fb = snaps[FEEDBACK].copy()
    fb["County"] = "Skåne län"
    fb["Status"] = "Ny"
    stamps = [
        ("2026-03-28T22:59:59Z", dt.datetime(2026, 3, 28, 23, 59, 59)),  # CET, before spring change
        ("2026-03-28T23:00:00Z", dt.datetime(2026, 3, 29, 0, 0, 0)),
        ("2026-03-29T21:59:00Z", dt.datetime(2026, 3, 29, 23, 59, 0)),  # CEST, after it
        ("2026-03-29T22:00:00Z", dt.datetime(2026, 3, 30, 0, 0, 0)),
        (
            "2026-10-24T21:59:00Z",
            dt.datetime(2026, 10, 24, 23, 59, 0),
        ),  # CEST, before autumn change
        ("2026-10-24T22:00:00Z", dt.datetime(2026, 10, 25, 0, 0, 0)),
        ("2026-10-25T22:59:00Z", dt.datetime(2026, 10, 25, 23, 59, 0)),  # CET, after it
        ("2026-10-25T23:00:00Z", dt.datetime(2026, 10, 26, 0, 0, 0)),
    ]
    fb["Modified"] = [pd.Timestamp(s) for s, _ in stamps]
    fb["DueDate"] = [dt.date(2026, 10, 25)] * len(stamps)  # date-only: never shifted
    fb["Title"] = [f"T{i}" for i in range(len(stamps))]
    book = county_book(
        {**snaps, FEEDBACK: fb}, generated_at=dt.datetime(2026, 10, 26, 6, 0, tzinfo=dt.UTC)
    )
    rows = {r["Rubrik"]: r for r in table_rows(book["Återkoppling"])}
    for i, (_, local) in enumerate(stamps):
        assert rows[f"T{i}"]["Senast ändrad"] == local
        assert rows[f"T{i}"]["Sista datum"] == dt.datetime(2026, 10, 25)
        assert rows[f"T{i}"]["Dagar försenad"] == 1
    ws = book["Återkoppling"]
    assert ws["L5"].number_format == "yyyy-mm-dd hh:mm"


def test_empty_lists_still_give_every_workbook() -> None:
    empty = {KNOWLEDGE: pd.DataFrame(), DIALOGUES: pd.DataFrame(), FEEDBACK: pd.DataFrame()}
    wbs = build(empty, None)
    assert len(wbs) == 1 + 5 + 21
    book = opx(wbs["Länsöversikt.xlsx"])
    rows = county_rows(book)
    assert len(rows) == 21 and all(
        r["Aktuell kunskap"] == 0 and r["Öppen återkoppling"] == 0 for r in rows
    )
    for wb in wbs.values():
        verify_workbook(wb.data, expected_sheets=wb.sheets)
    dept = opx(wbs["Återkoppling – Verksamhetsstöd.xlsx"])["Återkoppling"]
    assert dept["A6"].value == "Inga rader."


def test_very_long_text_is_truncated_with_a_note() -> None:
    snaps = make_snapshots(knowledge=3, feedback=3, seed=4)
    kn = snaps[KNOWLEDGE].copy()
    kn["County"] = "Skåne län"
    kn["Status"] = "Aktuell"
    kn["ValidUntil"] = None
    kn.loc[0, "Description_text"] = "x" * 40_000
    book = county_book({**snaps, KNOWLEDGE: kn})
    texts = [r["Beskrivning"] for r in table_rows(book["Kunskap"])]
    long = next(t for t in texts if t.startswith("xxx"))
    assert len(long) == 32_767 and long.endswith("… [avkortad]")


def test_row_limit_leaves_a_visible_note(snapshots: dict[str, pd.DataFrame]) -> None:
    wbs = build(snapshots, max_rows=20)
    ws = opx(wbs["Länsöversikt.xlsx"])["Återkoppling"]
    assert ws.max_row == 20
    assert "rader visas inte" in ws.cell(row=20, column=1).value


@pytest.mark.slow
def test_two_renders_are_equal_cell_by_cell(
    snapshots: dict[str, pd.DataFrame], quality: pd.DataFrame
) -> None:
    a = build(snapshots, quality)
    b = build(make_snapshots(), make_quality(make_snapshots()))
    assert list(a) == list(b)
    for name in a:
        wa, wb_ = opx(a[name]), opx(b[name])
        assert wa.sheetnames == wb_.sheetnames
        for sa, sb in zip(wa.worksheets, wb_.worksheets, strict=True):
            va = [
                [(c.value, c.number_format, c.hyperlink.target if c.hyperlink else None) for c in r]
                for r in sa.iter_rows()
            ]
            vb = [
                [(c.value, c.number_format, c.hyperlink.target if c.hyperlink else None) for c in r]
                for r in sb.iter_rows()
            ]
            assert va == vb, (name, sa.title)


def test_english_labels(snapshots: dict[str, pd.DataFrame], quality: pd.DataFrame) -> None:
    wbs = build(snapshots, quality, language="en")
    assert "County overview.xlsx" in wbs
    assert "Feedback – Business.xlsx" in wbs and "County profile – Skåne län.xlsx" in wbs
    wb = wbs["County overview.xlsx"]
    assert wb.sheets == (
        "Overview",
        "Knowledge matrix",
        "Feedback",
        "Dialogue plan",
        "Charts",
        "Data quality",
        "About",
    )
    book = opx(wb)
    rows = county_rows(book, "Overview")
    assert set(r["Team"] for r in rows) == {"North", "Middle", "South"}
    assert rows[0]["County"] == "Norrbottens län"
    assert rows[0]["Share closed"] is not None
    ws = book["Overview"]
    first = int(re.sub(r"\D", "", ws.tables["Oversikt"].ref.split(":")[0])) + 1
    assert ws[f"M{first}"].number_format == "0%_ "
    statuses = {r["Status"] for r in table_rows(book["Feedback"])}
    assert statuses <= {"New", "In progress"}
    mheaders = [c.value for c in book["Knowledge matrix"][4]]
    assert "Skills supply" in mheaders


def test_write_local_copies_atomically(demo: dict[str, RollupWorkbook], tmp_path: Path) -> None:
    wbs = list(demo.values())[:3]
    paths = write_local_copies(wbs, tmp_path / "out")
    assert [p.name for p in paths] == [w.name for w in wbs]
    assert all(p.read_bytes() == w.data for p, w in zip(paths, wbs, strict=True))
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".tmp-")]


def test_verify_rejects_a_broken_workbook(demo: dict[str, RollupWorkbook]) -> None:
    from sp_sync.errors import UploadError

    data = demo["Länsöversikt.xlsx"].data
    with pytest.raises(UploadError):
        verify_workbook(data[: len(data) // 2], name="x")
