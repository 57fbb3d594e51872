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

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.formatting.rule import CellIsRule, DataBarRule, FormulaRule
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import column_index_from_string, get_column_letter
from openpyxl.worksheet.pagebreak import Break
from openpyxl.worksheet.worksheet import Worksheet

from sp_sync import __version__
from sp_sync.i18n import choice_label, label, normalise_language
from sp_sync.report.safe_text import MAX_ROWS, safe_file_name
from sp_sync.report.tables import OVERDUE_BANDS, RECENT_DAYS, UPCOMING_DAYS, RollupTables
from sp_sync.report.workbook import RollupWorkbook
from sp_sync.report.xlsx_writer import (
    COUNT_FORMAT,
    DATE_FORMAT,
    DATETIME_FORMAT,
    HEADER_ROW,
    Column,
    ColumnKind,
    TableInfo,
    XlsxBook,
    _value_bytes,
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

_BAND_90_FILL = PatternFill(start_color="FFC7CE", end_color="FFC7CE", fill_type="solid")
_BAND_90_FONT = Font(color="9C0006", bold=True)
_BAND_30_FILL = PatternFill(start_color="FCE4D6", end_color="FCE4D6", fill_type="solid")
_MISSED_FILL = PatternFill(start_color="FFEB9C", end_color="FFEB9C", fill_type="solid")
_TOTAL_FONT = Font(bold=True)
_TOTAL_FILL = PatternFill(start_color="D9E1F2", end_color="D9E1F2", fill_type="solid")
#: Knowledge matrix levels (absolute, so colour means the same in every county): 0 = missing.
MATRIX_LEVELS = (
    ("equal", [0], "F8CBAD", "9C0006"),  # missing
    ("between", [1, 2], "FFEB9C", "7F6000"),  # thin
    ("greaterThanOrEqual", [3], "C6EFCE", "006100"),  # covered
)
_SECTION_FONT = Font(bold=True, size=12, color="1F3864")
_CALM_FONT = Font(italic=True, color="375623")
MATRIX_COLUMN_WIDTH = 14
MATRIX_HEADER_HEIGHT = 90.0  # points: room for ~22 characters at 45°
#: Width of columns holding long text (feedback, actions, descriptions, problems): wrapped in it.
WRAP_WIDTH = 40
#: Narrower wrapping for short phrases that are sometimes long ("Tillgänglighet och
#: infrastruktur", "Strategisk dialog Västra Götalands län 2026").
WRAP_AT = {"subject_area": 18, "dialogue": 24, "entry_type": 14}
#: The widest a one-line text column gets (longer values are clipped on screen, whole in the cell).
MAX_TEXT_WIDTH = 45
#: How many values of a column are measured for its width.
WIDTH_SAMPLE = 2000
#: Excel's default row height (Calibri 11) and the most a row may be (Excel's limit).
LINE_HEIGHT = 15.0
MAX_ROW_HEIGHT = 409.0
#: The smallest print scale allowed: 73 % of Calibri 11 is 8 pt. Wider tables are split over
#: pages (with their first columns repeated) instead of being shrunk further.
MIN_PRINT_SCALE = 73
PRINT_SCALE = 75
#: A4 landscape width inside openpyxl's default margins (0.7 in each side), in inches.
PRINTABLE_INCHES = 11.69 - 1.4

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
    Column("oldest_overdue_days", "int"),
    Column("feedback_closed_share", "percent"),
)
#: Länsöversikt → Översikt: the department × status matrix (then one overdue column per team).
DEPARTMENT_MATRIX_COLUMNS = (
    Column("department"),
    Column("feedback_open", "int"),
    Column("open_in_time", "int"),
    Column("feedback_overdue", "int"),
    Column("overdue_over_30", "int"),
    Column("overdue_over_90", "int"),
    Column("oldest_overdue_days", "int"),
    Column("closed_30d", "int"),
)
#: Länsöversikt → Översikt: the county table's figures per team, and the total.
TEAM_SUMMARY_COLUMNS = (
    Column("team"),
    Column("knowledge_current", "int"),
    Column("added_30d", "int"),
    Column("feedback_open", "int"),
    Column("feedback_overdue", "int"),
    Column("oldest_overdue_days", "int"),
    Column("feedback_closed_share", "percent"),
)
#: Länsöversikt → Kunskapsmatris: these, then one count column per subject area.
MATRIX_COLUMNS = (Column("team", "choice"), Column("county"))
#: Länsöversikt → Återkoppling: the open feedback.
OPEN_FEEDBACK_COLUMNS = (
    Column("team", "choice"),
    Column("county"),
    Column("title", wrap=True),
    Column("receiving_department", "choice"),
    Column("subject_area", "choice", wrap=True),
    Column("status", "choice"),
    Column("dialogue", wrap=True),
    Column("dialogue_date", "date"),
    Column("due_date", "date"),
    Column("days_overdue", "int"),
    Column("owner"),
    Column("feedback_text", wrap=True),
    Column("action", wrap=True),
    Column("modified", "datetime"),
    Column("link", "link"),
)
#: Länsöversikt → Dialogplan ("dialogue_state" is translated by the layout).
DIALOGUE_PLAN_COLUMNS = (
    Column("team", "choice"),
    Column("county"),
    Column("year", "year"),
    Column("title"),
    Column("phase", "choice"),
    Column("planned_date", "date"),
    Column("held_date", "date"),
    Column("dialogue_state"),
    Column("county_lead"),
    Column("link", "link"),
)
#: Länsöversikt → Diagram, the data of the feedback chart (open = in time + overdue).
CHART_FEEDBACK_COLUMNS = (
    Column("county"),
    Column("open_in_time", "int"),
    Column("overdue", "int"),
    Column("closed", "int"),
)
#: Länsöversikt → Diagram, the knowledge chart's data: this, then one count column per team.
CHART_KNOWLEDGE_COLUMNS = (Column("subject_area", "choice"),)
#: Länsöversikt → Datakvalitet ("column" and "problem" in the workbook's language). IDs use the
#: plain number format of years: an ID is a name, not an amount, so no thousands separator.
QUALITY_COLUMNS = (
    Column("list", "choice"),
    Column("item_id", "year"),
    Column("title", wrap=True),
    Column("county"),
    Column("column"),
    Column("problem", wrap=True),
    Column("value", wrap=True),
    Column("link", "link"),
)
#: Länsöversikt → Om rapporten: the definitions, the lists, and the drift found.
DEFINITION_COLUMNS = (
    Column("measure", wrap=True),
    Column("definition", wrap=True),
    Column("dates_used", wrap=True),
)
ABOUT_LISTS_COLUMNS = (
    Column("list", "choice"),
    Column("items", "int"),
    Column("last_synced", "datetime"),
    # Freshness beside the last change (issue 11 item 13); masked out of the content
    # fingerprint like the generation time (sp_sync.report.fingerprint).
    Column("last_checked", "datetime"),
)
DRIFT_COLUMNS = (
    Column("list", "choice"),
    Column("column"),
    Column("severity"),
    Column("problem", wrap=True),
)
#: Återkoppling – {Avdelning} → Sammanfattning: the department's feedback per county.
DEPARTMENT_SUMMARY_COLUMNS = (
    Column("team", "choice"),
    Column("county"),
    Column("feedback_open", "int"),
    Column("open_in_time", "int"),
    Column("feedback_overdue", "int"),
    Column("overdue_over_30", "int"),
    Column("overdue_over_90", "int"),
    Column("oldest_overdue_days", "int"),
    Column("closed", "int"),
    Column("closed_30d", "int"),
)
#: Återkoppling – {Avdelning} → Återkoppling: all feedback addressed to one department.
DEPARTMENT_COLUMNS = (
    Column("county"),
    Column("title", wrap=True),
    Column("subject_area", "choice", wrap=True),
    Column("status", "choice"),
    Column("dialogue", wrap=True),
    Column("dialogue_date", "date"),
    Column("due_date", "date"),
    Column("days_overdue", "int"),
    Column("owner"),
    Column("feedback_text", wrap=True),
    Column("action", wrap=True),
    Column("modified", "datetime"),
    Column("link", "link"),
)
#: Länsbild – {Län} → Inför dialogen: the county's most recently added current knowledge.
RECENT_KNOWLEDGE_COLUMNS = (
    Column("created", "datetime"),
    Column("subject_area", "choice", wrap=True),
    Column("title", wrap=True),
    Column("entry_type", "choice"),
    Column("department", "choice"),
    Column("link", "link"),
)
#: Länsbild – {Län} → Inför dialogen: the figures block (label key, value key, kind).
PREP_FIGURES: tuple[tuple[str, str, ColumnKind], ...] = (
    ("current_phase", "current_phase", "choice"),
    ("last_dialogue", "last_dialogue", "date"),
    ("next_dialogue", "next_dialogue", "date"),
    ("dialogues_missed", "dialogues_missed", "int"),
    ("feedback_open", "feedback_open", "int"),
    ("feedback_overdue", "feedback_overdue", "int"),
    ("oldest_overdue_days", "oldest_overdue_days", "int"),
    ("knowledge_current", "knowledge_current", "int"),
    ("added_30d", "added_30d", "int"),
)
#: Länsbild – {Län} → Kunskap: the county's current knowledge.
COUNTY_KNOWLEDGE_COLUMNS = (
    Column("subject_area", "choice", wrap=True),
    Column("title", wrap=True),
    Column("entry_type", "choice"),
    Column("department", "choice"),
    Column("priority", "choice"),
    Column("valid_until", "date"),
    Column("owner"),
    Column("description", wrap=True),
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
    Column("dialogue_state"),
    Column("county_lead"),
    Column("link", "link"),
)
#: Länsbild – {Län} → Återkoppling: the county's feedback.
COUNTY_FEEDBACK_COLUMNS = (
    Column("title", wrap=True),
    Column("receiving_department", "choice"),
    Column("subject_area", "choice", wrap=True),
    Column("status", "choice"),
    Column("dialogue", wrap=True),
    Column("dialogue_date", "date"),
    Column("due_date", "date"),
    Column("days_overdue", "int"),
    Column("owner"),
    Column("feedback_text", wrap=True),
    Column("action", wrap=True),
    Column("modified", "datetime"),
    Column("link", "link"),
)


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
        self.styles = self.book.styles
        # Styles of our own, registered like the writer's (before the first sheet is removed).
        self.section = self.styles._make(font=_SECTION_FONT)
        self.calm = self.styles._make(font=_CALM_FONT)
        self.label_style = self.styles._make(font=Font(color="404040"))
        left = Alignment(horizontal="left")
        self.left_date = self.styles._make(number_format=DATE_FORMAT, alignment=left)
        self.left_datetime = self.styles._make(number_format=DATETIME_FORMAT, alignment=left)
        # openpyxl starts every workbook with one sheet; ours are all made by new_sheet.
        wb.remove(wb.worksheets[0])

    def t(self, key: str, **fmt: object) -> str:
        return label(key, self.language, **fmt)

    def choice(self, value: str) -> str:
        return choice_label(value, self.language, self.tables.reference.translations)

    def day(self, value: dt.date) -> str:
        return value.isoformat()

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


