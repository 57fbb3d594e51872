"""Issue 12: the workbooks answer the team leads' questions — figures recomputed independently
from the seeded lists and compared with the cells the workbooks show."""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any

import pandas as pd
import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from sp_sync.report.layouts import MIN_PRINT_SCALE, PRINTABLE_INCHES
from sp_sync.report.publish import build_workbooks
from sp_sync.report.tables import DIALOGUES, FEEDBACK, KNOWLEDGE, load_reference
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_quality, make_snapshots

REF = GENERATED_AT.astimezone(STHLM).date()
OPEN = ("Ny", "Pågående")
CLOSED = ("Klar", "Ingen åtgärd")


@pytest.fixture(scope="module")
def lists() -> dict[str, pd.DataFrame]:
    """The shared fixture plus dialogues ahead of the reference date, one planned-not-held
    round, and feedback without a receiving department."""
    snaps = make_snapshots(seed=21)
    dl = snaps[DIALOGUES].copy()
    ahead = [5, 29, 31, 59, 61]  # 2 within 30 days, 4 within 60
    for pos, days in enumerate(ahead):
        dl.loc[pos, "PlannedDate"] = REF + dt.timedelta(days=days)
        dl.loc[pos, "HeldDate"] = None
    dl.loc[len(ahead), "PlannedDate"] = REF - dt.timedelta(days=3)
    dl.loc[len(ahead), "HeldDate"] = None
    fb = snaps[FEEDBACK].copy()
    fb.loc[0, "ReceivingDepartment"] = None
    fb.loc[0, "Status"] = "Ny"
    return {**snaps, DIALOGUES: dl, FEEDBACK: fb}


@pytest.fixture(scope="module")
def books(lists: dict[str, pd.DataFrame]) -> dict[str, Workbook]:
    wbs = build_workbooks(
        lists,
        make_quality(lists),
        None,
        None,
        site_url=SITE,
        generated_at=GENERATED_AT,
        time_zone=STHLM,
    )
    return {w.name: load_workbook(io.BytesIO(w.data)) for w in wbs}


def _days_overdue(fb: pd.DataFrame) -> pd.Series:
    """Independent of sp_sync: open items with a due date before the reference date."""
    out = {}
    for _, r in fb.iterrows():
        if r["Status"] in OPEN and r["DueDate"] is not None and r["DueDate"] < REF:
            out[int(r["ID"])] = (REF - r["DueDate"]).days
    return pd.Series(out, dtype="float64")


def _table(ws: Any, name: str) -> list[dict[str, Any]]:
    first, last = ws.tables[name].ref.split(":")
    head, end = int(re.sub(r"\D", "", first)), int(re.sub(r"\D", "", last))
    width = len(ws.tables[name].tableColumns)
    headers = [ws.cell(row=head, column=c).value for c in range(1, width + 1)]
    return [
        dict(zip(headers, row, strict=True))
        for row in ws.iter_rows(min_row=head + 1, max_row=end, max_col=width, values_only=True)
    ]


def _block(ws: Worksheet, value_col: int) -> dict[str, object]:
    """Label (column A) → value of a figures block."""
    return {
        ws.cell(row=r, column=1).value: ws.cell(row=r, column=value_col).value
        for r in range(1, ws.max_row + 1)
        if isinstance(ws.cell(row=r, column=1).value, str)
    }


def test_headline_block_recomputed_from_the_lists(
    books: dict[str, Workbook], lists: dict[str, pd.DataFrame]
) -> None:
    fb, dl, kn = lists[FEEDBACK], lists[DIALOGUES], lists[KNOWLEDGE]
    days = _days_overdue(fb)
    planned_not_held = [
        r["PlannedDate"] for _, r in dl.iterrows() if r["HeldDate"] is None and r["PlannedDate"]
    ]
    created = pd.to_datetime(kn["Created"], utc=True)
    now = pd.Timestamp(GENERATED_AT)
    block = _block(books["Länsöversikt.xlsx"]["Översikt"], 3)
    assert block["Läget 2026-03-30"] is None  # the heading
    assert block["Referensdatum"] == dt.datetime(2026, 3, 30)  # a real date
    assert block["Öppen återkoppling (inkl. försenad)"] == int(fb["Status"].isin(OPEN).sum())
    assert block["– varav försenad"] == len(days)
    assert block["– varav försenad mer än 30 dagar"] == int((days > 30).sum())
    assert block["– varav försenad mer än 90 dagar"] == int((days > 90).sum())
    assert block["Äldsta försening (dagar)"] == int(days.max())
    assert block["Dialoger kommande 30 dagar"] == 2
    assert block["Dialoger kommande 60 dagar"] == 4
    assert block["Passerade, ej genomförda dialoger"] == sum(1 for d in planned_not_held if d < REF)
    assert block["Ny kunskap senaste 30 dagarna"] == int(
        ((created > now - pd.Timedelta(days=30)) & (created <= now)).sum()
    )
    assert block["Datakvalitetsproblem att rätta"] == 3


