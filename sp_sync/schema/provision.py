"""Provisioning: plan and apply the changes that make a site match `list_schemas/`.

    state = read_site_state(client, schemas)   # sp_sync.schema.site
    p = plan(schemas, state)            # what would change; destructive steps listed apart
    print(p.format_text("sv"))
    result = apply(client, p)           # destructive steps only with allow_destructive=True

Fields are created with `CreateFieldAsXml` so the internal name is exactly the schema's ASCII
name while the display name is Swedish; existing columns are changed in place with a MERGE
(choices, required, indexed, title, description, default) — the thing PnP templates cannot do.
`plan` is a pure function of the schemas and a `SiteState`, so it is tested without SharePoint;
only `apply` and `run_provision` do I/O. Drift (hand edits on the site) is `sp_sync.schema.drift`.
"""

from __future__ import annotations

import logging
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from sp_sync.errors import PermissionDeniedError
from sp_sync.i18n import Plural, Text
from sp_sync.schema.model import ColumnSchema, SchemaSet
from sp_sync.schema.site import (
    SP_TYPES,
    SiteField,
    SiteState,
    jsonable,
    read_site_state,
    same_type,
    site_type_text,
    type_text,
)

if TYPE_CHECKING:
    from sp_sync.sharepoint import SharePointClient

log = logging.getLogger(__name__)

__all__ = [
    "DATA_CHANGED_COLUMN",
    "LAST_CHECKED_COLUMN",
    "ROLLUP_LIBRARY_COLUMNS",
    "ApplyResult",
    "AttributeChange",
    "Plan",
    "PlanAction",
    "PlanStep",
    "apply",
    "field_schema_xml",
    "library_column_steps",
    "plan",
    "run_provision",
]


# Creating lists and columns is a Manage Lists operation: Sites.Selected 'write' lets the nightly
# run read items and upload files, but provisioning needs the 'manage' (or 'fullcontrol') role.
PERMISSION_HINT = (
    "provisioning needs the 'manage' or 'fullcontrol' role on {site} through Sites.Selected "
    "(the nightly run itself needs only 'write')"
)


def _en(language: str) -> bool:
    return language.lower().startswith("en")


# --------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeChange:
    """One attribute of a list or column that provisioning changes, with old and new value."""

    attribute: str  # title, required, indexed, description, default, choices
    old: Any  # text, a flag, or the choices as a tuple
    new: Any

    def to_dict(self) -> dict[str, Any]:
        return {"attribute": self.attribute, "old": jsonable(self.old), "new": jsonable(self.new)}


#: What a plan step does; the last three are destructive (see DESTRUCTIVE_ACTIONS).
PlanAction = Literal[
    "create_list",
    "change_list",
    "add_column",
    "change_column",
    "add_index",
    "remove_column",
    "remove_choices",
    "retype_column",
]

_ACTION_TEXT: dict[PlanAction, tuple[str, str]] = {
    "create_list": ("Skapa listan", "Create list"),
    "change_list": ("Ändra listan", "Change list"),
    "add_column": ("Lägg till kolumnen", "Add column"),
    "change_column": ("Ändra kolumnen", "Change column"),
    "add_index": ("Indexera kolumnen", "Index column"),
    "remove_column": ("Ta bort kolumnen", "Remove column"),
    "remove_choices": ("Ta bort val i kolumnen", "Remove choices from column"),
    "retype_column": ("Byt typ på kolumnen", "Change the type of column"),
}

DESTRUCTIVE_ACTIONS = frozenset({"remove_column", "remove_choices", "retype_column"})


