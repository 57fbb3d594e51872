"""One language throughout (issue 13 item 4): every message template of the user-facing
modules exists in Swedish and English, with the same placeholders, and renders in both."""

from __future__ import annotations

import importlib
import string
from collections.abc import Iterator
from typing import Any

import pytest

from sp_sync.i18n import Plural, Text

#: Modules whose templates a person reads: the command line, its summaries and plans, the demo,
#: errors and settings, workbook labels.
MODULES = (
    "sp_sync.cli",
    "sp_sync.i18n",
    "sp_sync.errors",
    "sp_sync.run.summary",
    "sp_sync.run.pipeline",
    "sp_sync.demo.runner",
    "sp_sync.schema.provision",
)


def _templates(value: Any, where: str) -> Iterator[tuple[str, Text | Plural]]:
    if isinstance(value, Text | Plural):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _templates(item, f"{where}[{key!r}]")
    elif isinstance(value, tuple | list):
        for i, item in enumerate(value):
            yield from _templates(item, f"{where}[{i}]")


def _all_templates() -> list[tuple[str, Text | Plural]]:
    found: list[tuple[str, Text | Plural]] = []
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            found.extend(_templates(value, f"{name}.{attr}"))
    return found


def _fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


TEMPLATES = _all_templates()


def test_the_walk_finds_the_templates() -> None:
    where = {w.split("[")[0] for w, _ in TEMPLATES}
    for module in MODULES:
        assert any(w.startswith(module + ".") for w in where), module
    assert len(TEMPLATES) > 150


@pytest.mark.parametrize(("where", "template"), TEMPLATES, ids=[w for w, _ in TEMPLATES])
def test_every_template_in_both_languages(where: str, template: Text | Plural) -> None:
    if isinstance(template, Plural):
        for language in ("sv", "en"):
            assert template.render(language, 1).startswith("1 ")
            assert template.render(language, 1674).split(" ", 2)[-1]
        assert template.render("sv", 1674).startswith("1 674 ")
        assert template.render("en", 1674).startswith("1,674 ")
        return
    assert template.sv.strip() and template.en.strip(), where
    fields = _fields(template.sv)
    assert fields == _fields(template.en), where
    values = {name.split("!")[0].split(".")[0]: "X" for name in fields}
    # Numbers are formatted before they reach a template; a few take a number as is.
    for language in ("sv", "en"):
        assert template.render(language, **values).strip()


def test_swedish_and_english_differ_where_there_are_words() -> None:
    same = [
        w
        for w, t in TEMPLATES
        if isinstance(t, Text) and t.sv == t.en and any(c.isalpha() for c in _words(t.sv))
    ]
    # Equal in both languages only where the words are the same (Team, Status, ID, …).
    allowed_words = {
        "Team",
        "Status",
        "ID",
        "Problem",
        "Diagram",
        "Dialogplan",
        "Definition",
        "s",
        "kB",
    }
    for where in same:
        text = next(t for w, t in TEMPLATES if w == where)
        assert isinstance(text, Text)
        assert set(_words(text.sv).split()) <= allowed_words, (where, text.sv)


def _words(template: str) -> str:
    """The template without its placeholders and punctuation."""
    out = []
    for literal, _field, _, _ in string.Formatter().parse(template):
        out.append("".join(c if c.isalpha() else " " for c in literal))
    return " ".join(out)
