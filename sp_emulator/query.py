"""OData v3 query options as SharePoint Online's REST endpoint accepts them.

Pure functions and values, no I/O: the item handlers parse `$filter`, `$orderby`, `$select`,
`$expand` and `$skiptoken` here and evaluate filters against rows of their own model.

`$filter` grammar (OData v3, the subset SharePoint REST understands)::

    expr     := or
    or       := and ("or" and)*
    and      := unary ("and" unary)*
    unary    := "not" unary | compare
    compare  := primary [("eq"|"ne"|"gt"|"ge"|"lt"|"le") primary]
    primary  := "(" expr ")" | literal | field | function "(" args ")"

Operators and keywords are lower-case, as OData v3 requires (`Title EQ 'x'` is a syntax error).
`not` is applied to the comparison that follows it (`not Title eq 'x'` means
`not (Title eq 'x')`), which is how people write it and what SharePoint accepts; `and` binds
tighter than `or`. Error messages follow Microsoft.Data.OData's wording, which is what
SharePoint puts in its InvalidClientQueryException bodies.
"""

from __future__ import annotations

import math
import operator
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

__all__ = [
    "MAX_DEPTH",
    "FilterExpr",
    "QueryError",
    "escape_literal",
    "parse_expand",
    "parse_filter",
    "parse_orderby",
    "parse_select",
    "parse_skiptoken",
]

#: Deepest nesting of parentheses / `not` accepted; deeper input is rejected, never crashes.
MAX_DEPTH = 100
#: Longest `$filter` accepted (SharePoint's URL limit is far below this anyway).
MAX_FILTER_LENGTH = 64 * 1024


class QueryError(ValueError):
    """A query option SharePoint would reject with 400 InvalidClientQueryException.

    The message is the text SharePoint would put in `error.message.value`.
    """


# ---------------------------------------------------------------------------------------------
# Values

_Row = Mapping[str, Any]
_Eval = Callable[[_Row], Any]
_MISSING = object()


@dataclass(frozen=True)
class _Literal:
    value: Any
    edm: str  # Edm.String, Edm.Int32, Edm.Double, Edm.DateTime, Edm.Boolean, Edm.Guid, null


@dataclass(frozen=True)
class _Field:
    path: str  # "Title", "Lookup/Id"

    @property
    def top(self) -> str:
        return self.path.split("/", 1)[0]


@dataclass(frozen=True)
class _Compare:
    op: str
    left: _Node
    right: _Node


@dataclass(frozen=True)
class _And:
    children: tuple[_Node, ...]


@dataclass(frozen=True)
class _Or:
    children: tuple[_Node, ...]


@dataclass(frozen=True)
class _Not:
    child: _Node


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[_Node, ...]


_Node = _Literal | _Field | _Compare | _And | _Or | _Not | _Call

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
# ODataLib's operator kind names, used in its type-mismatch message.
_OP_KIND = {
    "eq": "Equal",
    "ne": "NotEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanOrEqual",
    "lt": "LessThan",
    "le": "LessThanOrEqual",
}
_FLIPPED = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}
_FUNCTIONS = {"substringof": 2, "startswith": 2}
DATE_FUNCTIONS = frozenset({"year", "month", "day", "hour", "minute", "second"})
_ID_FIELDS = frozenset({"ID", "Id"})