@dataclass(frozen=True)
class PlanStep:
    """One change provisioning would make. `column` is the internal name (None for lists)."""

    action: PlanAction
    list_title: str
    column: str | None = None
    changes: tuple[AttributeChange, ...] = ()
    #: Free-form facts for the text/JSON output (type, choices, values in use, …).
    detail: Mapping[str, Any] = field(default_factory=dict)
    #: The schema column to create (add_column/retype_column); not part of the JSON.
    schema_column: ColumnSchema | None = field(default=None, compare=False, repr=False)

    @property
    def destructive(self) -> bool:
        return self.action in DESTRUCTIVE_ACTIONS

    def describe(self, language: str = "sv") -> str:
        sv, en = _ACTION_TEXT[self.action]
        verb = en if _en(language) else sv
        target = (
            f"'{self.list_title}'" if self.column is None else (f"{self.list_title}.{self.column}")
        )
        parts = [f"{verb} {target}"]
        if self.action == "add_column" and self.schema_column is not None:
            c = self.schema_column
            parts.append(f"({c.type}, '{c.label(language)}')")
        if self.action == "retype_column":
            parts.append(f"({self.detail.get('old_type')} → {self.detail.get('new_type')})")
        if self.action == "remove_choices":
            values = ", ".join(self.detail.get("values", ()))
            in_use = ", ".join(self.detail.get("in_use", ()))
            parts.append(f"[{values}]")
            if in_use:
                parts.append(("(still in use: " if _en(language) else "(används: ") + in_use + ")")
            elif self.detail.get("in_use_unknown"):
                parts.append(
                    "(use not checked)" if _en(language) else "(användning ej kontrollerad)"
                )
        for ch in self.changes:
            if ch.attribute == "choices":
                added = [c for c in ch.new if c not in ch.old]
                removed = [c for c in ch.old if c not in ch.new]
                bits = []
                if added:
                    bits.append("+" + ", +".join(added))
                if removed:
                    bits.append("-" + ", -".join(removed))
                parts.append(
                    f"choices: {'; '.join(bits) or 'order'}"
                    if _en(language)
                    else f"val: {'; '.join(bits) or 'ordning'}"
                )
            else:
                parts.append(f"{ch.attribute}: {ch.old!r} → {ch.new!r}")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "list": self.list_title}
        if self.column is not None:
            out["column"] = self.column
        if self.changes:
            out["changes"] = [c.to_dict() for c in self.changes]
        if self.schema_column is not None:
            c = self.schema_column
            out["type"] = c.type
            out["title"] = c.title
        if self.detail:
            out["detail"] = {k: jsonable(v) for k, v in self.detail.items()}
        out["destructive"] = self.destructive
        return out


@dataclass(frozen=True)
class Plan:
    """What `apply` would do: safe steps in order, destructive ones listed separately."""

    steps: tuple[PlanStep, ...]
    destructive: tuple[PlanStep, ...]
    site_url: str = ""
    schema_version: str = ""

    @property
    def empty(self) -> bool:
        return not self.steps and not self.destructive

    def _of(self, action: str) -> tuple[PlanStep, ...]:
        return tuple(s for s in self.steps if s.action == action)

    @property
    def lists_to_create(self) -> tuple[PlanStep, ...]:
        return self._of("create_list")

    @property
    def lists_to_change(self) -> tuple[PlanStep, ...]:
        return self._of("change_list")

    @property
    def columns_to_add(self) -> tuple[PlanStep, ...]:
        return self._of("add_column")

    @property
    def columns_to_change(self) -> tuple[PlanStep, ...]:
        return self._of("change_column")

    @property
    def indexes_to_add(self) -> tuple[PlanStep, ...]:
        return self._of("add_index")

    def format_text(
        self, language: str = "sv", *, verbose: bool = True, schemas: SchemaSet | None = None
    ) -> str:
        """The plan for people: every step (`verbose`), or one line per list naming lists and
        columns by their display names (what an administrator sees on the site)."""
        en = _en(language)
        if self.empty:
            return "No changes." if en else "Inga ändringar."
        if not verbose:
            return _compact_plan(self, language, schemas)
        lines: list[str] = []
        groups = (
            ("create_list", "Lists to create", "Listor att skapa"),
            ("change_list", "Lists to change", "Listor att ändra"),
            ("add_column", "Columns to add", "Kolumner att lägga till"),
            ("change_column", "Columns to change", "Kolumner att ändra"),
            ("add_index", "Indexes to add", "Index att lägga till"),
        )
        for action, title_en, title_sv in groups:
            steps = self._of(action)
            if steps:
                lines.append(f"{title_en if en else title_sv} ({len(steps)}):")
                lines.extend(f"  - {s.describe(language)}" for s in steps)
        if self.destructive:
            lines.append(
                f"Destructive changes ({len(self.destructive)}; need --allow-destructive):"
                if en
                else f"Destruktiva ändringar ({len(self.destructive)}; kräver --allow-destructive):"
            )
            lines.extend(f"  - {s.describe(language)}" for s in self.destructive)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site_url,
            "schema_version": self.schema_version,
            "empty": self.empty,
            "steps": [s.to_dict() for s in self.steps],
            "destructive": [s.to_dict() for s in self.destructive],
        }


