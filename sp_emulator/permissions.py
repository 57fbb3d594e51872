"""Permissions backend: role definitions, site groups, role assignments and inheritance.

SharePoint's model (https://learn.microsoft.com/en-us/sharepoint/dev/sp-add-ins/set-custom-permissions-on-a-list-by-using-the-rest-interface):
the web has its own role assignments (principal → role definitions); a list inherits the
web's and an item its list's until `BreakRoleInheritance` gives it a copy (or only the caller
with Full Control) and `ResetRoleInheritance` takes it back. Principals are site users and
site groups, which share one id space. The emulator records and answers all of this; it does
not enforce it on requests (apps are authorised by their Sites.Selected grant).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sp_emulator.errors import argument_error, group_not_found, invalid_argument, user_not_found
from sp_emulator.model import Backend, Site, SPList


@dataclass(frozen=True)
class RoleDefinition:
    id: int
    name: str
    role_type: int  # SP.RoleType: 1 Guest, 2 Reader, 3 Contributor, 4 WebDesigner, 5 Administrator, 6 Editor
    order: int
    description: str


# The default role definitions of a SharePoint Online team site.
ROLE_DEFINITIONS = (
    RoleDefinition(1073741829, "Full Control", 5, 1, "Has full control."),
    RoleDefinition(
        1073741828, "Design", 4, 32, "Can view, add, update, delete, approve, and customize."
    ),
    RoleDefinition(
        1073741830,
        "Edit",
        6,
        48,
        "Can add, edit and delete lists; can view, add, update and delete list items and documents.",
    ),
    RoleDefinition(
        1073741827,
        "Contribute",
        3,
        64,
        "Can view, add, update, and delete list items and documents.",
    ),
    RoleDefinition(
        1073741826, "Read", 2, 128, "Can view pages and list items and download documents."
    ),
    RoleDefinition(
        1073741825,
        "Limited Access",
        1,
        160,
        "Can view specific lists, document libraries, list items, folders, or documents when given permissions.",
    ),
)
FULL_CONTROL, EDIT, READ = 1073741829, 1073741830, 1073741826

Assignments = dict[int, set[int]]  # principal id → role definition ids


@dataclass
class Group:
    id: int
    title: str
    description: str = ""
    users: list[int] = field(default_factory=list)


@dataclass
class Security:
    """One site's groups, the web's assignments and the unique scopes of lists and items."""

    groups: dict[int, Group]
    web: Assignments
    scopes: dict[str, Assignments] = field(default_factory=dict)  # "list:<id>", "item:<id>:<n>"


def role_definition(
    *, role_id: int | None = None, role_type: int | None = None, name: str | None = None
) -> RoleDefinition:
    for rd in ROLE_DEFINITIONS:
        if (
            (role_id is not None and rd.id == role_id)
            or (role_type is not None and rd.role_type == role_type)
            or (name is not None and rd.name.lower() == name.lower())
        ):
            return rd
    raise invalid_argument("Value does not fall within the expected range.", status=404)


def scope_key(lst: SPList | None, item_id: int | None) -> str:
    if lst is None:
        return "web"
    return f"item:{lst.id}:{item_id}" if item_id is not None else f"list:{lst.id}"


class PermissionsBackend:
    """Permission state per site, kept on the site so snapshots (`--data`) carry it."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def security(self, site: Site) -> Security:
        sec: Security | None = site.security
        if sec is None:
            groups = {}
            web: Assignments = {}
            for suffix, role in (("Owners", FULL_CONTROL), ("Members", EDIT), ("Visitors", READ)):
                gid = site.next_user_id
                site.next_user_id += 1
                groups[gid] = Group(gid, f"{site.title} {suffix}")
                web[gid] = {role}
            sec = Security(groups, web)
            site.security = sec
        return sec

    # ---- principals -------------------------------------------------------------------------

    def principal_exists(self, site: Site, principal_id: int) -> bool:
        return principal_id in site.users or principal_id in self.security(site).groups

    def group(self, site: Site, *, group_id: int | None = None, name: str | None = None) -> Group:
        for g in self.security(site).groups.values():
            if (group_id is not None and g.id == group_id) or (
                name is not None and g.title.lower() == name.lower()
            ):
                return g
        raise group_not_found()

    def add_group(self, site: Site, title: str, description: str) -> Group:
        with self.backend.lock:
            sec = self.security(site)
            if not title:
                raise argument_error("Value cannot be null.\r\nParameter name: Title")
            if any(g.title.lower() == title.lower() for g in sec.groups.values()):
                raise argument_error(f"The specified name is already in use: {title}.")
            gid = site.next_user_id
            site.next_user_id += 1
            sec.groups[gid] = Group(gid, title, description)
            self.backend.touch()
            return sec.groups[gid]

    def add_group_user(self, site: Site, group: Group, login: str) -> int:
        with self.backend.lock:
            user = self.backend.ensure_user(site, login)
            if user.id not in group.users:
                group.users.append(user.id)
            self.backend.touch()
            return user.id

    # ---- assignments ------------------------------------------------------------------------

    def has_unique(self, site: Site, lst: SPList | None, item_id: int | None) -> bool:
        key = scope_key(lst, item_id)
        return key == "web" or key in self.security(site).scopes

    def effective(self, site: Site, lst: SPList | None, item_id: int | None) -> Assignments:
        sec = self.security(site)
        if lst is None:
            return sec.web
        if item_id is not None and scope_key(lst, item_id) in sec.scopes:
            return sec.scopes[scope_key(lst, item_id)]
        return sec.scopes.get(scope_key(lst, None), sec.web)

    def _own(self, site: Site, lst: SPList | None, item_id: int | None) -> Assignments:
        key = scope_key(lst, item_id)
        if key == "web":
            return self.security(site).web
        own = self.security(site).scopes.get(key)
        if own is None:
            raise invalid_argument(
                "This operation is not allowed on an object that inherits permissions.", status=400
            )
        return own

    def break_inheritance(
        self,
        site: Site,
        lst: SPList | None,
        item_id: int | None,
        *,
        copy: bool,
        clear_subscopes: bool,
        caller_id: int,
    ) -> None:
        with self.backend.lock:
            sec = self.security(site)
            key = scope_key(lst, item_id)
            if key != "web" and key not in sec.scopes:
                parent = self.effective(site, lst, None) if item_id is not None else sec.web
                sec.scopes[key] = (
                    {p: set(r) for p, r in parent.items()} if copy else {caller_id: {FULL_CONTROL}}
                )
            if clear_subscopes and lst is not None and item_id is None:
                prefix = f"item:{lst.id}:"
                for k in [k for k in sec.scopes if k.startswith(prefix)]:
                    del sec.scopes[k]
            self.backend.touch()

    def reset_inheritance(self, site: Site, lst: SPList | None, item_id: int | None) -> None:
        with self.backend.lock:
            if lst is None:
                raise invalid_argument("The root web cannot inherit permissions.", status=400)
            self.security(site).scopes.pop(scope_key(lst, item_id), None)
            self.backend.touch()

    def add_assignment(
        self, site: Site, lst: SPList | None, item_id: int | None, principal_id: int, role_id: int
    ) -> None:
        with self.backend.lock:
            if not self.principal_exists(site, principal_id):
                raise user_not_found(status=400)
            role_definition(role_id=role_id)
            self._own(site, lst, item_id).setdefault(principal_id, set()).add(role_id)
            self.backend.touch()

    def remove_assignment(
        self, site: Site, lst: SPList | None, item_id: int | None, principal_id: int, role_id: int
    ) -> None:
        with self.backend.lock:
            own = self._own(site, lst, item_id)
            roles = own.get(principal_id)
            if roles is not None:
                roles.discard(role_id)
                if not roles:
                    del own[principal_id]
            self.backend.touch()