def test_department_matrix_recomputed_from_the_lists(
    books: dict[str, Workbook], lists: dict[str, pd.DataFrame]
) -> None:
    fb = lists[FEEDBACK]
    days = _days_overdue(fb)
    ref = load_reference()
    team_of = {c.name: c.team for c in ref.counties}
    modified = pd.to_datetime(fb["Modified"], utc=True)
    recent = modified > pd.Timestamp(GENERATED_AT) - pd.Timedelta(days=30)
    rows = {
        r["Avdelning"]: r for r in _table(books["Länsöversikt.xlsx"]["Översikt"], "Avdelningar")
    }
    assert list(rows) == [*ref.departments, "(ingen avdelning angiven)", "Totalt"]
    for name in [*ref.departments, None]:
        mine = (
            fb["ReceivingDepartment"].isna() if name is None else fb["ReceivingDepartment"] == name
        )
        ids = set(fb.loc[mine, "ID"].astype(int))
        late = days[[i for i in days.index if i in ids]]
        row = rows[name or "(ingen avdelning angiven)"]
        n_open = int((mine & fb["Status"].isin(OPEN)).sum())
        assert row["Öppen återkoppling"] == n_open
        assert row["Öppen i tid"] == n_open - len(late)
        assert row["Försenad återkoppling"] == len(late)
        assert row["Försenad > 30 dagar"] == int((late > 30).sum())
        assert row["Försenad > 90 dagar"] == int((late > 90).sum())
        assert row["Äldsta försening (dagar)"] == (int(late.max()) if len(late) else None)
        assert row["Avslutad senaste 30 dagarna"] == int(
            (mine & fb["Status"].isin(CLOSED) & recent).sum()
        )
        for team in ref.teams:
            in_team = fb["County"].map(team_of) == team
            want = len([i for i in late.index if i in set(fb.loc[in_team, "ID"].astype(int))])
            assert row[f"Försenad – {team}"] == want
    total = rows["Totalt"]
    for key in ("Öppen återkoppling", "Försenad återkoppling", "Avslutad senaste 30 dagarna"):
        assert total[key] == sum(r[key] for n, r in rows.items() if n != "Totalt")


def test_team_subtotals_and_total_match_the_county_table(books: dict[str, Workbook]) -> None:
    ws = books["Länsöversikt.xlsx"]["Översikt"]
    counties = _table(ws, "Oversikt")
    teams = {r["Team"]: r for r in _table(ws, "Team")}
    assert list(teams) == ["Norr", "Mellan", "Södra", "Totalt"]
    for key in ("Aktuell kunskap", "Öppen återkoppling", "Försenad återkoppling"):
        for team in ("Norr", "Mellan", "Södra"):
            assert teams[team][key] == sum(r[key] for r in counties if r["Team"] == team)
        assert teams["Totalt"][key] == sum(r[key] for r in counties)
    oldest = [r["Äldsta försening (dagar)"] for r in counties if r["Äldsta försening (dagar)"]]
    assert teams["Totalt"]["Äldsta försening (dagar)"] == max(oldest)


def test_open_means_one_thing_on_the_overview_and_the_chart(books: dict[str, Workbook]) -> None:
    book = books["Länsöversikt.xlsx"]
    counties = {r["Län"]: r for r in _table(book["Översikt"], "Oversikt")}
    chart = _table(book["Diagram"], "Diagram_aterkoppling")
    assert list(chart[0]) == ["Län", "Öppen i tid", "Försenad", "Avslutad"]
    for row in chart:
        county = counties[row["Län"]]
        assert row["Öppen i tid"] + row["Försenad"] == county["Öppen återkoppling"]
        assert row["Försenad"] == county["Försenad återkoppling"]