_COMPACT_HEAD = Text(
    sv="Plan: {count} ändringar i {lists} (hela planen med -v)",
    en="Plan: {count} changes in {lists} (full plan with -v)",
)
_COMPACT_PARTS: dict[str, Text] = {
    "create_list": Text(sv="skapas", en="created"),
    "change_list": Text(sv="listans egenskaper ändras", en="list properties change"),
    "add_column": Text(sv="nya kolumner: {names}", en="new columns: {names}"),
    "change_column": Text(sv="ändrade kolumner: {names}", en="changed columns: {names}"),
    "add_index": Text(sv="index på: {names}", en="indexed: {names}"),
    "destructive": Text(
        sv="kräver --allow-destructive: {names}", en="need --allow-destructive: {names}"
    ),
}
_LISTS_COUNT = Plural("lista", "listor", "list", "lists")


def _column_label(step: PlanStep, language: str, schemas: SchemaSet | None) -> str:
    if step.column is None:
        return step.list_title
    if step.schema_column is not None:
        return step.schema_column.label(language)
    ls = schemas.get(step.list_title) if schemas is not None else None
    if ls is not None and ls.has_column(step.column):
        return ls.column(step.column).label(language)
    return step.column


def _compact_plan(plan: Plan, language: str, schemas: SchemaSet | None) -> str:
    by_list: dict[str, dict[str, list[str]]] = {}
    for step in (*plan.steps, *plan.destructive):
        key = "destructive" if step.destructive else step.action
        names = by_list.setdefault(step.list_title, {}).setdefault(key, [])
        # No-break spaces keep a name such as "Giltig till" on one line when wrapped below.
        label = _column_label(step, language, schemas).replace(" ", "\u00a0")
        if label not in names:
            names.append(label)
    count = len(plan.steps) + len(plan.destructive)
    lines = [
        _COMPACT_HEAD.render(
            language, count=count, lists=_LISTS_COUNT.render(language, len(by_list))
        )
    ]
    for title, actions in by_list.items():
        parts = [
            _COMPACT_PARTS[key].render(language, names=", ".join(actions[key]))
            for key in _COMPACT_PARTS
            if key in actions
        ]
        lines.append(
            textwrap.fill(
                f"{title}: " + "; ".join(parts),
                width=100,
                initial_indent="  ",
                subsequent_indent="      ",
                break_on_hyphens=False,
            ).replace("\u00a0", " ")
        )
    return "\n".join(lines)


def _builtin_fields_of_new_list() -> dict[str, SiteField]:
    """What a freshly created generic list has of the columns provisioning manages."""
    return {
        "Title": SiteField("Title", "Title", "Text", "text", required=True, builtin=True),
        "Modified": SiteField("Modified", "Modified", "DateTime", "datetime", builtin=True),
    }


def _default_text(col: ColumnSchema) -> str | None:
    """The schema default as SharePoint stores it (DefaultValue is a string)."""
    d = col.default
    if d is None:
        return None
    if isinstance(d, bool):
        return "1" if d else "0"
    if isinstance(d, list):
        return ";#".join(str(v) for v in d)
    if isinstance(d, float) and d.is_integer():
        return str(int(d))
    return str(d)


