"""Load and validate `list_schemas/*.yaml` into a `SchemaSet` (sp_sync.schema.model).

Loading checks everything and reports *all* problems at once as one `SchemaError`, each problem a
plain sentence naming the file, line and column (taken from PyYAML's node marks), so IT staff can
fix a pull request in one go instead of one error per run.

The directory is a parameter: `Settings` owns `SP_SYNC_SCHEMA_DIR` and passes it in; without one
the repository's `list_schemas/` is used.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from sp_sync.errors import SchemaError
from sp_sync.schema.model import (
    COLUMN_TYPES,
    REFERENCE_SETS,
    Choice,
    ColumnSchema,
    County,
    ListSchema,
    Phase,
    Reference,
    Rule,
    SchemaSet,
)
from sp_sync.schema.rules import RULE_KINDS, RuleKind
from sp_sync.settings import is_mail_address

log = logging.getLogger(__name__)

__all__ = ["default_schema_dir", "load_schemas"]

#: SharePoint's own columns on every list; a schema must not define them (Title excepted).
RESERVED_NAMES = frozenset(
    {
        "ID",
        "Id",
        "Created",
        "Modified",
        "Author",
        "Editor",
        "Attachments",
        "ContentType",
        "ContentTypeId",
        "GUID",
        "FileRef",
        "FileLeafRef",
        "FileSystemObjectType",
        "LinkTitle",
        "Edit",
        "DocIcon",
    }
)

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")

_COMMON_COLUMN_KEYS = frozenset(
    {
        "name",
        "title",
        "title_en",
        "type",
        "required",
        "indexed",
        "description",
        "description_en",
        "default",
    }
)
_TYPE_KEYS: dict[str, frozenset[str]] = {
    "text": frozenset({"max_length"}),
    "note": frozenset({"rich_text", "max_length"}),
    "choice": frozenset({"choices", "format"}),
    "multi_choice": frozenset({"choices"}),
    "number": frozenset({"min", "max", "decimals"}),
    "boolean": frozenset(),
    "date": frozenset(),
    "datetime": frozenset(),
    "person": frozenset(),
    "lookup": frozenset({"lookup"}),
    "multi_lookup": frozenset({"lookup"}),
    "url": frozenset(),
}
_ALL_COLUMN_KEYS = _COMMON_COLUMN_KEYS.union(*_TYPE_KEYS.values())
_LIST_KEYS = frozenset({"title", "title_en", "url", "description", "description_en"})
_LIST_FILE_KEYS = frozenset({"list", "columns", "rules"})
_REFERENCE_KEYS = frozenset(REFERENCE_SETS)
_RULE_COMMON_KEYS = frozenset({"kind", "message", "message_en", "name"})

#: SharePoint's limit for a single line of text.
TEXT_MAX_LENGTH = 255


# --------------------------------------------------------------------------------------------
# YAML with positions
# --------------------------------------------------------------------------------------------


class _Doc:
    """A YAML file composed into nodes, so every value keeps its position."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.name = path.name
        self.text = text

    def where(self, node: Node | None) -> str:
        if node is None:
            return f"{self.name}"
        m = node.start_mark
        return f"{self.name}, line {m.line + 1}, column {m.column + 1}"


def _scalar(node: Node) -> Any:
    """The Python value of a scalar node (typed by PyYAML's resolver)."""
    return SafeConstructor().construct_object(node, deep=True)


def _plain(node: Node) -> Any:
    """The Python value of any node (mappings/sequences fully constructed)."""
    if isinstance(node, ScalarNode):
        return _scalar(node)
    if isinstance(node, SequenceNode):
        return [_plain(n) for n in node.value]
    if isinstance(node, MappingNode):
        return {str(_scalar(k)): _plain(v) for k, v in node.value}
    return None


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, doc: _Doc, node: Node | None, sentence: str) -> None:
        self.items.append(f"{doc.where(node)}: {sentence}")


