"""Responses for permissions: role assignments, inheritance, role definitions, site groups.

The same operations exist on the web, a list and an item (securable objects); the route
table (`sp_emulator/urls.py`) repeats one set of rows for each, and `_scope` tells them apart
by the groups the route's pattern captured.
"""

from __future__ import annotations

import re
from typing import Any

from sp_emulator import odata
from sp_emulator.errors import invalid_argument, invalid_query
from sp_emulator.http import Request, Response
from sp_emulator.model import Backend, Site, SPList
from sp_emulator.permissions import (
    ROLE_DEFINITIONS,
    Group,
    PermissionsBackend,
    RoleDefinition,
    role_definition,
)
from sp_emulator.responses.web import WebResponses

_PARAM = re.compile(r"(\w+)\s*=\s*([^,)]+)")


def _params(request: Request, m: Any) -> dict[str, str]:
    """Parameters from `op(a=1,b=true)` in the URL, else from the JSON body (lower-case keys)."""
    text = (m.groupdict().get("args") or "").strip()
    found = {k.lower(): v.strip().strip("'") for k, v in _PARAM.findall(text)}
    if not found:
        body = odata.parse_json_body(request)
        found = {k.lower(): str(v) for k, v in body.items() if k != "__metadata"}
    return found


def _int(params: dict[str, str], name: str) -> int:
    try:
        return int(params[name])
    except (KeyError, ValueError) as exc:
        raise invalid_query(f"The parameter {name} is missing or not a number.") from exc