def plan(
    schemas: SchemaSet,
    site_state: SiteState,
    *,
    in_use: Mapping[str, Mapping[str, Collection[str]]] | None = None,
) -> Plan:
    """Compare the schemas with the site and list the changes, destructive ones apart.

    `in_use` maps list title → column → choice values that items still use; removing a
    choice that is in use (or whose use is unknown) is destructive, removing an unused one is not.
    """
    steps: list[PlanStep] = []
    destructive: list[PlanStep] = []
    for ls in schemas.lists.values():
        site_list = site_state.lists.get(ls.title)
        if site_list is None:
            steps.append(
                PlanStep(
                    "create_list",
                    ls.title,
                    detail={"url": ls.url, "description": ls.description or ""},
                )
            )
            fields: Mapping[str, SiteField] = _builtin_fields_of_new_list()
        else:
            fields = site_list.fields
            if (ls.description or "") != (site_list.description or ""):
                steps.append(
                    PlanStep(
                        "change_list",
                        ls.title,
                        None,
                        (
                            AttributeChange(
                                "description", site_list.description, ls.description or ""
                            ),
                        ),
                    )
                )
        used = (in_use or {}).get(ls.title, {})
        for col in ls.columns:
            f = fields.get(col.name)
            if f is None:
                steps.append(PlanStep("add_column", ls.title, col.name, schema_column=col))
                continue
            if not same_type(col, f):
                destructive.append(
                    PlanStep(
                        "retype_column",
                        ls.title,
                        col.name,
                        detail={"old_type": site_type_text(f), "new_type": type_text(col)},
                        schema_column=col,
                    )
                )
                continue
            changes: list[AttributeChange] = []
            if f.title != col.title:
                changes.append(AttributeChange("title", f.title, col.title))
            if f.required != col.required:
                changes.append(AttributeChange("required", f.required, col.required))
            if not col.indexed and f.indexed and not f.builtin:
                changes.append(AttributeChange("indexed", True, False))
            if (col.description or "") != (f.description or "") and not (
                f.builtin and col.description is None
            ):
                changes.append(AttributeChange("description", f.description, col.description or ""))
            want_default = _default_text(col)
            if want_default != f.default and not (want_default is None and f.builtin):
                changes.append(AttributeChange("default", f.default, want_default))
            removal: PlanStep | None = None
            if col.type in ("choice", "multi_choice"):
                site_choices = tuple(f.choices)
                want = tuple(col.choices)
                if site_choices != want:
                    removed = [c for c in site_choices if c not in want]
                    col_used = used.get(col.name)
                    risky = (
                        removed if col_used is None else [c for c in removed if c in set(col_used)]
                    )
                    if risky:
                        # Keep the risky values until --allow-destructive removes them.
                        interim = want + tuple(c for c in site_choices if c in risky)
                        if interim != site_choices:
                            changes.append(AttributeChange("choices", site_choices, interim))
                        removal = PlanStep(
                            "remove_choices",
                            ls.title,
                            col.name,
                            changes=(AttributeChange("choices", interim, want),),
                            detail={
                                "values": tuple(risky),
                                "in_use": tuple(c for c in risky if col_used and c in col_used),
                                "in_use_unknown": col_used is None,
                            },
                        )
                    else:
                        changes.append(AttributeChange("choices", site_choices, want))
            if changes:
                steps.append(PlanStep("change_column", ls.title, col.name, tuple(changes)))
            if col.indexed and not f.indexed:
                steps.append(PlanStep("add_index", ls.title, col.name))
            if removal is not None:
                destructive.append(removal)
        modified = fields.get("Modified")
        if modified is not None and not modified.indexed and not ls.has_column("Modified"):
            steps.append(PlanStep("add_index", ls.title, "Modified", detail={"builtin": True}))
        for name, f in fields.items():
            if f.builtin or ls.has_column(name):
                continue
            destructive.append(
                PlanStep(
                    "remove_column",
                    ls.title,
                    name,
                    detail={"title": f.title, "type": site_type_text(f)},
                )
            )
    return Plan(tuple(steps), tuple(destructive), site_state.site_url, schemas.version)


