"""The rule kinds a list file may declare under `rules:`, as one plain table.

The loader (`sp_sync.schema.loader`) checks each declared rule against its row here: which keys
it needs, which it may have, and which of them name columns (those must exist in the list).
The checks themselves live in `sp_sync.sync.quality.RULES`, keyed by the same kind; a test keeps
the two tables in step. Adding a cross-field rule therefore means one row here and one function
there — no registration at import time, so the schema package never imports the sync package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RULE_KINDS", "RuleKind"]


@dataclass(frozen=True)
class RuleKind:
    """What a rule kind needs in YAML: required/optional keys and which keys name columns."""

    kind: str
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    #: Keys whose value is a column name; "a.b" means key b inside mapping a.
    column_keys: tuple[str, ...] = ()


#: Every rule kind, by name. list_schemas/README.md documents each one for the people who write
#: the list files.
RULE_KINDS: Mapping[str, RuleKind] = {
    spec.kind: spec
    for spec in (
        RuleKind("date_order", required=("earlier", "later"), column_keys=("earlier", "later")),
        RuleKind("required_if", required=("column", "when"), column_keys=("column", "when.column")),
        RuleKind("empty_if", required=("column", "when"), column_keys=("column", "when.column")),
        RuleKind("same_county", required=("column",), column_keys=("column",)),
        RuleKind("year_matches_date", required=("year", "date"), column_keys=("year", "date")),
    )
}