class SecurityResponses:
    def __init__(self, backend: Backend, web: WebResponses) -> None:
        self.backend = backend
        self.web = web
        self.perms = PermissionsBackend(backend)

    # ---- helpers ----------------------------------------------------------------------------

    def _scope(self, request: Request, m: Any) -> tuple[Site, SPList | None, int | None, str]:
        """(site, list or None for the web, item id or None, the object's URL)."""
        g = m.groupdict()
        site = self.web.site(request)
        if not any(
            g.get(k)
            for k in (
                "ltitle",
                "ltitle2",
                "lid",
                "lid2",
                "lid3",
                "lguid",
                "lurl",
                "lpath",
                "lalias",
                "ldefault",
            )
        ):
            return site, None, None, f"{request.site_url}/_api/Web"
        _site, lst = self.web.resolve_list(request, m)
        base = f"{request.site_url}/_api/Web/Lists(guid'{lst.id}')"
        if g.get("iid"):
            item = self.backend.get_item(lst, int(g["iid"]))
            return site, lst, item.id, f"{base}/Items({item.id})"
        return site, lst, None, base

    def role_json(self, request: Request, rd: RoleDefinition) -> dict[str, Any]:
        uri = f"{request.site_url}/_api/Web/RoleDefinitions({rd.id})"
        return {
            "__metadata": {"id": uri, "uri": uri, "type": "SP.RoleDefinition"},
            "BasePermissions": {
                "__metadata": {"type": "SP.BasePermissions"},
                "High": "0",
                "Low": "0",
            },
            "Description": rd.description,
            "Hidden": rd.role_type == 1,
            "Id": rd.id,
            "Name": rd.name,
            "Order": rd.order,
            "RoleTypeKind": rd.role_type,
        }

    def group_json(self, request: Request, g: Group) -> dict[str, Any]:
        uri = f"{request.site_url}/_api/Web/SiteGroups/GetById({g.id})"
        return {
            "__metadata": {"id": uri, "uri": uri, "type": "SP.Group"},
            "Users": {"__deferred": {"uri": f"{uri}/Users"}},
            "Id": g.id,
            "IsHiddenInUI": False,
            "LoginName": g.title,
            "Title": g.title,
            "PrincipalType": 8,
            "Description": g.description,
            "OwnerTitle": g.title,
        }

    def _principal_json(self, request: Request, site: Site, principal_id: int) -> dict[str, Any]:
        sec = self.perms.security(site)
        if principal_id in sec.groups:
            return self.group_json(request, sec.groups[principal_id])
        return self.web.user_json(request, site.users[principal_id])

    def assignment_json(
        self, request: Request, base: str, site: Site, principal_id: int
    ) -> dict[str, Any]:
        uri = f"{base}/RoleAssignments/GetByPrincipalId({principal_id})"
        return {
            "__metadata": {"id": uri, "uri": uri, "type": "SP.RoleAssignment"},
            "Member": {"__deferred": {"uri": f"{uri}/Member"}},
            "RoleDefinitionBindings": {"__deferred": {"uri": f"{uri}/RoleDefinitionBindings"}},
            "PrincipalId": principal_id,
        }

    # ---- securable objects ------------------------------------------------------------------

    def has_unique(self, request: Request, m: Any) -> Response:
        site, lst, item_id, _base = self._scope(request, m)
        value = self.perms.has_unique(site, lst, item_id)
        return odata.value(request, "HasUniqueRoleAssignments", value)

    def break_inheritance(self, request: Request, m: Any) -> Response:
        site, lst, item_id, _base = self._scope(request, m)
        params = _params(request, m)
        copy = params.get("copyroleassignments", "true").lower() == "true"
        clear = params.get("clearsubscopes", "true").lower() == "true"
        caller = self.backend.app_user(site, request.identity).id
        self.perms.break_inheritance(
            site, lst, item_id, copy=copy, clear_subscopes=clear, caller_id=caller
        )
        return odata.value(request, "BreakRoleInheritance", None)

    def reset_inheritance(self, request: Request, m: Any) -> Response:
        site, lst, item_id, _base = self._scope(request, m)
        self.perms.reset_inheritance(site, lst, item_id)
        return odata.value(request, "ResetRoleInheritance", None)

    def assignments(self, request: Request, m: Any) -> Response:
        site, lst, item_id, base = self._scope(request, m)
        rows = [
            self.assignment_json(request, base, site, pid)
            for pid in sorted(self.perms.effective(site, lst, item_id))
        ]
        return odata.collection(request, rows, type_name="SP.ApiData.RoleAssignments")

    def _assignment(self, request: Request, m: Any) -> tuple[Site, set[int], int, str]:
        site, lst, item_id, base = self._scope(request, m)
        pid = int(m.group("pid"))
        roles = self.perms.effective(site, lst, item_id).get(pid)
        if not roles:
            raise invalid_argument("Can not find the principal with id: " + str(pid) + ".", 404)
        return site, roles, pid, base

    def assignment(self, request: Request, m: Any) -> Response:
        site, _roles, pid, base = self._assignment(request, m)
        return odata.entity(request, self.assignment_json(request, base, site, pid))

    def assignment_bindings(self, request: Request, m: Any) -> Response:
        _site, roles, _pid, _base = self._assignment(request, m)
        rows = [self.role_json(request, rd) for rd in ROLE_DEFINITIONS if rd.id in roles]
        return odata.collection(request, rows, type_name="SP.ApiData.RoleDefinitions")

    def assignment_member(self, request: Request, m: Any) -> Response:
        site, _roles, pid, _base = self._assignment(request, m)
        return odata.entity(request, self._principal_json(request, site, pid))

    def add_assignment(self, request: Request, m: Any) -> Response:
        site, lst, item_id, _base = self._scope(request, m)
        params = _params(request, m)
        self.perms.add_assignment(
            site, lst, item_id, _int(params, "principalid"), _int(params, "roledefid")
        )
        return odata.value(request, "AddRoleAssignment", None)

    def remove_assignment(self, request: Request, m: Any) -> Response:
        site, lst, item_id, _base = self._scope(request, m)
        params = _params(request, m)
        self.perms.remove_assignment(
            site, lst, item_id, _int(params, "principalid"), _int(params, "roledefid")
        )
        return odata.value(request, "RemoveRoleAssignment", None)

    # ---- role definitions -------------------------------------------------------------------

    def role_definitions(self, request: Request, m: Any) -> Response:
        self.web.site(request)
        rows = [self.role_json(request, rd) for rd in ROLE_DEFINITIONS]
        return odata.collection(request, rows, type_name="SP.ApiData.RoleDefinitions")

    def role_definition(self, request: Request, m: Any) -> Response:
        self.web.site(request)
        g = m.groupdict()
        if g.get("rtype"):
            rd = role_definition(role_type=int(g["rtype"]))
        elif g.get("rname") is not None:
            rd = role_definition(name=odata.unquote_literal(g["rname"]))
        else:
            rd = role_definition(role_id=int(g.get("rid") or g["rid2"]))
        return odata.entity(request, self.role_json(request, rd))

    # ---- site groups ------------------------------------------------------------------------

    def _group(self, request: Request, m: Any) -> tuple[Site, Group]:
        site = self.web.site(request)
        g = m.groupdict()
        gid = g.get("gid") or g.get("gid2")
        if gid:
            return site, self.perms.group(site, group_id=int(gid))
        return site, self.perms.group(site, name=odata.unquote_literal(g["gname"]))

    def groups(self, request: Request, m: Any) -> Response:
        site = self.web.site(request)
        rows = [self.group_json(request, g) for g in self.perms.security(site).groups.values()]
        return odata.collection(request, rows, type_name="SP.ApiData.Groups")

    def group(self, request: Request, m: Any) -> Response:
        _site, group = self._group(request, m)
        return odata.entity(request, self.group_json(request, group))

    def create_group(self, request: Request, m: Any) -> Response:
        site = self.web.site(request)
        body = odata.parse_json_body(request)
        group = self.perms.add_group(
            site, str(body.get("Title") or ""), str(body.get("Description") or "")
        )
        return odata.entity(request, self.group_json(request, group), status=201)

    def group_users(self, request: Request, m: Any) -> Response:
        site, group = self._group(request, m)
        rows = [self.web.user_json(request, site.users[u]) for u in group.users if u in site.users]
        return odata.collection(request, rows, type_name="SP.ApiData.Users")

    def add_group_user(self, request: Request, m: Any) -> Response:
        site, group = self._group(request, m)
        body = odata.parse_json_body(request)
        login = str(body.get("LoginName") or "")
        if not login:
            raise invalid_query("The parameter LoginName is missing.")
        uid = self.perms.add_group_user(site, group, login)
        return odata.entity(request, self.web.user_json(request, site.users[uid]), status=201)
