"""Exact behaviour of sp_sync.report.safe_text: HTML to text, cell text, sheet/file/table names.

Example-based on purpose: each case pins one decision (what survives `</script>`, which tags break
lines, what a plain string without tags becomes, where truncation cuts) so that a changed
decision fails a named test. The property tests in tests/hostile check "never crashes" on top.
"""

from __future__ import annotations

import pytest

from sp_sync.report import safe_text as st

# --------------------------------------------------------------------------- html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        # Text after a skipped element is kept; the skipped element's content is not.
        ("<p>a</p><script>alert(1)</script>after", "a\nafter"),
        ("<p>a<SCRIPT>x</SCRIPT>b</p>", "ab"),
        ("<style>p{}</style>x<head><title>T</title></head>y", "xy"),
        # Inside <script> the parser reads raw text: a nested "<script>" is not a second level.
        ("<script><script>x</script>y</script>z", "yz"),
        # A stray end tag does not start skipping (depth never goes below zero).
        ("</script>text<p>more</p>", "text\nmore"),
        ("</style></script>a<script>b</script>c", "ac"),
        # Skipping nests for elements that are not raw text: the title inside head.
        ("<head><title>T</title>hidden</head>shown", "shown"),
    ],
)
def test_skipped_elements_drop_only_their_own_content(html: str, text: str) -> None:
    assert st.html_to_text(html) == text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        (
            '<p>a <b>bold</b> and <i>it</i> <span>s</span> <a href="u">link</a> '
            "<em>e</em><strong>s</strong><u>u</u><font>f</font><code>c</code></p>",
            "a bold and it s link esufc",
        ),
        ("<b>a</b><b>b</b>", "ab"),
        ("<unknown>t</unknown>u", "tu"),
    ],
)
def test_inline_tags_do_not_break_lines(html: str, text: str) -> None:
    assert st.html_to_text(html) == text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<div>a</div><div>b</div>", "a\nb"),
        ("x<br>y<br/>z", "x\ny\nz"),
        ("<P>Upper</P><BR>x", "Upper\nx"),
        (
            "<h1>T</h1>body<h2>2</h2><h3>3</h3><h4>4</h4><h5>5</h5><h6>x</h6>y",
            "T\nbody\n2\n3\n4\n5\nx\ny",
        ),
        ("<ul><li>a</li><li>b</li></ul>", "• a\n• b"),
        ("<ol><li>1</li></ol>after", "• 1\nafter"),
        ("a<ul>b</ul>c", "a\nb\nc"),
        ("a<ol>b</ol>c", "a\nb\nc"),
        ("a<table>b</table>c", "a\nb\nc"),
        ("<table><tr><th>h</th><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "h a b\nc"),
        ("<tr><td>a</td><th>h</th><td>b</td></tr>", "a h b"),
        ("<p>one</p><p>two</p>", "one\ntwo"),
        ("a<p></p><p></p>b", "a\nb"),
    ],
)
def test_block_tags_break_lines_and_lists_get_bullets(html: str, text: str) -> None:
    assert st.html_to_text(html) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        ("", ""),
        ("   ", ""),
        ("a   b\t c", "a b c"),
        ("  padded  ", "padded"),
        ("l1\r\nl2\n\n\nl3", "l1\nl2\nl3"),
        ("a\u200bb\xa0c", "ab c"),
        ("a & b", "a & b"),
        ("5 < 6 and 7 > 3", "5 < 6 and 7 > 3"),
        ("=SUM(A1:A2)", "=SUM(A1:A2)"),
    ],
)
def test_plain_text_without_tags_is_kept_apart_from_whitespace(value: str, text: str) -> None:
    assert st.html_to_text(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("a &lt; b", "a < b"),
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("&amp;amp;", "&amp;"),
        ("<p>&nbsp;a&nbsp;b</p>", "a b"),
        ("x&#8203;y", "xy"),
        ("&quot;q&quot;", '"q"'),
        # Without any tag, text is unescaped as a browser would: legacy entities need no ";".
        ("Fish &amp chips", "Fish & chips"),
    ],
)
def test_entities_are_decoded_once(value: str, text: str) -> None:
    assert st.html_to_text(value) == text


def test_html_to_text_of_none_like_empty_is_empty() -> None:
    assert st.html_to_text("") == ""
    assert st.html_to_text("<p></p>") == ""


def test_unclosed_markup_keeps_its_text() -> None:
    assert st.html_to_text("<p>open <b>bold") == "open bold"
    assert st.html_to_text("<div>a<script>never closed") == "a"


