"""Responses for the web, its users, lists and fields (the schema side of SharePoint).

Thin handlers: parse the request, call the backend, render with `sp_emulator.odata`. Routes are
in `sp_emulator/urls.py`.
"""

from __future__ import annotations

import re
from typing import Any

from sp_emulator import odata
from sp_emulator.errors import argument_error, not_found, user_not_found
from sp_emulator.http import Request, Response
from sp_emulator.item_query import field_filter_row, filter_objects, list_filter_row
from sp_emulator.model import (
    SITE_COLUMNS_TEMPLATE,
    Backend,
    Field,
    Site,
    SPList,
    User,
    field_from_properties,
    field_from_schema_xml,
    iso,
)
from sp_emulator.odata import unquote_literal
from sp_emulator.permissions import PermissionsBackend

TIME_ZONE_JSON = {
    "__metadata": {"type": "SP.TimeZone"},
    "Description": "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna",
    "Id": 4,
    "Information": {
        "__metadata": {"type": "SP.TimeZoneInformation"},
        "Bias": -60,
        "DaylightBias": -60,
        "StandardBias": 0,
    },
}

FIELD_TYPES = {
    "Text": "SP.FieldText",
    "Note": "SP.FieldMultiLineText",
    "Choice": "SP.FieldChoice",
    "MultiChoice": "SP.FieldMultiChoice",
    "Number": "SP.FieldNumber",
    "Currency": "SP.FieldCurrency",
    "Integer": "SP.Field",
    "DateTime": "SP.FieldDateTime",
    "Lookup": "SP.FieldLookup",
    "LookupMulti": "SP.FieldLookup",
    "User": "SP.FieldUser",
    "UserMulti": "SP.FieldUser",
    "URL": "SP.FieldUrl",
    "Boolean": "SP.Field",
    "Computed": "SP.FieldComputed",
    "Counter": "SP.Field",
    "Guid": "SP.FieldGuid",
    "Attachments": "SP.Field",
    "ContentTypeId": "SP.Field",
    "File": "SP.Field",
    "Calculated": "SP.FieldCalculated",
}