@dataclass(frozen=True)
class FilterExpr:
    """A parsed `$filter`, compiled once into a closure.

    `evaluate(row)` is safe to call for many rows; it raises QueryError only when a literal
    cannot be compared with the column's type (SharePoint rejects such a query with 400).
    """

    text: str
    root: _Node = field(repr=False)
    _fn: _Eval = field(repr=False, compare=False)

    def evaluate(self, row: _Row) -> bool:
        """True when `row` satisfies the filter.

        `row` maps field names, and `Lookup/Id`-style paths, to Python values: aware datetimes,
        int/float, str, bool, None, or lists for multi-value columns. A path missing from the
        row is looked up through nested mappings (`row["Lookup"]["Id"]`), else taken as None.
        """
        return self._fn(row) is True

    def columns(self) -> set[str]:
        """Top-level field names the filter references (`Lookup/Id` counts as `Lookup`)."""
        out: set[str] = set()
        _collect_columns(self.root, out)
        return out

    def id_lower_bound(self) -> int | None:
        """A lower bound on the ID of every row that can match, or None when unknown.

        Derived from `ID gt N` (N+1), `ID ge N` (N), `ID eq N` (N) and mirrored forms; `and`
        takes the largest bound of its operands, `or` the smallest if every operand has one.
        Any row whose ID is below the bound cannot match, so the caller may skip those rows —
        it must still call `evaluate` on the rest.
        """
        return _lower_bound(self.root)

    def id_upper_bound(self) -> int | None:
        """An upper bound on the ID of every row that can match, or None when unknown.

        The mirror of `id_lower_bound`: from `ID lt N` (N-1), `ID le N` (N), `ID eq N` (N) and
        mirrored forms; `and` takes the smallest bound of its operands, `or` the largest if
        every operand has one.
        """
        return _upper_bound(self.root)

    def id_set(self) -> set[int] | None:
        """A set holding the ID of every row that can match, or None when unknown.

        Derived from `ID eq N`; `or` unions its operands (only if every operand yields a set),
        `and` intersects the operands that yield one. Rows whose ID is outside the set cannot
        match; the caller must still call `evaluate` on the rows inside it.
        """
        return _id_set(self.root)


def escape_literal(value: str) -> str:
    """Quote `value` as an OData string literal: `O'Brien` → `'O''Brien'`."""
    return "'" + value.replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------------
# Tokenizer

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<typed>(?:datetimeoffset|datetime|guid|time|binary|X)')
  | (?P<string>')
  | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?[mMdDfFlL]?(?![\w.]))
  | (?P<ident>[^\W\d][\w]*(?:/[^\W\d][\w]*)*)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # string, typed, number, ident, punct, end
    value: Any
    pos: int
    text: str = ""  # the typed-literal prefix for `typed`


