"""Hostile text straight into the pure functions: cell text, HTML, sheet and file names, and the
rendered workbooks (no emulator; many examples are cheap here)."""

from __future__ import annotations

import re
import unicodedata

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sp_sync.report import safe_text as xlsx_safe
from sp_sync.report.layouts import render_county, render_department, render_overview
from sp_sync.report.publish import build_tables, verify_workbook
from sp_sync.schema import load_schemas
from sp_sync.sync import normalize
from tests.hostile.helpers import (
    HOSTILE,
    PAYLOADS,
    cell_strings,
    formula_cells,
    hostile,
    hostile_text,
    open_both,
    xml_clean,
)
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_snapshots

_SPO_FORBIDDEN = set('"*:<>?/\\|#%')
_RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(10)),
    *(f"lpt{i}" for i in range(10)),
}


@HOSTILE
@given(hostile_text())
def test_safe_text_fits_one_cell_and_is_xml_clean(value: str) -> None:
    out = xlsx_safe.safe_text(value)
    assert len(out) <= xlsx_safe.MAX_CELL_CHARS
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\r]", out)
    cleaned = xml_clean(value)
    if len(cleaned) <= xlsx_safe.MAX_CELL_CHARS:
        assert out == cleaned  # nothing but the unstorable characters is lost
    else:
        assert out.endswith("[avkortad]")
        assert cleaned.startswith(out[: -len(" … [avkortad]")])


@HOSTILE
@given(hostile_text(huge=False), st.sampled_from(PAYLOADS))
def test_html_to_text_never_raises_and_drops_script(text: str, payload: str) -> None:
    marker = "KANARIESKRIPT"
    html = f"<div><p>{text}</p><script>{marker}{payload}</script><ul><li>{payload}</li></ul></div>"
    for fn in (xlsx_safe.html_to_text, normalize.html_to_text):
        out = fn(html)
        assert isinstance(out, str)
        if marker not in text:
            assert marker not in out


@HOSTILE
@given(hostile_text(huge=False, max_size=300))
def test_safe_file_name_is_valid_for_sharepoint_and_stable(name: str) -> None:
    out = xlsx_safe.safe_file_name(name)
    assert out == xlsx_safe.safe_file_name(name)
    assert out == xlsx_safe.safe_file_name(unicodedata.normalize("NFD", name))
    assert out.endswith(".xlsx")
    stem = out[: -len(".xlsx")]
    assert stem and len(stem) <= 120
    assert not (_SPO_FORBIDDEN & set(out))
    assert not any(ord(c) < 32 or c == "\x7f" for c in out)
    assert stem == stem.strip(" .")
    assert not stem.startswith("~")
    assert "_vti_" not in out
    assert stem.casefold() not in _RESERVED and stem.split(".")[0].casefold() not in _RESERVED


@HOSTILE
@given(
    hostile_text(huge=False, max_size=80),
    st.lists(hostile_text(huge=False, max_size=40), max_size=6),
)
def test_safe_sheet_name_is_valid_unique_and_stable(name: str, existing: list[str]) -> None:
    taken: list[str] = []
    for e in existing:  # as a workbook builds them: each name made safe against the ones before
        taken.append(xlsx_safe.safe_sheet_name(e, taken))
    out = xlsx_safe.safe_sheet_name(name, taken)
    assert out == xlsx_safe.safe_sheet_name(name, taken)
    assert 1 <= len(out) <= xlsx_safe.MAX_SHEET_NAME
    assert not set("[]:*?/\\") & set(out)
    assert not out.startswith("'") and not out.endswith("'")
    assert not any(ord(c) < 32 for c in out)
    assert out.casefold() != "history"
    assert out.casefold() not in {t.casefold() for t in taken}


def test_reference_names_give_distinct_file_names() -> None:
    ref = load_schemas().reference
    names = [c.name for c in ref.counties] + [d.name for d in ref.departments] + ["Länsöversikt"]
    files = [xlsx_safe.safe_file_name(n).casefold() for n in names]
    assert len(set(files)) == len(files)


def test_excel_table_names_stay_valid_for_hostile_text() -> None:
    taken: list[str] = []
    for p in PAYLOADS:
        name = xlsx_safe.excel_table_name(p, taken)
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\\]*", name)
        assert name.casefold() not in {t.casefold() for t in taken}
        taken.append(name)


# ------------------------------------------------------------------------------------ workbooks

_TEXT_COLUMNS = {
    "Länskunskap": ("Title", "Description_text", "Description"),
    "Dialogåterkoppling": ("Title", "Action", "Action_text", "Feedback_text", "Feedback"),
}


def _render(texts: list[str], *, every: bool = False) -> dict[str, bytes]:
    """Workbooks (name → bytes) showing rows that carry `texts`: all of them live in one county
    and are addressed to one department, so the overview, that department's and that county's
    workbooks (one of each kind) show them all (`every`: all 27 workbooks). The other 24 proved
    nothing more about the text and were most of this file's time."""
    snaps = make_snapshots(
        knowledge=len(texts), feedback=len(texts), dialogues_per_county=1, seed=11
    )
    for title, cols in _TEXT_COLUMNS.items():
        df = snaps[title]
        for col in cols:
            df[col] = pd.Series(texts, dtype=object)
    knowledge, feedback = snaps["Länskunskap"], snaps["Dialogåterkoppling"]
    county, department = knowledge["County"].iloc[0], feedback["ReceivingDepartment"].iloc[0]
    knowledge["County"] = county
    feedback["County"] = county
    feedback["ReceivingDepartment"] = department
    tables = build_tables(
        snaps, None, None, site_url=SITE, generated_at=GENERATED_AT, time_zone=STHLM
    )
    workbooks = [render_overview(tables)]
    workbooks += [
        render_department(tables, d)
        for d in tables.reference.departments
        if every or d == department
    ]
    workbooks += [
        render_county(tables, c.name)
        for c in tables.reference.counties
        if every or c.name == county
    ]
    assert len(workbooks) == (27 if every else 3)
    for wb in workbooks:
        verify_workbook(wb.data, expected_sheets=wb.sheets, name=wb.name)
    return {wb.name: wb.data for wb in workbooks}


@pytest.fixture(scope="module")
def baseline_formulas() -> set[str]:
    """Formula cells the workbooks have with harmless data (their own, if any): never data."""
    datas = _render(["Vanlig text"] * 4, every=True)
    assert len(datas) == 27
    return {f"{name}:{ref}" for name, d in datas.items() for ref in formula_cells(d)}


@hostile(8)
@given(texts=st.lists(hostile_text(), min_size=3, max_size=6))
def test_hostile_text_renders_as_text_in_every_workbook(
    texts: list[str], baseline_formulas: set[str]
) -> None:
    datas = _render(texts)
    everything_openpyxl: set[str] = set()
    everything_calamine: set[str] = set()
    for name, data in datas.items():
        extra = {f"{name}:{ref}" for ref in formula_cells(data)} - baseline_formulas
        assert not extra, f"data became formulas: {sorted(extra)[:5]}"
        op, cm = open_both(data)
        everything_openpyxl |= cell_strings(op)
        everything_calamine |= cell_strings(cm)
    for t in texts:
        want = xlsx_safe.safe_text(t).strip()
        if not want or "\n" in want or want != t.strip():
            continue  # reshaped text (cleaned, truncated, multi-line) is checked in the unit test above
        assert any(want == s.strip() for s in everything_openpyxl), repr(want[:80])
        assert any(want == s.strip() for s in everything_calamine), repr(want[:80])