# --------------------------------------------------------------------------- cell text


def test_formula_prefixes_are_exactly_the_dangerous_ones() -> None:
    assert st.FORMULA_PREFIXES == (
        "=", "+", "-", "@", "\t", "\r", "\n", "｜", "＝", "＋", "－", "＠"
    )  # fmt: skip


def test_needs_quote_prefix_is_gone() -> None:
    # It had no caller: the writer tests FORMULA_PREFIXES itself (sp_sync/report/layouts.py).
    assert not hasattr(st, "needs_quote_prefix")
    assert "needs_quote_prefix" not in st.__all__


def test_excel_limits() -> None:
    assert (st.MAX_CELL_CHARS, st.MAX_ROWS, st.MAX_SHEET_NAME) == (32_767, 1_048_576, 31)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("=1+1", "=1+1"),  # formula-looking text is kept as it is (the writer protects it)
        ("a\x00b\x07c\x1fd", "abcd"),
        ("tab\tand\nnewline", "tab\tand\nnewline"),
        ("cr\r\nlf\rx", "cr\nlf\nx"),
        ("", ""),
    ],
)
def test_safe_text_cleans_without_changing_meaning(value: str, text: str) -> None:
    assert st.safe_text(value) == text


def test_safe_text_truncates_to_the_limit_with_a_visible_note() -> None:
    assert st.safe_text("x" * 10, limit=10) == "x" * 10
    assert st.safe_text("x" * 11, limit=20) == "x" * 11
    out = st.safe_text("abcdefghijklmnopqrstuvwxyz", limit=20)
    assert out == "abcdefg … [avkortad]"
    assert len(out) == 20
    assert st.safe_text("abcdefghijklmnopqrstuvwxyz", limit=20, language="en") == (
        "abcdef … [truncated]"
    )
    assert st.safe_text("abcdefghijklmnopqrstuvwxyz", limit=20, language="fi") == out
    full = st.safe_text("y" * (st.MAX_CELL_CHARS + 5))
    assert len(full) == st.MAX_CELL_CHARS and full.endswith(" … [avkortad]")
    assert st.safe_text("y" * st.MAX_CELL_CHARS) == "y" * st.MAX_CELL_CHARS


def test_truncation_counts_after_cleaning() -> None:
    # Illegal characters are removed first, so they do not use up the limit.
    assert st.safe_text("\x00" * 5 + "abcde", limit=5) == "abcde"


@pytest.mark.parametrize("language", ["sv", "en", "xx"])
def test_safe_texts_equals_safe_text_per_value(language: str) -> None:
    # No join character among them: this is the fast, joined path.
    values = ["=A1", "a\x00b", "c\r\nd", "e\rf", "", "z" * 30, "w" * 19, "v" * 20, "u" * 21]
    assert st.safe_texts(values, limit=20, language=language) == [
        st.safe_text(v, limit=20, language=language) for v in values
    ]
    assert st.safe_texts(values[:4]) == ["=A1", "ab", "c\nd", "e\nf"]
    assert st.safe_texts([]) == []
    note = {"sv": " … [avkortad]", "en": " … [truncated]", "xx": " … [avkortad]"}[language]
    assert st.safe_texts(["u" * 21, "v" * 20], limit=20, language=language) == [
        "u" * (20 - len(note)) + note,
        "v" * 20,
    ]