def test_every_measure_is_defined_with_the_dates_it_uses(books: dict[str, Workbook]) -> None:
    book = books["Länsöversikt.xlsx"]
    ws = book["Om rapporten"]
    facts = _block(ws, 2)
    # Europe/Stockholm; a real date-time (the content fingerprint masks its serial number).
    assert facts["Skapad"] == dt.datetime(2026, 3, 30, 7, 15)
    assert facts["Referensdatum"] == dt.datetime(2026, 3, 30)  # a real date
    assert ws.cell(row=6, column=2).number_format == "yyyy-mm-dd"
    defs = {r["Mått"]: r for r in _table(ws, "Definitioner")}
    shown = set()
    for sheet, table in (
        ("Översikt", "Oversikt"),
        ("Översikt", "Avdelningar"),
        ("Översikt", "Team"),
    ):
        shown |= {c.name for c in book[sheet].tables[table].tableColumns}
    measures = (
        shown
        - {"Team", "Län", "Länskod", "Avdelning"}
        - {f"Försenad – {t}" for t in ("Norr", "Mellan", "Södra")}
    )
    assert measures - set(defs) == set()
    assert {"Dialoger kommande 30 dagar", "Datakvalitetsproblem att rätta"} <= set(defs)
    assert "2026-03-30" in defs["Försenad återkoppling"]["Datum som används"]
    assert "2026-02-28 – 2026-03-30" in defs["Nya senaste 30 dagarna"]["Datum som används"]
    assert "försenad eller inte" in defs["Öppen återkoppling"]["Definition"]
    # Good news is calm: "Inga avvikelser." is not in alarm red.
    none = next(c for row in ws.iter_rows() for c in row if c.value == "Inga avvikelser.")
    assert none.font.color.rgb.endswith("375623")


def test_dialogues_ahead_and_missed_rounds_are_marked(
    books: dict[str, Workbook], lists: dict[str, pd.DataFrame]
) -> None:
    book = books["Länsöversikt.xlsx"]
    plan = _table(book["Dialogplan"], "Dialogplan")
    states = {r["Läge"] for r in plan}
    assert {"Genomförd", "Kommande", "Passerad, ej genomförd"} <= states
    missed = [r for r in plan if r["Läge"] == "Passerad, ej genomförd"]
    assert missed and all(
        r["Planerat datum"].date() < REF and r["Genomfört datum"] is None for r in missed
    )
    rules = [r for cf in book["Dialogplan"].conditional_formatting for r in cf.rules]
    assert any('="Passerad, ej genomförd"' in r.formula[0] for r in rules)
    dl = lists[DIALOGUES]
    county = dl.loc[0, "County"]
    prep = _block(books[f"Länsbild – {county}.xlsx"]["Inför dialogen"], 2)
    mine = dl[(dl["County"] == county) & dl["HeldDate"].isna()]
    ahead = [d for d in mine["PlannedDate"] if d is not None and d >= REF]
    assert prep["Nästa planerade dialog"] == dt.datetime.combine(min(ahead), dt.time())
    county_rows = {r["Län"]: r for r in _table(book["Översikt"], "Oversikt")}
    assert prep["Öppen återkoppling"] == county_rows[county]["Öppen återkoppling"]
    assert prep["Försenad återkoppling"] == county_rows[county]["Försenad återkoppling"]


def test_county_workbook_starts_with_the_dialogue_preparation(
    books: dict[str, Workbook], lists: dict[str, pd.DataFrame]
) -> None:
    book = books["Länsbild – Skåne län.xlsx"]
    assert book.sheetnames[0] == "Inför dialogen"
    kn = lists[KNOWLEDGE]
    current = kn[
        (kn["County"] == "Skåne län")
        & (kn["Status"] == "Aktuell")
        & kn["ValidUntil"].map(lambda d: d is None or d >= REF)
    ]
    newest = current.sort_values("Created", ascending=False).head(5)
    recent = _table(book["Inför dialogen"], "Senaste_kunskap")
    assert [r["Rubrik"] for r in recent] == list(newest["Title"])
    assert _block(book["Inför dialogen"], 2)["Aktuell kunskap"] == len(current)


