"""The README tells the truth: its settings table is the generated one, its make targets exist."""

from __future__ import annotations

import re
from pathlib import Path

from sp_sync.settings import settings_markdown_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
HEADER = "| Setting | Default | Description |"


def _readme_settings_table() -> str:
    lines = README.splitlines()
    assert lines.count(HEADER) == 1, "the README must hold exactly one settings table"
    start = lines.index(HEADER)
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join(lines[start:end])


def test_readme_settings_table_is_the_generated_one() -> None:
    assert _readme_settings_table() == settings_markdown_table(), (
        "README.md's settings table is stale: replace it with the output of\n"
        "python -c 'from sp_sync.settings import settings_markdown_table as t; print(t())'"
    )


def test_every_make_target_the_readme_names_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.MULTILINE))
    named = set(re.findall(r"`make ([a-z][a-z-]*)", README)) | set(
        re.findall(r"^make ([a-z][a-z-]*)", README, flags=re.MULTILINE)
    )
    assert {"demo", "test", "lint", "fmt", "typecheck"} <= named
    assert named <= targets, f"README names make targets that do not exist: {named - targets}"
    phony = set(re.findall(r"^\.PHONY:(.*)$", makefile, flags=re.MULTILINE)[0].split())
    assert named <= phony