def test_safe_texts_cleans_the_joined_column_without_calling_safe_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real = st.safe_text

    def counting(value: str, **kwargs: object) -> str:
        calls.append(value)
        return real(value, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(st, "safe_text", counting)
    assert st.safe_texts(["a", "b\r", "c"]) == ["a", "b\n", "c"]
    assert st.safe_texts(["single"]) == ["single"]
    assert calls == []
    # A value holding the join character itself: cleaned cell by cell instead.
    assert st.safe_texts(["x\ue000y", "z"]) == ["x\ue000y", "z"]
    assert calls == ["x\ue000y", "z"]


def test_safe_texts_does_not_truncate_when_only_the_joined_column_is_long() -> None:
    values = ["a" * 15, "b" * 15]
    assert st.safe_texts(values, limit=20) == values


def test_safe_texts_with_the_join_character_falls_back_per_cell() -> None:
    assert st.safe_texts(["x\ue000y", "z\r"]) == ["x\ue000y", "z\n"]
    assert st.safe_texts(["x\ue000y" * 10], limit=12) == [st.safe_text("x\ue000y" * 10, limit=12)]
    assert st.safe_texts(["x\ue000y" * 10], limit=16, language="en") == ["x\ue000 … [truncated]"]


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "existing", "sheet"),
    [
        ("Skåne län", [], "Skåne län"),
        ("a[b]c:d*e?f/g\\h", [], "a-b-c-d-e-f-g-h"),
        ("'quoted'", [], "quoted"),
        ("  ' spaced '  ", [], "spaced"),
        ("ctrl\x01\x7fname", [], "ctrlname"),
        ("", [], "Blad_"),
        ("'''", [], "Blad_"),
        ("History", [], "History_"),
        ("history", [], "history_"),
        ("x" * 40, [], "x" * 31),
        ("Översikt", ["översikt"], "Översikt (2)"),
        ("Översikt", ["Översikt", "Översikt (2)"], "Översikt (3)"),
        ("y" * 40, ["y" * 31], "y" * 27 + " (2)"),
        ("a" * 26 + " bccc", ["a" * 26 + " bccc"], "a" * 26 + " (2)"),
        ("abc" + " " * 30 + "d", [], "abc"),
        ("abc'" + "z" * 40, [], "abc'" + "z" * 27),
        ("a" * 30 + "'b", [], "a" * 30),
        ("'Xmas X'", [], "Xmas X"),
    ],
)
def test_safe_sheet_name(name: str, existing: list[str], sheet: str) -> None:
    assert st.safe_sheet_name(name, existing) == sheet


@pytest.mark.parametrize(
    ("name", "file_name"),
    [
        ("Skåne län", "Skåne län.xlsx"),
        ('a"b*c:d<e>f?g/h\\i|j#k%l', "a-b-c-d-e-f-g-h-i-j-k-l.xlsx"),
        ("tab\tnew\nline", "tab-new-line.xlsx"),  # control characters first
        ("many   spaces", "many spaces.xlsx"),
        ("ctrl\x01\x7fz", "ctrl--z.xlsx"),
        ("  . dotted . ", "dotted.xlsx"),
        ("~$lock", "$lock.xlsx"),  # no leading "~$" (Office lock files)
        ("~ ~.x", "x.xlsx"),
        ("a_vti_b", "a_vti-b.xlsx"),
        ("", "_.xlsx"),
        ("...", "_.xlsx"),
        ("CON", "_CON.xlsx"),
        ("con.txt", "_con.txt.xlsx"),
        ("lpt1", "_lpt1.xlsx"),
        ("com0", "_com0.xlsx"),
        ("forms", "_forms.xlsx"),
        ("desktop.ini", "_desktop.ini.xlsx"),
        ("console", "console.xlsx"),
        ("a" * 130, "a" * 120 + ".xlsx"),
        ("a" * 119 + " b", "a" * 119 + ".xlsx"),
        ("A\u030a", "Å.xlsx"),
        ("X-ray X", "X-ray X.xlsx"),
        ("~Xavier", "Xavier.xlsx"),
        ("a" * 119 + ".b", "a" * 119 + ".xlsx"),
    ],
)
def test_safe_file_name(name: str, file_name: str) -> None:
    assert st.safe_file_name(name) == file_name


def test_safe_file_name_extension() -> None:
    assert st.safe_file_name("x", extension=".csv") == "x.csv"


@pytest.mark.parametrize(
    ("name", "existing", "table"),
    [
        ("Öppen återkoppling", [], "Oppen_aterkoppling"),
        ("a  b--c", [], "a_b_c"),
        ("__x__", [], "x"),
        ("1abc", [], "T_1abc"),
        ("", [], "T_"),
        ("A1", [], "T_A1"),
        ("xfd1048576", [], "T_xfd1048576"),
        ("R1C1", [], "T_R1C1"),
        ("r", [], "T_r"),
        ("C", [], "T_C"),
        ("RC", [], "T_RC"),
        ("Rad", [], "Rad"),
        ("ABCD1", [], "ABCD1"),
        ("a.b\\c", [], "a.b\\c"),
        ("x" * 250, [], "x" * 200),
        ("Tabell", ["tabell"], "Tabell_2"),
        ("Tabell", ["Tabell", "TABELL_2"], "Tabell_3"),
        ("X table X", [], "X_table_X"),
    ],
)
def test_excel_table_name(name: str, existing: list[str], table: str) -> None:
    assert st.excel_table_name(name, existing) == table