def test_department_workbook_starts_with_a_summary_per_county(
    books: dict[str, Workbook], lists: dict[str, pd.DataFrame]
) -> None:
    fb = lists[FEEDBACK]
    days = _days_overdue(fb)
    book = books["Återkoppling – Företag.xlsx"]
    assert book.sheetnames == ["Sammanfattning", "Återkoppling"]
    rows = {r["Län"]: r for r in _table(book["Sammanfattning"], "Sammanfattning")}
    assert len(rows) == 22 and "Totalt" in rows
    mine = fb[fb["ReceivingDepartment"] == "Företag"]
    for county, row in rows.items():
        sub = mine if county == "Totalt" else mine[mine["County"] == county]
        late = [i for i in sub["ID"].astype(int) if i in days.index]
        assert row["Öppen återkoppling"] == int(sub["Status"].isin(OPEN).sum()), county
        assert row["Försenad återkoppling"] == len(late), county
        assert row["Avslutad"] == int(sub["Status"].isin(CLOSED).sum()), county


def test_open_feedback_sheet_shows_team_dialogue_and_text(
    books: dict[str, Workbook], lists: dict[str, pd.DataFrame]
) -> None:
    ws = books["Länsöversikt.xlsx"]["Återkoppling"]
    rows = _table(ws, "Aterkoppling")
    assert {"Team", "Dialog", "Dialogdatum", "Återkoppling"} <= set(rows[0])
    fb = lists[FEEDBACK].set_index("Title")
    for r in rows[:20]:
        src = fb.loc[r["Rubrik"]]
        assert r["Återkoppling"] == src["Feedback_text"]
        assert r["Dialogdatum"].date() == src["DialogueDate"]
    # Colour ranks: only rows more than 30 days overdue are coloured.
    rules = [r for cf in ws.conditional_formatting for r in cf.rules]
    assert [r.formula[0] for r in rules] == ["$J5>90", "$J5>30"]


def test_data_quality_sheet_is_for_staff(
    books: dict[str, Workbook], lists: dict[str, pd.DataFrame]
) -> None:
    ws = books["Länsöversikt.xlsx"]["Datakvalitet"]
    rows = _table(ws, "Datakvalitet")
    fb = lists[FEEDBACK].set_index("ID")
    assert list(rows[0]) == ["Lista", "ID", "Rubrik", "Län", "Fält", "Problem", "Värde", "Länk"]
    for r in rows:
        assert r["Fält"] == "Sista datum"  # the display name, not DueDate
        assert r["Rubrik"] == fb.loc[r["ID"], "Title"] and r["Län"] == fb.loc[r["ID"], "County"]
        assert r["Värde"] == "=cmd|' /C calc'!A0"  # the offending value, as text
    assert ws["B5"].number_format == "0_ "  # an ID has no thousands separator
    assert ws["F5"].alignment.wrap_text  # the whole problem text, wrapped
    assert ws.sheet_properties.pageSetUpPr.fitToPage  # one page wide at 8 pt or more


def test_print_setup_never_below_8_pt(books: dict[str, Workbook]) -> None:
    for name, book in books.items():
        for ws in book.worksheets:
            assert ws.page_setup.orientation == "landscape", (name, ws.title)
            assert ws.print_title_rows, (name, ws.title)
            if ws.sheet_properties.pageSetUpPr.fitToPage:
                widths = [
                    ws.column_dimensions[chr(65 + i)].width or 8.43
                    for i in range(min(ws.max_column, 26))
                ]
                inches = sum((w * 7 + 5) / 96 for w in widths)
                assert 100 * PRINTABLE_INCHES / inches >= MIN_PRINT_SCALE, (name, ws.title)
            else:
                assert ws.page_setup.scale >= MIN_PRINT_SCALE, (name, ws.title)
                assert ws.print_title_cols, (name, ws.title)


def test_multi_line_text_gets_row_heights(books: dict[str, Workbook]) -> None:
    ws = books["Länsbild – Skåne län.xlsx"]["Kunskap"]
    col = [c.value for c in ws[4]].index("Beskrivning") + 1
    for r in range(5, ws.max_row + 1):
        text = ws.cell(row=r, column=col).value
        if isinstance(text, str) and text.count("\n") >= 2:
            assert ws.row_dimensions[r].height >= 45, r