def _syntax_error(text: str, pos: int) -> QueryError:
    return QueryError(f"Syntax error at position {pos} in '{text}'.")


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read a quoted literal whose opening quote is at `start`; return (value, end)."""
    parts: list[str] = []
    i = start + 1
    n = len(text)
    while True:
        j = text.find("'", i)
        if j < 0:
            raise QueryError(
                f"There is an unterminated string literal at position {start} in '{text}'."
            )
        parts.append(text[i:j])
        if j + 1 < n and text[j + 1] == "'":
            parts.append("'")
            i = j + 2
            continue
        return "".join(parts), j + 1


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    n = len(text)
    while pos < n:
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise _syntax_error(text, pos)
        kind = m.lastgroup or ""
        if kind == "ws":
            pos = m.end()
        elif kind == "string":
            value, pos = _read_quoted(text, pos)
            toks.append(_Tok("string", value, m.start()))
        elif kind == "typed":
            prefix = m.group()[:-1]
            value, pos = _read_quoted(text, m.end() - 1)
            toks.append(_Tok("typed", value, m.start(), prefix))
        else:
            toks.append(_Tok(kind, m.group(), m.start()))
            pos = m.end()
    toks.append(_Tok("end", None, n))
    return toks


# ---------------------------------------------------------------------------------------------
# Literals

_DT_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)


def _parse_datetime(raw: str) -> datetime | None:
    """ISO 8601 as OData v3 writes it; no offset means UTC (SharePoint stores UTC)."""
    m = _DT_RE.match(raw.strip())
    if m is None:
        return None
    year, month, day, hh, mm, ss, frac, tz = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    tzinfo: timezone = UTC
    if tz and tz.upper() != "Z":
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        tzinfo = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        value = datetime(
            int(year),
            int(month),
            int(day),
            int(hh or 0),
            int(mm or 0),
            int(ss or 0),
            micro,
            tzinfo=tzinfo,
        )
    except ValueError:
        return None
    return value.astimezone(UTC)


def _number_literal(tok: _Tok, text: str) -> _Literal:
    raw: str = tok.value
    suffix = raw[-1].lower() if raw[-1].isalpha() else ""
    body = raw[:-1] if suffix else raw
    try:
        if suffix == "l" or (not suffix and re.fullmatch(r"-?\d+", body)):
            return _Literal(int(body), "Edm.Int64" if suffix == "l" else "Edm.Int32")
        value = float(body)
    except ValueError:
        raise _syntax_error(text, tok.pos) from None
    if not math.isfinite(value):
        raise _syntax_error(text, tok.pos)
    edm = {"m": "Edm.Decimal", "f": "Edm.Single"}.get(suffix, "Edm.Double")
    return _Literal(value, edm)


def _typed_literal(tok: _Tok, text: str) -> _Literal:
    prefix = tok.text.lower()
    raw: str = tok.value
    if prefix in ("datetime", "datetimeoffset"):
        value = _parse_datetime(raw)
        if value is None:
            raise QueryError(
                f"Unrecognized 'Edm.DateTime' literal '{prefix}'{raw}'' at '{tok.pos}' in '{text}'."
            )
        return _Literal(value, "Edm.DateTime")
    if prefix == "guid":
        try:
            return _Literal(str(uuid.UUID(raw)), "Edm.Guid")
        except ValueError:
            raise QueryError(
                f"Unrecognized 'Edm.Guid' literal 'guid'{raw}'' at '{tok.pos}' in '{text}'."
            ) from None
    # time'…', binary'…', X'…' are valid OData but SharePoint has no column to compare them with.
    raise QueryError(
        f"The query specified in the URI is not valid. '{tok.text}' literals are not supported."
    )


# ---------------------------------------------------------------------------------------------
# Parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def is_keyword(self, tok: _Tok, word: str) -> bool:
        return tok.kind == "ident" and tok.value == word

    def expect_punct(self, ch: str) -> None:
        tok = self.next()
        if tok.kind != "punct" or tok.value != ch:
            raise _syntax_error(self.text, tok.pos)

    def enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QueryError(
                f"The query specified in the URI is not valid. The expression at position {pos} "
                f"is nested more than {MAX_DEPTH} levels deep."
            )

    def parse(self) -> _Node:
        if not self.text.strip():
            raise QueryError("The $filter expression must not be empty.")
        node = self.parse_or()
        tok = self.peek()
        if tok.kind != "end":
            raise _syntax_error(self.text, tok.pos)
        return node

    def parse_or(self) -> _Node:
        children = [self.parse_and()]
        while self.is_keyword(self.peek(), "or"):
            self.next()
            children.append(self.parse_and())
        return children[0] if len(children) == 1 else _Or(tuple(children))

    def parse_and(self) -> _Node:
        children = [self.parse_unary()]
        while self.is_keyword(self.peek(), "and"):
            self.next()
            children.append(self.parse_unary())
        return children[0] if len(children) == 1 else _And(tuple(children))

    def parse_unary(self) -> _Node:
        tok = self.peek()
        if self.is_keyword(tok, "not"):
            self.next()
            self.enter(tok.pos)
            child = self.parse_unary()
            self.depth -= 1
            return _Not(child)
        return self.parse_compare()

    def parse_compare(self) -> _Node:
        left = self.parse_primary()
        tok = self.peek()
        if tok.kind == "ident" and tok.value in _OPS:
            self.next()
            right = self.parse_primary()
            return _Compare(tok.value, left, right)
        return left

    def parse_primary(self) -> _Node:
        tok = self.next()
        if tok.kind == "punct" and tok.value == "(":
            self.enter(tok.pos)
            node = self.parse_or()
            self.expect_punct(")")
            self.depth -= 1
            return node
        if tok.kind == "string":
            return _Literal(tok.value, "Edm.String")
        if tok.kind == "typed":
            return _typed_literal(tok, self.text)
        if tok.kind == "number":
            return _number_literal(tok, self.text)
        if tok.kind == "ident":
            word: str = tok.value
            if word in ("true", "false"):
                return _Literal(word == "true", "Edm.Boolean")
            if word == "null":
                return _Literal(None, "null")
            if word in _OPS or word in ("and", "or", "not"):
                raise _syntax_error(self.text, tok.pos)
            nxt = self.peek()
            if nxt.kind == "punct" and nxt.value == "(":
                return self.parse_call(tok)
            return _Field(word)
        raise _syntax_error(self.text, tok.pos)

    def parse_call(self, name_tok: _Tok) -> _Node:
        name: str = name_tok.value
        if name.lower() in DATE_FUNCTIONS:
            # Documented for SharePoint REST, but SharePoint Online refuses them on list items
            # with this message (SharePoint/sp-dev-docs#5481 and #8323).
            raise QueryError("The query is not valid.")
        if name not in _FUNCTIONS:
            raise QueryError(
                f"An unknown function with name '{name}' was found. This may also be a key "
                f"lookup on a navigation property, which is not allowed."
            )
        self.next()  # "("
        self.enter(name_tok.pos)
        args: list[_Node] = []
        if not (self.peek().kind == "punct" and self.peek().value == ")"):
            args.append(self.parse_or())
            while self.peek().kind == "punct" and self.peek().value == ",":
                self.next()
                args.append(self.parse_or())
        self.expect_punct(")")
        self.depth -= 1
        if len(args) != _FUNCTIONS[name]:
            raise QueryError(
                f"No function signature for the function with name '{name}' matches the "
                f"specified arguments."
            )
        return _Call(name, tuple(args))


def parse_filter(text: str) -> FilterExpr:
    """Parse a `$filter` value (already percent-decoded) into a FilterExpr.

    Raises QueryError for anything SharePoint would reject; never any other exception.
    """
    if not isinstance(text, str):
        raise QueryError("The $filter expression must be a string.")
    if len(text) > MAX_FILTER_LENGTH:
        raise QueryError("The $filter expression is too long.")
    try:
        root = _Parser(text).parse()
        _check_boolean_operands(root, text)
        fn = _compile(root, text)
    except QueryError:
        raise
    except RecursionError:
        raise QueryError(f"The $filter expression is nested too deeply: '{text}'.") from None
    return FilterExpr(text, root, fn)


def _check_boolean_operands(node: _Node, text: str) -> None:
    """Reject literals where a predicate is needed (`5`, `ID eq 1 and 'x'`): a 400 in SharePoint.

    Fields and function results are checked at evaluation time, when their values are known.
    """
    if isinstance(node, _Literal) and node.edm not in ("Edm.Boolean", "null"):
        raise QueryError(
            f"The $filter expression must evaluate to a single boolean value: '{text}'."
        )
    if isinstance(node, _And | _Or):
        for child in node.children:
            _check_boolean_operands(child, text)
    elif isinstance(node, _Not):
        _check_boolean_operands(node.child, text)


# ---------------------------------------------------------------------------------------------
# Evaluation


def _edm_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "Edm.Boolean"
    if isinstance(value, int):
        return "Edm.Int32"
    if isinstance(value, float):
        return "Edm.Double"
    if isinstance(value, datetime | date):
        return "Edm.DateTime"
    if isinstance(value, uuid.UUID):
        return "Edm.Guid"
    return "Edm.String"


def _mismatch(op: str, left: Any, right: Any) -> QueryError:
    return QueryError(
        "A binary operator with incompatible types was detected. Found operand types "
        f"'{_edm_of(left)}' and '{_edm_of(right)}' for operator kind '{_OP_KIND.get(op, op)}'."
    )


def _as_utc(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _coerce_pair(op: str, value: Any, other: Any) -> tuple[Any, Any]:
    """Bring a stored value and a non-null comparand to comparable Python values.

    `value` is what the row holds, `other` the literal (or the other operand). A string literal
    compared with a number, date or boolean column is converted the way SharePoint converts it
    (`ID eq '5'` works); anything that cannot be converted is a type mismatch → QueryError.
    """
    if isinstance(value, bool) or isinstance(other, bool):
        a, b = value, other
        if isinstance(a, str):
            a = _str_to_bool(a, op, value, other)
        if isinstance(b, str):
            b = _str_to_bool(b, op, value, other)
        if isinstance(a, int) and isinstance(b, int):  # bool is an int: `Done eq 1` works
            return int(a), int(b)
        raise _mismatch(op, value, other)
    if isinstance(value, int | float):
        if isinstance(other, int | float):
            return value, other
        if isinstance(other, str):
            try:
                return value, float(other) if not re.fullmatch(r"-?\d+", other) else int(other)
            except ValueError:
                raise _mismatch(op, value, other) from None
        raise _mismatch(op, value, other)
    if isinstance(value, datetime | date):
        if isinstance(other, datetime | date):
            return _as_utc(value), _as_utc(other)
        if isinstance(other, str):
            parsed = _parse_datetime(other)
            if parsed is not None:
                return _as_utc(value), parsed
        raise _mismatch(op, value, other)
    if isinstance(value, str | uuid.UUID):
        if isinstance(other, str | uuid.UUID):
            # SharePoint's default collation is case-insensitive.
            return str(value).casefold(), str(other).casefold()
        if isinstance(other, datetime | date):
            parsed = _parse_datetime(str(value))
            if parsed is not None:
                return parsed, _as_utc(other)
        # A text column compared with a number is rejected whatever the text holds, so the
        # outcome depends on the column's type, never on the data.
        raise _mismatch(op, value, other)
    raise _mismatch(op, value, other)


def _str_to_bool(text: str, op: str, value: Any, other: Any) -> bool:
    low = text.strip().lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise _mismatch(op, value, other)


def _compare_values(op: str, value: Any, other: Any) -> bool:
    """Compare a stored value with a comparand under SharePoint's rules (see module doc)."""
    if isinstance(value, list | tuple | set | frozenset):
        # Multi-value columns: eq matches when any element equals; ne when none does.
        if other is None:
            empty = len(value) == 0
            return empty if op == "eq" else (not empty if op == "ne" else False)
        if op == "ne":
            return all(_compare_values("ne", v, other) for v in value)
        return any(_compare_values(op, v, other) for v in value)
    if isinstance(other, list | tuple | set | frozenset):
        return _compare_values(_FLIPPED[op], other, value)
    if other is None or value is None:
        same = other is None and value is None
        if op == "eq":
            return same
        if op == "ne":
            return not same
        return False  # ordering against null is false, as in SQL/CAML
    a, b = _coerce_pair(op, value, other)
    return _OPS[op](a, b)


