"""What a site has of the schemas' lists: `SiteState`, read once and compared by plan and drift.

`read_site_state` is the only I/O here; `sp_sync.schema.provision` (plan/apply) and
`sp_sync.schema.drift` are pure functions of a `SchemaSet` and a `SiteState`, and share the
type comparisons below so both agree on what "the same column" means.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sp_sync.errors import NotFoundError
from sp_sync.schema.model import ColumnSchema, SchemaSet

if TYPE_CHECKING:
    from sp_sync.sharepoint import SharePointClient
    from sp_sync.sharepoint.lists import FieldInfo

__all__ = [
    "SP_TYPES",
    "SiteField",
    "SiteList",
    "SiteState",
    "read_site_state",
    "same_type",
    "site_field_from_info",
    "site_type_text",
    "type_text",
]

#: Schema type → SharePoint TypeAsString.
SP_TYPES = {
    "text": "Text",
    "note": "Note",
    "choice": "Choice",
    "multi_choice": "MultiChoice",
    "number": "Number",
    "boolean": "Boolean",
    "date": "DateTime",
    "datetime": "DateTime",
    "person": "User",
    "lookup": "Lookup",
    "multi_lookup": "LookupMulti",
    "url": "URL",
}


@dataclass(frozen=True)
class SiteField:
    """A column as it exists on the site (only what provisioning and drift compare)."""

    internal_name: str
    title: str
    type_as_string: str
    #: The schema type this field corresponds to ("date", "lookup", …), or the SharePoint type
    #: in lower case when there is none (e.g. "usermulti", "calculated").
    type: str
    required: bool = False
    indexed: bool = False
    choices: tuple[str, ...] = ()
    description: str = ""
    default: str | None = None
    lookup_list: str | None = None  # the target list's title (its id when unknown)
    lookup_field: str | None = None
    rich_text: bool = False
    #: SharePoint's own column (Title, Modified, …): never removed or reported as extra.
    builtin: bool = False


@dataclass(frozen=True)
class SiteList:
    title: str
    id: str
    url: str
    description: str
    fields: Mapping[str, SiteField]


@dataclass(frozen=True)
class SiteState:
    """The lists of the schemas that exist on the site, with their fields."""

    site_url: str
    lists: Mapping[str, SiteList]

    def list_id(self, title: str) -> str | None:
        lst = self.lists.get(title)
        return lst.id if lst else None


def _schema_type(f: FieldInfo) -> str:
    t = f.type_as_string
    if t == "DateTime":
        return "date" if f.display_format == 0 else "datetime"
    for schema_type, sp_type in SP_TYPES.items():
        if sp_type == t and schema_type not in ("date", "datetime"):
            return schema_type
    return t.lower()


def _is_builtin(f: FieldInfo) -> bool:
    raw = f.raw
    if raw.get("FromBaseType") is True or raw.get("CanBeDeleted") is False:
        return True
    return f.hidden or f.read_only


def site_field_from_info(f: FieldInfo, list_titles_by_id: Mapping[str, str]) -> SiteField:
    """SiteField from the client's FieldInfo (lookup targets resolved to list titles)."""
    lookup = None
    if f.type_as_string in ("Lookup", "LookupMulti") and f.lookup_list_id:
        lookup = list_titles_by_id.get(f.lookup_list_id, f.lookup_list_id)
    default = f.default if f.default not in ("", None) else None
    return SiteField(
        internal_name=f.internal_name,
        title=f.title,
        type_as_string=f.type_as_string,
        type=_schema_type(f),
        required=f.required,
        indexed=f.indexed,
        choices=tuple(f.choices),
        description=f.description or "",
        default=str(default) if default is not None else None,
        lookup_list=lookup,
        lookup_field=f.lookup_field,
        rich_text=bool(f.raw.get("RichText", False)),
        builtin=_is_builtin(f),
    )


def read_site_state(client: SharePointClient, schemas: SchemaSet) -> SiteState:
    """Read the schemas' lists (when present) and their fields from the site."""
    infos: dict[str, tuple[Any, list[FieldInfo]]] = {}
    for title in schemas.lists:
        try:
            # One request per list: its read answers whether it exists too, and brings its
            # fields (separate existence and field reads cost two more per list every night).
            info, fields = client.get_list_with_fields(title)
        except NotFoundError:
            continue
        infos[title] = (info, fields)
    ids = {info.id: title for title, (info, _f) in infos.items()}
    lists: dict[str, SiteList] = {}
    for title, (info, fields) in infos.items():
        lists[title] = SiteList(
            title=title,
            id=info.id,
            url=info.url,
            description=info.description,
            fields={f.internal_name: site_field_from_info(f, ids) for f in fields},
        )
    return SiteState(site_url=client.site_url, lists=lists)


# --------------------------------------------------------------------------------------------
# Comparing a schema column with a site column (shared by plan and drift)
# --------------------------------------------------------------------------------------------


def same_type(col: ColumnSchema, f: SiteField) -> bool:
    if col.name == "Title":
        return f.type == "text"
    if col.type != f.type:
        return False
    if col.is_lookup:
        return f.lookup_list == col.lookup_list
    return True


def type_text(col: ColumnSchema) -> str:
    return f"{col.type} → {col.lookup_list}" if col.is_lookup else col.type


def site_type_text(f: SiteField) -> str:
    return f"{f.type} → {f.lookup_list}" if f.type in ("lookup", "multi_lookup") else f.type


def jsonable(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return list(v)
    return v