def _rows_range(info: TableInfo) -> str:
    return f"A{info.first_row}:{info.letter(info.columns[-1])}{info.last_row}"


def _overdue_bands(ws: Worksheet, info: TableInfo, key: str = "days_overdue") -> None:
    """Overdue rows coloured by age: more than 90 days strong, more than 30 days light.

    Formula rules (they survive sorting and filtering); 1–30 days stay uncoloured, so colour
    ranks instead of marking two thirds of the rows.
    """
    if key not in info.columns:
        return
    col = info.letter(key)
    first = info.first_row
    rng = _rows_range(info)
    far, near = OVERDUE_BANDS[1], OVERDUE_BANDS[0]
    ws.conditional_formatting.add(
        rng,
        FormulaRule(
            formula=[f"${col}{first}>{far}"],
            fill=_BAND_90_FILL,
            font=_BAND_90_FONT,
            stopIfTrue=True,
        ),
    )
    ws.conditional_formatting.add(
        rng, FormulaRule(formula=[f"${col}{first}>{near}"], fill=_BAND_30_FILL)
    )


def _cell_bands(ws: Worksheet, info: TableInfo, key: str) -> None:
    """The overdue age bands on one column only (the oldest overdue of a row of figures)."""
    col = info.letter(key)
    rng = f"{col}{info.first_row}:{col}{info.last_row}"
    first = f"{col}{info.first_row}"
    far, near = OVERDUE_BANDS[1], OVERDUE_BANDS[0]
    ws.conditional_formatting.add(
        rng,
        FormulaRule(
            formula=[f"{first}>{far}"], fill=_BAND_90_FILL, font=_BAND_90_FONT, stopIfTrue=True
        ),
    )
    ws.conditional_formatting.add(rng, FormulaRule(formula=[f"{first}>{near}"], fill=_BAND_30_FILL))


