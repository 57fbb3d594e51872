"""Validation rules derived from the list schemas → `DataQualityIssue` records.

Checks run over the *normalized* snapshot rows (column contract in docs/design.md): required
values, choice membership (multi-choice too), a valid county, lookups that resolve, text length,
number ranges (the column checks, `COLUMN_CHECKS`), and the rules declared in each list file
(`date_order`, `required_if`, `empty_if`, `same_county`, `year_matches_date`: the table `RULES`, keyed like
`sp_sync.schema.rules.RULE_KINDS`). Every check is vectorised with pandas so 100,000 rows
validate in about a second.

An invalid row is never dropped: the sync keeps every row and stores these records beside the
snapshot; the rollups show them on the Datakvalitet sheet so staff can fix the item.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from sp_sync.schema.model import ColumnSchema, ListSchema, Rule, SchemaSet

log = logging.getLogger(__name__)

__all__ = [
    "COLUMN_CHECKS",
    "RULES",
    "DataQualityIssue",
    "RuleContext",
    "cross_list_inputs",
    "issues_from_frame",
    "issues_to_frame",
    "rule_columns",
    "validate_rows",
]


@dataclass(frozen=True)
class DataQualityIssue:
    """One problem with one item: what is wrong (Swedish and English) and where to fix it.

    `column` is the schema's internal column name (empty for row-level problems); `value` is the
    offending value as text, or None when the value is missing.
    """

    list_title: str
    item_id: int
    item_url: str
    column: str
    problem_sv: str
    problem_en: str
    value: str | None = None

    def problem(self, language: str = "sv") -> str:
        return self.problem_en if language.lower().startswith("en") else self.problem_sv


_ISSUE_COLUMNS = [f.name for f in fields(DataQualityIssue)]


def issues_to_frame(issues: Iterable[DataQualityIssue]) -> pd.DataFrame:
    """The records as a DataFrame (one row per issue, columns as the dataclass fields)."""
    frame = pd.DataFrame([asdict(i) for i in issues], columns=_ISSUE_COLUMNS)
    frame["item_id"] = frame["item_id"].astype("int64")
    for col in _ISSUE_COLUMNS:
        if col != "item_id":
            frame[col] = frame[col].astype(object)
    return frame


def issues_from_frame(frame: pd.DataFrame) -> list[DataQualityIssue]:
    """Inverse of `issues_to_frame` (e.g. after reading the stored table back)."""
    out: list[DataQualityIssue] = []
    for rec in frame.to_dict("records"):
        value = rec.get("value")
        out.append(
            DataQualityIssue(
                list_title=str(rec["list_title"]),
                item_id=int(rec["item_id"]),
                item_url=str(rec.get("item_url") or ""),
                column=str(rec.get("column") or ""),
                problem_sv=str(rec["problem_sv"]),
                problem_en=str(rec["problem_en"]),
                value=None if _isna(value) else str(value),
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _isna(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        return bool(value is pd.NA or value is pd.NaT)
    except TypeError:
        return False


def _text(value: Any) -> str | None:
    """A value as display text for messages and the `value` field."""
    if _isna(value):
        return None
    if isinstance(value, list | tuple | np.ndarray):
        return ", ".join(t for t in (_text(v) for v in value) if t is not None)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_missing_scalar(s: pd.Series) -> np.ndarray:
    """True where a scalar column is empty (None/NaN/NaT/blank text)."""
    missing = s.isna().to_numpy(dtype=bool)
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        try:
            blank = s.str.strip().eq("").fillna(False).to_numpy(dtype=bool)
        except AttributeError:  # not a text column (dates kept as objects)
            blank = s.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
        missing = missing | blank
    return missing


def _is_missing_list(s: pd.Series) -> np.ndarray:
    def empty(v: Any) -> bool:
        if v is None:
            return True
        if isinstance(v, list | tuple | np.ndarray):
            return len(v) == 0
        return _isna(v)

    return s.map(empty).to_numpy(dtype=bool)


def _value_column(col: ColumnSchema) -> str:
    """The snapshot column that carries a schema column's primary value."""
    if col.type in ("person", "lookup", "multi_lookup"):
        return f"{col.name}Id"
    return col.name


