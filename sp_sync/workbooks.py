"""Render the rollup tables (sp_sync.aggregate) into workbooks that look made by hand (openpyxl).

Every data sheet has the same shape: a title in row 1, "generated … from …" in row 2 and a real
Excel table (style, autofilter) whose header is row 4, frozen and repeated on every printed page.
Values from the lists are always written as values (see sp_sync.xlsx_safe); dates are real Excel
dates shown as ``yyyy-mm-dd`` in the site's time zone; counts use ``#,##0`` (shown with a space
as thousands separator by a Swedish Excel) and shares ``0 %``.

Output is deterministic: the same tables give byte-identical files, because document properties
and the zip entries' timestamps are set from `generated_at` instead of the clock.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import zipfile
from collections.abc import Callable, Iterable, Sequence
from copy import copy
from dataclasses import dataclass
from typing import Any

import pandas as pd
from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.chart import BarChart, Reference
from openpyxl.formatting.rule import ColorScaleRule, DataBarRule, FormulaRule
from openpyxl.styles import Font, PatternFill
from openpyxl.styles.cell_style import StyleArray
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.filters import AutoFilter
from openpyxl.worksheet.table import Table, TableColumn, TableStyleInfo
from openpyxl.worksheet.worksheet import Worksheet
from openpyxl.writer.excel import ExcelWriter

from sp_sync import __version__
from sp_sync.aggregate import RollupTables
from sp_sync.i18n import choice_label, label, normalise_language
from sp_sync.xlsx_safe import (
    MAX_ROWS,
    excel_table_name,
    needs_quote_prefix,
    safe_file_name,
    safe_sheet_name,
    safe_text,
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

DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
# The file stores the locale-neutral code; a Swedish Excel displays it as "# ##0". Writing a
# literal "# ##0" would print a stray space before small numbers.
COUNT_FORMAT = "#,##0"
PERCENT_FORMAT = {"sv": "0 %", "en": "0%"}
TABLE_STYLE = "TableStyleMedium2"
HEADER_ROW = 4
MAX_WIDTH = 60
WIDTH_SAMPLE = 2000

_TITLE_FONT = Font(bold=True, size=14, color="1F3864")
_SUBTITLE_FONT = Font(italic=True, color="595959")
_NOTE_FONT = Font(italic=True, color="9C0006")
_OVERDUE_FILL = PatternFill(start_color="FFC7CE", end_color="FFC7CE", fill_type="solid")
_OVERDUE_FONT = Font(color="9C0006")

# How each column key is written. Unlisted keys are text.
_KIND: dict[str, str] = {
    "knowledge_current": "int",
    "strategic_inputs": "int",
    "added_30d": "int",
    "feedback_total": "int",
    "feedback_open": "int",
    "feedback_overdue": "int",
    "days_overdue": "int",
    "items": "int",
    "item_id": "int",
    "year": "year",
    "open": "int",
    "overdue": "int",
    "closed": "int",
    "feedback_closed_share": "percent",
    "next_dialogue": "date",
    "last_dialogue": "date",
    "due_date": "date",
    "dialogue_date": "date",
    "planned_date": "date",
    "held_date": "date",
    "valid_until": "date",
    "modified": "datetime",
    "last_synced": "datetime",
    "link": "link",
}
# Columns holding choice values that have English labels in the schemas.
_CHOICE_KEYS = frozenset(
    {
        "team",
        "current_phase",
        "phase",
        "subject_area",
        "department",
        "receiving_department",
        "status",
        "entry_type",
        "priority",
        "list",
    }
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
# Low-level cell writing


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


class _Styles:
    """StyleArrays for the few cell looks we use, registered once per workbook (fast copies)."""

    def __init__(self, wb: Workbook, language: str) -> None:
        ws = wb.active if wb.active is not None else wb.create_sheet()
        self._probe = ws
        self.date = self._make(number_format=DATE_FORMAT)
        self.datetime = self._make(number_format=DATETIME_FORMAT)
        self.count = self._make(number_format=COUNT_FORMAT)
        self.year = self._make(number_format="0")
        self.percent = self._make(number_format=PERCENT_FORMAT[language])
        self.link = self._make(style="Hyperlink")
        self.quoted = self._make(quote=True)

    def _make(self, *, number_format: str | None = None, style: str | None = None, quote: bool = False) -> StyleArray:
        cell = Cell(self._probe, row=1, column=1)
        if style:
            cell.style = style
        if number_format:
            cell.number_format = number_format
        arr = copy(cell._style) if cell._style is not None else StyleArray()
        if quote:
            arr.quotePrefix = 1
        return arr


def _put(ws: Worksheet, row: int, col: int, value: Any, style: StyleArray | None = None) -> Cell:
    cell = Cell(ws, row=row, column=col, value=value)
    if cell.data_type == "f":
        # openpyxl reads any string starting with "=" as a formula; list text never is one.
        cell.data_type = "s"
    if style is not None:
        cell._style = copy(style)
    ws._cells[(row, col)] = cell
    return cell


class _Ctx:
    """Per-workbook rendering context: language, translations, styles and used table names."""

    def __init__(self, wb: Workbook, tables: RollupTables, language: str, max_rows: int) -> None:
        self.wb = wb
        self.tables = tables
        self.language = language
        self.styles = _Styles(wb, language)
        self.table_names: list[str] = []
        self.sheet_names: list[str] = []
        self.max_rows = max_rows
        self.open_text = label("open_link", language)

    def t(self, key: str, **fmt: object) -> str:
        return label(key, self.language, **fmt)

    def choice(self, value: str) -> str:
        return choice_label(value, self.language, self.tables.reference.translations)

    def subtitle(self) -> str:
        when = self.tables.generated_local.strftime("%Y-%m-%d %H:%M")
        return self.t("subtitle", when=f"{when} ({self.tables.time_zone})", site=self.tables.site_url)

    def new_sheet(self, title_key_or_text: str, *, is_key: bool = True) -> Worksheet:
        text = self.t(title_key_or_text) if is_key else title_key_or_text
        name = safe_sheet_name(text, self.sheet_names)
        self.sheet_names.append(name)
        ws = self.wb.create_sheet(name)
        return ws


def _kind(key: str) -> str:
    # area_N / team_N are the renamed count columns of the matrix and the chart data.
    if key.startswith(("area_", "team_")):
        return "int"
    return _KIND.get(key, "text")


def _converter(ctx: _Ctx, key: str) -> Callable[[Any], tuple[Any, StyleArray | None]]:
    """A function from a table value to (cell value, style) for column `key`."""
    kind = _kind(key)
    s = ctx.styles
    lang = ctx.language

    if kind == "int":
        def conv_int(v: Any) -> tuple[Any, StyleArray | None]:
            return (None, None) if _is_missing(v) else (int(v), s.count)
        return conv_int
    if kind == "year":
        def conv_year(v: Any) -> tuple[Any, StyleArray | None]:
            return (None, None) if _is_missing(v) else (int(v), s.year)
        return conv_year
    if kind == "percent":
        def conv_pct(v: Any) -> tuple[Any, StyleArray | None]:
            return (None, None) if _is_missing(v) else (float(v), s.percent)
        return conv_pct
    if kind == "date":
        def conv_date(v: Any) -> tuple[Any, StyleArray | None]:
            if _is_missing(v):
                return None, None
            if isinstance(v, dt.datetime):
                v = v.date()
            return v, s.date
        return conv_date
    if kind == "datetime":
        def conv_dt(v: Any) -> tuple[Any, StyleArray | None]:
            if _is_missing(v):
                return None, None
            if isinstance(v, pd.Timestamp):
                v = v.to_pydatetime()
            if isinstance(v, dt.datetime) and v.tzinfo is not None:
                v = v.replace(tzinfo=None)
            return v, s.datetime
        return conv_dt
    if kind == "link":
        def conv_link(v: Any) -> tuple[Any, StyleArray | None]:
            return (None, None) if _is_missing(v) or not str(v) else (str(v), s.link)
        return conv_link

    translate = key in _CHOICE_KEYS

    def conv_text(v: Any) -> tuple[Any, StyleArray | None]:
        if _is_missing(v):
            return None, None
        if isinstance(v, list | tuple):
            v = "; ".join(str(x) for x in v)
        text = str(v)
        if translate:
            text = ctx.choice(text)
        text = safe_text(text, language=lang)
        if not text:
            return None, None
        return text, (s.quoted if needs_quote_prefix(text) else None)
    return conv_text


def _width(header: str, values: Iterable[Any], kind: str) -> float:
    if kind == "date":
        longest = 10
    elif kind == "datetime":
        longest = 16
    elif kind == "link":
        longest = 8
    else:
        longest = 0
        for v in values:
            if _is_missing(v):
                continue
            text = str(v)
            n = max((len(line) for line in text.split("\n")), default=0)
            if n > longest:
                longest = n
                if longest >= MAX_WIDTH:
                    break
    return float(min(MAX_WIDTH, max(len(header) + 4, longest + 2, 8)))


# ---------------------------------------------------------------------------------------------
# Sheets


@dataclass(frozen=True)
class _TableInfo:
    first_row: int  # first data row
    last_row: int  # last data row (== first_row when the table is empty: one blank row)
    columns: tuple[str, ...]

    def letter(self, key: str) -> str:
        return get_column_letter(self.columns.index(key) + 1)


def _sheet_header(ctx: _Ctx, ws: Worksheet, title: str) -> None:
    _put(ws, 1, 1, safe_text(title)).font = _TITLE_FONT
    _put(ws, 2, 1, safe_text(ctx.subtitle())).font = _SUBTITLE_FONT


def _write_table(
    ctx: _Ctx,
    ws: Worksheet,
    df: pd.DataFrame,
    columns: Sequence[str],
    *,
    table_base: str,
    header_row: int = HEADER_ROW,
    first_col: int = 1,
    header_labels: Sequence[str] | None = None,
    set_widths: bool = True,
) -> _TableInfo:
    """Write `df[columns]` as an Excel table with its header at `header_row`."""
    labels = list(header_labels) if header_labels is not None else [ctx.t(c) for c in columns]
    # Table header cells must be unique, non-empty strings.
    seen: set[str] = set()
    for i, text in enumerate(labels):
        base = safe_text(text) or f"Kolumn{i + 1}"
        name = base
        n = 2
        while name.casefold() in seen:
            name = f"{base} {n}"
            n += 1
        seen.add(name.casefold())
        labels[i] = name
        _put(ws, header_row, first_col + i, name)

    limit = max(0, min(ctx.max_rows, MAX_ROWS) - header_row - 1)  # keep one row for the note
    total = len(df)
    shown = min(total, limit)
    converters = [_converter(ctx, c) for c in columns]
    series = [df[c].tolist()[:shown] if c in df.columns else [None] * shown for c in columns]
    link_idx = columns.index("link") if "link" in columns else -1
    open_text = ctx.open_text
    row = header_row
    for r in range(shown):
        row = header_row + 1 + r
        for j, conv in enumerate(converters):
            value, style = conv(series[j][r])
            if value is None:
                continue
            if j == link_idx:
                cell = _put(ws, row, first_col + j, open_text, style)
                cell.hyperlink = value
            else:
                _put(ws, row, first_col + j, value, style)
    last_row = header_row + max(shown, 1)
    if shown < total:
        note = ctx.t("rows_not_shown", count=f"{total - shown:,}".replace(",", " "))
        _put(ws, last_row + 1, first_col, note).font = _NOTE_FONT
    elif total == 0:
        _put(ws, last_row + 1, first_col, ctx.t("empty")).font = _SUBTITLE_FONT

    ref = f"{get_column_letter(first_col)}{header_row}:{get_column_letter(first_col + len(columns) - 1)}{last_row}"
    name = excel_table_name(table_base, ctx.table_names)
    ctx.table_names.append(name)
    table = Table(displayName=name, ref=ref)
    table.tableStyleInfo = TableStyleInfo(name=TABLE_STYLE, showRowStripes=True, showColumnStripes=False)
    table.tableColumns = [TableColumn(id=i + 1, name=labels[i]) for i in range(len(labels))]
    table.autoFilter = AutoFilter(ref=ref)
    ws.add_table(table)

    if set_widths:
        for j, key in enumerate(columns):
            letter = get_column_letter(first_col + j)
            sample = series[j][:WIDTH_SAMPLE]
            width = _width(labels[j], sample, _kind(key))
            ws.column_dimensions[letter].width = width
    return _TableInfo(first_row=header_row + 1, last_row=last_row, columns=tuple(columns))


def _finish_sheet(ws: Worksheet, *, header_row: int = HEADER_ROW, freeze: bool = True) -> None:
    if freeze:
        ws.freeze_panes = f"A{header_row + 1}"
    ws.print_title_rows = f"{header_row}:{header_row}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.gridLines = False


def _overdue_rule(ws: Worksheet, info: _TableInfo, key: str = "days_overdue") -> None:
    """Whole row red when the days-overdue cell is > 0 (a formula rule, so it survives sorting)."""
    if key not in info.columns:
        return
    last_col = get_column_letter(len(info.columns))
    col = info.letter(key)
    rng = f"A{info.first_row}:{last_col}{info.last_row}"
    ws.conditional_formatting.add(
        rng,
        FormulaRule(formula=[f"${col}{info.first_row}>0"], fill=_OVERDUE_FILL, font=_OVERDUE_FONT),
    )


def _data_bars(ws: Worksheet, info: _TableInfo, keys: Iterable[str], color: str = "5B9BD5") -> None:
    for key in keys:
        col = info.letter(key)
        ws.conditional_formatting.add(
            f"{col}{info.first_row}:{col}{info.last_row}",
            DataBarRule(start_type="num", start_value=0, end_type="max", color=color, showValue=True),
        )


# ---------------------------------------------------------------------------------------------
# Workbooks


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


class _FixedTimeZip(zipfile.ZipFile):
    """A ZipFile whose entries carry one fixed timestamp (for byte-identical reruns)."""

    fixed_time: tuple[int, int, int, int, int, int] = (2020, 1, 1, 0, 0, 0)

    def writestr(
        self, zinfo_or_arcname: str | zipfile.ZipInfo, data: Any, *args: Any, **kwargs: Any
    ) -> None:
        if isinstance(zinfo_or_arcname, str):
            info = zipfile.ZipInfo(zinfo_or_arcname, date_time=self.fixed_time)
            info.compress_type = self.compression
            info.external_attr = 0o600 << 16
            zinfo_or_arcname = info
        super().writestr(zinfo_or_arcname, data, *args, **kwargs)


def _to_bytes(wb: Workbook, tables: RollupTables) -> bytes:
    # openpyxl's save_workbook() stamps "modified" with the clock; ExcelWriter does not.
    buf = io.BytesIO()
    archive = _FixedTimeZip(buf, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
    local = tables.generated_local
    archive.fixed_time = (max(local.year, 1980), local.month, local.day, local.hour, local.minute, local.second - local.second % 2)
    ExcelWriter(wb, archive).save()
    return buf.getvalue()


def _drop_default_sheet(wb: Workbook) -> None:
    default = wb.worksheets[0]
    wb.remove(default)


def _sheet_names(wb: Workbook) -> tuple[str, ...]:
    return tuple(ws.title for ws in wb.worksheets)


def _problem_column(ctx: _Ctx, df: pd.DataFrame) -> pd.DataFrame:
    key = "problem_en" if ctx.language == "en" else "problem_sv"
    out = df.copy()
    out["problem"] = df[key] if key in df.columns else None
    if ctx.language == "en" and "problem_sv" in df.columns:
        out["problem"] = out["problem"].where(out["problem"].notna(), df["problem_sv"])
    return out


_OVERVIEW_COLS = [
    "team",
    "county",
    "code",
    "knowledge_current",
    "strategic_inputs",
    "added_30d",
    "current_phase",
    "next_dialogue",
    "last_dialogue",
    "feedback_open",
    "feedback_overdue",
    "feedback_closed_share",
]
_FEEDBACK_COLS = [
    "county",
    "title",
    "receiving_department",
    "subject_area",
    "status",
    "due_date",
    "days_overdue",
    "owner",
    "action",
    "modified",
    "link",
]
_DIALOGUE_COLS = ["team", "county", "year", "title", "phase", "planned_date", "held_date", "held", "county_lead", "link"]
_QUALITY_COLS = ["list", "item_id", "column", "problem", "value", "link"]


def _with_held(ctx: _Ctx, df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    yes, no = ctx.t("yes"), ctx.t("no")
    out["held"] = [no if _is_missing(v) else yes for v in df["held_date"]] if len(df) else []
    return out


def _about_sheet(ctx: _Ctx) -> None:
    tables = ctx.tables
    ws = ctx.new_sheet("sheet_about")
    _sheet_header(ctx, ws, ctx.t("title_about"))
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
    info = _write_table(ctx, ws, props, ["property", "value"], table_base="Om_rapporten")
    lists_header = info.last_row + 3
    lists = tables.about_lists
    _write_table(
        ctx,
        ws,
        lists,
        ["list", "items", "last_synced"],
        table_base="Listor",
        header_row=lists_header,
        set_widths=False,
    )
    ws.column_dimensions["A"].width = 24
    ws.column_dimensions["B"].width = 80
    ws.column_dimensions["C"].width = 22
    _finish_sheet(ws)


def render_overview(tables: RollupTables, *, language: str = "sv", max_rows: int = MAX_ROWS) -> RollupWorkbook:
    """Länsöversikt.xlsx: Översikt, Kunskapsmatris, Återkoppling, Dialogplan, Diagram, Datakvalitet, Om rapporten."""
    lang = normalise_language(language)
    title = label("wb_overview", lang)
    wb = _new_workbook(tables, title)
    ctx = _Ctx(wb, tables, lang, max_rows)
    _drop_default_sheet(wb)

    # Översikt
    ws = ctx.new_sheet("sheet_overview")
    _sheet_header(ctx, ws, ctx.t("title_overview"))
    info = _write_table(ctx, ws, tables.overview, _OVERVIEW_COLS, table_base="Oversikt")
    _data_bars(ws, info, ["knowledge_current", "strategic_inputs", "added_30d", "feedback_open"])
    col = info.letter("feedback_overdue")
    ws.conditional_formatting.add(
        f"{col}{info.first_row}:{col}{info.last_row}",
        FormulaRule(formula=[f"{col}{info.first_row}>0"], fill=_OVERDUE_FILL, font=_OVERDUE_FONT),
    )
    _finish_sheet(ws)

    # Kunskapsmatris
    ws = ctx.new_sheet("sheet_matrix")
    _sheet_header(ctx, ws, ctx.t("title_matrix"))
    areas = list(tables.reference.subject_areas)
    matrix = tables.matrix.rename(columns={a: f"area_{i}" for i, a in enumerate(areas)})
    area_keys = [f"area_{i}" for i in range(len(areas))]
    headers = [ctx.t("team"), ctx.t("county"), *[ctx.choice(a) for a in areas]]
    info = _write_table(ctx, ws, matrix, ["team", "county", *area_keys], table_base="Kunskapsmatris", header_labels=headers)
    if area_keys:
        rng = f"{info.letter(area_keys[0])}{info.first_row}:{info.letter(area_keys[-1])}{info.last_row}"
        ws.conditional_formatting.add(
            rng,
            ColorScaleRule(
                start_type="num", start_value=0, start_color="F8696B",
                mid_type="percentile", mid_value=50, mid_color="FFEB84",
                end_type="max", end_color="63BE7B",
            ),
        )
        for k in area_keys:
            ws.column_dimensions[info.letter(k)].width = 14
    _finish_sheet(ws)
    ws.freeze_panes = f"C{HEADER_ROW + 1}"

    # Återkoppling (open feedback)
    ws = ctx.new_sheet("sheet_feedback")
    _sheet_header(ctx, ws, ctx.t("title_feedback"))
    info = _write_table(ctx, ws, tables.open_feedback, _FEEDBACK_COLS, table_base="Aterkoppling")
    _overdue_rule(ws, info)
    _finish_sheet(ws)

    # Dialogplan
    ws = ctx.new_sheet("sheet_dialogue_plan")
    _sheet_header(ctx, ws, ctx.t("title_dialogue_plan"))
    _write_table(ctx, ws, _with_held(ctx, tables.dialogue_plan), _DIALOGUE_COLS, table_base="Dialogplan")
    _finish_sheet(ws)

    # Diagram
    _charts_sheet(ctx)

    # Datakvalitet
    ws = ctx.new_sheet("sheet_quality")
    _sheet_header(ctx, ws, ctx.t("title_quality"))
    _write_table(ctx, ws, _problem_column(ctx, tables.quality), _QUALITY_COLS, table_base="Datakvalitet")
    _finish_sheet(ws)

    _about_sheet(ctx)
    wb.active = 0
    return RollupWorkbook(safe_file_name(title), _to_bytes(wb, tables), _sheet_names(wb))


def _charts_sheet(ctx: _Ctx) -> None:
    tables = ctx.tables
    ws = ctx.new_sheet("sheet_charts")
    _sheet_header(ctx, ws, ctx.t("title_charts"))
    fb = tables.chart_feedback
    info = _write_table(ctx, ws, fb, ["county", "open", "overdue", "closed"], table_base="Diagram_aterkoppling")
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

    kn = tables.chart_knowledge
    teams = list(tables.reference.teams)
    team_keys = [f"team_{i}" for i in range(len(teams))]
    kn2 = kn.rename(columns={t: f"team_{i}" for i, t in enumerate(teams)})
    header = info.last_row + 4
    headers = [ctx.t("subject_area"), *[ctx.choice(t) for t in teams]]
    _write_table(
        ctx, ws, kn2, ["subject_area", *team_keys], table_base="Diagram_kunskap",
        header_row=header, header_labels=headers, set_widths=False,
    )
    m = len(kn2)
    chart2 = BarChart()
    chart2.type = "col"
    chart2.grouping = "clustered"
    chart2.title = ctx.t("chart_knowledge")
    data2 = Reference(ws, min_col=2, max_col=1 + len(teams), min_row=header, max_row=header + max(m, 1))
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
    _finish_sheet(ws, freeze=False)


_DEPT_COLS = [
    "county",
    "title",
    "subject_area",
    "status",
    "dialogue_date",
    "due_date",
    "days_overdue",
    "owner",
    "feedback_text",
    "action",
    "modified",
    "link",
]


def render_department(
    tables: RollupTables, department: str, *, language: str = "sv", max_rows: int = MAX_ROWS
) -> RollupWorkbook:
    """Återkoppling – {Avdelning}.xlsx: all feedback addressed to one department, by county."""
    lang = normalise_language(language)
    shown = choice_label(department, lang, tables.reference.translations)
    title = label("wb_department", lang, name=shown)
    wb = _new_workbook(tables, title)
    ctx = _Ctx(wb, tables, lang, max_rows)
    _drop_default_sheet(wb)
    ws = ctx.new_sheet("sheet_feedback")
    _sheet_header(ctx, ws, ctx.t("title_department", name=shown))
    df = tables.by_department.get(department, pd.DataFrame(columns=_DEPT_COLS))
    info = _write_table(ctx, ws, df, _DEPT_COLS, table_base="Aterkoppling")
    _overdue_rule(ws, info)
    _finish_sheet(ws)
    wb.active = 0
    return RollupWorkbook(safe_file_name(title), _to_bytes(wb, tables), _sheet_names(wb))


_COUNTY_KN_COLS = [
    "subject_area",
    "title",
    "entry_type",
    "department",
    "priority",
    "valid_until",
    "owner",
    "description",
    "modified",
    "link",
]
_COUNTY_DL_COLS = ["year", "title", "phase", "planned_date", "held_date", "held", "county_lead", "link"]
_COUNTY_FB_COLS = [
    "title",
    "receiving_department",
    "subject_area",
    "status",
    "dialogue_date",
    "due_date",
    "days_overdue",
    "owner",
    "feedback_text",
    "action",
    "modified",
    "link",
]


def render_county(
    tables: RollupTables, county: str, *, language: str = "sv", max_rows: int = MAX_ROWS
) -> RollupWorkbook:
    """Länsbild – {Län}.xlsx: one county's current knowledge, dialogue plan and feedback."""
    lang = normalise_language(language)
    title = label("wb_county", lang, name=county)
    wb = _new_workbook(tables, title)
    ctx = _Ctx(wb, tables, lang, max_rows)
    _drop_default_sheet(wb)

    ws = ctx.new_sheet("sheet_knowledge")
    _sheet_header(ctx, ws, ctx.t("title_county_knowledge", name=county))
    kn = tables.county_knowledge.get(county, pd.DataFrame(columns=_COUNTY_KN_COLS))
    _write_table(ctx, ws, kn, _COUNTY_KN_COLS, table_base="Kunskap")
    _finish_sheet(ws)

    ws = ctx.new_sheet("sheet_dialogue_plan")
    _sheet_header(ctx, ws, ctx.t("title_county_dialogues", name=county))
    dl = tables.county_dialogues.get(county, pd.DataFrame(columns=[c for c in _COUNTY_DL_COLS if c != "held"] + ["held_date"]))
    _write_table(ctx, ws, _with_held(ctx, dl), _COUNTY_DL_COLS, table_base="Dialogplan")
    _finish_sheet(ws)

    ws = ctx.new_sheet("sheet_feedback")
    _sheet_header(ctx, ws, ctx.t("title_county_feedback", name=county))
    fb = tables.county_feedback.get(county, pd.DataFrame(columns=_COUNTY_FB_COLS))
    info = _write_table(ctx, ws, fb, _COUNTY_FB_COLS, table_base="Aterkoppling")
    _overdue_rule(ws, info)
    _finish_sheet(ws)
    wb.active = 0
    return RollupWorkbook(safe_file_name(title), _to_bytes(wb, tables), _sheet_names(wb))


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