def _getter(path: str) -> Callable[[_Row], Any]:
    if "/" not in path:

        def get_simple(row: _Row) -> Any:
            return row.get(path)

        return get_simple
    parts = path.split("/")

    def get_path(row: _Row) -> Any:
        value = row.get(path, _MISSING)
        if value is not _MISSING:
            return value
        cur: Any = row
        for part in parts:
            if isinstance(cur, Mapping):
                cur = cur.get(part)
            elif isinstance(cur, list | tuple):
                # Multi-value lookups expanded as lists of dicts.
                cur = [c.get(part) if isinstance(c, Mapping) else None for c in cur]
            else:
                return None
        return cur

    return get_path


def _compile(node: _Node, text: str) -> _Eval:
    if isinstance(node, _Literal):
        value = node.value
        return lambda row: value
    if isinstance(node, _Field):
        return _getter(node.path)
    if isinstance(node, _And):
        fns = [_compile(c, text) for c in node.children]
        if len(fns) == 2:
            f1, f2 = fns
            return lambda row: f1(row) is True and f2(row) is True
        return lambda row: all(f(row) is True for f in fns)
    if isinstance(node, _Or):
        fns = [_compile(c, text) for c in node.children]
        if len(fns) == 2:
            g1, g2 = fns
            return lambda row: g1(row) is True or g2(row) is True
        return lambda row: any(f(row) is True for f in fns)
    if isinstance(node, _Not):
        inner = _compile(node.child, text)

        def negate(row: _Row) -> Any:
            value = inner(row)
            if value is None:
                return None
            if not isinstance(value, bool):
                raise QueryError(
                    f"The operand for a unary operator of kind 'Not' must be boolean in '{text}'."
                )
            return not value

        return negate
    if isinstance(node, _Call):
        return _compile_call(node, text)
    return _compile_compare(node, text)


