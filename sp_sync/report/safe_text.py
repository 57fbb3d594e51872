"""Safety for everything that goes into a workbook: cell text, sheet names, table and file names.

The text in the rollups was typed by many people into SharePoint lists, so it is untrusted:

* A value is always written as a *value*, never as a formula. openpyxl turns any string that
  starts with ``=`` into a formula, and Excel/LibreOffice re-interpret text starting with ``=``,
  ``+``, ``-``, ``@``, tab or carriage return when a user edits the cell. The workbook writer
  therefore forces the string data type and marks cells starting with one of
  :data:`FORMULA_PREFIXES` with the ``quotePrefix`` style; the text itself is kept unchanged so
  nothing is lost.
* Rich-text HTML becomes readable plain text (:func:`html_to_text`).
* Characters that are illegal in XML (most C0 controls) are removed; otherwise the file would
  not open at all.
* Excel's limits are respected with a visible note instead of an error: 32,767 characters per
  cell, 31 characters per sheet name without ``[]:*?/\\``.
* File names built from county or department names are safe for SharePoint and stable: the same
  input always gives the same name.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Sequence
from html.parser import HTMLParser

#: The characters Excel's XML cannot hold, as openpyxl's ILLEGAL_CHARACTERS_RE has them (a test
#: checks that they agree). Kept here so that the tables, which clean text, need no openpyxl.
ILLEGAL_CHARACTERS_RE = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")


__all__ = [
    "FORMULA_PREFIXES",
    "MAX_CELL_CHARS",
    "MAX_ROWS",
    "MAX_SHEET_NAME",
    "excel_table_name",
    "html_to_text",
    "safe_file_name",
    "safe_sheet_name",
    "safe_text",
    "safe_texts",
]

#: Excel's hard limit on characters in one cell.
MAX_CELL_CHARS = 32_767
#: Excel's hard limit on rows in one worksheet.
MAX_ROWS = 1_048_576
#: Excel's hard limit on the length of a sheet name.
MAX_SHEET_NAME = 31

#: Leading characters that make Excel or LibreOffice treat typed text as a formula or DDE call.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "｜", "＝", "＋", "－", "＠")

_TRUNCATION_NOTE = {"sv": " … [avkortad]", "en": " … [truncated]"}

# Sheet names: Excel refuses these characters and names that start or end with an apostrophe.
_SHEET_FORBIDDEN_RE = re.compile(r"[\[\]:*?/\\]")
# File names: SharePoint Online refuses these characters; '#' and '%' are allowed by SPO today but
# break older clients and URL building, so they are replaced too.
_FILE_FORBIDDEN_RE = re.compile(r'["*:<>?/\\|#%\x00-\x1f\x7f]')
_RESERVED_FILE_STEMS = frozenset(
    {"con", "prn", "aux", "nul", "desktop.ini", ".lock", "forms"}
    | {f"com{i}" for i in range(10)}
    | {f"lpt{i}" for i in range(10)}
)
_MAX_FILE_NAME = 120
_TABLE_NAME_CHARS_RE = re.compile(r"[^0-9A-Za-z_.\\]")
# Table names that look like a cell reference (A1, XFD1048576) or an R1C1 reference are refused.
_A1_RE = re.compile(r"^[A-Za-z]{1,3}[0-9]+$")
_R1C1_RE = re.compile(r"^[RrCc][0-9]*([RrCc][0-9]*)?$")


def safe_text(value: str, *, limit: int = MAX_CELL_CHARS, language: str = "sv") -> str:
    """Return `value` as text that can be stored in one Excel cell.

    Removes characters that are illegal in XML and truncates to `limit` characters (Excel's
    32,767 by default), ending with a visible note ("… [avkortad]") so a reader knows more text
    exists in SharePoint. Carriage returns become line feeds. The text is otherwise unchanged:
    formula-looking text stays as it is and is protected by the writer (quotePrefix on cells
    starting with one of :data:`FORMULA_PREFIXES`).
    """
    # XML parsers turn a bare CR into LF on reading anyway; make that explicit so what we write is
    # what every reader sees.
    text = ILLEGAL_CHARACTERS_RE.sub("", value).replace("\r\n", "\n").replace("\r", "\n")
    if len(text) > limit:
        note = _TRUNCATION_NOTE.get(language, _TRUNCATION_NOTE["sv"])
        text = text[: limit - len(note)] + note
    return text


# Joins a whole column into one string so the clean-up runs once in C instead of once per cell.
# A private-use character: list text practically never holds it, and when it does the column is
# cleaned cell by cell instead (the count of separators tells).
_JOIN = "\ue000"


def safe_texts(
    values: Sequence[str], *, limit: int = MAX_CELL_CHARS, language: str = "sv"
) -> list[str]:
    """``[safe_text(v, limit=limit, language=language) for v in values]``, fast for long columns.

    The rollups write up to a few hundred thousand text cells; one regular-expression pass over
    the joined column costs a fraction of a per-cell call. The result is identical.
    """
    if not values:
        return []
    joined = _JOIN.join(values)
    if joined.count(_JOIN) != len(values) - 1:
        return [safe_text(v, limit=limit, language=language) for v in values]
    if ILLEGAL_CHARACTERS_RE.search(joined):
        joined = ILLEGAL_CHARACTERS_RE.sub("", joined)
    if "\r" in joined:
        joined = joined.replace("\r\n", "\n").replace("\r", "\n")
    out = joined.split(_JOIN)
    if len(joined) > limit:  # only then can one cell be too long
        note = _TRUNCATION_NOTE.get(language, _TRUNCATION_NOTE["sv"])
        out = [t if len(t) <= limit else t[: limit - len(note)] + note for t in out]
    return out


class _TextExtractor(HTMLParser):
    """Collects the readable text of an HTML fragment, keeping paragraph and list structure."""

    _BLOCK = frozenset(
        {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table"}
    )
    _SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip_depth += 1
        elif tag == "li":
            self.parts.append("\n• ")
        elif tag in ("td", "th"):
            self.parts.append("\t")
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)


_LOOKS_LIKE_HTML_RE = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>|&[a-zA-Z#0-9]+;")


def html_to_text(value: str) -> str:
    """Readable plain text from a SharePoint rich-text (HTML) value.

    Block elements become line breaks, list items bullets, entities are decoded, runs of spaces
    are collapsed, blank lines dropped and zero-width characters SharePoint inserts are dropped. Text
    without markup is returned unchanged apart from that whitespace clean-up.
    """
    if not value:
        return ""
    if _LOOKS_LIKE_HTML_RE.search(value):
        parser = _TextExtractor()
        parser.feed(value)
        parser.close()
        text = "".join(parser.parts)
    else:
        text = html.unescape(value) if "&" in value else value
    text = text.replace("\u200b", "").replace("\xa0", " ").replace("\r\n", "\n")
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.split("\n")]
    # Blank lines are dropped: in a spreadsheet cell they only waste height.
    return "\n".join(line for line in lines if line)


def safe_sheet_name(name: str, existing: Iterable[str] = ()) -> str:
    """A valid, unique Excel sheet name derived from `name`.

    Replaces ``[]:*?/\\`` with "-", removes control characters and leading/trailing apostrophes,
    cuts to 31 characters and, when the name is taken (Excel compares case-insensitively), adds
    " (2)", " (3)"… within the 31 characters. "History" is reserved by Excel.
    """
    base = ILLEGAL_CHARACTERS_RE.sub("", name)
    base = _SHEET_FORBIDDEN_RE.sub("-", base)
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip().strip("'").strip()
    if not base or base.casefold() == "history":
        base = f"{base or 'Blad'}_"
    base = base[:MAX_SHEET_NAME].rstrip().rstrip("'")
    taken = {n.casefold() for n in existing}
    candidate = base
    counter = 2
    while candidate.casefold() in taken:
        suffix = f" ({counter})"
        candidate = base[: MAX_SHEET_NAME - len(suffix)].rstrip() + suffix
        counter += 1
    return candidate


def safe_file_name(name: str, *, extension: str = ".xlsx") -> str:
    """A file name for SharePoint built from `name` (a county or department name) + `extension`.

    Stable: the same input always gives the same output, so each run overwrites the same file
    (and SharePoint keeps the previous one as a version). Unicode is NFC-normalised (macOS and
    SharePoint otherwise disagree on "å"); ``" * : < > ? / \\ | # %`` and control characters
    become "-"; whitespace runs become one space; leading/trailing spaces and dots, a leading
    "~$" and reserved device names (CON, PRN, AUX, NUL, COM1…, LPT1…) are avoided; the stem is
    capped at 120 characters.
    """
    stem = unicodedata.normalize("NFC", name)
    stem = _FILE_FORBIDDEN_RE.sub("-", stem)
    stem = re.sub(r"\s+", " ", stem).strip(" .")
    while stem.startswith("~"):
        stem = stem[1:].lstrip(" .")
    stem = stem.replace("_vti_", "_vti-")
    stem = stem[:_MAX_FILE_NAME].rstrip(" .")
    if not stem:
        stem = "_"
    if (
        stem.casefold() in _RESERVED_FILE_STEMS
        or stem.split(".")[0].casefold() in _RESERVED_FILE_STEMS
    ):
        stem = f"_{stem}"
    return f"{stem}{extension}"


def excel_table_name(name: str, existing: Iterable[str] = ()) -> str:
    """A valid, workbook-unique Excel table name (displayName) derived from `name`.

    Table names may hold letters, digits, "_", "." and "\\"; they must start with a letter or
    "_", must not look like a cell reference (A1 or R1C1) and are unique case-insensitively across
    the workbook. Swedish letters are folded to ASCII (å→a) so the name stays readable.
    """
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    base = _TABLE_NAME_CHARS_RE.sub("_", folded.replace(" ", "_"))
    base = re.sub(r"_+", "_", base).strip("_")
    if not base or not (base[0].isalpha() or base[0] == "_"):
        base = f"T_{base}"
    if _A1_RE.match(base) or _R1C1_RE.match(base):
        base = f"T_{base}"
    base = base[:200]
    taken = {n.casefold() for n in existing}
    candidate = base
    counter = 2
    while candidate.casefold() in taken:
        candidate = f"{base}_{counter}"
        counter += 1
    return candidate