def _join_by_row(index: pd.Index, bad: pd.Series) -> tuple[np.ndarray, list[str | None]]:
    """Positions of the rows that own the exploded values in `bad`, and those values joined."""
    joined: dict[Any, list[str]] = {}
    for key, value in zip(bad.index, bad.to_numpy(), strict=True):
        joined.setdefault(key, []).append(_text(value) or "")
    pos = np.flatnonzero(index.isin(list(joined)))
    return pos, [", ".join(joined[k]) for k in index[pos]]


def _missing(col: ColumnSchema, rows: pd.DataFrame) -> np.ndarray | None:
    name = _value_column(col)
    if name not in rows.columns:
        return None
    s = rows[name]
    if col.type in ("multi_choice", "multi_lookup"):
        return _is_missing_list(s)
    if col.type == "note" and f"{col.name}_text" in rows.columns:
        # Rich text can be "<div></div>" with nothing in it; the plain text decides.
        return _is_missing_scalar(rows[f"{col.name}_text"])
    return _is_missing_scalar(s)


@dataclass(frozen=True)
class _Hit:
    """Rows a check flagged: positions, column, messages per row and the offending values."""

    positions: np.ndarray
    column: str
    problem_sv: Sequence[str]
    problem_en: Sequence[str]
    values: Sequence[str | None]