def _compile_compare(node: _Compare, text: str) -> _Eval:
    op, left, right = node.op, node.left, node.right
    if isinstance(left, _Literal) and not isinstance(right, _Literal):
        op, left, right = _FLIPPED[op], right, left
    if isinstance(left, _Literal) and isinstance(right, _Literal):
        result = _compare_values(op, left.value, right.value)
        return lambda row: result
    lfn = _compile(left, text)
    if isinstance(right, _Literal):
        lit = right.value
        cmp = _OPS[op]
        # Fast paths for the common shapes (`ID gt 5`, `County eq 'X'`): one type test per row,
        # falling back to the general rules for anything else (None, lists, conversions).
        if isinstance(lit, str) and op in ("eq", "ne"):
            lit_cf = lit.casefold()
            want = op == "eq"

            def str_eq(row: _Row) -> bool:
                v = lfn(row)
                if v.__class__ is str:
                    return (v == lit or v.casefold() == lit_cf) is want
                return _compare_values(op, v, lit)

            return str_eq
        if lit.__class__ is int or lit.__class__ is float:

            def num_cmp(row: _Row) -> bool:
                v = lfn(row)
                if v.__class__ is int or v.__class__ is float:
                    return cmp(v, lit)
                return _compare_values(op, v, lit)

            return num_cmp
        if isinstance(lit, datetime):

            def dt_cmp(row: _Row) -> bool:
                v = lfn(row)
                if v.__class__ is datetime and v.tzinfo is not None:
                    return cmp(v, lit)
                return _compare_values(op, v, lit)

            return dt_cmp

        return lambda row: _compare_values(op, lfn(row), lit)
    rfn = _compile(right, text)
    return lambda row: _compare_values(op, lfn(row), rfn(row))


