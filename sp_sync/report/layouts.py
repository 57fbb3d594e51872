"""The rollup workbooks' layouts: which sheets, tables and columns each workbook has, and its look.

Every data sheet has the same shape: a title in row 1, "generated … from …" in row 2 and a real
Excel table (style, autofilter) whose header is row 4, frozen and repeated on every printed page.
Each table's columns are declared once, below, next to the layout that writes them: the key of
the values in the `sp_sync.report.tables` frame (and of the header label in `sp_sync.i18n`) and
how the values are written (`sp_sync.report.xlsx_writer.Column`). Choice values are translated
with the schemas' English labels when the workbook is English.

Output is deterministic: the same tables give byte-identical files, because document properties
and the zip entries' timestamps are set from `generated_at` instead of the clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.formatting.rule import ColorScaleRule, DataBarRule, FormulaRule
from openpyxl.styles import Font, PatternFill
from openpyxl.worksheet.worksheet import Worksheet

from sp_sync import __version__
from sp_sync.i18n import choice_label, label, normalise_language
from sp_sync.report.safe_text import MAX_ROWS, safe_file_name
from sp_sync.report.tables import RollupTables
from sp_sync.report.xlsx_writer import (
    COUNT_FORMAT,
    DATE_FORMAT,
    DATETIME_FORMAT,
    HEADER_ROW,
    Column,
    TableInfo,
    XlsxBook,
    finish_sheet,
)

__all__ = [
    "COUNT_FORMAT",
    "DATETIME_FORMAT",
    "DATE_FORMAT",
    "RollupWorkbook",
    "render_county",
    "render_department",
    "render_overview",
    "render_workbooks",
]

_OVERDUE_FILL = PatternFill(start_color="FFC7CE", end_color="FFC7CE", fill_type="solid")
_OVERDUE_FONT = Font(color="9C0006")
MATRIX_COLUMN_WIDTH = 14
MATRIX_HEADER_HEIGHT = 90.0  # points: room for ~22 characters at 45°

# ---------------------------------------------------------------------------------------------
# The tables' columns, in sheet order

#: Länsöversikt → Översikt: one row per county.
OVERVIEW_COLUMNS = (
    Column("team", "choice"),
    Column("county"),
    Column("code"),
    Column("knowledge_current", "int"),
    Column("strategic_inputs", "int"),
    Column("added_30d", "int"),
    Column("current_phase", "choice"),
    Column("next_dialogue", "date"),
    Column("last_dialogue", "date"),
    Column("feedback_open", "int"),
    Column("feedback_overdue", "int"),
    Column("feedback_closed_share", "percent"),
)
#: Länsöversikt → Kunskapsmatris: these, then one count column per subject area.
MATRIX_COLUMNS = (Column("team", "choice"), Column("county"))
#: Länsöversikt → Återkoppling: the open feedback.
OPEN_FEEDBACK_COLUMNS = (
    Column("county"),
    Column("title"),
    Column("receiving_department", "choice"),
    Column("subject_area", "choice"),
    Column("status", "choice"),
    Column("due_date", "date"),
    Column("days_overdue", "int"),
    Column("owner"),
    Column("action"),
    Column("modified", "datetime"),
    Column("link", "link"),
)
#: Länsöversikt → Dialogplan ("held" is yes/no from the held date, added by the layout).
DIALOGUE_PLAN_COLUMNS = (
    Column("team", "choice"),
    Column("county"),
    Column("year", "year"),
    Column("title"),
    Column("phase", "choice"),
    Column("planned_date", "date"),
    Column("held_date", "date"),
    Column("held"),
    Column("county_lead"),
    Column("link", "link"),
)
#: Länsöversikt → Diagram, the data of the feedback chart.
CHART_FEEDBACK_COLUMNS = (
    Column("county"),
    Column("open", "int"),
    Column("overdue", "int"),
    Column("closed", "int"),
)
#: Länsöversikt → Diagram, the knowledge chart's data: this, then one count column per team.
CHART_KNOWLEDGE_COLUMNS = (Column("subject_area", "choice"),)
#: Länsöversikt → Datakvalitet ("problem" is the record's text in the workbook's language).
QUALITY_COLUMNS = (
    Column("list", "choice"),
    Column("item_id", "int"),
    Column("column"),
    Column("problem"),
    Column("value"),
    Column("link", "link"),
)
#: Länsöversikt → Om rapporten: facts about the report, the lists, and the drift found.
ABOUT_COLUMNS = (Column("property"), Column("value"))
ABOUT_LISTS_COLUMNS = (
    Column("list", "choice"),
    Column("items", "int"),
    Column("last_synced", "datetime"),
)
DRIFT_COLUMNS = (
    Column("list", "choice"),
    Column("column"),
    Column("severity"),
    Column("problem"),
)
#: Återkoppling – {Avdelning}: all feedback addressed to one department.
DEPARTMENT_COLUMNS = (
    Column("county"),
    Column("title"),
    Column("subject_area", "choice"),
    Column("status", "choice"),
    Column("dialogue_date", "date"),
    Column("due_date", "date"),
    Column("days_overdue", "int"),
    Column("owner"),
    Column("feedback_text"),
    Column("action"),
    Column("modified", "datetime"),
    Column("link", "link"),
)
#: Länsbild – {Län} → Kunskap: the county's current knowledge.
COUNTY_KNOWLEDGE_COLUMNS = (
    Column("subject_area", "choice"),
    Column("title"),
    Column("entry_type", "choice"),
    Column("department", "choice"),
    Column("priority", "choice"),
    Column("valid_until", "date"),
    Column("owner"),
    Column("description"),
    Column("modified", "datetime"),
    Column("link", "link"),
)
#: Länsbild – {Län} → Dialogplan.
COUNTY_DIALOGUE_COLUMNS = (
    Column("year", "year"),
    Column("title"),
    Column("phase", "choice"),
    Column("planned_date", "date"),
    Column("held_date", "date"),
    Column("held"),
    Column("county_lead"),
    Column("link", "link"),
)
#: Länsbild – {Län} → Återkoppling: the county's feedback.
COUNTY_FEEDBACK_COLUMNS = (
    Column("title"),
    Column("receiving_department", "choice"),
    Column("subject_area", "choice"),
    Column("status", "choice"),
    Column("dialogue_date", "date"),
    Column("due_date", "date"),
    Column("days_overdue", "int"),
    Column("owner"),
    Column("feedback_text"),
    Column("action"),
    Column("modified", "datetime"),
    Column("link", "link"),
)


@dataclass(frozen=True)
class RollupWorkbook:
    """One generated workbook: its file name, the .xlsx bytes and its sheet names in order."""

    name: str
    data: bytes
    sheets: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.data)


# ---------------------------------------------------------------------------------------------
# Shared pieces of every layout


def _keys(columns: Iterable[Column]) -> list[str]:
    return [c.key for c in columns]


def _new_workbook(tables: RollupTables, title: str) -> Workbook:
    wb = Workbook()
    props = wb.properties
    props.title = title
    props.creator = "sp-sync"
    props.lastModifiedBy = "sp-sync"
    created = tables.generated_at.astimezone(dt.UTC).replace(tzinfo=None, microsecond=0)
    props.created = created
    props.modified = created
    props.description = f"sp-sync {__version__}: {tables.site_url}"
    return wb


class _Ctx:
    """One workbook of the rollups: the tables, the language and the book being written."""

    def __init__(self, tables: RollupTables, title: str, language: str, max_rows: int) -> None:
        self.tables = tables
        self.language = language
        wb = _new_workbook(tables, title)
        self.book = XlsxBook(wb, language=language, max_rows=max_rows, translate=self.choice)
        # openpyxl starts every workbook with one sheet; ours are all made by new_sheet.
        wb.remove(wb.worksheets[0])
        self.styles = self.book.styles

    def t(self, key: str, **fmt: object) -> str:
        return label(key, self.language, **fmt)

    def choice(self, value: str) -> str:
        return choice_label(value, self.language, self.tables.reference.translations)

    def subtitle(self) -> str:
        when = self.tables.generated_local.strftime("%Y-%m-%d %H:%M")
        return self.t(
            "subtitle", when=f"{when} ({self.tables.time_zone})", site=self.tables.site_url
        )

    def new_sheet(self, title_key: str) -> Worksheet:
        return self.book.new_sheet(self.t(title_key))

    def sheet_header(self, ws: Worksheet, title: str) -> None:
        self.book.put_text(ws, 1, 1, title, self.styles.title)
        self.book.put_text(ws, 2, 1, self.subtitle(), self.styles.subtitle)

    def workbook(self, name: str) -> RollupWorkbook:
        self.book.wb.active = 0
        data = self.book.to_bytes(self.tables.generated_local)
        return RollupWorkbook(safe_file_name(name), data, self.book.sheet_titles)


def _overdue_rule(ws: Worksheet, info: TableInfo, key: str = "days_overdue") -> None:
    """Whole row red when the days-overdue cell is > 0 (a formula rule, so it survives sorting)."""
    if key not in info.columns:
        return
    last_col = info.letter(info.columns[-1])
    col = info.letter(key)
    rng = f"A{info.first_row}:{last_col}{info.last_row}"
    ws.conditional_formatting.add(
        rng,
        FormulaRule(formula=[f"${col}{info.first_row}>0"], fill=_OVERDUE_FILL, font=_OVERDUE_FONT),
    )


def _data_bars(ws: Worksheet, info: TableInfo, keys: Iterable[str], color: str = "5B9BD5") -> None:
    for key in keys:
        col = info.letter(key)
        ws.conditional_formatting.add(
            f"{col}{info.first_row}:{col}{info.last_row}",
            DataBarRule(
                start_type="num", start_value=0, end_type="max", color=color, showValue=True
            ),
        )


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and value != value  # NaN


def _with_held(ctx: _Ctx, df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    yes, no = ctx.t("yes"), ctx.t("no")
    out["held"] = [no if _is_missing(v) else yes for v in df["held_date"]] if len(df) else []
    return out


def _problem_column(ctx: _Ctx, df: pd.DataFrame) -> pd.DataFrame:
    key = "problem_en" if ctx.language == "en" else "problem_sv"
    out = df.copy()
    out["problem"] = df[key] if key in df.columns else None
    if ctx.language == "en" and "problem_sv" in df.columns:
        out["problem"] = out["problem"].where(out["problem"].notna(), df["problem_sv"])
    return out


# ---------------------------------------------------------------------------------------------
# Länsöversikt.xlsx


def _overview_sheet(ctx: _Ctx) -> None:
    ws = ctx.new_sheet("sheet_overview")
    ctx.sheet_header(ws, ctx.t("title_overview"))
    info = ctx.book.write_table(ws, ctx.tables.overview, OVERVIEW_COLUMNS, table_base="Oversikt")
    _data_bars(ws, info, ["knowledge_current", "strategic_inputs", "added_30d", "feedback_open"])
    col = info.letter("feedback_overdue")
    ws.conditional_formatting.add(
        f"{col}{info.first_row}:{col}{info.last_row}",
        FormulaRule(formula=[f"{col}{info.first_row}>0"], fill=_OVERDUE_FILL, font=_OVERDUE_FONT),
    )
    finish_sheet(ws)


def _matrix_sheet(ctx: _Ctx) -> None:
    tables = ctx.tables
    ws = ctx.new_sheet("sheet_matrix")
    ctx.sheet_header(ws, ctx.t("title_matrix"))
    areas = list(tables.reference.subject_areas)
    # Subject areas become columns; their keys are positional so any name is a safe key.
    matrix = tables.matrix.rename(columns={a: f"area_{i}" for i, a in enumerate(areas)})
    area_columns = [Column(f"area_{i}", "int") for i in range(len(areas))]
    headers = [*(ctx.t(c.key) for c in MATRIX_COLUMNS), *[ctx.choice(a) for a in areas]]
    info = ctx.book.write_table(
        ws,
        matrix,
        [*MATRIX_COLUMNS, *area_columns],
        table_base="Kunskapsmatris",
        header_labels=headers,
        header_styles=[0] * len(MATRIX_COLUMNS) + [ctx.styles.header_wrap] * len(area_columns),
    )
    # Long subject-area names turn 45° in a taller header row instead of widening the columns.
    ws.row_dimensions[HEADER_ROW].height = MATRIX_HEADER_HEIGHT
    if area_columns:
        first, last = info.letter(area_columns[0].key), info.letter(area_columns[-1].key)
        ws.conditional_formatting.add(
            f"{first}{info.first_row}:{last}{info.last_row}",
            ColorScaleRule(
                start_type="num",
                start_value=0,
                start_color="F8696B",
                mid_type="percentile",
                mid_value=50,
                mid_color="FFEB84",
                end_type="max",
                end_color="63BE7B",
            ),
        )
        for c in area_columns:
            ws.column_dimensions[info.letter(c.key)].width = MATRIX_COLUMN_WIDTH
    finish_sheet(ws)
    ws.freeze_panes = f"C{HEADER_ROW + 1}"


def _open_feedback_sheet(ctx: _Ctx) -> None:
    ws = ctx.new_sheet("sheet_feedback")
    ctx.sheet_header(ws, ctx.t("title_feedback"))
    info = ctx.book.write_table(
        ws, ctx.tables.open_feedback, OPEN_FEEDBACK_COLUMNS, table_base="Aterkoppling"
    )
    _overdue_rule(ws, info)
    finish_sheet(ws)


def _dialogue_plan_sheet(ctx: _Ctx) -> None:
    ws = ctx.new_sheet("sheet_dialogue_plan")
    ctx.sheet_header(ws, ctx.t("title_dialogue_plan"))
    plan = _with_held(ctx, ctx.tables.dialogue_plan)
    ctx.book.write_table(ws, plan, DIALOGUE_PLAN_COLUMNS, table_base="Dialogplan")
    finish_sheet(ws)


def _charts_sheet(ctx: _Ctx) -> None:
    tables = ctx.tables
    ws = ctx.new_sheet("sheet_charts")
    ctx.sheet_header(ws, ctx.t("title_charts"))
    fb = tables.chart_feedback
    info = ctx.book.write_table(ws, fb, CHART_FEEDBACK_COLUMNS, table_base="Diagram_aterkoppling")
    n = len(fb)
    chart = BarChart()
    chart.type = "bar"
    chart.grouping = "stacked"
    chart.overlap = 100
    chart.title = ctx.t("chart_feedback")
    chart.y_axis.title = None
    data = Reference(ws, min_col=2, max_col=4, min_row=HEADER_ROW, max_row=HEADER_ROW + max(n, 1))
    cats = Reference(ws, min_col=1, min_row=HEADER_ROW + 1, max_row=HEADER_ROW + max(n, 1))
    chart.add_data(data, titles_from_data=True)
    chart.set_categories(cats)
    for series, color in zip(chart.series, ("5B9BD5", "C00000", "70AD47"), strict=False):
        series.graphicalProperties.solidFill = color
        series.graphicalProperties.line.solidFill = color
    chart.height = 12
    chart.width = 18
    chart.x_axis.scaling.orientation = "maxMin"  # first county at the top, like the table
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    ws.add_chart(chart, "G4")

    teams = list(tables.reference.teams)
    team_columns = [Column(f"team_{i}", "int") for i in range(len(teams))]
    kn = tables.chart_knowledge.rename(columns={t: f"team_{i}" for i, t in enumerate(teams)})
    header = info.last_row + 4
    headers = [*(ctx.t(c.key) for c in CHART_KNOWLEDGE_COLUMNS), *[ctx.choice(t) for t in teams]]
    ctx.book.write_table(
        ws,
        kn,
        [*CHART_KNOWLEDGE_COLUMNS, *team_columns],
        table_base="Diagram_kunskap",
        header_row=header,
        header_labels=headers,
        set_widths=False,
    )
    m = len(kn)
    chart2 = BarChart()
    chart2.type = "col"
    chart2.grouping = "clustered"
    chart2.title = ctx.t("chart_knowledge")
    data2 = Reference(
        ws, min_col=2, max_col=1 + len(teams), min_row=header, max_row=header + max(m, 1)
    )
    cats2 = Reference(ws, min_col=1, min_row=header + 1, max_row=header + max(m, 1))
    chart2.add_data(data2, titles_from_data=True)
    chart2.set_categories(cats2)
    chart2.height = 10
    chart2.width = 24
    chart2.x_axis.delete = False
    chart2.y_axis.delete = False
    ws.add_chart(chart2, f"G{header}")
    ws.column_dimensions["A"].width = 34
    for letter in "BCDE":
        ws.column_dimensions[letter].width = 12
    finish_sheet(ws, freeze=False)


def _quality_sheet(ctx: _Ctx) -> None:
    ws = ctx.new_sheet("sheet_quality")
    ctx.sheet_header(ws, ctx.t("title_quality"))
    quality = _problem_column(ctx, ctx.tables.quality)
    ctx.book.write_table(ws, quality, QUALITY_COLUMNS, table_base="Datakvalitet")
    finish_sheet(ws)


def _about_sheet(ctx: _Ctx) -> None:
    tables = ctx.tables
    ws = ctx.new_sheet("sheet_about")
    ctx.sheet_header(ws, ctx.t("title_about"))
    props = pd.DataFrame(
        {
            "property": [
                ctx.t("generated_at"),
                ctx.t("time_zone"),
                ctx.t("reference_date"),
                ctx.t("site"),
                ctx.t("tool_version"),
                ctx.t("definitions"),
                "",
                "",
            ],
            "value": [
                tables.generated_local.strftime("%Y-%m-%d %H:%M"),
                tables.time_zone,
                tables.reference_date.isoformat(),
                tables.site_url,
                f"sp-sync {__version__}",
                ctx.t("def_current"),
                ctx.t("def_open"),
                ctx.t("def_overdue"),
            ],
        }
    )
    props["property"] = props["property"].replace("", None)
    info = ctx.book.write_table(ws, props, ABOUT_COLUMNS, table_base="Om_rapporten")
    lists_header = info.last_row + 3
    lists = tables.about_lists
    ctx.book.write_table(
        ws,
        lists,
        ABOUT_LISTS_COLUMNS,
        table_base="Listor",
        header_row=lists_header,
        set_widths=False,
    )
    drift_row = lists_header + len(lists) + 3
    ctx.book.put_text(ws, drift_row, 1, ctx.t("drift_title"), ctx.styles.subtitle)
    if len(tables.drift):
        ctx.book.write_table(
            ws,
            tables.drift,
            DRIFT_COLUMNS,
            table_base="Avvikelser",
            header_row=drift_row + 1,
            set_widths=False,
        )
    else:
        ctx.book.put_text(ws, drift_row + 1, 1, ctx.t("drift_none"), ctx.styles.note)
    ws.column_dimensions["A"].width = 24
    ws.column_dimensions["B"].width = 80
    ws.column_dimensions["C"].width = 22
    finish_sheet(ws)


def render_overview(
    tables: RollupTables, *, language: str = "sv", max_rows: int = MAX_ROWS
) -> RollupWorkbook:
    """Länsöversikt.xlsx: Översikt, Kunskapsmatris, Återkoppling, Dialogplan, Diagram, Datakvalitet, Om rapporten."""
    lang = normalise_language(language)
    title = label("wb_overview", lang)
    ctx = _Ctx(tables, title, lang, max_rows)
    _overview_sheet(ctx)
    _matrix_sheet(ctx)
    _open_feedback_sheet(ctx)
    _dialogue_plan_sheet(ctx)
    _charts_sheet(ctx)
    _quality_sheet(ctx)
    _about_sheet(ctx)
    return ctx.workbook(title)


# ---------------------------------------------------------------------------------------------
# Återkoppling – {Avdelning}.xlsx


def render_department(
    tables: RollupTables, department: str, *, language: str = "sv", max_rows: int = MAX_ROWS
) -> RollupWorkbook:
    """Återkoppling – {Avdelning}.xlsx: all feedback addressed to one department, by county."""
    lang = normalise_language(language)
    shown = choice_label(department, lang, tables.reference.translations)
    title = label("wb_department", lang, name=shown)
    ctx = _Ctx(tables, title, lang, max_rows)
    ws = ctx.new_sheet("sheet_feedback")
    ctx.sheet_header(ws, ctx.t("title_department", name=shown))
    df = tables.by_department.get(department, pd.DataFrame(columns=_keys(DEPARTMENT_COLUMNS)))
    info = ctx.book.write_table(ws, df, DEPARTMENT_COLUMNS, table_base="Aterkoppling")
    _overdue_rule(ws, info)
    finish_sheet(ws)
    return ctx.workbook(title)


# ---------------------------------------------------------------------------------------------
# Länsbild – {Län}.xlsx


def _county_sheet(
    ctx: _Ctx,
    sheet_key: str,
    title: str,
    df: pd.DataFrame,
    columns: Sequence[Column],
    table_base: str,
) -> TableInfo:
    ws = ctx.new_sheet(sheet_key)
    ctx.sheet_header(ws, title)
    info = ctx.book.write_table(ws, df, columns, table_base=table_base)
    if "days_overdue" in info.columns:
        _overdue_rule(ws, info)
    finish_sheet(ws)
    return info


def render_county(
    tables: RollupTables, county: str, *, language: str = "sv", max_rows: int = MAX_ROWS
) -> RollupWorkbook:
    """Länsbild – {Län}.xlsx: one county's current knowledge, dialogue plan and feedback."""
    lang = normalise_language(language)
    title = label("wb_county", lang, name=county)
    ctx = _Ctx(tables, title, lang, max_rows)

    def table(frames: dict[str, pd.DataFrame], columns: Sequence[Column]) -> pd.DataFrame:
        empty = pd.DataFrame(columns=[k for k in _keys(columns) if k != "held"])
        return frames.get(county, empty)

    kn = table(tables.county_knowledge, COUNTY_KNOWLEDGE_COLUMNS)
    dl = _with_held(ctx, table(tables.county_dialogues, COUNTY_DIALOGUE_COLUMNS))
    fb = table(tables.county_feedback, COUNTY_FEEDBACK_COLUMNS)
    _county_sheet(
        ctx,
        "sheet_knowledge",
        ctx.t("title_county_knowledge", name=county),
        kn,
        COUNTY_KNOWLEDGE_COLUMNS,
        "Kunskap",
    )
    _county_sheet(
        ctx,
        "sheet_dialogue_plan",
        ctx.t("title_county_dialogues", name=county),
        dl,
        COUNTY_DIALOGUE_COLUMNS,
        "Dialogplan",
    )
    _county_sheet(
        ctx,
        "sheet_feedback",
        ctx.t("title_county_feedback", name=county),
        fb,
        COUNTY_FEEDBACK_COLUMNS,
        "Aterkoppling",
    )
    return ctx.workbook(title)


# ---------------------------------------------------------------------------------------------
# All workbooks


def render_workbooks(
    tables: RollupTables, *, language: str = "sv", max_rows: int = MAX_ROWS
) -> list[RollupWorkbook]:
    """Every workbook, in a fixed order: the overview, one per department, one per county.

    Every department of the reference data gets a file, even with no feedback: an empty file
    says "nothing addressed to you", and a stable set of files keeps links in the site working.
    """
    out = [render_overview(tables, language=language, max_rows=max_rows)]
    for dept in tables.reference.departments:
        out.append(render_department(tables, dept, language=language, max_rows=max_rows))
    for county in tables.reference.counties:
        out.append(render_county(tables, county.name, language=language, max_rows=max_rows))
    names = [w.name.casefold() for w in out]
    if len(set(names)) != len(names):
        raise ValueError("two workbooks would get the same file name")
    return out
