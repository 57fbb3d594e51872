"""The list schemas as values: `SchemaSet`, `ListSchema`, `ColumnSchema`, `Reference`, `Rule`.

`list_schemas/` is the single source of truth for the three SharePoint lists, the reference data
(counties, teams, phases, subject areas, departments) and the rules that make a row valid. The
same `SchemaSet` drives provisioning (`sp_sync.schema.provision`), drift checks
(`sp_sync.schema.drift`), the sync's typing and validation (`sp_sync.sync.quality`) and the
rollups' labels and translations (`sp_sync.report.tables`). The values are built by
`sp_sync.schema.loader.load_schemas`; the file format is documented in `list_schemas/README.md`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "COLUMN_TYPES",
    "REFERENCE_SETS",
    "Choice",
    "ColumnSchema",
    "County",
    "ListSchema",
    "Phase",
    "Reference",
    "Rule",
    "SchemaSet",
    "label",
]

#: Column types a schema may use (see list_schemas/README.md for what each becomes on the site).
COLUMN_TYPES = (
    "text",
    "note",
    "choice",
    "multi_choice",
    "number",
    "boolean",
    "date",
    "datetime",
    "person",
    "lookup",
    "multi_lookup",
    "url",
)

#: Named choice sets from reference.yaml that a column may use as `choices: {ref: …}`.
REFERENCE_SETS = ("counties", "phases", "subject_areas", "departments", "teams")

# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def _pick(sv: str, en: str | None, language: str) -> str:
    return en if language.lower().startswith("en") and en else sv


@dataclass(frozen=True)
class Choice:
    """One value of a choice set: the Swedish value stored in SharePoint and an English label."""

    name: str
    en: str | None = None
    #: Departments only: the mailbox or group address of the weekly digest (None: no digest).
    mail: str | None = None

    def label(self, language: str = "sv") -> str:
        return _pick(self.name, self.en, language)


@dataclass(frozen=True)
class County:
    """A county (län) with its official letter code and the team that covers it."""

    name: str
    code: str
    team: str

    def label(self, language: str = "sv") -> str:
        # County names are proper nouns; English display keeps the Swedish name.
        return self.name


@dataclass(frozen=True)
class Phase:
    """One of the phases of the strategic regional work, numbered in process order."""

    number: int
    name: str
    en: str | None = None

    def label(self, language: str = "sv") -> str:
        return _pick(self.name, self.en, language)


@dataclass(frozen=True)
class Reference:
    """Reference data from reference.yaml."""

    counties: tuple[County, ...]
    teams: tuple[Choice, ...]
    phases: tuple[Phase, ...]
    subject_areas: tuple[Choice, ...]
    departments: tuple[Choice, ...]

    def county(self, name: str) -> County | None:
        """The county called `name` (or with code `name`), or None."""
        for c in self.counties:
            if c.name == name or c.code == name:
                return c
        return None

    def choice_set(self, ref: str) -> tuple[Choice, ...]:
        """The named set as `Choice` values (counties and phases included), in file order."""
        if ref == "counties":
            return tuple(Choice(c.name, None) for c in self.counties)
        if ref == "phases":
            return tuple(Choice(p.name, p.en) for p in sorted(self.phases, key=lambda p: p.number))
        if ref in ("subject_areas", "departments", "teams"):
            items: tuple[Choice, ...] = getattr(self, ref)
            return items
        raise KeyError(ref)

    def counties_by_team(self) -> dict[str, list[County]]:
        out: dict[str, list[County]] = {t.name: [] for t in self.teams}
        for c in self.counties:
            out.setdefault(c.team, []).append(c)
        return out


@dataclass(frozen=True)
class ColumnSchema:
    """One column of a list. `name` is the ASCII internal name used everywhere in code."""

    name: str
    title: str
    type: str
    title_en: str | None = None
    required: bool = False
    indexed: bool = False
    choices: tuple[str, ...] = ()
    #: The choices with their English labels (same order as `choices`).
    choice_items: tuple[Choice, ...] = ()
    #: Name of the reference set the choices come from (`counties`, …), None for inline choices.
    choice_ref: str | None = None
    #: Choice column format on the site: Dropdown or RadioButtons.
    format: str = "Dropdown"
    lookup_list: str | None = None
    lookup_column: str | None = None
    description: str | None = None
    description_en: str | None = None
    default: Any = None
    max_length: int | None = None
    rich_text: bool = False
    min: float | None = None
    max: float | None = None
    decimals: int | None = None
    #: Where the column is defined ("file, line N"), for messages.
    source: str = field(default="", compare=False)

    @property
    def is_lookup(self) -> bool:
        return self.type in ("lookup", "multi_lookup")

    @property
    def is_county(self) -> bool:
        return self.choice_ref == "counties"

    def label(self, language: str = "sv") -> str:
        """Display name in `language` ("sv" default, "en")."""
        return _pick(self.title, self.title_en, language)

    def choice_label(self, value: str, language: str = "sv") -> str:
        """Display text of one choice value (the value itself when it is unknown)."""
        for c in self.choice_items:
            if c.name == value:
                return c.label(language)
        return value


@dataclass(frozen=True)
class Rule:
    """A validation rule declared in a list file; `params` holds its kind-specific keys."""

    kind: str
    params: Mapping[str, Any]
    message: str | None = None
    message_en: str | None = None
    name: str | None = None
    source: str = field(default="", compare=False)


@dataclass(frozen=True)
class ListSchema:
    """One SharePoint list: title (Swedish, the list's identity on the site), URL name, columns."""

    title: str
    url: str
    columns: tuple[ColumnSchema, ...]
    rules: tuple[Rule, ...] = ()
    title_en: str | None = None
    description: str | None = None
    description_en: str | None = None
    file: str = field(default="", compare=False)

    def column(self, name: str) -> ColumnSchema:
        """The column with internal name `name` (KeyError when absent)."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.title} has no column {name!r}")

    def has_column(self, name: str) -> bool:
        return any(c.name == name for c in self.columns)

    @property
    def county_column(self) -> ColumnSchema | None:
        """The column holding the county (choices from the counties reference set), if any."""
        return next((c for c in self.columns if c.is_county), None)

    @property
    def lookup_targets(self) -> tuple[str, ...]:
        return tuple(c.lookup_list for c in self.columns if c.lookup_list)

    def label(self, language: str = "sv") -> str:
        return _pick(self.title, self.title_en, language)


@dataclass(frozen=True)
class SchemaSet:
    """All list schemas plus the reference data. `lists` is in dependency order."""

    lists: dict[str, ListSchema]
    reference: Reference
    version: str
    directory: str = ""

    def __getitem__(self, title: str) -> ListSchema:
        return self.lists[title]

    def __iter__(self) -> Iterator[ListSchema]:
        return iter(self.lists.values())

    def get(self, title: str) -> ListSchema | None:
        return self.lists.get(title)

    def by_url(self, url: str) -> ListSchema | None:
        for ls in self.lists.values():
            if ls.url.lower() == url.lower():
                return ls
        return None

    @property
    def titles(self) -> tuple[str, ...]:
        return tuple(self.lists)

    def choice_translations(self) -> dict[str, str]:
        """Every Swedish choice value that has an English label, mapped to that label.

        The reference sets come first, then the lists' own choices in file order; when one value
        is labelled twice the first label wins. Counties have none: their names are proper nouns.
        """
        out: dict[str, str] = {}
        ref = self.reference
        sets = (ref.teams, ref.choice_set("phases"), ref.subject_areas, ref.departments)
        inline = (
            col.choice_items
            for ls in sorted(self.lists.values(), key=lambda ls: ls.file)
            for col in ls.columns
            if col.choice_ref is None
        )
        for items in (*sets, *inline):
            for choice in items:
                if choice.en:
                    out.setdefault(choice.name, choice.en)
        return out


def label(obj: ColumnSchema | ListSchema | Choice | Phase | County, language: str = "sv") -> str:
    """Display text for a column, list or reference value in `language` ("sv" or "en")."""
    return obj.label(language)