def _mapping(
    doc: _Doc,
    node: Node | None,
    problems: _Problems,
    what: str,
    allowed: Iterable[str] | None = None,
) -> dict[str, tuple[Node, Node]] | None:
    """Key → (key node, value node) for a mapping node; reports non-mappings and unknown keys."""
    if not isinstance(node, MappingNode):
        problems.add(doc, node, f"{what} must be a mapping of keys to values.")
        return None
    out: dict[str, tuple[Node, Node]] = {}
    allowed_set = set(allowed) if allowed is not None else None
    for knode, vnode in node.value:
        key = str(_scalar(knode)) if isinstance(knode, ScalarNode) else "?"
        if key in out:
            problems.add(doc, knode, f"the key '{key}' appears twice in {what}.")
            continue
        if allowed_set is not None and key not in allowed_set:
            hint = difflib.get_close_matches(key, sorted(allowed_set), n=1)
            suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
            problems.add(
                doc,
                knode,
                f"unknown key '{key}' in {what}.{suggestion} "
                f"Allowed keys: {', '.join(sorted(allowed_set))}.",
            )
            continue
        out[key] = (knode, vnode)
    return out


def _str(
    doc: _Doc,
    m: Mapping[str, tuple[Node, Node]],
    key: str,
    problems: _Problems,
    what: str,
    *,
    required: bool = False,
    parent: Node | None = None,
) -> str | None:
    if key not in m:
        if required:
            problems.add(doc, parent, f"{what} has no '{key}'.")
        return None
    vnode = m[key][1]
    value = _scalar(vnode) if isinstance(vnode, ScalarNode) else None
    if value is None and isinstance(vnode, ScalarNode) and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        problems.add(doc, vnode, f"'{key}' in {what} must be a non-empty text.")
        return None
    return value


def _bool(
    doc: _Doc, m: Mapping[str, tuple[Node, Node]], key: str, problems: _Problems, what: str
) -> bool:
    if key not in m:
        return False
    vnode = m[key][1]
    value = _scalar(vnode) if isinstance(vnode, ScalarNode) else None
    if not isinstance(value, bool):
        problems.add(doc, vnode, f"'{key}' in {what} must be true or false.")
        return False
    return value


def _number(
    doc: _Doc,
    m: Mapping[str, tuple[Node, Node]],
    key: str,
    problems: _Problems,
    what: str,
    *,
    integer: bool = False,
) -> float | int | None:
    if key not in m:
        return None
    vnode = m[key][1]
    value = _scalar(vnode) if isinstance(vnode, ScalarNode) else None
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok:
        kind = "a whole number" if integer else "a number"
        problems.add(doc, vnode, f"'{key}' in {what} must be {kind}.")
        return None
    assert isinstance(value, int | float)
    return value


def _seq(doc: _Doc, node: Node, problems: _Problems, what: str) -> list[Node]:
    if not isinstance(node, SequenceNode):
        problems.add(doc, node, f"{what} must be a list.")
        return []
    return list(node.value)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def default_schema_dir() -> Path:
    """The repository's list_schemas/ next to the package (or the copy shipped inside it)."""
    here = Path(__file__).resolve().parent.parent  # the sp_sync package
    for candidate in (here.parent / "list_schemas", here / "list_schemas"):
        if candidate.is_dir():
            return candidate
    return here.parent / "list_schemas"


