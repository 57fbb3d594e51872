"""A night whose workbooks are all unchanged imports neither the layouts nor openpyxl (issue 14
goal 4): what publish, the fingerprints and the tables need at import is kept free of them."""

from __future__ import annotations

import subprocess
import sys

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE as OPENPYXL_ILLEGAL

from sp_sync.report.safe_text import ILLEGAL_CHARACTERS_RE, safe_text


def test_publish_imports_neither_openpyxl_nor_the_layouts() -> None:
    code = (
        "import sys\n"
        "import sp_sync.report.publish, sp_sync.report.fingerprint, sp_sync.report.tables\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'openpyxl'"
        " or m in ('sp_sync.report.layouts', 'sp_sync.report.xlsx_writer')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_illegal_characters_are_openpyxls() -> None:
    assert ILLEGAL_CHARACTERS_RE.pattern == OPENPYXL_ILLEGAL.pattern
    assert safe_text("a\x00b\x1fc\td\ne") == "abc\td\ne"
