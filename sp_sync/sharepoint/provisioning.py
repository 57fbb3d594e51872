"""Provisioning writes for SharePointClient: create lists, create/update/delete fields.

Used by `sp_sync.schema.provision` (plan/apply). Every call is a write (`write=True`), so a 403 becomes
a PermissionDeniedError that says write access is missing; `sp_sync.schema.provision` rewords it.

Creates are made safe to retry: a retried build first checks whether the previous attempt
already created the list or field (a dropped connection after the server committed would
otherwise fail with "already exists").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sp_sync.errors import NotFoundError, PermissionDeniedError, SpSyncError
from sp_sync.i18n import Text
from sp_sync.sharepoint.client import clean_entity, quote_path_literal, unwrap_verbose
from sp_sync.sharepoint.lists import FieldInfo, field_info
from sp_sync.sharepoint.odata import literal

if TYPE_CHECKING:
    from sp_sync.sharepoint.client import ClientCore

    _Base = ClientCore
else:
    _Base = object

log = logging.getLogger(__name__)

# What each request does, named in error messages and retry warnings (both languages).
_OP_LOOKUP_LIST = Text(sv="sökning efter listan '{title}'", en="looking up list '{title}'")
_OP_CREATE_LIST = Text(sv="skapande av listan '{title}'", en="creating list '{title}'")
_OP_NAME_LIST = Text(sv="namngivning av listan '{title}'", en="naming list '{title}'")
_OP_READ_LIST = Text(sv="läsning av listan '{title}'", en="reading list '{title}'")
_OP_UPDATE_LIST = Text(sv="ändring av listan '{title}'", en="updating list '{title}'")
_OP_READ_COLUMN = Text(
    sv="läsning av kolumnen '{column}' i listan '{title}'",
    en="reading column '{column}' of list '{title}'",
)
_OP_CREATE_COLUMN = Text(
    sv="skapande av kolumnen '{column}' i listan '{title}'",
    en="creating column '{column}' in list '{title}'",
)
_OP_CHANGE_COLUMN = Text(
    sv="ändring av kolumnen '{column}' i listan '{title}'",
    en="changing column '{column}' of list '{title}'",
)
_OP_CHOICE_USED = Text(
    sv="kontroll av om '{value}' används i {title}.{column}",
    en="checking whether '{value}' is used in {title}.{column}",
)
_OP_DELETE_COLUMN = Text(
    sv="borttagning av kolumnen '{column}' i listan '{title}'",
    en="deleting column '{column}' of list '{title}'",
)

#: SP.AddFieldOptions: addFieldInternalNameHint (8) makes SharePoint take the internal name from
#: the XML's Name attribute instead of deriving it from DisplayName; addFieldToDefaultView (16)
#: shows the new column in the list's default view, where staff expect it.
CREATE_FIELD_OPTIONS = 8 | 16

#: `__metadata.type` per TypeAsString for a field MERGE (SharePoint wants the subtype).
_FIELD_ENTITY_TYPES = {
    "Text": "SP.FieldText",
    "Note": "SP.FieldMultiLineText",
    "Choice": "SP.FieldChoice",
    "MultiChoice": "SP.FieldMultiChoice",
    "Number": "SP.FieldNumber",
    "DateTime": "SP.FieldDateTime",
    "Lookup": "SP.FieldLookup",
    "LookupMulti": "SP.FieldLookup",
    "User": "SP.FieldUser",
    "UserMulti": "SP.FieldUser",
    "URL": "SP.FieldUrl",
}


class ProvisioningMixin(_Base):
    """List and field writes. Mixed into `SharePointClient`."""

    def _prov_list_path(self, title: str) -> str:
        return f"/_api/web/lists/GetByTitle({quote_path_literal(title)})"

    def _prov_field_path(self, list_title: str, internal_name: str) -> str:
        return (
            f"{self._prov_list_path(list_title)}/fields/getbyinternalnameortitle("
            f"{quote_path_literal(internal_name)})"
        )

    def _prov_list_present(self, title: str) -> bool:
        try:
            self._get_json(
                self._prov_list_path(title),
                {"$select": "Id"},
                description=_OP_LOOKUP_LIST.fill(title=title),
            )
        except NotFoundError:
            return False
        return True

    def create_list(self, title: str, *, url: str, description: str = "") -> str:
        """Create a generic list whose URL is `Lists/<url>` and whose title is `title`.

        SharePoint derives the URL from the title at creation, so the list is created under its
        ASCII URL name and then renamed (the URL stays). Returns the list's id (lower-case GUID).
        """
        if not (self._prov_list_present(url) or self._prov_list_present(title)):
            try:
                self._raw(
                    "POST",
                    "/_api/web/lists",
                    json={
                        "__metadata": {"type": "SP.List"},
                        "Title": url,
                        "Description": description,
                        "BaseTemplate": 100,
                        "AllowContentTypes": False,
                    },
                    description=_OP_CREATE_LIST.fill(title=title),
                    write=True,
                )
            except PermissionDeniedError:
                raise
            except SpSyncError:
                # A retried POST whose first attempt was committed fails with "already
                # exists"; that is success. Anything else is a real failure.
                if not self._prov_list_present(url):
                    raise
        if title != url and not self._prov_list_present(title):
            self._raw(
                "MERGE",
                self._prov_list_path(url),
                json={"__metadata": {"type": "SP.List"}, "Title": title},
                headers={"IF-MATCH": "*"},
                description=_OP_NAME_LIST.fill(title=title),
                write=True,
            )
        data = self._get_json(
            self._prov_list_path(title),
            {"$select": "Id"},
            description=_OP_READ_LIST.fill(title=title),
        )
        list_id = str(data.get("Id", "")).strip("{}").lower() if isinstance(data, dict) else ""
        log.info("created list %s (Lists/%s)", title, url)
        return list_id

    def update_list(self, title: str, properties: Mapping[str, Any]) -> None:
        """MERGE list properties (Title, Description, …)."""
        self._raw(
            "MERGE",
            self._prov_list_path(title),
            json={"__metadata": {"type": "SP.List"}, **properties},
            headers={"IF-MATCH": "*"},
            description=_OP_UPDATE_LIST.fill(title=title),
            write=True,
        )

    def get_field(self, list_title: str, internal_name: str) -> FieldInfo:
        """One field by internal name (NotFoundError when absent)."""
        data = self._get_json(
            self._prov_field_path(list_title, internal_name),
            None,
            description=_OP_READ_COLUMN.fill(column=internal_name, title=list_title),
        )
        return field_info(clean_entity(unwrap_verbose(data)))

    def field_exists(self, list_title: str, internal_name: str) -> bool:
        try:
            info = self.get_field(list_title, internal_name)
        except NotFoundError:
            return False
        # getbyinternalnameortitle also matches a *title*; only the internal name counts here.
        return info.internal_name == internal_name

    def create_field_as_xml(
        self, list_title: str, schema_xml: str, internal_name: str
    ) -> FieldInfo:
        """Create a field from its CAML `<Field …/>` (so the internal name is exactly ours)."""
        try:
            self._raw(
                "POST",
                f"{self._prov_list_path(list_title)}/fields/CreateFieldAsXml",
                json={
                    "parameters": {
                        "__metadata": {"type": "SP.XmlSchemaFieldCreationInformation"},
                        "SchemaXml": schema_xml,
                        "Options": CREATE_FIELD_OPTIONS,
                    }
                },
                description=_OP_CREATE_COLUMN.fill(column=internal_name, title=list_title),
                write=True,
            )
        except PermissionDeniedError:
            raise
        except SpSyncError:
            # See create_list: a committed-then-retried create reports a duplicate.
            if not self.field_exists(list_title, internal_name):
                raise
        info = self.get_field(list_title, internal_name)
        log.info("created column %s.%s (%s)", list_title, internal_name, info.type_as_string)
        return info

    def update_field(
        self,
        list_title: str,
        internal_name: str,
        properties: Mapping[str, Any],
        *,
        type_as_string: str = "",
    ) -> None:
        """MERGE field properties (Title, Required, Indexed, Description, DefaultValue, Choices)."""
        body: dict[str, Any] = {
            "__metadata": {"type": _FIELD_ENTITY_TYPES.get(type_as_string, "SP.Field")},
        }
        for key, value in properties.items():
            if key == "Choices":
                body[key] = {
                    "__metadata": {"type": "Collection(Edm.String)"},
                    "results": list(value),
                }
            else:
                body[key] = value
        self._raw(
            "MERGE",
            self._prov_field_path(list_title, internal_name),
            json=body,
            headers={"IF-MATCH": "*"},
            description=_OP_CHANGE_COLUMN.fill(column=internal_name, title=list_title),
            write=True,
        )

    def choice_value_in_use(self, list_title: str, internal_name: str, value: str) -> bool:
        """True when at least one item has `value` in the choice column (a `$top=1` query).

        On a list over 5,000 items this needs the column indexed; a threshold error propagates
        so the caller can treat the value as in use.
        """
        data = self._get_json(
            f"{self._prov_list_path(list_title)}/items",
            {"$select": "ID", "$filter": f"{internal_name} eq {literal(value)}", "$top": "1"},
            description=_OP_CHOICE_USED.fill(value=value, title=list_title, column=internal_name),
        )
        rows = data.get("results", []) if isinstance(data, dict) else []
        return bool(rows)

    def delete_field(self, list_title: str, internal_name: str) -> None:
        """Delete a field; succeeds when it is already gone."""
        try:
            self._raw(
                "DELETE",
                self._prov_field_path(list_title, internal_name),
                headers={"IF-MATCH": "*"},
                description=_OP_DELETE_COLUMN.fill(column=internal_name, title=list_title),
                write=True,
            )
        except NotFoundError:
            log.info("column %s.%s was already gone", list_title, internal_name)