def _text_arg(value: Any, name: str) -> list[str] | None:
    """Strings a text function looks at: one for a text column, several for multi-value."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(v, str) or v is None for v in value):
        return [v for v in value if v is not None]
    raise QueryError(
        f"No function signature for the function with name '{name}' matches the specified "
        f"arguments. Found argument type '{_edm_of(value)}'."
    )


def _compile_call(node: _Call, text: str) -> _Eval:
    fns = [_compile(a, text) for a in node.args]
    if node.name == "substringof":
        needle_fn, hay_fn = fns
    else:  # startswith(haystack, prefix)
        hay_fn, needle_fn = fns
    starts = node.name == "startswith"

    def call(row: _Row) -> bool:
        needles = _text_arg(needle_fn(row), node.name)
        hays = _text_arg(hay_fn(row), node.name)
        if needles is None or hays is None:
            return False
        needle = needles[0].casefold() if needles else ""
        if starts:
            return any(h.casefold().startswith(needle) for h in hays)
        return any(needle in h.casefold() for h in hays)

    return call


# ---------------------------------------------------------------------------------------------
# Analysis helpers


def _collect_columns(node: _Node, out: set[str]) -> None:
    if isinstance(node, _Field):
        out.add(node.top)
    elif isinstance(node, _Compare):
        _collect_columns(node.left, out)
        _collect_columns(node.right, out)
    elif isinstance(node, _And | _Or):
        for child in node.children:
            _collect_columns(child, out)
    elif isinstance(node, _Not):
        _collect_columns(node.child, out)
    elif isinstance(node, _Call):
        for arg in node.args:
            _collect_columns(arg, out)


def _id_comparison(node: _Node) -> tuple[str, float] | None:
    """(op, N) for `ID <op> N` / `N <op> ID` with a numeric literal, else None."""
    if not isinstance(node, _Compare):
        return None
    op, left, right = node.op, node.left, node.right
    if isinstance(left, _Literal):
        op, left, right = _FLIPPED[op], right, left
    if not (isinstance(left, _Field) and left.path in _ID_FIELDS and isinstance(right, _Literal)):
        return None
    value = right.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return op, value


def _lower_bound(node: _Node) -> int | None:
    if isinstance(node, _And):
        bounds = [b for b in (_lower_bound(c) for c in node.children) if b is not None]
        return max(bounds) if bounds else None
    if isinstance(node, _Or):
        maybe = [_lower_bound(c) for c in node.children]
        known = [b for b in maybe if b is not None]
        return min(known) if len(known) == len(maybe) else None
    cmp = _id_comparison(node)
    if cmp is None:
        return None
    op, n = cmp
    if op == "gt":
        return math.floor(n) + 1
    if op in ("ge", "eq"):
        return math.ceil(n)
    return None


def _upper_bound(node: _Node) -> int | None:
    if isinstance(node, _And):
        bounds = [b for b in (_upper_bound(c) for c in node.children) if b is not None]
        return min(bounds) if bounds else None
    if isinstance(node, _Or):
        maybe = [_upper_bound(c) for c in node.children]
        known = [b for b in maybe if b is not None]
        return max(known) if len(known) == len(maybe) else None
    cmp = _id_comparison(node)
    if cmp is None:
        return None
    op, n = cmp
    if op == "lt":
        return math.ceil(n) - 1
    if op in ("le", "eq"):
        return math.floor(n)
    return None


def _id_set(node: _Node) -> set[int] | None:
    if isinstance(node, _Or):
        out: set[int] = set()
        for child in node.children:
            part = _id_set(child)
            if part is None:
                return None
            out |= part
        return out
    if isinstance(node, _And):
        result: set[int] | None = None
        for child in node.children:
            part = _id_set(child)
            if part is not None:
                result = part if result is None else result & part
        return result
    cmp = _id_comparison(node)
    if cmp is None or cmp[0] != "eq":
        return None
    n = cmp[1]
    return {int(n)} if float(n).is_integer() else set()


# ---------------------------------------------------------------------------------------------
# The other query options

_NAME_RE = re.compile(r"^[^\W\d][\w.]*(?:/[^\W\d][\w.]*)*$")


def _split_names(text: str, option: str, allow_star: bool) -> list[str]:
    if text is None or not text.strip():
        return []
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip()
        if allow_star and name == "*":
            ok = True
        elif allow_star and name.endswith("/*"):
            ok = bool(_NAME_RE.match(name[:-2]))
        else:
            ok = bool(_NAME_RE.match(name))
        if not ok:
            raise QueryError(
                f"The query specified in the URI is not valid. Invalid {option}: '{text}'."
            )
        names.append(name)
    return names


def parse_select(text: str) -> list[str]:
    """`$select`: comma-separated field paths, trimmed; `*` kept. Empty → []."""
    return _split_names(text, "$select", allow_star=True)


def parse_expand(text: str) -> list[str]:
    """`$expand`: comma-separated navigation properties (`Author`, `Lookup`), trimmed."""
    return _split_names(text, "$expand", allow_star=True)


def parse_orderby(text: str) -> list[tuple[str, bool]]:
    """`$orderby`: `"Modified desc, ID"` → `[("Modified", True), ("ID", False)]`."""
    if text is None or not text.strip():
        return []
    out: list[tuple[str, bool]] = []
    for raw in text.split(","):
        words = raw.split()
        if not words or len(words) > 2 or not _NAME_RE.match(words[0]):
            raise _syntax_error(text, max(text.find(raw), 0))
        descending = False
        if len(words) == 2:
            direction = words[1]
            if direction not in ("asc", "desc"):
                raise _syntax_error(text, text.find(direction))
            descending = direction == "desc"
        out.append((words[0], descending))
    return out


def parse_skiptoken(text: str) -> dict[str, str]:
    """`$skiptoken`: `Paged=TRUE&p_ID=5&p_Modified=20240501 10:00:00` → dict.

    Accepts the decoded form and the still-encoded one (`Paged%3DTRUE%26p_ID%3D5`); values
    are percent-decoded once more, since SharePoint encodes them inside the token. `p_ID`, when
    present, must be an integer.
    """
    if text is None or not text.strip():
        raise QueryError("The $skiptoken value is empty.")
    raw = text.strip()
    if "=" not in raw:
        raw = unquote(raw)
    out: dict[str, str] = {}
    for pair in raw.split("&"):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise QueryError(f"The $skiptoken value '{text}' is not valid.")
        out[unquote(key)] = unquote(value.replace("+", " "))
    if not out:
        raise QueryError(f"The $skiptoken value '{text}' is not valid.")
    p_id = out.get("p_ID")
    if p_id is not None and not re.fullmatch(r"-?\d+", p_id.strip()):
        raise QueryError(f"The $skiptoken value '{text}' is not valid.")
    return out
