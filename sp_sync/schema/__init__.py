"""List schemas: the model, its YAML loader, the rule kinds, provisioning and drift.

    schemas = load_schemas(settings.schema_dir)   # SchemaSet; None: the repository's list_schemas/

`model` holds the values, `loader` builds them from YAML, `rules` is the table of rule kinds,
`site` reads what a site has, `provision` plans and applies changes, `drift` finds hand edits.
"""

from __future__ import annotations

from sp_sync.schema.loader import default_schema_dir, load_schemas
from sp_sync.schema.model import (
    Choice,
    ColumnSchema,
    County,
    ListSchema,
    Phase,
    Reference,
    Rule,
    SchemaSet,
    label,
)
from sp_sync.schema.rules import RULE_KINDS, RuleKind

__all__ = [
    "RULE_KINDS",
    "Choice",
    "ColumnSchema",
    "County",
    "ListSchema",
    "Phase",
    "Reference",
    "Rule",
    "RuleKind",
    "SchemaSet",
    "default_schema_dir",
    "label",
    "load_schemas",
]