@dataclass(frozen=True)
class RuleContext:
    """Everything a rule implementation gets: the list, its rows and the other lists' rows."""

    schema: ListSchema
    rows: pd.DataFrame
    schemas: SchemaSet
    lookup_rows: Mapping[str, pd.DataFrame]
    rule: Rule

    def label(self, name: str, language: str = "sv") -> str:
        if self.schema.has_column(name):
            return self.schema.column(name).label(language)
        return name

    def hit(
        self,
        mask: np.ndarray | pd.Series,
        column: str,
        *,
        default_sv: str,
        default_en: str,
        values: pd.Series | None = None,
        fmt: Mapping[str, pd.Series] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> _Hit:
        """Flag the rows where `mask` is true; messages from the rule (or the defaults) are
        formatted with `{value}`, `{column}`, the series in `fmt` (row by row) and, for each
        key in `labels`, the named column's label in the message's language."""
        m = np.asarray(mask, dtype=bool)
        pos = np.flatnonzero(m)
        tmpl_sv = self.rule.message or default_sv
        tmpl_en = self.rule.message_en or default_en
        vals = (
            [_text(v) for v in values.to_numpy()[pos]] if values is not None else [None] * len(pos)
        )
        extra = {k: [_text(v) for v in s.to_numpy()[pos]] for k, s in (fmt or {}).items()}
        sv: list[str] = []
        en: list[str] = []
        label_sv, label_en = self.label(column, "sv"), self.label(column, "en")
        names_sv = {k: self.label(v, "sv") for k, v in (labels or {}).items()}
        names_en = {k: self.label(v, "en") for k, v in (labels or {}).items()}
        keys = list(extra)
        cache: dict[tuple[str, ...], tuple[str, str]] = {}
        for i in range(len(pos)):
            key = (vals[i] or "", *((extra[k][i] or "") for k in keys))
            done = cache.get(key)
            if done is None:
                args = dict(zip(["value", *keys], key, strict=True))
                done = (
                    _safe_format(tmpl_sv, {**names_sv, **args, "column": label_sv}),
                    _safe_format(tmpl_en, {**names_en, **args, "column": label_en}),
                )
                cache[key] = done
            sv.append(done[0])
            en.append(done[1])
        return _Hit(pos, column, sv, en, vals)


class _Default(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _safe_format(template: str, args: Mapping[str, str]) -> str:
    # A typo in a message template must not crash a nightly run.
    try:
        return template.format_map(_Default(args))
    except (ValueError, IndexError, AttributeError):
        return template


RuleFunc = Callable[[RuleContext], Iterable[_Hit]]


def _col(rows: pd.DataFrame, name: str) -> pd.Series:
    if name in rows.columns:
        return rows[name]
    return pd.Series([None] * len(rows), index=rows.index, dtype=object)


def _as_date_series(s: pd.Series) -> pd.Series:
    """Dates (datetime.date or Timestamp) as comparable datetime64 values (NaT when empty)."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC").dt.tz_localize(None)
    return pd.to_datetime(s, errors="coerce")


def _rule_date_order(ctx: RuleContext) -> Iterable[_Hit]:
    """`later` must not be before `earlier` (both present)."""
    earlier_name = str(ctx.rule.params["earlier"])
    later_name = str(ctx.rule.params["later"])
    earlier = _col(ctx.rows, earlier_name)
    later = _col(ctx.rows, later_name)
    e = _as_date_series(earlier)
    lt = _as_date_series(later)
    mask = (e.notna() & lt.notna() & (lt < e)).to_numpy(dtype=bool)
    yield ctx.hit(
        mask,
        later_name,
        default_sv="{column} ({later}) ligger före {earlier_label} ({earlier}).",
        default_en="{column} ({later}) is before {earlier_label} ({earlier}).",
        values=later,
        fmt={"earlier": earlier, "later": later},
        labels={"earlier_label": earlier_name},
    )


def _when_active(ctx: RuleContext) -> tuple[pd.Series, np.ndarray]:
    """The `when` condition of required_if / empty_if: its column's values and where it holds."""
    when = ctx.rule.params.get("when") or {}
    cond_name = str(when.get("column", ""))
    values = when.get("in")
    if values is None and "equals" in when:
        values = [when["equals"]]
    cond = _col(ctx.rows, cond_name)
    if values is None:
        return cond, ~_is_missing_scalar(cond)
    return cond, cond.isin(list(values)).to_numpy(dtype=bool)


def _target_missing(ctx: RuleContext, target: str) -> np.ndarray:
    col = ctx.schema.column(target) if ctx.schema.has_column(target) else None
    missing = _missing(col, ctx.rows) if col is not None else None
    if missing is None:
        missing = _is_missing_scalar(_col(ctx.rows, target))
    return missing


def _with_values(hit: _Hit, values: pd.Series) -> _Hit:
    """`hit` whose recorded values are `values` at its rows (the messages stay as they are)."""
    shown = [_text(v) for v in values.to_numpy()[hit.positions]]
    return _Hit(hit.positions, hit.column, hit.problem_sv, hit.problem_en, shown)


def _rule_required_if(ctx: RuleContext) -> Iterable[_Hit]:
    """`column` must have a value when `when.column` is one of `when.in` (or `when.equals`)."""
    target = str(ctx.rule.params["column"])
    cond_name = str((ctx.rule.params.get("when") or {}).get("column", ""))
    cond, active = _when_active(ctx)
    hit = ctx.hit(
        active & _target_missing(ctx, target),
        target,
        default_sv="{column} saknas fast {cond_label} är {value}.",
        default_en="{column} is missing although {cond_label} is {value}.",
        values=cond,
        labels={"cond_label": cond_name},
    )
    # The message names the condition's value; the record's value is the column's own (empty),
    # so Datakvalitet never shows a phase where a date was expected.
    yield _with_values(hit, _col(ctx.rows, target))


def _rule_empty_if(ctx: RuleContext) -> Iterable[_Hit]:
    """`column` must be empty when `when.column` is one of `when.in` (or `when.equals`): a value
    there contradicts the condition (e.g. a held date while the phase is before the dialogue)."""
    target = str(ctx.rule.params["column"])
    cond_name = str((ctx.rule.params.get("when") or {}).get("column", ""))
    cond, active = _when_active(ctx)
    hit = ctx.hit(
        active & ~_target_missing(ctx, target),
        target,
        default_sv="{column} har ett värde fast {cond_label} är {value}.",
        default_en="{column} has a value although {cond_label} is {value}.",
        values=cond,
        labels={"cond_label": cond_name},
    )
    yield _with_values(hit, _col(ctx.rows, target))


def _rule_same_county(ctx: RuleContext) -> Iterable[_Hit]:
    """A lookup's target item must belong to the same county as the row."""
    name = str(ctx.rule.params["column"])
    if not ctx.schema.has_column(name):
        return
    col = ctx.schema.column(name)
    own = ctx.schema.county_column
    target_schema = ctx.schemas.get(col.lookup_list or "")
    if own is None or target_schema is None or target_schema.county_column is None:
        return
    target_rows = ctx.lookup_rows.get(target_schema.title)
    if target_rows is None or "ID" not in target_rows.columns:
        return
    tcounty = target_schema.county_column.name
    if tcounty not in target_rows.columns:
        return
    county_by_id = pd.Series(
        target_rows[tcounty].to_numpy(), index=target_rows["ID"].astype("int64").to_numpy()
    )
    county_by_id = county_by_id[~county_by_id.index.duplicated()]
    ids = _col(ctx.rows, f"{name}Id")
    if col.type == "multi_lookup":
        exploded = ids.explode()
        exploded = exploded[exploded.notna()]
        their = exploded.map(lambda i: county_by_id.get(int(i)))
        mine = ctx.rows[own.name].reindex(exploded.index) if own.name in ctx.rows else None
        if mine is None:
            return
        bad = their.notna() & mine.notna() & (their != mine)
        bad_idx = set(exploded.index[bad.to_numpy(dtype=bool)])
        mask = ctx.rows.index.isin(list(bad_idx))
        first_bad = their[bad].groupby(level=0).first()
        values = first_bad.reindex(ctx.rows.index)
    else:
        numeric = pd.to_numeric(ids, errors="coerce")
        their = numeric.map(county_by_id)
        mine = _col(ctx.rows, own.name)
        mask = (their.notna() & mine.notna() & (their != mine)).to_numpy(dtype=bool)
        values = their
    yield ctx.hit(
        mask,
        name,
        default_sv="{column} pekar på en post i ett annat län ({value}).",
        default_en="{column} points to an item in another county ({value}).",
        values=values,
    )


def _rule_year_matches_date(ctx: RuleContext) -> Iterable[_Hit]:
    """A number column holding a year must match the year of a date column (both present)."""
    year_name = str(ctx.rule.params["year"])
    date_name = str(ctx.rule.params["date"])
    year = pd.to_numeric(_col(ctx.rows, year_name), errors="coerce")
    date = _as_date_series(_col(ctx.rows, date_name))
    mask = (year.notna() & date.notna() & (year != date.dt.year)).to_numpy(dtype=bool)
    yield ctx.hit(
        mask,
        year_name,
        default_sv="{column} ({value}) stämmer inte med {date_label} ({date}).",
        default_en="{column} ({value}) does not match {date_label} ({date}).",
        values=_col(ctx.rows, year_name),
        fmt={"date": _col(ctx.rows, date_name)},
        labels={"date_label": date_name},
    )


#: The check behind each rule kind of `sp_sync.schema.rules.RULE_KINDS` (same keys; a test keeps
#: the two tables in step). A new cross-field rule is one row there and one function here.
RULES: Mapping[str, RuleFunc] = {
    "date_order": _rule_date_order,
    "required_if": _rule_required_if,
    "empty_if": _rule_empty_if,
    "same_county": _rule_same_county,
    "year_matches_date": _rule_year_matches_date,
}


# --------------------------------------------------------------------------------------------
# Column checks
# --------------------------------------------------------------------------------------------


def _const_hit(
    positions: np.ndarray,
    column: str,
    sv: Callable[[str | None], str],
    en: Callable[[str | None], str],
    values: Sequence[str | None],
) -> _Hit:
    return _Hit(positions, column, [sv(v) for v in values], [en(v) for v in values], values)


@dataclass(frozen=True)
class _Column:
    """What a column check gets: the list, the column, its snapshot values and the other lists."""

    schema: ListSchema
    col: ColumnSchema
    rows: pd.DataFrame
    values: pd.Series
    schemas: SchemaSet
    lookup_rows: Mapping[str, pd.DataFrame]

    @property
    def sv(self) -> str:
        return self.col.label("sv")

    @property
    def en(self) -> str:
        return self.col.label("en")


def _check_required(c: _Column) -> Iterable[_Hit]:
    missing = _missing(c.col, c.rows)
    if missing is not None and missing.any():
        pos = np.flatnonzero(missing)
        sv_label, en_label = c.sv, c.en
        yield _const_hit(
            pos,
            c.col.name,
            lambda _v: f"Obligatoriskt fält saknas: {sv_label}.",
            lambda _v: f"Required field is empty: {en_label}.",
            [None] * len(pos),
        )


def _check_choice(c: _Column) -> Iterable[_Hit]:
    s = c.values
    bad = (s.notna() & ~s.isin(c.col.choices) & s.map(lambda v: v != "")).to_numpy(dtype=bool)
    if not bad.any():
        return
    pos = np.flatnonzero(bad)
    vals = [_text(v) for v in s.to_numpy()[pos]]
    sv_label, en_label = c.sv, c.en
    if c.col.is_county:
        yield _const_hit(
            pos,
            c.col.name,
            lambda v: f"Okänt län i {sv_label}: '{v}'.",
            lambda v: f"Unknown county in {en_label}: '{v}'.",
            vals,
        )
    else:
        yield _const_hit(
            pos,
            c.col.name,
            lambda v: f"Värdet '{v}' finns inte bland valen för {sv_label}.",
            lambda v: f"'{v}' is not one of the choices for {en_label}.",
            vals,
        )


def _check_multi_choice(c: _Column) -> Iterable[_Hit]:
    exploded = c.values.explode()
    exploded = exploded[exploded.notna()]
    bad = exploded[~exploded.isin(c.col.choices)]
    if len(bad):
        pos, vals = _join_by_row(c.rows.index, bad)
        sv_label, en_label = c.sv, c.en
        yield _const_hit(
            pos,
            c.col.name,
            lambda v: f"Värdet '{v}' finns inte bland valen för {sv_label}.",
            lambda v: f"'{v}' is not one of the choices for {en_label}.",
            vals,
        )


def _check_max_length(c: _Column) -> Iterable[_Hit]:
    col, rows = c.col, c.rows
    source = (
        rows[f"{col.name}_text"]
        if col.type == "note" and (f"{col.name}_text" in rows.columns)
        else c.values
    )
    lengths = source.map(lambda v: len(v) if isinstance(v, str) else 0)
    bad = (lengths > col.max_length).to_numpy(dtype=bool)
    if bad.any():
        pos = np.flatnonzero(bad)
        lens = lengths.to_numpy()[pos]
        limit = col.max_length
        yield _Hit(
            pos,
            col.name,
            [f"{c.sv} är för lång ({n} tecken, högst {limit})." for n in lens],
            [f"{c.en} is too long ({n} characters, at most {limit})." for n in lens],
            [f"{n} tecken" for n in lens],
        )


def _check_range(c: _Column) -> Iterable[_Hit]:
    num = pd.to_numeric(c.values, errors="coerce")
    for bound, op, word_sv, word_en in (
        (c.col.min, np.less, "mindre än", "less than"),
        (c.col.max, np.greater, "större än", "greater than"),
    ):
        if bound is None:
            continue
        bad = (num.notna() & op(num, bound)).to_numpy(dtype=bool)
        if bad.any():
            pos = np.flatnonzero(bad)
            vals = [_text(v) for v in num.to_numpy()[pos]]
            b = _text(float(bound))
            yield _Hit(
                pos,
                c.col.name,
                [f"{c.sv} ({v}) är {word_sv} {b}." for v in vals],
                [f"{c.en} ({v}) is {word_en} {b}." for v in vals],
                vals,
            )


def _check_lookup(c: _Column) -> Iterable[_Hit]:
    col, s = c.col, c.values
    target = c.lookup_rows.get(col.lookup_list or "")
    if target is None or "ID" not in target.columns:
        return
    target_ids = pd.Index(pd.to_numeric(target["ID"], errors="coerce").dropna().astype("int64"))
    tschema = c.schemas.get(col.lookup_list or "")
    tlabel_sv = tschema.label("sv") if tschema else col.lookup_list
    tlabel_en = tschema.label("en") if tschema else col.lookup_list
    if col.type == "multi_lookup":
        exploded = s.explode()
        exploded = pd.to_numeric(exploded[exploded.notna()], errors="coerce")
        bad = exploded[~exploded.isin(target_ids)]
        if not len(bad):
            return
        pos, vals = _join_by_row(c.rows.index, bad)
    else:
        ids = pd.to_numeric(s, errors="coerce")
        badm = (ids.notna() & ~ids.isin(target_ids)).to_numpy(dtype=bool)
        if not badm.any():
            return
        pos = np.flatnonzero(badm)
        vals = [_text(v) for v in ids.to_numpy()[pos]]
    sv_label, en_label = c.sv, c.en
    yield _const_hit(
        pos,
        col.name,
        lambda v: f"{sv_label} pekar på en post som inte finns i {tlabel_sv} (ID {v}).",
        lambda v: f"{en_label} points to an item that does not exist in {tlabel_en} (ID {v}).",
        vals,
    )


@dataclass(frozen=True)
class ColumnCheck:
    """A check every column of a list gets when `applies` says its schema asks for it."""

    name: str
    applies: Callable[[ColumnSchema], bool]
    check: Callable[[_Column], Iterable[_Hit]]


#: The checks each column's schema implies, in the order their records are listed for a row.
#: Apart from `required`, at most one applies to a column (they are split by column type).
COLUMN_CHECKS: tuple[ColumnCheck, ...] = (
    ColumnCheck("required", lambda col: col.required, _check_required),
    # A county column is a choice column over the counties set: "Okänt län" is this check.
    ColumnCheck("choices", lambda col: col.type == "choice" and bool(col.choices), _check_choice),
    ColumnCheck(
        "multi_choices",
        lambda col: col.type == "multi_choice" and bool(col.choices),
        _check_multi_choice,
    ),
    ColumnCheck(
        "max_length",
        lambda col: col.type in ("text", "note") and bool(col.max_length),
        _check_max_length,
    ),
    ColumnCheck(
        "min_max",
        lambda col: col.type == "number" and (col.min is not None or col.max is not None),
        _check_range,
    ),
    ColumnCheck("lookups", lambda col: col.is_lookup and bool(col.lookup_list), _check_lookup),
)


def _column_hits(
    schema: ListSchema,
    col: ColumnSchema,
    rows: pd.DataFrame,
    schemas: SchemaSet,
    lookup_rows: Mapping[str, pd.DataFrame],
) -> Iterable[_Hit]:
    vname = _value_column(col)
    if vname not in rows.columns:
        return
    column = _Column(schema, col, rows, rows[vname], schemas, lookup_rows)
    for check in COLUMN_CHECKS:
        if check.applies(col):
            yield from check.check(column)


def validate_rows(
    schema: ListSchema,
    rows: pd.DataFrame,
    schemas: SchemaSet,
    *,
    lookup_rows: Mapping[str, pd.DataFrame] | None = None,
) -> list[DataQualityIssue]:
    """Check normalized snapshot `rows` of one list against its schema and rules.

    `lookup_rows` maps list titles to their snapshots so lookups can be resolved and
    `same_county` compared; lookups to lists not given are not checked. Returns the issues
    ordered by item id, then by column order in the schema; the rows themselves are untouched.
    """
    lookup_rows = dict(lookup_rows or {})
    lookup_rows.setdefault(schema.title, rows)
    if rows.empty:
        return []
    rows = rows.reset_index(drop=True) if not rows.index.is_unique else rows
    hits: list[_Hit] = []
    for col in schema.columns:
        hits.extend(_column_hits(schema, col, rows, schemas, lookup_rows))
    for rule in schema.rules:
        fn = RULES.get(rule.kind)
        if fn is None:  # pragma: no cover - load_schemas rejects unknown kinds
            log.warning("no implementation for rule kind %s", rule.kind)
            continue
        ctx = RuleContext(schema, rows, schemas, lookup_rows, rule)
        hits.extend(fn(ctx))

    ids = (
        pd.to_numeric(rows["ID"], errors="coerce").fillna(-1).astype("int64").to_numpy()
        if "ID" in rows.columns
        else np.arange(len(rows))
    )
    urls = rows["_item_url"].to_numpy() if "_item_url" in rows.columns else None
    order = {c.name: i for i, c in enumerate(schema.columns)}
    issues: list[tuple[int, int, int, DataQualityIssue]] = []
    title = schema.title
    for seq, hit in enumerate(hits):
        corder = order.get(hit.column, len(order))
        hit_ids = ids[hit.positions].tolist()
        hit_urls = (
            ["" if _isna(u) else str(u) for u in urls[hit.positions]]
            if urls is not None
            else [""] * len(hit_ids)
        )
        for item_id, item_url, sv, en, value in zip(
            hit_ids, hit_urls, hit.problem_sv, hit.problem_en, hit.values, strict=True
        ):
            issue = DataQualityIssue(title, item_id, item_url, hit.column, sv, en, value)
            issues.append((item_id, corder, seq, issue))
    issues.sort(key=lambda t: (t[0], t[1], t[2]))
    if issues:
        log.info("%s: %d data-quality issue(s) in %d rows", schema.title, len(issues), len(rows))
    return [t[3] for t in issues]


# --------------------------------------------------------------------------------------------
# What a validation depends on beyond each row itself (issue 14 goal 4: validate what changed)
# --------------------------------------------------------------------------------------------
#
# Which checks look only at their own row, decided per check:
#
# * required, choices, multi_choices, max_length, min_max: the row's own cells. Row-local.
# * date_order, required_if, empty_if, year_matches_date: the row's own cells, read by column
#   name. Row-local, but a rule naming a lookup column reads its *title* (e.g. the value an
#   `empty_if` record shows), which changes when the target item is renamed without any change
#   to this list: `rule_columns` lists those names so the caller can tell.
# * lookups: the row's ids against the ID set of the target list (this list itself for a
#   self-lookup). Not row-local: depends on `cross_list_inputs`.
# * same_county: the row's ids and county against the target's county per ID. Not row-local:
#   depends on `cross_list_inputs` (the target's ID and county columns).
#
# So a stored validation result stays exact for every untouched row while (1) the schema set's
# version is the same (rules, labels, choices, messages), (2) `cross_list_inputs` gives the same
# digest and (3) no column named in a rule had its lookup titles re-resolved. Otherwise the
# caller validates every row.


def rule_columns(schema: ListSchema) -> set[str]:
    """Every text value in the list's rule parameters: a superset of the columns the rules read
    by name (rule kinds name their columns under different keys; unknown keys are included)."""
    names: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            names.add(value)
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    for rule in schema.rules:
        walk(dict(rule.params))
    return names


def _validation_code() -> str:
    """The package version plus the source of the modules that decide a validation's records
    (checks, rules, message texts): records carried across an upgrade that changes a check or
    its wording would otherwise stay as the old code wrote them until their row is edited."""
    import hashlib
    from pathlib import Path

    from sp_sync import __version__

    h = hashlib.sha256(__version__.encode())
    package = Path(__file__).resolve().parents[1]
    for path in (
        package / "sync" / "quality.py",
        package / "schema" / "rules.py",
        package / "i18n.py",
    ):
        if path.exists():
            h.update(path.name.encode() + b"\x00" + path.read_bytes())
    return h.hexdigest()


VALIDATION_CODE = _validation_code()


#: Checkpoint key: what a list's commit records of its own rows for the lists that look it
#: up (`sync.titles` sums, by `county_key`/`title_key`), so they need no pass over its rows.
#: The record names the generation it was committed as (`PUBLISHED_GENERATION`): read it
#: through `published_of`.
PUBLISHED_KEY = "published"
PUBLISHED_GENERATION = "generation"


def published_of(state: Any) -> Mapping[str, Any]:
    """`state`'s record of its own rows (`PUBLISHED_KEY`), or {} when the record was not
    committed with these rows: a release before the record carries every checkpoint key it
    does not know into its own commits, so after a night of such a release (a rollback) the
    record it carried describes the rows before that night. Only the generation it names
    tells them apart."""
    record = state.checkpoint.extra.get(PUBLISHED_KEY)
    if not isinstance(record, Mapping):
        return {}
    if record.get(PUBLISHED_GENERATION) != state.checkpoint.generation:
        return {}
    return record


def county_key(column: str | None) -> str:
    return f"county:{column or ''}"


def title_key(column: str) -> str:
    return f"title:{column}"


def cross_list_inputs(
    schema: ListSchema,
    rows: pd.DataFrame,
    schemas: SchemaSet,
    lookup_rows: Mapping[str, pd.DataFrame],
    published: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """A digest of everything the lookup and same_county checks read from other rows: per
    lookup target (this list's own `rows` for a self-lookup), its ids and its county column
    (`sync.titles.county_sums`: equal sums, equal `{id: county}`), with the schema set's
    version and the validation code (`VALIDATION_CODE`). Equal digests mean the checks give
    every unchanged row the same result. `published`: per target, what its own commit recorded
    of those sums (`PUBLISHED_KEY`), used instead of a pass over its rows."""
    import hashlib

    from sp_sync.sync.titles import TitleSums, county_sums

    digest = hashlib.sha256(f"{schemas.version}\x00{VALIDATION_CODE}".encode())
    targets = sorted({c.lookup_list for c in schema.columns if c.is_lookup and c.lookup_list})
    for title in targets:
        digest.update(b"\x00target\x00" + title.encode())
        target = rows if title == schema.title else lookup_rows.get(title)
        if target is None or "ID" not in target.columns:
            digest.update(b"\x00absent")
            continue
        tschema = schemas.get(title)
        county = tschema.county_column if tschema is not None else None
        name = county.name if county is not None and county.name in target.columns else None
        sums = None
        if title != schema.title and published is not None:
            sums = TitleSums.parse((published.get(title) or {}).get(county_key(name)))
            if sums is not None and (
                sums.column != f"county/{name or ''}" or sums.rows != len(target)
            ):
                sums = None
        if sums is None:
            sums = county_sums(target, name)
        digest.update(b"\x00" + sums.digest().encode())
    return digest.hexdigest()[:32]