# --------------------------------------------------------------------------------------------
# Apply
# --------------------------------------------------------------------------------------------


def field_schema_xml(col: ColumnSchema, *, lookup_list_id: str | None = None) -> str:
    """The CAML `<Field …/>` that creates `col` with its exact internal name."""
    sp_type = SP_TYPES[col.type]
    attrs: dict[str, str] = {
        "Type": sp_type,
        "Name": col.name,
        "StaticName": col.name,
        "DisplayName": col.title,
        "Required": "TRUE" if col.required else "FALSE",
    }
    if col.indexed:
        attrs["Indexed"] = "TRUE"
    if col.description:
        attrs["Description"] = col.description
    if col.type == "text":
        attrs["MaxLength"] = str(col.max_length or 255)
    elif col.type == "note":
        attrs["NumLines"] = "6"
        attrs["RichText"] = "TRUE" if col.rich_text else "FALSE"
        if col.rich_text:
            attrs["RichTextMode"] = "FullHtml"
    elif col.type == "choice":
        attrs["Format"] = col.format
        attrs["FillInChoice"] = "FALSE"
    elif col.type == "multi_choice":
        attrs["FillInChoice"] = "FALSE"
    elif col.type == "number":
        if col.min is not None:
            attrs["Min"] = _num(col.min)
        if col.max is not None:
            attrs["Max"] = _num(col.max)
        if col.decimals is not None:
            attrs["Decimals"] = str(col.decimals)
    elif col.type == "date":
        attrs["Format"] = "DateOnly"
    elif col.type == "datetime":
        attrs["Format"] = "DateTime"
    elif col.type == "person":
        attrs["UserSelectionMode"] = "PeopleOnly"
    elif col.type in ("lookup", "multi_lookup"):
        if not lookup_list_id:
            raise ValueError(f"the lookup column {col.name} needs its target list's id")
        attrs["List"] = "{" + lookup_list_id + "}"
        attrs["ShowField"] = col.lookup_column or "Title"
        if col.type == "multi_lookup":
            attrs["Mult"] = "TRUE"
    elif col.type == "url":
        attrs["Format"] = "Hyperlink"
    el = ET.Element("Field", attrs)
    if col.type in ("choice", "multi_choice"):
        choices = ET.SubElement(el, "CHOICES")
        for c in col.choices:
            ET.SubElement(choices, "CHOICE").text = c
    default = _default_text(col)
    if default is not None:
        ET.SubElement(el, "Default").text = default
    return ET.tostring(el, encoding="unicode")


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


_PROPERTY_NAMES = {
    "title": "Title",
    "required": "Required",
    "indexed": "Indexed",
    "description": "Description",
    "default": "DefaultValue",
    "choices": "Choices",
}


@dataclass(frozen=True)
class ApplyResult:
    """What `apply` did, and which destructive steps it skipped."""

    applied: tuple[PlanStep, ...]
    skipped: tuple[PlanStep, ...]

    @property
    def changed(self) -> bool:
        return bool(self.applied)

    def format_text(self, language: str = "sv") -> str:
        en = _en(language)
        if not self.applied and not self.skipped:
            return "No changes." if en else "Inga ändringar."
        lines = [
            (
                f"Applied {len(self.applied)} change(s)."
                if en
                else f"Genomförde {len(self.applied)} ändring(ar)."
            )
        ]
        lines.extend(f"  - {s.describe(language)}" for s in self.applied)
        if self.skipped:
            lines.append(
                f"Skipped {len(self.skipped)} destructive change(s) (use --allow-destructive):"
                if en
                else f"Hoppade över {len(self.skipped)} destruktiva ändring(ar) "
                "(använd --allow-destructive):"
            )
            lines.extend(f"  - {s.describe(language)}" for s in self.skipped)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "applied": [s.to_dict() for s in self.applied],
            "skipped": [s.to_dict() for s in self.skipped],
        }


