"""Drift: what was changed by hand on the site, relative to the list schemas.

    report = check_drift(schemas, read_site_state(client, schemas))
    report.raise_if_breaking(language)      # the nightly run stops on breaking drift

`check_drift` is a pure function of the schemas and a `SiteState` (sp_sync.schema.site), so it is
tested without SharePoint; `run_check` reads the site and is what `sp-sync check` and the
pipeline's drift check call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sp_sync.errors import DriftError
from sp_sync.i18n import Text
from sp_sync.schema.model import ListSchema, SchemaSet
from sp_sync.schema.site import (
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

_BREAKING = Text(
    sv="{found} Kör `sp-sync check` för detaljer och `sp-sync provision` för att rätta.",
    en="{found} Run `sp-sync check` for details and `sp-sync provision` to repair.",
)

__all__ = ["DriftFinding", "DriftKind", "DriftReport", "Severity", "check_drift", "run_check"]

#: What was changed by hand. The first three break the reports; the rest are only reported.
DriftKind = Literal[
    "list_missing",
    "column_missing",
    "column_retyped",
    "column_added",
    "column_renamed",
    "choices_added",
    "choices_removed",
    "index_dropped",
    "required_changed",
]
Severity = Literal["harmless", "breaking"]
#: What the schema expects and the site has: a type, a title, a flag or the choices.
DriftValue = str | bool | tuple[str, ...] | None


def _en(language: str) -> bool:
    return language.lower().startswith("en")


@dataclass(frozen=True)
class DriftFinding:
    """One difference between the site and the schemas, made by hand on the site."""

    kind: DriftKind
    severity: Severity
    list_title: str
    column: str | None
    message_sv: str
    message_en: str
    expected: DriftValue = None
    actual: DriftValue = None

    @property
    def breaking(self) -> bool:
        return self.severity == "breaking"

    def message(self, language: str = "sv") -> str:
        return self.message_en if _en(language) else self.message_sv

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "list": self.list_title,
            "column": self.column,
            "message_sv": self.message_sv,
            "message_en": self.message_en,
            "expected": jsonable(self.expected),
            "actual": jsonable(self.actual),
        }


@dataclass(frozen=True)
class DriftReport:
    """All drift findings; `breaking` ones must fail a nightly run (naming the column)."""

    findings: tuple[DriftFinding, ...]
    site_url: str = ""
    schema_version: str = ""

    @property
    def has_drift(self) -> bool:
        return bool(self.findings)

    @property
    def breaking(self) -> tuple[DriftFinding, ...]:
        return tuple(f for f in self.findings if f.breaking)

    @property
    def harmless(self) -> tuple[DriftFinding, ...]:
        return tuple(f for f in self.findings if not f.breaking)

    def raise_if_breaking(self, language: str = "sv") -> None:
        """Raise DriftError naming every breaking finding (for the nightly run). The error
        carries both languages (`str()` and logs English, the CLI renders `language`); the
        argument is kept for callers that pass it."""
        del language  # the error is rendered by whoever shows it
        if self.breaking:
            found = Text(
                sv=" ".join(f.message("sv") for f in self.breaking),
                en=" ".join(f.message("en") for f in self.breaking),
            )
            raise DriftError(_BREAKING.fill(found=found))

    def format_text(self, language: str = "sv") -> str:
        en = _en(language)
        if not self.findings:
            return (
                "No drift: the site matches the schemas."
                if en
                else "Ingen avvikelse: webbplatsen stämmer med schemana."
            )
        lines = []
        for sev, head_en, head_sv in (
            ("breaking", "Breaking drift", "Avvikelser som stoppar rapporterna"),
            ("harmless", "Harmless drift", "Ofarliga avvikelser"),
        ):
            items = [f for f in self.findings if f.severity == sev]
            if items:
                lines.append(f"{head_en if en else head_sv} ({len(items)}):")
                lines.extend(f"  - {f.message(language)}" for f in items)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site_url,
            "schema_version": self.schema_version,
            "has_drift": self.has_drift,
            "breaking": len(self.breaking),
            "harmless": len(self.harmless),
            "findings": [f.to_dict() for f in self.findings],
        }


def check_drift(schemas: SchemaSet, site_state: SiteState) -> DriftReport:
    """What was changed on the site by hand, relative to the schemas.

    Breaking: a list or a schema column is gone, or a column's type changed (the sync and the
    reports depend on them). Harmless: an extra column, extra or missing choice values, a
    renamed display name, a dropped index or a changed required flag.
    """
    out: list[DriftFinding] = []

    def add(
        kind: DriftKind,
        severity: Severity,
        ls: ListSchema,
        column: str | None,
        sv: str,
        en: str,
        expected: DriftValue = None,
        actual: DriftValue = None,
    ) -> None:
        out.append(DriftFinding(kind, severity, ls.title, column, sv, en, expected, actual))

    for ls in schemas.lists.values():
        site_list = site_state.lists.get(ls.title)
        if site_list is None:
            add(
                "list_missing",
                "breaking",
                ls,
                None,
                f"Listan '{ls.title}' saknas på webbplatsen.",
                f"The list '{ls.title}' is missing from the site.",
            )
            continue
        fields = site_list.fields
        for col in ls.columns:
            f = fields.get(col.name)
            where = f"{ls.title}.{col.name} ('{col.title}')"
            if f is None:
                add(
                    "column_missing",
                    "breaking",
                    ls,
                    col.name,
                    f"Kolumnen {where} har tagits bort; rapporterna behöver den.",
                    f"The column {where} was removed; the reports need it.",
                    expected=type_text(col),
                    actual=None,
                )
                continue
            if not same_type(col, f):
                add(
                    "column_retyped",
                    "breaking",
                    ls,
                    col.name,
                    f"Kolumnen {where} har bytt typ från {type_text(col)} till {site_type_text(f)}.",
                    f"The column {where} changed type from {type_text(col)} to {site_type_text(f)}.",
                    expected=type_text(col),
                    actual=site_type_text(f),
                )
                continue
            if f.title != col.title:
                add(
                    "column_renamed",
                    "harmless",
                    ls,
                    col.name,
                    f"Kolumnen {ls.title}.{col.name} har bytt namn från '{col.title}' till "
                    f"'{f.title}'.",
                    f"The column {ls.title}.{col.name} was renamed from '{col.title}' to "
                    f"'{f.title}'.",
                    expected=col.title,
                    actual=f.title,
                )
            if col.type in ("choice", "multi_choice"):
                extra = [c for c in f.choices if c not in col.choices]
                missing = [c for c in col.choices if c not in f.choices]
                if extra:
                    add(
                        "choices_added",
                        "harmless",
                        ls,
                        col.name,
                        f"Kolumnen {where} har val som inte finns i schemat: {', '.join(extra)}.",
                        f"The column {where} has choices not in the schema: {', '.join(extra)}.",
                        expected=col.choices,
                        actual=f.choices,
                    )
                if missing:
                    add(
                        "choices_removed",
                        "harmless",
                        ls,
                        col.name,
                        f"Kolumnen {where} saknar val från schemat: {', '.join(missing)}.",
                        f"The column {where} lacks choices from the schema: {', '.join(missing)}.",
                        expected=col.choices,
                        actual=f.choices,
                    )
            if col.indexed and not f.indexed:
                add(
                    "index_dropped",
                    "harmless",
                    ls,
                    col.name,
                    f"Indexet på {where} saknas; frågor mot listor över 5 000 poster kan stoppas.",
                    f"The index on {where} is missing; queries on lists over 5,000 items may "
                    "be refused.",
                    expected=True,
                    actual=False,
                )
            if col.required != f.required:
                add(
                    "required_changed",
                    "harmless",
                    ls,
                    col.name,
                    f"Kolumnen {where} är {'obligatorisk' if f.required else 'frivillig'} på "
                    f"webbplatsen men {'obligatorisk' if col.required else 'frivillig'} i "
                    "schemat.",
                    f"The column {where} is {'required' if f.required else 'optional'} on the "
                    f"site but {'required' if col.required else 'optional'} in the schema.",
                    expected=col.required,
                    actual=f.required,
                )
        modified = fields.get("Modified")
        if modified is not None and not modified.indexed:
            add(
                "index_dropped",
                "harmless",
                ls,
                "Modified",
                f"Indexet på {ls.title}.Modified saknas; inkrementell synk av listor över "
                "5 000 poster kan stoppas.",
                f"The index on {ls.title}.Modified is missing; incremental syncs of lists over "
                "5,000 items may be refused.",
                expected=True,
                actual=False,
            )
        for name, f in fields.items():
            if f.builtin or ls.has_column(name):
                continue
            add(
                "column_added",
                "harmless",
                ls,
                name,
                f"Kolumnen {ls.title}.{name} ('{f.title}', {site_type_text(f)}) finns på "
                "webbplatsen men inte i schemat.",
                f"The column {ls.title}.{name} ('{f.title}', {site_type_text(f)}) is on the "
                "site but not in the schema.",
                expected=None,
                actual=site_type_text(f),
            )
    return DriftReport(tuple(out), site_state.site_url, schemas.version)


# --------------------------------------------------------------------------------------------
# CLI entry point (wired in sp_sync/cli.py and the pipeline)
# --------------------------------------------------------------------------------------------


def run_check(client: SharePointClient, schemas: SchemaSet) -> DriftReport:
    """`sp-sync check`: the drift report (the CLI exits non-zero when `has_drift`)."""
    report = check_drift(schemas, read_site_state(client, schemas))
    log.info(
        "drift check on %s: %d breaking, %d harmless",
        client.site_url,
        len(report.breaking),
        len(report.harmless),
    )
    return report