def _total_row(ws: Worksheet, info: TableInfo, key: str, text: str) -> None:
    """Bold, shaded total rows: those whose `key` cell holds `text`."""
    col = info.letter(key)
    quoted = text.replace('"', '""')
    ws.conditional_formatting.add(
        _rows_range(info),
        FormulaRule(
            formula=[f'${col}{info.first_row}="{quoted}"'], fill=_TOTAL_FILL, font=_TOTAL_FONT
        ),
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


def _with_state(ctx: _Ctx, df: pd.DataFrame) -> pd.DataFrame:
    """The dialogue state keys as text in the workbook's language."""
    out = df.copy()
    if "dialogue_state" in out.columns and len(out):
        out["dialogue_state"] = [
            None if _is_missing(v) else ctx.t(f"state_{v}") for v in out["dialogue_state"]
        ]
    return out


def _missed_rule(ctx: _Ctx, ws: Worksheet, info: TableInfo) -> None:
    """Rounds planned in the past but never held: the whole row amber."""
    col = info.letter("dialogue_state")
    text = ctx.t("state_missed").replace('"', '""')
    ws.conditional_formatting.add(
        _rows_range(info),
        FormulaRule(formula=[f'${col}{info.first_row}="{text}"'], fill=_MISSED_FILL),
    )


def _problem_column(ctx: _Ctx, df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for key in ("problem", "column"):
        sv, en = f"{key}_sv", f"{key}_en"
        if ctx.language == "en" and en in df.columns:
            chosen = df[en]
            if sv in df.columns:
                chosen = chosen.where(chosen.notna(), df[sv])
            out[key] = chosen
        elif sv in df.columns:
            out[key] = df[sv]
    return out


def _fit_rows(
    book: XlsxBook, ws: Worksheet, info: TableInfo, df: pd.DataFrame, columns: Sequence[Column]
) -> None:
    """Row heights that show every line of wrapped text (Excel does not grow rows itself when
    it opens a file, LibreOffice does; an explicit height works in both)."""
    wrapped = [c for c in columns if c.kind in ("text", "choice") and c.key in df.columns]
    if not len(df) or not wrapped:
        return
    shown = min(len(df), info.last_row - info.first_row + 1)
    lines = np.ones(shown, dtype=np.int64)
    for c in wrapped:
        width = ws.column_dimensions[info.letter(c.key)].width or 8.43
        per_line = max(1.0, float(width) * 1.15 - 1)
        np.maximum(lines, _lines_needed(df[c.key].iloc[:shown], per_line, wrap=c.wrap), out=lines)
    tall = np.flatnonzero(lines > 1)
    points = np.minimum(MAX_ROW_HEIGHT, lines[tall] * LINE_HEIGHT)
    book.set_row_height_array(ws, tall + info.first_row, points.astype(np.float64))


def _lines_needed(column: pd.Series, per_line: float, *, wrap: bool) -> np.ndarray:
    """How many lines each value of a text column takes (1 for a value that is not text):
    every line of a multi-line text, and in a `wrap` column also a text longer than a line,
    counted as ceil(characters / per_line) per line. A string column is counted a whole
    column at a time in Arrow (issue 14 goal 5), any other column value by value; both count
    the same."""
    out = np.ones(len(column), dtype=np.int64)
    if not isinstance(column.dtype, pd.StringDtype):
        if not column.notna().any():  # nothing written (a column of missing values)
            return out
        for r, v in enumerate(column.tolist()):
            if not isinstance(v, str) or (len(v) <= per_line and "\n" not in v):
                continue
            if not wrap and "\n" not in v:
                continue
            out[r] = sum(max(1, -(-len(part) // int(per_line))) for part in v.split("\n"))
        return out
    text = _arrow_text(column)
    if not _has_newline(text):
        # No multi-line text in the column (most columns): only a long text in a wrap column
        # can take more than a line. A value has at least as many bytes as characters, so
        # only one of more bytes than a line is counted.
        if not wrap:
            return out
        tall = pc.greater(pc.binary_length(text), per_line)
        candidates = np.flatnonzero(pc.fill_null(tall, False).to_numpy(zero_copy_only=False))
        if not len(candidates):
            return out
        lengths = pc.utf8_length(text.take(pa.array(candidates))).to_numpy().astype(np.int64)
        out[candidates] = np.maximum(1, -(-lengths // int(per_line)))
        return out
    tall = pc.match_substring(text, "\n")
    if wrap:
        tall = pc.or_(tall, pc.greater(pc.utf8_length(text), per_line))
    rows = np.flatnonzero(pc.fill_null(tall, False).to_numpy(zero_copy_only=False))
    if not len(rows):
        return out
    parts = pc.split_pattern(text.take(pa.array(rows)), "\n")
    lengths = pc.utf8_length(pc.list_flatten(parts)).to_numpy().astype(np.int64)
    per_part = np.maximum(1, -(-lengths // int(per_line)))
    owner = pc.list_parent_indices(parts).to_numpy()
    out[rows] = np.bincount(owner, weights=per_part, minlength=len(rows)).astype(np.int64)
    return out


def _longest_line(column: pd.Series) -> int:
    """The longest line (in characters) of the column's texts; 0 without text. Values that are
    not text are left out."""
    if not isinstance(column.dtype, pd.StringDtype):
        longest = 0
        for v in column.tolist():
            if isinstance(v, str) and v:
                longest = max(longest, *(len(line) for line in v.split("\n")))
        return longest
    if not len(column):
        return 0
    text = _arrow_text(column)
    if _has_newline(text):
        text = pc.list_flatten(pc.split_pattern(text, "\n"))
    return int(pc.max(pc.utf8_length(text)).as_py() or 0)


def _has_newline(text: pa.Array) -> bool:
    """Whether any value of a large_string array holds a line feed (one pass over its bytes)."""
    return bool((_value_bytes(text) == ord("\n")).any())


def _arrow_text(column: pd.Series) -> pa.Array:
    """A pandas string column as one Arrow large_string array (nulls where values are missing)."""
    text = pa.array(column, from_pandas=True)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    return text.cast(pa.large_string())


def _longest_word(text: str) -> int:
    return max((len(w) for w in text.split()), default=0)


def _compact_widths(
    ws: Worksheet,
    info: TableInfo,
    df: pd.DataFrame,
    columns: Sequence[Column],
    labels: Sequence[str],
) -> int:
    """Column widths from the values, with headers wrapped over up to three lines instead of
    widening a column for its header ("Dagar försenad" over a two-digit number); long text
    wraps at WRAP_WIDTH. Returns the header's height in lines."""
    header_lines = 1
    for c, text in zip(columns, labels, strict=True):
        if c.kind == "date":
            width = 12
        elif c.kind == "datetime":
            width = 17
        elif c.kind in ("link", "int", "year", "percent"):
            width = 9
        else:
            longest = _longest_line(df[c.key].iloc[:WIDTH_SAMPLE]) if c.key in df.columns else 0
            cap = WRAP_AT.get(c.key, WRAP_WIDTH) if c.wrap else MAX_TEXT_WIDTH
            width = min(longest + 2, cap)
        width = max(width, _longest_word(text) + 2, 8)
        ws.column_dimensions[info.letter(c.key)].width = width
        lines = -(-len(text) // max(1, width - 1))
        header_lines = max(header_lines, min(3, lines))
    return header_lines


def _print_fit(ws: Worksheet, *, repeat_columns: str | None = None) -> None:
    """Print at an effective size of at least 8 pt: fit to the page width when that needs no
    more shrinking than MIN_PRINT_SCALE, else split the table over pages side by side (at
    PRINT_SCALE, 8.25 pt) with `repeat_columns` on each."""
    last = ws.max_column
    for key in ws.column_dimensions:
        try:
            last = max(last, column_index_from_string(key))
        except ValueError:
            continue
    widths = [ws.column_dimensions[get_column_letter(i)].width or 8.43 for i in range(1, last + 1)]
    inches = sum((float(w) * 7 + 5) / 96 for w in widths)
    needed = 100 * PRINTABLE_INCHES / inches if inches else 100
    if needed >= MIN_PRINT_SCALE:
        return  # finish_sheet's fit-to-width shrinks no further than that
    ws.sheet_properties.pageSetUpPr.fitToPage = False
    ws.page_setup.fitToWidth = None
    ws.page_setup.fitToHeight = None
    ws.page_setup.scale = PRINT_SCALE
    if repeat_columns:
        ws.print_title_cols = repeat_columns


#: The kinds whose columns the writer and the row heights take in Arrow when they are strings.
_STRING_KINDS = frozenset({"text", "choice", "link"})


def _as_strings(df: pd.DataFrame, columns: Sequence[Column]) -> pd.DataFrame:
    """`df` with each text, choice or link column that holds nothing but text (and missing
    values) as a pandas string column. The tables come from the state store as object columns;
    as strings the writer, the widths and the row heights take them a whole column at a time in
    Arrow instead of value by value in Python (issue 14 goal 4: that was most of rendering a
    night's overview). Both paths write the same XML; a column holding anything else (lists,
    numbers) stays as it is."""
    if not len(df):
        return df
    converted: dict[str, pd.Series] = {}
    for c in columns:
        if c.kind not in _STRING_KINDS or c.key not in df.columns or c.key in converted:
            continue
        column = df[c.key]
        if column.dtype != object or pd.api.types.infer_dtype(column, skipna=True) != "string":
            continue
        try:
            converted[c.key] = column.astype(pd.StringDtype("pyarrow"))
        except (pa.ArrowException, UnicodeError):  # e.g. a lone surrogate: value by value
            continue
    return df.assign(**converted) if converted else df


def _table(
    ctx: _Ctx,
    ws: Worksheet,
    df: pd.DataFrame,
    columns: Sequence[Column],
    *,
    table_base: str,
    header_row: int = HEADER_ROW,
    header_labels: Sequence[str] | None = None,
    set_widths: bool = True,
) -> TableInfo:
    """write_table with wrapped headers, then compact widths (when `set_widths`) and row
    heights for wrapped text."""
    labels = list(header_labels) if header_labels is not None else [ctx.t(c.key) for c in columns]
    df = _as_strings(df, columns)
    info = ctx.book.write_table(
        ws,
        df,
        columns,
        table_base=table_base,
        header_row=header_row,
        header_labels=labels,
        set_widths=False,
        header_styles=[ctx.styles.wrapped] * len(columns),
    )
    if set_widths:
        lines = _compact_widths(ws, info, df, columns, labels)
        ws.row_dimensions[header_row].height = lines * LINE_HEIGHT
    _fit_rows(ctx.book, ws, info, df, columns)
    return info


def _figures_block(
    ctx: _Ctx,
    ws: Worksheet,
    row: int,
    figures: Sequence[tuple[str, object, ColumnKind]],
    *,
    value_col: int,
    left: bool = False,
) -> int:
    """Label / typed value pairs, one per row from `row` (labels in A, values in `value_col`,
    dates left-aligned with the texts when `left`); returns the first row after the block."""
    for i, (text, value, kind) in enumerate(figures):
        ctx.book.put_text(ws, row + i, 1, text, ctx.label_style)
        if kind in ("text", "choice"):
            if not _is_missing(value):
                shown = ctx.choice(str(value)) if kind == "choice" else str(value)
                ctx.book.put_text(ws, row + i, value_col, shown)
        elif left and kind in ("date", "datetime"):
            style = ctx.left_date if kind == "date" else ctx.left_datetime
            ctx.book.put_value(ws, row + i, value_col, value, kind, style)
        else:
            ctx.book.put_value(ws, row + i, value_col, value, kind)
    return row + len(figures)


# ---------------------------------------------------------------------------------------------
# Länsöversikt.xlsx


def _headline_block(ctx: _Ctx, ws: Worksheet, row: int) -> int:
    h = ctx.tables.headline
    ctx.book.put_text(
        ws, row, 1, ctx.t("title_headline", date=ctx.day(h.reference_date)), ctx.section
    )
    figures: list[tuple[str, object, ColumnKind]] = [
        (ctx.t("reference_date"), h.reference_date, "date"),
        (ctx.t("headline_open"), h.feedback_open, "int"),
        (ctx.t("headline_overdue"), h.feedback_overdue, "int"),
        (ctx.t("headline_over_30"), h.overdue_over_30, "int"),
        (ctx.t("headline_over_90"), h.overdue_over_90, "int"),
        (ctx.t("headline_oldest"), h.oldest_overdue_days, "int"),
        (ctx.t("headline_next_30"), h.dialogues_next_30, "int"),
        (ctx.t("headline_next_60"), h.dialogues_next_60, "int"),
        (ctx.t("headline_missed"), h.dialogues_missed, "int"),
        (ctx.t("headline_added"), h.knowledge_added_30d, "int"),
        (ctx.t("headline_quality"), h.quality_problems, "int"),
    ]
    end = _figures_block(ctx, ws, row + 1, figures, value_col=3)
    # The oldest overdue and the >90 band get the band colours, like every overdue figure.
    oldest = f"C{row + 6}"
    ws.conditional_formatting.add(
        oldest,
        FormulaRule(
            formula=[f"{oldest}>{OVERDUE_BANDS[1]}"], fill=_BAND_90_FILL, font=_BAND_90_FONT
        ),
    )
    return end


def _department_matrix(ctx: _Ctx, ws: Worksheet, row: int) -> int:
    tables = ctx.tables
    ctx.book.put_text(ws, row, 1, ctx.t("title_department_matrix"), ctx.section)
    teams = list(tables.reference.teams)
    df = tables.department_matrix.copy()
    total = ctx.t("total")
    df["department"] = [
        total if is_total else (ctx.t("no_department") if _is_missing(d) else ctx.choice(str(d)))
        for d, is_total in zip(df["department"], df["is_total"], strict=True)
    ]
    df = df.rename(columns={f"overdue:{t}": f"overdue_team_{i}" for i, t in enumerate(teams)})
    team_columns = [Column(f"overdue_team_{i}", "int") for i in range(len(teams))]
    columns = [*DEPARTMENT_MATRIX_COLUMNS, *team_columns]
    headers = [
        *(ctx.t(c.key) for c in DEPARTMENT_MATRIX_COLUMNS),
        *(ctx.t("overdue_team", name=ctx.choice(t)) for t in teams),
    ]
    info = _table(
        ctx,
        ws,
        df,
        columns,
        table_base="Avdelningar",
        header_row=row + 1,
        header_labels=headers,
        set_widths=False,
    )
    ws.row_dimensions[row + 1].height = 3 * LINE_HEIGHT
    _cell_bands(ws, info, "oldest_overdue_days")
    _total_row(ws, info, "department", total)
    return info.last_row + 1


def _team_summary(ctx: _Ctx, ws: Worksheet, row: int) -> int:
    ctx.book.put_text(ws, row, 1, ctx.t("title_team_summary"), ctx.section)
    df = ctx.tables.team_summary.copy()
    total = ctx.t("total")
    df["team"] = [
        total if is_total else ctx.choice(str(t))
        for t, is_total in zip(df["team"], df["is_total"], strict=True)
    ]
    info = _table(
        ctx,
        ws,
        df,
        TEAM_SUMMARY_COLUMNS,
        table_base="Team",
        header_row=row + 1,
        set_widths=False,
    )
    ws.row_dimensions[row + 1].height = 3 * LINE_HEIGHT
    _cell_bands(ws, info, "oldest_overdue_days")
    _total_row(ws, info, "team", total)
    return info.last_row + 1


def _overview_sheet(ctx: _Ctx) -> None:
    """Översikt: the headline block, the department matrix, the teams, then the counties."""
    ws = ctx.new_sheet("sheet_overview")
    ctx.sheet_header(ws, ctx.t("title_overview"))
    row = _headline_block(ctx, ws, HEADER_ROW) + 1
    row = _department_matrix(ctx, ws, row) + 1
    row = _team_summary(ctx, ws, row) + 1
    # The county table starts a printed page of its own, with its header repeated.
    ws.row_breaks.append(Break(id=row - 1))
    ctx.book.put_text(ws, row, 1, ctx.t("title_county_table"), ctx.section)
    header = row + 1
    info = _table(
        ctx,
        ws,
        ctx.tables.overview,
        OVERVIEW_COLUMNS,
        table_base="Oversikt",
        header_row=header,
        set_widths=False,
    )
    ws.row_dimensions[header].height = 3 * LINE_HEIGHT
    _data_bars(ws, info, ["knowledge_current", "strategic_inputs", "added_30d", "feedback_open"])
    _cell_bands(ws, info, "oldest_overdue_days")
    # Narrow count columns under three-line headers: the county table fits A4 landscape at 8 pt
    # or more; B fits "Västra Götalands län", C the headline block's date.
    widths = {"A": 25, "B": 21, "C": 11, "G": 15}
    for letter in "ABCDEFGHIJKLM":
        ws.column_dimensions[letter].width = widths.get(letter, 11)
    finish_sheet(ws, header_row=header, freeze=False)
    _print_fit(ws, repeat_columns="A:B")


def _matrix_sheet(ctx: _Ctx) -> None:
    tables = ctx.tables
    ws = ctx.new_sheet("sheet_matrix")
    ctx.sheet_header(ws, ctx.t("title_matrix"))
    ctx.book.put_text(ws, 3, 1, ctx.t("matrix_legend"), ctx.styles.subtitle)
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
        rng = f"{first}{info.first_row}:{last}{info.last_row}"
        # Absolute levels, not a relative scale: 0 reads "missing" in every county and column.
        for operator, formula, fill, font in MATRIX_LEVELS:
            ws.conditional_formatting.add(
                rng,
                CellIsRule(
                    operator=operator,
                    formula=[str(v) for v in formula],
                    fill=PatternFill(start_color=fill, end_color=fill, fill_type="solid"),
                    font=Font(color=font),
                ),
            )
        for c in area_columns:
            ws.column_dimensions[info.letter(c.key)].width = MATRIX_COLUMN_WIDTH
    finish_sheet(ws)
    ws.freeze_panes = f"C{HEADER_ROW + 1}"
    _print_fit(ws, repeat_columns="A:B")


def _open_feedback_sheet(ctx: _Ctx) -> None:
    ws = ctx.new_sheet("sheet_feedback")
    ctx.sheet_header(ws, ctx.t("title_feedback"))
    ctx.book.put_text(ws, 3, 1, ctx.t("overdue_legend"), ctx.styles.subtitle)
    info = _table(
        ctx, ws, ctx.tables.open_feedback, OPEN_FEEDBACK_COLUMNS, table_base="Aterkoppling"
    )
    _overdue_bands(ws, info)
    finish_sheet(ws)
    _print_fit(ws, repeat_columns="A:B")


def _dialogue_plan_sheet(ctx: _Ctx) -> None:
    ws = ctx.new_sheet("sheet_dialogue_plan")
    ctx.sheet_header(ws, ctx.t("title_dialogue_plan"))
    plan = _with_state(ctx, ctx.tables.dialogue_plan)
    info = _table(ctx, ws, plan, DIALOGUE_PLAN_COLUMNS, table_base="Dialogplan")
    _missed_rule(ctx, ws, info)
    finish_sheet(ws)
    _print_fit(ws, repeat_columns="A:B")


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
    # In time blue, overdue red, closed green: the open bar is blue + red together.
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
    info = ctx.book.write_table(ws, quality, QUALITY_COLUMNS, table_base="Datakvalitet")
    # Sized to fit A4 landscape at 8 pt or more: the problem text is what staff read first.
    widths = {"list": 18, "item_id": 7, "title": 30, "county": 18, "column": 18}
    widths.update({"problem": 46, "value": 24, "link": 9})
    for key, width in widths.items():
        ws.column_dimensions[info.letter(key)].width = width
    _fit_rows(ctx.book, ws, info, quality, QUALITY_COLUMNS)
    finish_sheet(ws)
    _print_fit(ws, repeat_columns="A:B")


def _definitions(ctx: _Ctx) -> pd.DataFrame:
    """Every measure any workbook shows, with its definition and the dates it uses."""
    t = ctx.tables
    ref = t.reference_date
    day = ctx.day
    on_ref = ctx.t("ref_date_is", date=day(ref))
    rows = [
        ("knowledge_current", "def_current", on_ref),
        ("strategic_inputs", "def_strategic", on_ref),
        (
            "added_30d",
            "def_added",
            ctx.t(
                "window_30",
                start=day(ref - dt.timedelta(days=RECENT_DAYS)),
                end=day(ref),
            ),
        ),
        ("current_phase", "def_phase", ctx.t("window_none")),
        ("next_dialogue", "def_next", ctx.t("window_from", date=day(ref))),
        ("last_dialogue", "def_last", ctx.t("window_until", date=day(ref))),
        (
            "headline_next_30",
            "def_ahead",
            ctx.t(
                "window_ahead",
                start=day(ref),
                end=day(ref + dt.timedelta(days=UPCOMING_DAYS[1])),
            ),
        ),
        ("dialogues_missed", "def_missed", ctx.t("window_before", date=day(ref))),
        ("feedback_open", "def_open_all", ctx.t("window_none")),
        ("open_in_time", "def_in_time", on_ref),
        ("feedback_overdue", "def_overdue", on_ref),
        ("oldest_overdue_days", "def_days_overdue", on_ref),
        ("overdue_over_30", "def_bands", on_ref),
        ("overdue_over_90", "def_bands", on_ref),
        ("closed", "def_closed", ctx.t("window_none")),
        (
            "closed_30d",
            "def_closed_30d",
            ctx.t(
                "window_closed_30",
                start=day(ref - dt.timedelta(days=RECENT_DAYS)),
                end=day(ref),
            ),
        ),
        ("feedback_closed_share", "def_share_closed", ctx.t("window_none")),
        ("headline_quality", "def_quality", ctx.t("window_none")),
    ]
    return pd.DataFrame(
        {
            "measure": [ctx.t(k) for k, _, _ in rows],
            "definition": [ctx.t(d) for _, d, _ in rows],
            "dates_used": [u for _, _, u in rows],
        }
    )


def _about_sheet(ctx: _Ctx) -> None:
    tables = ctx.tables
    ws = ctx.new_sheet("sheet_about")
    ctx.sheet_header(ws, ctx.t("title_about"))
    facts: list[tuple[str, object, ColumnKind]] = [
        # A real date-time cell; its serial number is masked out of the content fingerprint
        # (sp_sync.report.fingerprint), so a new generation time alone is no new version.
        (ctx.t("generated_at"), tables.generated_local, "datetime"),
        (ctx.t("time_zone"), tables.time_zone, "text"),
        (ctx.t("reference_date"), tables.reference_date, "date"),
        (ctx.t("site"), tables.site_url, "text"),
        (ctx.t("tool_version"), f"sp-sync {__version__}", "text"),
    ]
    row = _figures_block(ctx, ws, HEADER_ROW, facts, value_col=2, left=True) + 1
    ctx.book.put_text(ws, row, 1, ctx.t("title_definitions"), ctx.section)
    defs = _definitions(ctx)
    ws.column_dimensions["A"].width = 30
    ws.column_dimensions["B"].width = 70
    ws.column_dimensions["C"].width = 40
    info = _table(
        ctx,
        ws,
        defs,
        DEFINITION_COLUMNS,
        table_base="Definitioner",
        header_row=row + 1,
        set_widths=False,
    )
    lists_header = info.last_row + 3
    lists = tables.about_lists
    ws.column_dimensions["D"].width = 20  # the last check, a date-time, next to the definitions
    ctx.book.put_text(ws, lists_header - 1, 1, ctx.t("about_freshness"), ctx.styles.subtitle)
    ctx.book.write_table(
        ws,
        lists,
        ABOUT_LISTS_COLUMNS,
        table_base="Listor",
        header_row=lists_header,
        set_widths=False,
    )
    drift_row = lists_header + max(len(lists), 1) + 3
    ctx.book.put_text(ws, drift_row, 1, ctx.t("drift_title"), ctx.section)
    if len(tables.drift):
        _table(
            ctx,
            ws,
            tables.drift,
            DRIFT_COLUMNS,
            table_base="Avvikelser",
            header_row=drift_row + 1,
            set_widths=False,
        )
    else:
        # Good news in a calm colour, not alarm red.
        ctx.book.put_text(ws, drift_row + 1, 1, ctx.t("drift_none"), ctx.calm)
    finish_sheet(ws, freeze=False)


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
    """Återkoppling – {Avdelning}.xlsx: a summary per county, then all feedback addressed to
    the department, by county."""
    lang = normalise_language(language)
    shown = choice_label(department, lang, tables.reference.translations)
    title = label("wb_department", lang, name=shown)
    ctx = _Ctx(tables, title, lang, max_rows)

    ws = ctx.new_sheet("sheet_summary")
    ctx.sheet_header(ws, ctx.t("title_department_summary", name=shown))
    ctx.book.put_text(ws, 3, 1, ctx.t("overdue_legend"), ctx.styles.subtitle)
    summary = tables.department_summary.get(department)
    if summary is None:
        summary = pd.DataFrame(columns=[*_keys(DEPARTMENT_SUMMARY_COLUMNS), "is_total"])
    summary = summary.copy()
    total = ctx.t("total")
    summary["county"] = [
        total if is_total else c
        for c, is_total in zip(summary["county"], summary["is_total"], strict=True)
    ]
    info = _table(ctx, ws, summary, DEPARTMENT_SUMMARY_COLUMNS, table_base="Sammanfattning")
    ws.row_dimensions[HEADER_ROW].height = 2 * LINE_HEIGHT
    for c in DEPARTMENT_SUMMARY_COLUMNS[2:]:
        ws.column_dimensions[info.letter(c.key)].width = 16
    _cell_bands(ws, info, "oldest_overdue_days")
    _total_row(ws, info, "county", total)
    finish_sheet(ws)
    _print_fit(ws, repeat_columns="A:B")

    ws = ctx.new_sheet("sheet_feedback")
    ctx.sheet_header(ws, ctx.t("title_department", name=shown))
    ctx.book.put_text(ws, 3, 1, ctx.t("overdue_legend"), ctx.styles.subtitle)
    df = tables.by_department.get(department, pd.DataFrame(columns=_keys(DEPARTMENT_COLUMNS)))
    info = _table(ctx, ws, df, DEPARTMENT_COLUMNS, table_base="Aterkoppling")
    _overdue_bands(ws, info)
    finish_sheet(ws)
    _print_fit(ws, repeat_columns="A:B")
    return ctx.workbook(title)


# ---------------------------------------------------------------------------------------------
# Länsbild – {Län}.xlsx


def _prep_sheet(ctx: _Ctx, county: str) -> None:
    """Inför dialogen: the county's figures for preparing its dialogue, then its most recently
    added current knowledge."""
    tables = ctx.tables
    ws = ctx.new_sheet("sheet_prep")
    ctx.sheet_header(ws, ctx.t("title_prep", name=county))
    prep = tables.county_prep.get(county)
    values = prep.iloc[0].to_dict() if prep is not None and len(prep) else {}
    figures: list[tuple[str, object, ColumnKind]] = [
        (ctx.t("reference_date"), tables.reference_date, "date"),
        *((ctx.t(lk), values.get(vk), kind) for lk, vk, kind in PREP_FIGURES),
    ]
    end = _figures_block(ctx, ws, HEADER_ROW, figures, value_col=2)
    oldest_row = HEADER_ROW + 1 + [f[0] for f in PREP_FIGURES].index("oldest_overdue_days")
    cell = f"B{oldest_row}"
    ws.conditional_formatting.add(
        cell,
        FormulaRule(formula=[f"{cell}>{OVERDUE_BANDS[1]}"], fill=_BAND_90_FILL, font=_BAND_90_FONT),
    )
    ws.conditional_formatting.add(
        cell, FormulaRule(formula=[f"{cell}>{OVERDUE_BANDS[0]}"], fill=_BAND_30_FILL)
    )
    row = end + 1
    ctx.book.put_text(ws, row, 1, ctx.t("title_recent_knowledge"), ctx.section)
    recent = tables.county_recent_knowledge.get(
        county, pd.DataFrame(columns=_keys(RECENT_KNOWLEDGE_COLUMNS))
    )
    info = _table(
        ctx,
        ws,
        recent,
        RECENT_KNOWLEDGE_COLUMNS,
        table_base="Senaste_kunskap",
        header_row=row + 1,
    )
    ws.column_dimensions["A"].width = 28
    _fit_rows(ctx.book, ws, info, recent, RECENT_KNOWLEDGE_COLUMNS)
    finish_sheet(ws, header_row=row + 1, freeze=False)
    _print_fit(ws)


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
    if "days_overdue" in _keys(columns):
        ctx.book.put_text(ws, 3, 1, ctx.t("overdue_legend"), ctx.styles.subtitle)
    info = _table(ctx, ws, df, columns, table_base=table_base)
    if "days_overdue" in info.columns:
        _overdue_bands(ws, info)
    if "dialogue_state" in info.columns:
        _missed_rule(ctx, ws, info)
    finish_sheet(ws)
    _print_fit(ws, repeat_columns="A:B")
    return info


def render_county(
    tables: RollupTables, county: str, *, language: str = "sv", max_rows: int = MAX_ROWS
) -> RollupWorkbook:
    """Länsbild – {Län}.xlsx: preparing the dialogue, then the county's current knowledge,
    dialogue plan and feedback."""
    lang = normalise_language(language)
    title = label("wb_county", lang, name=county)
    ctx = _Ctx(tables, title, lang, max_rows)

    def table(frames: dict[str, pd.DataFrame], columns: Sequence[Column]) -> pd.DataFrame:
        empty = pd.DataFrame(columns=_keys(columns))
        return frames.get(county, empty)

    kn = table(tables.county_knowledge, COUNTY_KNOWLEDGE_COLUMNS)
    dl = _with_state(ctx, table(tables.county_dialogues, COUNTY_DIALOGUE_COLUMNS))
    fb = table(tables.county_feedback, COUNTY_FEEDBACK_COLUMNS)
    _prep_sheet(ctx, county)
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
