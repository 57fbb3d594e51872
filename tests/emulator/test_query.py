"""The emulator's OData query-option parsing and `$filter` evaluation (sp_emulator.query)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sp_emulator.query import (
    MAX_DEPTH,
    QueryError,
    escape_literal,
    parse_expand,
    parse_filter,
    parse_orderby,
    parse_select,
    parse_skiptoken,
)

ROWS: list[dict[str, Any]] = [
    {
        "ID": 1,
        "Title": "Alpha",
        "County": "Skåne",
        "Score": 10,
        "Done": True,
        "Modified": datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        "Proj/Id": 7,
        "Tags": ["a", "b"],
    },
    {
        "ID": 2,
        "Title": "beta",
        "County": "Uppsala",
        "Score": 2.5,
        "Done": False,
        "Modified": datetime(2024, 5, 2, 10, 0, tzinfo=UTC),
        "Proj/Id": 8,
        "Tags": [],
    },
    {
        "ID": 3,
        "Title": "O'Brien",
        "County": None,
        "Score": None,
        "Done": None,
        "Modified": datetime(2024, 4, 30, 23, 59, tzinfo=UTC),
        "Tags": ["b"],
    },
    {
        "ID": 4,
        "Title": "Gamma delta",
        "County": "Skåne",
        "Score": -3,
        "Done": True,
        "Modified": datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
        "Proj/Id": 7,
        "Tags": None,
    },
]


def ids(text: str, rows: list[dict[str, Any]] | None = None) -> list[int]:
    expr = parse_filter(text)
    return [r["ID"] for r in (rows if rows is not None else ROWS) if expr.evaluate(r)]


# --- comparisons -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ID eq 2", [2]),
        ("ID ne 2", [1, 3, 4]),
        ("ID gt 2", [3, 4]),
        ("ID ge 2", [2, 3, 4]),
        ("ID lt 2", [1]),
        ("ID le 2", [1, 2]),
        ("2 lt ID", [3, 4]),  # literal on the left is mirrored
        ("Score gt 2", [1, 2]),
        ("Score lt 0", [4]),
        ("Score eq 2.5", [2]),
        ("Score eq 2.5M", [2]),
        ("Score ge -3", [1, 2, 4]),
        ("Score eq 10L", [1]),
        ("ID eq '2'", [2]),  # SharePoint converts a numeric string for a number column
    ],
)
def test_number_comparisons(text: str, expected: list[int]) -> None:
    assert ids(text) == expected


def test_string_equality_is_case_insensitive_and_handles_unicode() -> None:
    assert ids("Title eq 'BETA'") == [2]
    assert ids("Title ne 'alpha'") == [2, 3, 4]
    assert ids("County eq 'skåne'") == [1, 4]
    assert ids("Title eq 'O''Brien'") == [3]


def test_string_ordering() -> None:
    assert ids("Title lt 'c'") == [1, 2]  # case-insensitive collation: 'beta' < 'c'
    assert ids("Title ge 'gamma'") == [3, 4]


def test_datetime_literals_in_all_forms() -> None:
    assert ids("Modified ge datetime'2024-05-01T10:00:00Z'") == [1, 2]
    assert ids("Modified ge datetime'2024-05-01T10:00:00'") == [1, 2]  # no offset = UTC
    assert ids("Modified ge datetime'2024-05-01T12:00:00+02:00'") == [1, 2]
    assert ids("Modified lt datetime'2024-05-01T00:00:00.000Z'") == [3]
    assert ids("Modified eq datetime'2024-05-01T08:00:00Z'") == [4]
    assert ids("Modified gt datetime'2024-05-01'") == [1, 2, 4]
    # A plain string holding an ISO timestamp is accepted for a date column.
    assert ids("Modified ge '2024-05-02T00:00:00Z'") == [2]


def test_date_only_and_naive_stored_values_compare_as_utc() -> None:
    rows = [
        {"ID": 1, "Due": date(2024, 5, 1)},
        {"ID": 2, "Due": datetime(2024, 5, 2, 0, 0)},  # naive: UTC
        {"ID": 3, "Due": datetime(2024, 5, 3, 1, 0, tzinfo=timezone(timedelta(hours=2)))},
    ]
    assert ids("Due eq datetime'2024-05-01T00:00:00Z'", rows) == [1]
    assert ids("Due ge datetime'2024-05-02T00:00:00Z'", rows) == [2, 3]
    assert ids("Due le datetime'2024-05-02T22:59:00Z'", rows) == [1, 2]  # 3 is 05-02T23:00Z
    assert ids("Due gt datetime'2024-05-02T22:00:00Z'", rows) == [3]


def test_booleans_accept_true_false_and_one_zero() -> None:
    assert ids("Done eq true") == [1, 4]
    assert ids("Done eq false") == [2]
    assert ids("Done eq 1") == [1, 4]
    assert ids("Done ne 1") == [2, 3]
    assert ids("Done") == [1, 4]  # a boolean column on its own is a predicate


def test_null_comparisons_and_missing_fields() -> None:
    assert ids("County eq null") == [3]
    assert ids("County ne null") == [1, 2, 4]
    assert ids("Score gt null") == []
    assert ids("Proj/Id eq null") == [3]  # key missing from the row → None
    assert ids("NoSuchField eq null") == [1, 2, 3, 4]
    assert ids("County eq 'Uppsala' or County eq null") == [2, 3]
    assert ids("Score gt 0") == [1, 2]  # null never satisfies an ordering


def test_multi_value_columns_match_any_element() -> None:
    assert ids("Tags eq 'b'") == [1, 3]
    assert ids("Tags ne 'b'") == [2, 4]  # no element equals (empty list and null included)
    assert ids("Tags eq null") == [2, 4]


def test_lookup_paths_from_flat_keys_and_nested_values() -> None:
    assert ids("Proj/Id eq 7") == [1, 4]
    rows = [
        {"ID": 1, "Author": {"Id": 5, "EMail": "ann@example.com", "Title": "Ann"}},
        {"ID": 2, "Author": {"Id": 6, "EMail": "bo@example.com", "Title": "Bo"}},
        {"ID": 3, "Multi": [{"Id": 1, "Title": "X"}, {"Id": 2, "Title": "Y"}]},
    ]
    assert ids("Author/EMail eq 'BO@example.com'", rows) == [2]
    assert ids("Author/Title eq 'Ann' or Multi/Id eq 2", rows) == [1, 3]


def test_guid_literal() -> None:
    rows = [{"ID": 1, "GUID": "3F2504E0-4F89-11D3-9A0C-0305E82C3301"}, {"ID": 2, "GUID": "x"}]
    assert ids("GUID eq guid'3f2504e0-4f89-11d3-9a0c-0305e82c3301'", rows) == [1]


# --- logic and precedence ------------------------------------------------------------------------


def test_and_binds_tighter_than_or() -> None:
    # ID eq 1 or (ID eq 2 and Title eq 'x')
    assert ids("ID eq 1 or ID eq 2 and Title eq 'x'") == [1]
    assert ids("(ID eq 1 or ID eq 2) and Title eq 'beta'") == [2]


def test_not_applies_to_the_following_comparison() -> None:
    assert ids("not ID eq 1") == [2, 3, 4]
    assert ids("not (ID eq 1 or ID eq 2)") == [3, 4]
    assert ids("not substringof('a', Title) and ID lt 4") == [3]
    assert ids("not not ID eq 1") == [1]


def test_functions_substringof_and_startswith_are_case_insensitive() -> None:
    assert ids("substringof('ET', Title)") == [2]
    assert ids("substringof('a', Title)") == [1, 2, 4]
    assert ids("startswith(Title,'gam')") == [4]
    assert ids("startswith(County, 'Sk')") == [1, 4]  # None never matches
    assert ids("substringof('x', Title) eq false") == [1, 2, 3, 4]


def test_keywords_are_lower_case_only() -> None:
    with pytest.raises(QueryError):
        parse_filter("ID EQ 1")
    with pytest.raises(QueryError):
        parse_filter("ID eq 1 AND ID eq 2")


# --- type mismatches ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Score eq 'abc'",  # number column vs text
        "Title eq 5",  # text column vs number
        "Modified gt 'yesterday'",
        "Modified gt 5",
        "Done eq 'maybe'",
        "Title eq true",
        "substringof('a', Score)",
    ],
)
def test_type_mismatch_is_a_query_error(text: str) -> None:
    expr = parse_filter(text)
    with pytest.raises(QueryError, match=r"incompatible types|No function signature"):
        for row in ROWS:
            expr.evaluate(row)


# --- malformed input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "(ID eq 1",
        "ID eq 1)",
        "ID eq 'abc",
        "Title eq 'it''s",
        "ID equals 1",
        "ID eq 1 garbage",
        "ID eq",
        "eq 1",
        "ID eq 1 and",
        "ID eq 1 or or ID eq 2",
        "ID eq eq 1",
        "ID == 1",
        "ID eq 1; DROP TABLE",
        'Title eq "x"',
        "()",
        "ID eq datetime'not a date'",
        "ID eq datetime'2024-13-40T00:00:00Z'",
        "ID eq guid'123'",
        "ID eq time'PT1H'",
        "endswith(Title, 'a')",
        "substringof('a')",
        "substringof('a', Title, Title)",
        "startswith(Title 'a')",
        "ID eq 1 eq 2",
        "ID eq 1e999",
        "__import__('os')",
        "Title eq 'a' 'b'",
        "ID eq -",
        "ID gt 5.5.5",
        "5",
        "'x'",
        "ID eq 1 and 'x'",
        "not 5",
    ],
)
def test_malformed_filters_raise_query_error(text: str) -> None:
    with pytest.raises(QueryError):
        parse_filter(text)


def test_unterminated_string_message_names_the_position() -> None:
    with pytest.raises(QueryError, match=r"unterminated string literal at position 9"):
        parse_filter("Title eq 'abc")


def test_deep_nesting_is_rejected_not_a_crash() -> None:
    ok = "(" * MAX_DEPTH + "ID eq 1" + ")" * MAX_DEPTH
    assert parse_filter(ok).evaluate({"ID": 1})
    for text in (
        "(" * (MAX_DEPTH + 1) + "ID eq 1" + ")" * (MAX_DEPTH + 1),
        "(" * 100_000,
        "not " * 5_000 + "ID eq 1",
        "substringof(" * 2_000,
    ):
        with pytest.raises(QueryError):
            parse_filter(text)


def test_long_flat_disjunction_is_fine() -> None:
    text = " or ".join(f"ID eq {i}" for i in range(2_000))
    expr = parse_filter(text)
    assert expr.evaluate({"ID": 1999})
    assert not expr.evaluate({"ID": 2000})
    assert expr.id_set() == set(range(2_000))


def _parse_and_evaluate(text: str) -> None:
    """Parse and evaluate against every row; only QueryError may escape."""
    try:
        expr = parse_filter(text)
    except QueryError:
        return
    for row in ROWS:
        try:
            expr.evaluate(row)
        except QueryError:
            pass


_TOKENS = st.sampled_from(
    [
        "ID",
        "Title",
        "eq",
        "ne",
        "gt",
        "and",
        "or",
        "not",
        "(",
        ")",
        "'x'",
        "'",
        "1",
        "-2.5",
        "null",
        "true",
        ",",
        "substringof",
        "startswith",
        "datetime'2024-05-01'",
        "Proj/Id",
        "guid'",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_TOKENS, max_size=12))
def test_token_soup_raises_only_query_error(tokens: list[str]) -> None:
    _parse_and_evaluate(" ".join(tokens))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_raises_only_query_error(text: str) -> None:
    _parse_and_evaluate(text)


# --- escape_literal: the rule sp_sync uses to build filters ------------------------------------


HOSTILE = ["'", "''", "' or 1 eq 1 or '", "O'Brien", "Åsa Östlund", "日本語", "a%27b", "x)", "\\'"]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=30)))
def test_escaped_literal_matches_exactly_the_equal_title(value: str) -> None:
    rows: list[dict[str, Any]] = [
        {"ID": 1, "Title": value},
        {"ID": 2, "Title": value + "x"},
        {"ID": 3, "Title": "'"},
        {"ID": 4, "Title": "x"},
        {"ID": 5, "Title": None},
    ]
    expr = parse_filter(f"Title eq {escape_literal(value)}")
    matched = {r["ID"] for r in rows if expr.evaluate(r)}
    expected = {
        r["ID"]
        for r in rows
        if r["Title"] is not None and r["Title"].casefold() == value.casefold()
    }
    assert matched == expected
    assert 1 in matched
    assert expr.columns() == {"Title"}


def test_escape_literal_doubles_quotes() -> None:
    assert escape_literal("O'Brien") == "'O''Brien'"
    assert escape_literal("") == "''"


# --- analysis helpers --------------------------------------------------------------------------


def test_columns_reports_top_level_fields() -> None:
    expr = parse_filter(
        "Proj/Id eq 7 and (Author/EMail eq 'a' or substringof('x', Notes)) and not Done eq true"
    )
    assert expr.columns() == {"Proj", "Author", "Notes", "Done"}
    assert parse_filter("true").columns() == set()


@pytest.mark.parametrize(
    ("text", "bound"),
    [
        ("ID gt 5", 6),
        ("ID ge 5", 5),
        ("Id gt 5 and County eq 'X'", 6),
        ("ID gt 5 and ID ge 10", 10),
        ("5 lt ID", 6),
        ("ID gt 5.5", 6),
        ("ID eq 9", 9),
        ("ID gt 5 or ID gt 2", 3),
        ("ID gt 5 or County eq 'X'", None),
        ("County eq 'X'", None),
        ("ID lt 5", None),
        ("not ID gt 5", None),
    ],
)
def test_id_lower_bound(text: str, bound: int | None) -> None:
    expr = parse_filter(text)
    assert expr.id_lower_bound() == bound
    if bound is not None:  # the hint is sound: nothing below it matches
        assert not any(expr.evaluate({"ID": i, "Id": i, "County": "X"}) for i in range(bound))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ID eq 3", {3}),
        ("ID eq 1 or ID eq 3 or Id eq 9", {1, 3, 9}),
        ("(ID eq 1 or ID eq 2) and Title eq 'x'", {1, 2}),
        ("(ID eq 1 or ID eq 2) and (ID eq 2 or ID eq 3)", {2}),
        ("ID eq 1 or Title eq 'x'", None),
        ("ID gt 1", None),
        ("ID eq 1.5", set()),
    ],
)
def test_id_set(text: str, expected: set[int] | None) -> None:
    assert parse_filter(text).id_set() == expected


def test_evaluation_over_many_rows_is_exact() -> None:
    rows = [{"ID": i, "County": "X" if i % 3 else "Y", "Title": f"t{i}"} for i in range(100_000)]
    expr = parse_filter("ID gt 5 and County eq 'X'")
    matched = sum(1 for r in rows if expr.evaluate(r))
    assert matched == sum(1 for i in range(6, 100_000) if i % 3)


# --- other query options -----------------------------------------------------------------------


def test_parse_orderby() -> None:
    assert parse_orderby("Modified desc, ID") == [("Modified", True), ("ID", False)]
    assert parse_orderby("Title asc") == [("Title", False)]
    assert parse_orderby("Proj/Title") == [("Proj/Title", False)]
    assert parse_orderby("") == []
    for bad in ("Modified descending", "ID,,Title", "Modified desc asc", "'x'", ","):
        with pytest.raises(QueryError):
            parse_orderby(bad)


def test_parse_select_and_expand() -> None:
    assert parse_select("Id, Title ,Proj/Title") == ["Id", "Title", "Proj/Title"]
    assert parse_select("*") == ["*"]
    assert parse_select("Author/*,Title") == ["Author/*", "Title"]
    assert parse_select("OData__UIVersionString,_x0020_Name") == [
        "OData__UIVersionString",
        "_x0020_Name",
    ]
    assert parse_select("") == []
    assert parse_expand("Author, Proj") == ["Author", "Proj"]
    for bad in ("Title,,Id", "Ti tle", "Title'", "1abc"):
        with pytest.raises(QueryError):
            parse_select(bad)


def test_parse_skiptoken_decoded_and_encoded() -> None:
    expected = {"Paged": "TRUE", "p_ID": "5", "p_Modified": "20240501 10:00:00"}
    assert parse_skiptoken("Paged=TRUE&p_ID=5&p_Modified=20240501 10:00:00") == expected
    assert (
        parse_skiptoken("Paged%3DTRUE%26p_ID%3D5%26p_Modified%3D20240501%2010%3A00%3A00")
        == expected
    )
    assert (
        parse_skiptoken("Paged%3dTRUE%26p_ID%3d5%26p_Modified%3d20240501%252010%253A00%253A00")
        == expected
    )
    assert parse_skiptoken("Paged=TRUE&p_Title=A%26B&p_ID=9") == {
        "Paged": "TRUE",
        "p_Title": "A&B",
        "p_ID": "9",
    }
    for bad in ("", "garbage", "Paged=TRUE&p_ID=abc", "=x"):
        with pytest.raises(QueryError):
            parse_skiptoken(bad)


@pytest.mark.parametrize(
    ("text", "bound"),
    [
        ("ID lt 5", 4),
        ("ID le 5", 5),
        ("ID lt 5.5", 5),
        ("ID le 5.5", 5),
        ("ID eq 9", 9),
        ("5 gt ID", 4),
        ("ID lt 5 and ID lt 3", 2),
        ("ID lt 5 or ID lt 8", 7),
        ("ID lt 5 or County eq 'X'", None),
        ("ID gt 5", None),
        ("not ID lt 5", None),
    ],
)
def test_id_upper_bound(text: str, bound: int | None) -> None:
    expr = parse_filter(text)
    assert expr.id_upper_bound() == bound
    if bound is not None:  # the hint is sound: nothing above it matches
        assert not any(
            expr.evaluate({"ID": i, "Id": i, "County": "X"}) for i in range(bound + 1, bound + 50)
        )