def _type_as_string(step: PlanStep, schemas: SchemaSet | None) -> str:
    if schemas is None or step.column is None:
        return ""
    ls = schemas.get(step.list_title)
    if ls is None or not ls.has_column(step.column):
        return ""
    return SP_TYPES.get(ls.column(step.column).type, "")


def apply(
    client: SharePointClient,
    plan: Plan,
    *,
    allow_destructive: bool = False,
    schemas: SchemaSet | None = None,
) -> ApplyResult:
    """Carry out `plan`: lists first, then columns (lookups after their targets), changes,
    indexes; destructive steps only with `allow_destructive`.

    A 403 becomes a PermissionDeniedError naming the permission provisioning needs.
    """
    try:
        return _apply(client, plan, allow_destructive=allow_destructive, schemas=schemas)
    except PermissionDeniedError as exc:
        raise PermissionDeniedError(
            PERMISSION_HINT.format(site=client.site_url) + f" ({exc.message})",
            status=exc.status,
            code=exc.code,
            request_id=exc.request_id,
        ) from exc


def _apply(
    client: SharePointClient,
    plan: Plan,
    *,
    allow_destructive: bool,
    schemas: SchemaSet | None,
) -> ApplyResult:
    applied: list[PlanStep] = []
    list_ids: dict[str, str] = {}

    def list_id(title: str) -> str:
        if title not in list_ids:
            list_ids[title] = client.get_list(title).id
        return list_ids[title]

    for step in plan.lists_to_create:
        url = str(step.detail.get("url") or step.list_title)
        list_ids[step.list_title] = client.create_list(
            step.list_title, url=url, description=str(step.detail.get("description") or "")
        )
        applied.append(step)

    def create(col: ColumnSchema, list_title: str) -> None:
        target = list_id(col.lookup_list) if col.is_lookup and col.lookup_list else None
        client.create_field_as_xml(
            list_title, field_schema_xml(col, lookup_list_id=target), col.name
        )

    # Lookups last: their target lists (and those lists' columns) exist by then.
    adds = sorted(
        plan.columns_to_add,
        key=lambda s: bool(s.schema_column is not None and s.schema_column.is_lookup),
    )
    for step in adds:
        assert step.schema_column is not None
        create(step.schema_column, step.list_title)
        applied.append(step)

    for step in plan.lists_to_change:
        client.update_list(
            step.list_title, {_PROPERTY_NAMES[c.attribute]: c.new for c in step.changes}
        )
        applied.append(step)

    for step in plan.columns_to_change:
        assert step.column is not None
        props = {_PROPERTY_NAMES[c.attribute]: _prop_value(c) for c in step.changes}
        client.update_field(
            step.list_title, step.column, props, type_as_string=_type_as_string(step, schemas)
        )
        applied.append(step)

    for step in plan.indexes_to_add:
        assert step.column is not None
        client.update_field(
            step.list_title,
            step.column,
            {"Indexed": True},
            type_as_string=_type_as_string(step, schemas),
        )
        applied.append(step)

    skipped: list[PlanStep] = []
    for step in plan.destructive:
        if not allow_destructive:
            skipped.append(step)
            continue
        assert step.column is not None
        if step.action == "remove_column":
            client.delete_field(step.list_title, step.column)
        elif step.action == "remove_choices":
            client.update_field(
                step.list_title,
                step.column,
                {"Choices": list(step.changes[0].new)},
                type_as_string=_type_as_string(step, schemas),
            )
        elif step.action == "retype_column":
            assert step.schema_column is not None
            # SharePoint cannot convert a column's type in place: the old column (and its
            # values) goes, the new one is created empty. That is why this step is destructive.
            client.delete_field(step.list_title, step.column)
            create(step.schema_column, step.list_title)
        applied.append(step)
    if skipped:
        log.warning(
            "skipped %d destructive change(s); rerun with --allow-destructive", len(skipped)
        )
    log.info("provisioning applied %d change(s) on %s", len(applied), client.site_url)
    return ApplyResult(tuple(applied), tuple(skipped))