class WebResponses:
    """Web, users, lists and fields."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    # ---- helpers --------------------------------------------------------------------------

    def site(self, request: Request) -> Site:
        return self.backend.get_site(request.site)

    def field_owner(self, request: Request, m: re.Match[str]) -> tuple[Site, SPList]:
        """The list whose fields a route names, or the web's site columns (`/_api/web/fields`)."""
        if any(v for k, v in m.groupdict().items() if k.startswith("l")):
            return self.resolve_list(request, m)
        site = self.site(request)
        return site, self.backend.site_columns(site)

    def resolve_list(self, request: Request, m: re.Match[str]) -> tuple[Site, SPList]:
        site = self.site(request)
        title, list_id, url, default = odata.list_ref(m, request)
        if default:
            lst = site.list_by_url("Shared Documents") or next(
                (x for x in site.lists.values() if x.is_library and not x.hidden), None
            )
            if lst is None:
                raise argument_error("List does not exist.", status=404)
            return site, lst
        if url is not None:
            found = site.list_by_url(url)
            if found is None:
                raise not_found()
            return site, found
        if title is not None:
            return site, self.backend.get_list(site, title=title)
        return site, self.backend.get_list(site, list_id=list_id)

    # ---- JSON -----------------------------------------------------------------------------

    def web_json(self, request: Request, site: Site) -> dict[str, Any]:
        base = request.site_url
        return {
            "__metadata": {"id": f"{base}/_api/Web", "uri": f"{base}/_api/Web", "type": "SP.Web"},
            "RegionalSettings": {"__deferred": {"uri": f"{base}/_api/Web/RegionalSettings"}},
            "Lists": {"__deferred": {"uri": f"{base}/_api/Web/Lists"}},
            "SiteUsers": {"__deferred": {"uri": f"{base}/_api/Web/SiteUsers"}},
            "RootFolder": {"__deferred": {"uri": f"{base}/_api/Web/RootFolder"}},
            "Fields": {"__deferred": {"uri": f"{base}/_api/Web/Fields"}},
            "Folders": {"__deferred": {"uri": f"{base}/_api/Web/Folders"}},
            "CurrentUser": {"__deferred": {"uri": f"{base}/_api/Web/CurrentUser"}},
            "RoleDefinitions": {"__deferred": {"uri": f"{base}/_api/Web/RoleDefinitions"}},
            "SiteGroups": {"__deferred": {"uri": f"{base}/_api/Web/SiteGroups"}},
            "RoleAssignments": {"__deferred": {"uri": f"{base}/_api/Web/RoleAssignments"}},
            "Created": iso(site.created),
            "Description": "",
            "Id": site.web_id,
            "Language": 1053,
            "LastItemModifiedDate": iso(
                max([lst.last_modified for lst in site.lists.values()] or [site.created])
            ),
            "ServerRelativeUrl": site.path or "/",
            "Title": site.title,
            "Url": base,
            "WebTemplate": "STS",
            "Configuration": 3,
        }

    def list_json(self, request: Request, site: Site, lst: SPList) -> dict[str, Any]:
        uri = f"{request.site_url}/_api/Web/Lists(guid'{lst.id}')"
        srv = lst.server_relative_url(site.path)
        form = f"{srv}/Forms/DispForm.aspx" if lst.is_library else f"{srv}/DispForm.aspx"
        return {
            "__metadata": {"id": uri, "uri": uri, "etag": '"1"', "type": "SP.List"},
            "Fields": {"__deferred": {"uri": f"{uri}/Fields"}},
            "Items": {"__deferred": {"uri": f"{uri}/Items"}},
            "Views": {"__deferred": {"uri": f"{uri}/Views"}},
            "DefaultView": {"__deferred": {"uri": f"{uri}/DefaultView"}},
            "RoleAssignments": {"__deferred": {"uri": f"{uri}/RoleAssignments"}},
            "RootFolder": {"__deferred": {"uri": f"{uri}/RootFolder"}},
            "AllowContentTypes": True,
            "BaseTemplate": lst.base_template,
            "BaseType": lst.base_type,
            "ContentTypesEnabled": False,
            "Created": iso(lst.created),
            "DefaultDisplayFormUrl": form,
            "Description": lst.description,
            "EnableAttachments": not lst.is_library,
            "EnableFolderCreation": lst.is_library,
            "EnableVersioning": True,
            "EntityTypeName": lst.entity_type.removesuffix("ListItem").removesuffix("Item")
            if not lst.is_library
            else lst.entity_type.removesuffix("Item"),
            "Hidden": lst.hidden,
            "Id": lst.id,
            "ItemCount": len(lst.items),
            "LastItemDeletedDate": iso(lst.last_modified),
            "LastItemModifiedDate": iso(lst.last_modified),
            "ListItemEntityTypeFullName": lst.entity_type_full_name,
            "ParentWebUrl": site.path or "/",
            "Title": lst.title,
        }

    def list_json_selected(self, request: Request, site: Site, lst: SPList) -> dict[str, Any]:
        obj = self.list_json(request, site, lst)
        select = request.query.get("$select")
        if select and "hasuniqueroleassignments" in select.lower():
            obj["HasUniqueRoleAssignments"] = PermissionsBackend(self.backend).has_unique(
                site, lst, None
            )
        if select and "currentchangetoken" in select.lower():
            obj["CurrentChangeToken"] = {
                "__metadata": {"type": "SP.ChangeToken"},
                "StringValue": self.backend.current_change_token(lst),
            }
        if select and "rootfolder" in select.lower():
            obj["RootFolder"] = {
                "__metadata": {"type": "SP.Folder"},
                "ServerRelativeUrl": lst.server_relative_url(site.path),
                "Name": lst.url_name.split("/")[-1],
            }
        return odata.select_props(obj, select)

    @staticmethod
    def user_json(request: Request, user: User) -> dict[str, Any]:
        uri = f"{request.site_url}/_api/Web/GetUserById({user.id})"
        return {
            "__metadata": {"id": uri, "uri": uri, "type": "SP.User"},
            "Id": user.id,
            "IsHiddenInUI": False,
            "LoginName": user.login_name,
            "Title": user.title,
            "PrincipalType": user.principal_type,
            "Email": user.email,
            "IsSiteAdmin": user.is_site_admin,
            "UserId": {
                "__metadata": {"type": "SP.UserIdInfo"},
                "NameId": f"{user.id:016x}",
                "NameIdIssuer": "urn:federation:microsoftonline",
            },
            "UserPrincipalName": user.email or None,
        }

    @staticmethod
    def field_json(request: Request, lst: SPList, f: Field) -> dict[str, Any]:
        owner = (
            f"{request.site_url}/_api/Web"
            if lst.base_template == SITE_COLUMNS_TEMPLATE
            else f"{request.site_url}/_api/Web/Lists(guid'{lst.id}')"
        )
        uri = f"{owner}/Fields(guid'{f.id}')"
        t = f.type_as_string
        obj: dict[str, Any] = {
            "__metadata": {"id": uri, "uri": uri, "type": FIELD_TYPES.get(t, "SP.Field")},
            "CanBeDeleted": f.can_be_deleted and not f.built_in,
            "DefaultValue": f.default_value,
            "Description": f.description,
            "EntityPropertyName": f.entity_name,
            "FieldTypeKind": f.kind,
            "Filterable": True,
            "Group": "Custom Columns" if not f.built_in else "_Hidden",
            "Hidden": f.hidden,
            "Id": f.id,
            "Indexed": f.indexed,
            "InternalName": f.internal_name,
            "ReadOnlyField": f.read_only,
            "Required": f.required,
            "SchemaXml": f.schema_xml or Backend.schema_xml(f),
            "Sealed": f.sealed,
            "Sortable": not f.multi,
            "StaticName": f.internal_name,
            "Title": f.title,
            "TypeAsString": t,
            "TypeDisplayName": t,
            "TypeShortDescription": t,
        }
        if t in ("Choice", "MultiChoice"):
            obj["Choices"] = {
                "__metadata": {"type": "Collection(Edm.String)"},
                "results": list(f.choices),
            }
            obj["FillInChoice"] = f.fill_in_choice
            obj["EditFormat"] = 0
        if t == "Text":
            obj["MaxLength"] = f.max_length
        if t == "Note":
            obj["RichText"] = f.rich_text
            obj["NumberOfLines"] = f.number_of_lines
            obj["AllowHyperlink"] = f.rich_text
        if t in ("Number", "Currency"):
            obj["MinimumValue"] = -1.7976931348623157e308
            obj["MaximumValue"] = 1.7976931348623157e308
        if t == "DateTime":
            obj["DisplayFormat"] = 0 if f.date_only else 1
            obj["DateTimeCalendarType"] = 0
            obj["FriendlyDisplayFormat"] = 0
        if f.is_lookup:
            obj["AllowMultipleValues"] = f.multi
            obj["LookupList"] = (
                "{" + f.lookup_list + "}"
                if f.lookup_list
                else ("" if not f.is_user else "UserInfo")
            )
            obj["LookupField"] = f.lookup_field if not f.is_user else "ImnName"
            obj["LookupWebId"] = None
        if f.is_user:
            obj["SelectionMode"] = f.selection_mode
            obj["SelectionGroup"] = 0
            obj["Presence"] = True
        if t == "URL":
            obj["DisplayFormat"] = 0
        return obj

    # ---- web ------------------------------------------------------------------------------

    def get_web(self, request: Request, m: re.Match[str]) -> Response:
        site = self.site(request)
        obj = self.web_json(request, site)
        if "hasuniqueroleassignments" in (request.query.get("$select") or "").lower():
            obj["HasUniqueRoleAssignments"] = True  # the root web always has its own
        return odata.entity(request, odata.select_props(obj, request.query.get("$select")))

    def get_site(self, request: Request, m: re.Match[str]) -> Response:
        site = self.site(request)
        uri = f"{request.site_url}/_api/Site"
        return odata.entity(
            request,
            odata.select_props(
                {
                    "__metadata": {"id": uri, "uri": uri, "type": "SP.Site"},
                    "Id": site.id,
                    "ServerRelativeUrl": site.path or "/",
                    "Url": request.site_url,
                },
                request.query.get("$select"),
            ),
        )

    def regional_settings(self, request: Request, m: re.Match[str]) -> Response:
        self.site(request)
        uri = f"{request.site_url}/_api/Web/RegionalSettings"
        return odata.entity(
            request,
            {
                "__metadata": {"id": uri, "uri": uri, "type": "SP.RegionalSettings"},
                "TimeZone": TIME_ZONE_JSON
                if "timezone" in (request.query.get("$expand") or "").lower()
                else {"__deferred": {"uri": uri + "/TimeZone"}},
                "LocaleId": 1053,
                "TimeZoneId": 4,
                "DateFormat": 0,
                "Time24": True,
                "FirstDayOfWeek": 1,
                "DecimalSeparator": ",",
                "ThousandSeparator": "\u00a0",
                "ListSeparator": ";",
            },
        )

    def time_zone(self, request: Request, m: re.Match[str]) -> Response:
        self.site(request)
        return odata.entity(request, TIME_ZONE_JSON)

    # ---- users ----------------------------------------------------------------------------

    def site_users(self, request: Request, m: re.Match[str]) -> Response:
        site = self.site(request)
        rows = [
            odata.select_props(self.user_json(request, u), request.query.get("$select"))
            for u in site.users.values()
        ]
        return odata.collection(request, rows, type_name="SP.ApiData.Users")

    def user_by_id(self, request: Request, m: re.Match[str]) -> Response:
        site = self.site(request)
        user = site.users.get(int(m.group("uid")))
        if user is None:
            raise user_not_found()
        return odata.entity(
            request, odata.select_props(self.user_json(request, user), request.query.get("$select"))
        )

    def user_by_email(self, request: Request, m: re.Match[str]) -> Response:
        site = self.site(request)
        user = site.user_by_email(unquote_literal(m.group("email")))
        if user is None:
            raise user_not_found()
        return odata.entity(request, self.user_json(request, user))

    def user_by_login(self, request: Request, m: re.Match[str]) -> Response:
        site = self.site(request)
        user = site.user_by_login(unquote_literal(m.group("login")))
        if user is None:
            raise user_not_found()
        return odata.entity(
            request, odata.select_props(self.user_json(request, user), request.query.get("$select"))
        )

    def current_user(self, request: Request, m: re.Match[str]) -> Response:
        site = self.site(request)
        return odata.entity(
            request, self.user_json(request, self.backend.app_user(site, request.identity))
        )

    def ensure_user(self, request: Request, m: re.Match[str]) -> Response:
        site = self.site(request)
        login = m.groupdict().get("login")
        if login is None:
            body = odata.parse_json_body(request)
            login = body.get("logonName") or body.get("logonname")
        else:
            login = unquote_literal(login)
        if not login:
            raise argument_error("Value cannot be null.\r\nParameter name: logonName")
        return odata.entity(
            request, self.user_json(request, self.backend.ensure_user(site, str(login)))
        )

    # ---- lists ----------------------------------------------------------------------------

    def get_lists(self, request: Request, m: re.Match[str]) -> Response:
        site = self.site(request)
        lists = list(site.lists.values())
        lists = filter_objects(lists, request.query.get("$filter"), list_filter_row)
        rows = [
            odata.select_props(self.list_json(request, site, lst), request.query.get("$select"))
            for lst in lists
        ]
        return odata.collection(request, rows, type_name="SP.ApiData.Lists")

    def create_list(self, request: Request, m: re.Match[str]) -> Response:
        site = self.site(request)
        body = odata.parse_json_body(request)
        if "parameters" in body:
            body = body["parameters"]
        title = body.get("Title")
        if not title:
            raise argument_error("Value cannot be null.\r\nParameter name: Title")
        lst = self.backend.create_list(
            site, str(title), str(body.get("Description") or ""), int(body.get("BaseTemplate", 100))
        )
        return odata.entity(request, self.list_json(request, site, lst), status=201)

    def get_list(self, request: Request, m: re.Match[str]) -> Response:
        site, lst = self.resolve_list(request, m)
        return odata.entity(request, self.list_json_selected(request, site, lst))

    def update_list(self, request: Request, m: re.Match[str]) -> Response:
        site, lst = self.resolve_list(request, m)
        self.backend.update_list(site, lst, odata.parse_json_body(request))
        return odata.no_content()

    def delete_list(self, request: Request, m: re.Match[str]) -> Response:
        site, lst = self.resolve_list(request, m)
        self.backend.delete_list(site, lst)
        return odata.empty_ok(request)

    # ---- fields ---------------------------------------------------------------------------

    def get_fields(self, request: Request, m: re.Match[str]) -> Response:
        _site, lst = self.field_owner(request, m)
        fields = lst.fields
        fields = filter_objects(fields, request.query.get("$filter"), field_filter_row)
        rows = [
            odata.select_props(self.field_json(request, lst, f), request.query.get("$select"))
            for f in fields
        ]
        return odata.collection(request, rows, type_name="SP.ApiData.Fields")

    def find_field(self, request: Request, m: re.Match[str]) -> tuple[Site, SPList, Field]:
        site, lst = self.field_owner(request, m)
        g = m.groupdict()
        f: Field | None
        if g.get("fid") or g.get("fid2"):
            f = lst.field_by_id(g.get("fid") or g["fid2"])
        elif g.get("ftitle") is not None:
            name = unquote_literal(g["ftitle"])
            f = next((x for x in lst.fields if x.title.lower() == name.lower()), None)
        else:
            name = unquote_literal(g["fname"])
            f = next((x for x in lst.fields if x.internal_name == name), None) or next(
                (
                    x
                    for x in lst.fields
                    if x.title.lower() == name.lower() or x.internal_name.lower() == name.lower()
                ),
                None,
            )
        if f is None:
            raise argument_error(
                f"Column '{g.get('fname') or g.get('ftitle') or g.get('fid')}' does not exist. It may have been deleted by another user.",
                status=404,
            )
        return site, lst, f

    def get_field(self, request: Request, m: re.Match[str]) -> Response:
        _site, lst, f = self.find_field(request, m)
        return odata.entity(
            request,
            odata.select_props(self.field_json(request, lst, f), request.query.get("$select")),
        )

    def update_field(self, request: Request, m: re.Match[str]) -> Response:
        _site, lst, f = self.find_field(request, m)
        self.backend.update_field(lst, f, odata.parse_json_body(request))
        return odata.no_content()

    def delete_field(self, request: Request, m: re.Match[str]) -> Response:
        _site, lst, f = self.find_field(request, m)
        self.backend.delete_field(lst, f)
        return odata.empty_ok(request)

    def add_field(self, request: Request, m: re.Match[str]) -> Response:
        site, lst = self.field_owner(request, m)
        body = odata.parse_json_body(request)
        params = body.get("parameters", body)
        f = self.backend.add_field(site, lst, field_from_properties(params))
        return odata.entity(request, self.field_json(request, lst, f))

    def post_field(self, request: Request, m: re.Match[str]) -> Response:
        site, lst = self.field_owner(request, m)
        f = self.backend.add_field(site, lst, field_from_properties(odata.parse_json_body(request)))
        return odata.entity(request, self.field_json(request, lst, f), status=201)

    def create_field_as_xml(self, request: Request, m: re.Match[str]) -> Response:
        site, lst = self.field_owner(request, m)
        body = odata.parse_json_body(request)
        params = body.get("parameters", body)
        xml = params.get("SchemaXml")
        if not xml:
            raise argument_error("Value cannot be null.\r\nParameter name: SchemaXml")
        f = self.backend.add_field(site, lst, field_from_schema_xml(str(xml)), unique_name=False)
        return odata.entity(request, self.field_json(request, lst, f))