#: libyaml's parser when PyYAML was built with it (the wheels are): a night loads four schema
#: files, and the pure-Python parser took 0.07 s of it. Both build the same nodes and marks.
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose(path: Path, problems: _Problems) -> tuple[_Doc, Node | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        doc = _Doc(path, "")
        problems.add(doc, None, f"the file is not UTF-8 text ({exc.reason} at byte {exc.start}).")
        return doc, None
    doc = _Doc(path, text)
    try:
        node = yaml.compose(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        pass  # worded by the pure-Python parser below: its messages are the ones tested
    else:
        return _composed(doc, node, problems)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = (
            f"{path.name}, line {mark.line + 1}, column {mark.column + 1}" if mark else path.name
        )
        reason = exc.problem or exc.context or "invalid YAML"
        problems.items.append(f"{where}: the file is not valid YAML ({reason}).")
        return doc, None
    except yaml.YAMLError as exc:
        problems.items.append(f"{path.name}: the file is not valid YAML ({exc}).")
        return doc, None
    return _composed(doc, node, problems)


def _composed(doc: _Doc, node: Node | None, problems: _Problems) -> tuple[_Doc, Node | None]:
    if node is None:
        # A truncated deploy must not silently drop a whole list from sync and rollups.
        problems.items.append(f"{doc.path.name}, line 1, column 1: the file is empty.")
    return doc, node


def _choice_entries(
    doc: _Doc, node: Node, problems: _Problems, what: str, *, with_mail: bool = False
) -> tuple[tuple[Choice, Node], ...]:
    out: list[tuple[Choice, Node]] = []
    seen: set[str] = set()
    for item in _seq(doc, node, problems, what):
        if isinstance(item, ScalarNode):
            value = _scalar(item)
            if not isinstance(value, str) or not value.strip():
                problems.add(doc, item, f"a value in {what} must be a non-empty text.")
                continue
            ch = Choice(value, None)
        else:
            keys = {"name", "en", "mail"} if with_mail else {"name", "en"}
            m = _mapping(doc, item, problems, f"a value in {what}", keys)
            if m is None:
                continue
            name = _str(doc, m, "name", problems, f"a value in {what}", required=True, parent=item)
            en = _str(doc, m, "en", problems, f"a value in {what}")
            if name is None:
                continue
            mail = _str(doc, m, "mail", problems, f"'{name}'") if with_mail else None
            if mail is not None and not is_mail_address(mail.strip()):
                problems.add(
                    doc,
                    m["mail"][1],
                    f"the department '{name}' has 'mail: {mail}', which is not one plain mail "
                    "address (e.g. foretag@myndighet.se).",
                )
                mail = None
            ch = Choice(name, en, mail.strip() if mail else None)
        if ch.name in seen:
            problems.add(doc, item, f"the value '{ch.name}' appears twice in {what}.")
            continue
        seen.add(ch.name)
        out.append((ch, item))
    return tuple(out)


def _load_reference(doc: _Doc, root: Node | None, problems: _Problems) -> Reference:
    empty = Reference((), (), (), (), ())
    if root is None:
        return empty
    m = _mapping(doc, root, problems, "reference.yaml", _REFERENCE_KEYS)
    if m is None:
        return empty
    for key in REFERENCE_SETS:
        if key not in m:
            problems.add(doc, root, f"reference.yaml has no '{key}' set.")

    def simple(key: str) -> tuple[Choice, ...]:
        if key not in m:
            return ()
        # Departments may name the address their weekly digest goes to (sp_sync.notify).
        entries = _choice_entries(
            doc, m[key][1], problems, f"'{key}'", with_mail=key == "departments"
        )
        if not entries and isinstance(m[key][1], SequenceNode | ScalarNode):
            problems.add(doc, m[key][1], f"the set '{key}' is empty.")
        return tuple(c for c, _ in entries)

    teams = simple("teams")
    subject_areas = simple("subject_areas")
    departments = simple("departments")
    team_names = {t.name for t in teams}

    counties: list[County] = []
    if "counties" in m:
        seen_names: set[str] = set()
        seen_codes: dict[str, str] = {}
        items = _seq(doc, m["counties"][1], problems, "'counties'")
        if not items:
            problems.add(doc, m["counties"][1], "the set 'counties' is empty.")
        for item in items:
            cm = _mapping(doc, item, problems, "a county", {"name", "code", "team"})
            if cm is None:
                continue
            name = _str(doc, cm, "name", problems, "a county", required=True, parent=item)
            what = f"the county '{name}'" if name else "a county"
            code = _str(doc, cm, "code", problems, what, required=True, parent=item)
            team = _str(doc, cm, "team", problems, what, required=True, parent=item)
            if name is None or code is None or team is None:
                continue
            if team_names and team not in team_names:
                problems.add(
                    doc,
                    cm["team"][1],
                    f"the county '{name}' belongs to the team '{team}', which is not one of the "
                    f"teams ({', '.join(sorted(team_names))}).",
                )
            if name in seen_names:
                problems.add(doc, item, f"the county '{name}' appears twice.")
                continue
            if code in seen_codes:
                problems.add(
                    doc,
                    cm["code"][1],
                    f"the county code '{code}' of '{name}' is already used by "
                    f"'{seen_codes[code]}'.",
                )
                continue
            seen_names.add(name)
            seen_codes[code] = name
            counties.append(County(name, code, team))

    phases: list[Phase] = []
    if "phases" in m:
        items = _seq(doc, m["phases"][1], problems, "'phases'")
        if not items:
            problems.add(doc, m["phases"][1], "the set 'phases' is empty.")
        numbers: set[int] = set()
        pnames: set[str] = set()
        for item in items:
            pm = _mapping(doc, item, problems, "a phase", {"number", "name", "en"})
            if pm is None:
                continue
            name = _str(doc, pm, "name", problems, "a phase", required=True, parent=item)
            en = _str(doc, pm, "en", problems, "a phase")
            num = _number(doc, pm, "number", problems, "a phase", integer=True)
            if num is None and "number" not in pm:
                problems.add(doc, item, f"the phase '{name}' has no 'number'.")
            if name is None or num is None:
                continue
            if int(num) in numbers:
                problems.add(doc, pm["number"][1], f"the phase number {num} is used twice.")
                continue
            if name in pnames:
                problems.add(doc, item, f"the phase '{name}' appears twice.")
                continue
            numbers.add(int(num))
            pnames.add(name)
            phases.append(Phase(int(num), name, en))
        phases.sort(key=lambda p: p.number)

    return Reference(tuple(counties), teams, tuple(phases), subject_areas, departments)


@dataclass
class _RawList:
    doc: _Doc
    schema: ListSchema
    lookup_nodes: dict[str, Node]  # column name -> node of its lookup list value
    rule_nodes: list[tuple[Rule, Node, dict[str, tuple[Node, Node]]]]


def _load_column(
    doc: _Doc, node: Node, problems: _Problems, reference: Reference, list_title: str
) -> tuple[ColumnSchema, Node | None] | None:
    m = _mapping(doc, node, problems, f"a column of '{list_title}'", _ALL_COLUMN_KEYS)
    if m is None:
        return None
    name = _str(doc, m, "name", problems, f"a column of '{list_title}'", required=True, parent=node)
    if name is None:
        return None
    what = f"the column '{name}'"
    ok = True
    if not _NAME_RE.fullmatch(name):
        reason = (
            "contains non-ASCII letters"
            if any(ord(ch) > 127 for ch in name)
            else "is not a valid internal name"
        )
        problems.add(
            doc,
            m["name"][1],
            f"the internal name '{name}' {reason}: use 1–32 ASCII letters, digits or '_', "
            "starting with a letter (the Swedish text goes in 'title').",
        )
        ok = False
    elif name in RESERVED_NAMES:
        problems.add(
            doc, m["name"][1], f"the internal name '{name}' is one of SharePoint's own columns."
        )
        ok = False
    title = _str(doc, m, "title", problems, what, required=True, parent=node)
    title_en = _str(doc, m, "title_en", problems, what)
    ctype = _str(doc, m, "type", problems, what, required=True, parent=node)
    if ctype is None:
        return None
    if ctype not in COLUMN_TYPES:
        hint = difflib.get_close_matches(ctype, COLUMN_TYPES, n=1)
        suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
        problems.add(
            doc,
            m["type"][1],
            f"{what} has the unknown type '{ctype}'.{suggestion} Known types: "
            f"{', '.join(COLUMN_TYPES)}.",
        )
        return None
    allowed = _COMMON_COLUMN_KEYS | _TYPE_KEYS[ctype]
    for key, (knode, _v) in m.items():
        if key not in allowed:
            problems.add(doc, knode, f"'{key}' does not apply to {what} of type '{ctype}'.")
            ok = False
    required = _bool(doc, m, "required", problems, what)
    indexed = _bool(doc, m, "indexed", problems, what)
    rich_text = _bool(doc, m, "rich_text", problems, what)
    description = _str(doc, m, "description", problems, what)
    description_en = _str(doc, m, "description_en", problems, what)
    max_length = _number(doc, m, "max_length", problems, what, integer=True)
    if ctype == "text":
        if max_length is None:
            max_length = TEXT_MAX_LENGTH
        elif not 1 <= max_length <= TEXT_MAX_LENGTH:
            problems.add(
                doc,
                m["max_length"][1],
                f"'max_length' of {what} must be between 1 and {TEXT_MAX_LENGTH}.",
            )
    elif max_length is not None and max_length < 1:
        problems.add(doc, m["max_length"][1], f"'max_length' of {what} must be at least 1.")
    vmin = _number(doc, m, "min", problems, what)
    vmax = _number(doc, m, "max", problems, what)
    if vmin is not None and vmax is not None and vmin > vmax:
        problems.add(doc, m["min"][1], f"'min' of {what} is larger than its 'max'.")
    decimals = _number(doc, m, "decimals", problems, what, integer=True)
    fmt = _str(doc, m, "format", problems, what) or "Dropdown"
    if fmt not in ("Dropdown", "RadioButtons"):
        problems.add(doc, m["format"][1], f"'format' of {what} must be Dropdown or RadioButtons.")

    choice_items: tuple[Choice, ...] = ()
    choice_ref: str | None = None
    if ctype in ("choice", "multi_choice"):
        if "choices" not in m:
            problems.add(doc, node, f"{what} is a {ctype} column but has no 'choices'.")
            ok = False
        else:
            cnode = m["choices"][1]
            if isinstance(cnode, MappingNode):
                cm = _mapping(doc, cnode, problems, f"'choices' of {what}", {"ref"})
                ref = (
                    _str(
                        doc,
                        cm,
                        "ref",
                        problems,
                        f"'choices' of {what}",
                        required=True,
                        parent=cnode,
                    )
                    if cm is not None
                    else None
                )
                if ref is not None and cm is not None:
                    if ref not in REFERENCE_SETS:
                        hint = difflib.get_close_matches(ref, REFERENCE_SETS, n=1)
                        suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
                        problems.add(
                            doc,
                            cm["ref"][1],
                            f"{what} refers to the unknown reference set '{ref}'.{suggestion} "
                            f"Known sets: {', '.join(REFERENCE_SETS)}.",
                        )
                        ok = False
                    else:
                        choice_ref = ref
                        choice_items = reference.choice_set(ref)
                        if not choice_items:
                            problems.add(
                                doc,
                                cm["ref"][1],
                                f"{what} uses the set '{ref}', which is empty.",
                            )
                            ok = False
            else:
                entries = _choice_entries(doc, cnode, problems, f"the choices of {what}")
                choice_items = tuple(c for c, _ in entries)
                if not choice_items:
                    problems.add(doc, cnode, f"{what} has an empty choice set.")
                    ok = False
    lookup_list = lookup_column = None
    lookup_node: Node | None = None
    if ctype in ("lookup", "multi_lookup"):
        if "lookup" not in m:
            problems.add(doc, node, f"{what} is a {ctype} column but has no 'lookup'.")
            ok = False
        else:
            lm = _mapping(doc, m["lookup"][1], problems, f"'lookup' of {what}", {"list", "column"})
            if lm is not None:
                lookup_list = _str(
                    doc,
                    lm,
                    "list",
                    problems,
                    f"'lookup' of {what}",
                    required=True,
                    parent=m["lookup"][1],
                )
                lookup_column = _str(doc, lm, "column", problems, f"'lookup' of {what}") or "Title"
                lookup_node = lm["list"][1] if "list" in lm else None
            if lookup_list is None:
                ok = False

    default: Any = None
    if "default" in m:
        dnode = m["default"][1]
        default = _plain(dnode)
        if ctype in ("choice", "multi_choice") and choice_items:
            names = {c.name for c in choice_items}
            values = default if isinstance(default, list) else [default]
            bad = [v for v in values if v not in names]
            if bad:
                problems.add(
                    doc,
                    dnode,
                    f"the default '{bad[0]}' of {what} is not one of its choices.",
                )
        elif ctype == "number" and (
            isinstance(default, bool) or not isinstance(default, int | float)
        ):
            problems.add(doc, dnode, f"the default of {what} must be a number.")
        elif ctype == "boolean" and not isinstance(default, bool):
            problems.add(doc, dnode, f"the default of {what} must be true or false.")
        elif ctype in ("text", "note") and not isinstance(default, str):
            problems.add(doc, dnode, f"the default of {what} must be a text.")
        elif ctype in ("person", "lookup", "multi_lookup", "date", "datetime", "url") and (
            default is not None
        ):
            problems.add(doc, dnode, f"{what} of type '{ctype}' cannot have a default.")
    if not ok or title is None:
        return None
    col = ColumnSchema(
        name=name,
        title=title,
        type=ctype,
        title_en=title_en,
        required=required,
        indexed=indexed,
        choices=tuple(c.name for c in choice_items),
        choice_items=choice_items,
        choice_ref=choice_ref,
        format=fmt,
        lookup_list=lookup_list,
        lookup_column=lookup_column,
        description=description,
        description_en=description_en,
        default=default,
        max_length=int(max_length) if max_length is not None else None,
        rich_text=rich_text,
        min=vmin,
        max=vmax,
        decimals=int(decimals) if decimals is not None else None,
        source=doc.where(node),
    )
    return col, lookup_node


def _load_list(
    doc: _Doc, root: Node | None, problems: _Problems, reference: Reference
) -> _RawList | None:
    if root is None:
        return None
    m = _mapping(doc, root, problems, doc.name, _LIST_FILE_KEYS)
    if m is None:
        return None
    if "list" not in m:
        problems.add(doc, root, f"{doc.name} has no 'list' section (title, url, description).")
        return None
    lm = _mapping(doc, m["list"][1], problems, "the 'list' section", _LIST_KEYS)
    if lm is None:
        return None
    title = _str(
        doc, lm, "title", problems, "the 'list' section", required=True, parent=m["list"][1]
    )
    url = _str(doc, lm, "url", problems, "the 'list' section", required=True, parent=m["list"][1])
    if url is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", url):
        problems.add(
            doc,
            lm["url"][1],
            f"the list URL name '{url}' must be ASCII letters, "
            "digits, '_' or '-' (it becomes part of every link).",
        )
    title_en = _str(doc, lm, "title_en", problems, "the 'list' section")
    description = _str(doc, lm, "description", problems, "the 'list' section")
    description_en = _str(doc, lm, "description_en", problems, "the 'list' section")
    if title is None or url is None:
        return None

    columns: list[ColumnSchema] = []
    lookup_nodes: dict[str, Node] = {}
    names: dict[str, Node] = {}
    if "columns" not in m:
        problems.add(doc, root, f"the list '{title}' has no 'columns'.")
    else:
        for cnode in _seq(doc, m["columns"][1], problems, "'columns'"):
            # Duplicate names are checked on the raw node so a broken column still counts.
            if isinstance(cnode, MappingNode):
                for k, v in cnode.value:
                    if (
                        isinstance(k, ScalarNode)
                        and k.value == "name"
                        and isinstance(v, ScalarNode)
                    ):
                        if v.value in names:
                            first = names[v.value].start_mark.line + 1
                            problems.add(
                                doc,
                                v,
                                f"the internal name '{v.value}' is used twice in the list "
                                f"'{title}' (first on line {first}).",
                            )
                        else:
                            names[v.value] = v
            loaded = _load_column(doc, cnode, problems, reference, title)
            if loaded is None:
                continue
            col, lnode = loaded
            if any(c.name == col.name for c in columns):
                continue
            columns.append(col)
            if lnode is not None:
                lookup_nodes[col.name] = lnode

    rule_nodes: list[tuple[Rule, Node, dict[str, tuple[Node, Node]]]] = []
    if "rules" in m:
        rnode = m["rules"][1]
        items = (
            []
            if isinstance(rnode, ScalarNode) and rnode.value in ("", "null", "~")
            else (_seq(doc, rnode, problems, "'rules'"))
        )
        for item in items:
            rm = _mapping(doc, item, problems, "a rule")
            if rm is None:
                continue
            kind = _str(doc, rm, "kind", problems, "a rule", required=True, parent=item)
            if kind is None:
                continue
            spec = RULE_KINDS.get(kind)
            if spec is None:
                hint = difflib.get_close_matches(kind, sorted(RULE_KINDS), n=1)
                suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
                problems.add(
                    doc,
                    rm["kind"][1],
                    f"unknown rule kind '{kind}'.{suggestion} Known kinds: "
                    f"{', '.join(sorted(RULE_KINDS))}.",
                )
                continue
            allowed = _RULE_COMMON_KEYS | set(spec.required) | set(spec.optional)
            bad = False
            for key, (knode, _v) in rm.items():
                if key not in allowed:
                    hint = difflib.get_close_matches(key, sorted(allowed), n=1)
                    suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
                    problems.add(doc, knode, f"unknown key '{key}' in a '{kind}' rule.{suggestion}")
                    bad = True
            for key in spec.required:
                if key not in rm:
                    problems.add(doc, item, f"the '{kind}' rule has no '{key}'.")
                    bad = True
            if bad:
                continue
            params = {k: _plain(v) for k, (_kn, v) in rm.items() if k not in _RULE_COMMON_KEYS}
            rule = Rule(
                kind=kind,
                params=params,
                message=_str(doc, rm, "message", problems, "a rule"),
                message_en=_str(doc, rm, "message_en", problems, "a rule"),
                name=_str(doc, rm, "name", problems, "a rule"),
                source=doc.where(item),
            )
            rule_nodes.append((rule, item, rm))

    schema = ListSchema(
        title=title,
        url=url,
        columns=tuple(columns),
        rules=tuple(r for r, _n, _m in rule_nodes),
        title_en=title_en,
        description=description,
        description_en=description_en,
        file=doc.name,
    )
    return _RawList(doc, schema, lookup_nodes, rule_nodes)


def _rule_column_refs(
    rm: Mapping[str, tuple[Node, Node]], spec: RuleKind
) -> list[tuple[str, Node]]:
    """(column name, node) for every key of the rule that names a column."""
    out: list[tuple[str, Node]] = []
    for path in spec.column_keys:
        parts = path.split(".")
        node: Node | None = rm[parts[0]][1] if parts[0] in rm else None
        for part in parts[1:]:
            if not isinstance(node, MappingNode):
                node = None
                break
            node = next(
                (v for k, v in node.value if isinstance(k, ScalarNode) and k.value == part), None
            )
        if node is None:
            continue
        if isinstance(node, ScalarNode):
            out.append((str(node.value), node))
        elif isinstance(node, SequenceNode):
            out.extend((str(n.value), n) for n in node.value if isinstance(n, ScalarNode))
    return out


def _dependency_order(raw: list[_RawList], problems: _Problems) -> list[_RawList]:
    """Lists ordered so that every lookup target comes before the lists that look it up."""
    by_title = {r.schema.title: r for r in raw}
    ordered: list[_RawList] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(r: _RawList, chain: list[str]) -> None:
        t = r.schema.title
        if state.get(t) == 2:
            return
        if state.get(t) == 1:
            problems.add(
                r.doc,
                None,
                f"the lookups form a cycle ({' → '.join([*chain, t])}); SharePoint needs each "
                "lookup's target list to exist first.",
            )
            return
        state[t] = 1
        for target in r.schema.lookup_targets:
            if target in by_title and target != t:
                visit(by_title[target], [*chain, t])
        state[t] = 2
        ordered.append(r)

    for r in raw:
        visit(r, [])
    return ordered


def load_schemas(directory: Path | str | None = None) -> SchemaSet:
    """Load and validate every schema file in `directory` (default: `default_schema_dir()`).

    The directory comes from the caller (Settings passes `SP_SYNC_SCHEMA_DIR`); this function
    reads no environment variable.

    Raises `SchemaError` listing *all* problems found, each with file, line and column.
    """
    directory = Path(directory) if directory is not None else default_schema_dir()
    problems = _Problems()
    if not directory.is_dir():
        raise SchemaError([f"{directory}: the schema directory does not exist."])
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    ref_path = next((p for p in files if p.stem == "reference"), None)
    if ref_path is None:
        raise SchemaError([f"{directory}: there is no reference.yaml (counties, phases, …)."])
    digest = hashlib.sha256()
    for p in files:
        digest.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")

    ref_doc, ref_root = _compose(ref_path, problems)
    reference = _load_reference(ref_doc, ref_root, problems)

    raw: list[_RawList] = []
    unreadable = 0
    for p in files:
        if p == ref_path:
            continue
        doc, root = _compose(p, problems)
        loaded = _load_list(doc, root, problems, reference)
        if loaded is not None:
            raw.append(loaded)
        else:
            unreadable += 1
    if not raw and not problems.items:
        problems.items.append(f"{directory}: there are no list schema files besides reference.")

    titles: dict[str, _RawList] = {}
    urls: dict[str, _RawList] = {}
    for r in raw:
        t = r.schema.title
        if t in titles:
            problems.add(r.doc, None, f"the list title '{t}' is also used in {titles[t].doc.name}.")
        titles.setdefault(t, r)
        u = r.schema.url.lower()
        if u in urls:
            problems.add(
                r.doc, None, f"the list URL '{r.schema.url}' is also used in {urls[u].doc.name}."
            )
        urls.setdefault(u, r)

    for r in raw:
        for col in r.schema.columns:
            if not col.lookup_list:
                continue
            node = r.lookup_nodes.get(col.name)
            target = titles.get(col.lookup_list)
            if target is None and unreadable:
                # The target may be defined in the file we could not read; that problem is
                # already reported, a second one here would only mislead.
                continue
            if target is None:
                hint = difflib.get_close_matches(col.lookup_list, sorted(titles), n=1)
                suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
                problems.add(
                    r.doc,
                    node,
                    f"the column '{col.name}' looks up the list '{col.lookup_list}', which does "
                    f"not exist.{suggestion} Lists: {', '.join(sorted(titles))}.",
                )
            elif col.lookup_column and not (
                col.lookup_column == "Title" or target.schema.has_column(col.lookup_column)
            ):
                problems.add(
                    r.doc,
                    node,
                    f"the column '{col.name}' shows the column '{col.lookup_column}' of "
                    f"'{col.lookup_list}', which has no such column.",
                )
        for rule, _item, rm in r.rule_nodes:
            spec = RULE_KINDS[rule.kind]
            for cname, cnode in _rule_column_refs(rm, spec):
                if not r.schema.has_column(cname) and cname not in ("Created", "Modified"):
                    problems.add(
                        r.doc,
                        cnode,
                        f"the '{rule.kind}' rule refers to the column '{cname}', which the list "
                        f"'{r.schema.title}' does not have.",
                    )
        if not r.schema.has_column("Title"):
            problems.add(
                r.doc,
                None,
                f"the list '{r.schema.title}' has no 'Title' column "
                "(every SharePoint list has one; give it a Swedish title).",
            )

    ordered = _dependency_order(raw, problems)
    if problems.items:
        raise SchemaError(problems.items)
    schemas = SchemaSet(
        lists={r.schema.title: r.schema for r in ordered},
        reference=reference,
        version=digest.hexdigest()[:16],
        directory=str(directory),
    )
    log.info(
        "loaded %d list schemas from %s (version %s)",
        len(schemas.lists),
        directory,
        schemas.version,
    )
    return schemas