def _prop_value(change: AttributeChange) -> Any:
    if change.attribute == "choices":
        return list(change.new)
    if change.attribute in ("description", "default") and change.new is None:
        return ""
    return change.new


# --------------------------------------------------------------------------------------------
# CLI entry points (wired in sp_sync/cli.py)
# --------------------------------------------------------------------------------------------


def choices_in_use(
    client: SharePointClient, schemas: SchemaSet, candidates: Plan
) -> dict[str, dict[str, set[str]]]:
    """For the choice removals in `candidates`, which values items still use (one `$top=1`
    query per value; a value whose use cannot be checked counts as in use)."""
    from sp_sync.errors import SpSyncError

    out: dict[str, dict[str, set[str]]] = {}
    for step in candidates.destructive:
        if step.action != "remove_choices" or step.column is None:
            continue
        used = out.setdefault(step.list_title, {}).setdefault(step.column, set())
        for value in step.detail.get("values", ()):
            try:
                if client.choice_value_in_use(step.list_title, step.column, value):
                    used.add(value)
            except SpSyncError as exc:
                log.warning(
                    "could not check whether %r is used in %s.%s (%s); keeping it",
                    value,
                    step.list_title,
                    step.column,
                    exc,
                )
                used.add(value)
    return out


# --------------------------------------------------------------------------------------------
# The rollup library's freshness columns (issue 12 item 9)
# --------------------------------------------------------------------------------------------

#: Internal names of the columns sp_sync.report.publish writes each night on every workbook
#: (ValidateUpdateListItem, no new version).
LAST_CHECKED_COLUMN = "SpSyncLastChecked"
DATA_CHANGED_COLUMN = "SpSyncDataChanged"
#: The columns themselves, added to the site's default document library (where the rollup
#: folder lives) by `provision`; never changed or removed once there.
ROLLUP_LIBRARY_COLUMNS = (
    ColumnSchema(
        name=LAST_CHECKED_COLUMN,
        title="Senast kontrollerad",
        title_en="Last checked",
        type="datetime",
        description="När sp-sync senast kontrollerade listorna och arbetsboken (varje natt).",
    ),
    ColumnSchema(
        name=DATA_CHANGED_COLUMN,
        title="Data ändrad",
        title_en="Data changed",
        type="datetime",
        description="När arbetsbokens innehåll senast ändrades (en ny version laddades upp).",
    ),
)


def library_column_steps(client: SharePointClient) -> list[PlanStep]:
    """add_column steps for the freshness columns the default document library lacks."""
    title = client.get_default_library_title()
    present = {f.internal_name for f in client.get_fields(title)}
    return [
        PlanStep(
            action="add_column",
            list_title=title,
            column=col.name,
            detail={"type": col.type, "library": True},
            schema_column=col,
        )
        for col in ROLLUP_LIBRARY_COLUMNS
        if col.name not in present
    ]


def run_provision(
    client: SharePointClient,
    schemas: SchemaSet,
    *,
    apply: bool,
    allow_destructive: bool = False,
) -> tuple[Plan, ApplyResult | None]:
    """`sp-sync provision [--apply] [--allow-destructive]`: plan, and apply when asked.

    Besides the lists of the schemas, the plan adds the freshness columns of the rollup
    library (ROLLUP_LIBRARY_COLUMNS) when they are missing."""
    state = read_site_state(client, schemas)
    first = plan(schemas, state)
    if any(s.action == "remove_choices" for s in first.destructive):
        first = plan(schemas, state, in_use=choices_in_use(client, schemas, first))
    library = library_column_steps(client)
    if library:
        first = replace(first, steps=(*first.steps, *library))
    if not apply:
        return first, None
    result = _apply_fn(client, first, allow_destructive=allow_destructive, schemas=schemas)
    return first, result


_apply_fn = apply
