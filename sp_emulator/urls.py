"""The route tables: every URL the emulator answers, in one place (moto's `urls.py`).

Each row is (HTTP method, path pattern below the site, handler as "area.method", route name).
The areas are the responses objects the app builds (`service`, `web`, `items`, `files`,
`admin`, `identity`); `build_router` binds the rows to them. Patterns match the percent-decoded
path case-insensitively and must match the whole path (a trailing `/` is allowed). Route names
appear in `emu.stats()["routes"]` and in the journal; a route name ending in a read-only POST is
listed in `READ_ONLY_POSTS` so that read-only apps may call it.
"""

from __future__ import annotations

from collections.abc import Mapping

from sp_emulator.http import Router
from sp_emulator.identity.service import MI_ROUTE
from sp_emulator.odata import GUID_RE, LIST_ADDR, QUOTED
from sp_emulator.responses.files import (
    FILE_ADD_PATH,
    FILE_DOWNLOAD_PATH,
    FILE_PATH,
    FILE_UPLOAD_PATH,
)

RouteRow = tuple[str, str, str, str]

L = LIST_ADDR
LIST_BY_PATH = (
    rf"/_api/web/getlistusingpath\((?:decodedurl='(?P<lpath>{QUOTED})'"
    r"|(?:decodedurl=)?@(?P<lalias>\w+))\)"
)
# One item of a list: items(N), items/GetById(N), GetItemById(N).
ITEM = L + r"/(?:items\(|items/getbyid\(|getitembyid\()(?P<iid>\d+)\)"
# One attachment of an item: AttachmentFiles('name') or AttachmentFiles/GetByFileName('name').
ATTACHMENT = ITEM + rf"/attachmentfiles(?:\('|/getbyfilename\(')(?P<afile>{QUOTED})'\)"
# One field of a list (or of the web: site columns), by internal name or title, title, or id.
FIELD_REF = (
    rf"/fields(?:/getbyinternalnameortitle\('(?P<fname>{QUOTED})'\)"
    rf"|/getbytitle\('(?P<ftitle>{QUOTED})'\)"
    rf"|\(guid'(?P<fid>{GUID_RE})'\)"
    rf"|/getbyid\('(?P<fid2>{GUID_RE})'\))"
)
FIELD = L + FIELD_REF
WEB_FIELD = r"/_api/web" + FIELD_REF

# One recycle-bin entry: RecycleBin('id') or RecycleBin/GetById('id').
RECYCLED = rf"/_api/(?:web|site)/recyclebin(?:\('|/getbyid\(')(?P<rid>{GUID_RE})'\)"


def _securable(base: str) -> tuple[RouteRow, ...]:
    """The permission rows of one kind of securable object (web, list, item)."""
    ra = base + r"/roleassignments"
    one = ra + r"/getbyprincipalid\((?P<pid>\d+)\)"
    args = r"(?:\((?P<args>[^)]*)\))?"
    return (
        ("GET", base + r"/hasuniqueroleassignments", "security.has_unique", "security.get"),
        (
            "POST",
            base + r"/breakroleinheritance" + args,
            "security.break_inheritance",
            "security.update",
        ),
        (
            "POST",
            base + r"/resetroleinheritance(?:\(\))?",
            "security.reset_inheritance",
            "security.update",
        ),
        ("GET", ra, "security.assignments", "security.get"),
        ("GET", one, "security.assignment", "security.get"),
        ("GET", one + r"/roledefinitionbindings", "security.assignment_bindings", "security.get"),
        ("GET", one + r"/member", "security.assignment_member", "security.get"),
        ("POST", ra + r"/addroleassignment" + args, "security.add_assignment", "security.update"),
        (
            "POST",
            ra + r"/removeroleassignment" + args,
            "security.remove_assignment",
            "security.update",
        ),
    )


# One view of a list: DefaultView, Views/GetByTitle('t'), Views(guid'…'), Views/GetById('…').
VIEW = (
    L + rf"/(?:(?P<vdefault>defaultview)|views/getbytitle\('(?P<vtitle>{QUOTED})'\)"
    rf"|views\((?:guid)?'(?P<vguid>{GUID_RE})'\)|views/getbyid\('(?P<vguid2>{GUID_RE})'\))"
)
VIEW_FIELD = r"(?:\('(?P<vfield>" + QUOTED + r")'\)|\(\))?"

GROUP = rf"/_api/web/sitegroups(?:/getbyid\((?P<gid>\d+)\)|\((?P<gid2>\d+)\)|/getbyname\('(?P<gname>{QUOTED})'\))"

SHAREPOINT_ROUTES: tuple[RouteRow, ...] = (
    # service
    ("POST", r"/_api/contextinfo", "service.contextinfo", "contextinfo"),
    # The static SP.Web.GetContextWebInformation answers the same as contextinfo.
    ("POST", r"/_api/sp\.web\.getcontextwebinformation", "service.contextinfo", "contextinfo"),
    ("POST", r"/_api/\$batch", "service.batch", "batch"),
    # items
    ("GET", L + r"/items", "items.list_items", "items.list"),
    ("POST", L + r"/items", "items.create_item", "items.create"),
    ("POST", L + r"/getitems", "items.caml_items", "items.query"),
    ("POST", L + r"/renderlistdataasstream", "items.render_list_data", "items.render"),
    ("GET", ITEM, "items.get_item", "items.get"),
    ("MERGE", ITEM, "items.update_item", "items.update"),
    ("PATCH", ITEM, "items.update_item", "items.update"),
    ("PUT", ITEM, "items.update_item", "items.update"),
    ("DELETE", ITEM, "items.delete_item", "items.delete"),
    ("POST", ITEM + r"/deleteobject(?:\(\))?", "items.delete_item", "items.delete"),
    ("POST", ITEM + r"/recycle(?:\(\))?", "items.recycle_item", "items.recycle"),
    ("GET", ITEM + r"/parentlist", "items.parent_list", "lists.get"),
    ("GET", ITEM + r"/versions", "items.item_versions", "items.versions"),
    (
        "GET",
        ITEM + r"/versions(?:\((?P<vid>\d+)\)|/getbyid\((?P<vid2>\d+)\)"
        rf"|/getbylabel\('(?P<vlabel>{QUOTED})'\))",
        "items.item_version",
        "items.version",
    ),
    ("GET", ITEM + r"/attachmentfiles", "items.attachments", "attachments.list"),
    (
        "POST",
        ITEM + rf"/attachmentfiles/(?:add\((?:filename=)?'(?P<aname>{QUOTED})'\)"
        r"|addusingpath\((?:decodedurl=)?@(?P<aalias>\w+)\))",
        "items.add_attachment",
        "attachments.add",
    ),
    ("GET", ATTACHMENT, "items.attachment", "attachments.get"),
    ("GET", ATTACHMENT + r"/\$value", "items.attachment_content", "attachments.download"),
    ("DELETE", ATTACHMENT, "items.delete_attachment", "attachments.delete"),
    (
        "POST",
        ATTACHMENT + r"/(?:deleteobject|recycleobject)(?:\(\))?",
        "items.delete_attachment",
        "attachments.delete",
    ),
    ("POST", ITEM + r"/systemupdate(?:\(\))?", "items.system_update", "items.update"),
    ("POST", ITEM + r"/updateoverwriteversion(?:\(\))?", "items.overwrite_version", "items.update"),
    ("POST", ITEM + r"/validateupdatelistitem(?:\(\))?", "items.validate_update", "items.update"),
    # change log and recycle bin
    ("POST", L + r"/getchanges", "items.list_changes", "changes.list"),
    ("POST", r"/_api/(?:web|site/rootweb)/getchanges", "items.web_changes", "changes.web"),
    ("POST", r"/_api/site/getchanges", "items.site_changes", "changes.site"),
    ("GET", r"/_api/(?:web|site)/recyclebin", "items.recycle_bin", "recyclebin.list"),
    ("GET", RECYCLED, "items.recycle_bin_item", "recyclebin.get"),
    ("POST", RECYCLED + r"/deleteobject(?:\(\))?", "items.purge", "recyclebin.delete"),
    ("DELETE", RECYCLED, "items.purge", "recyclebin.delete"),
    (
        "POST",
        r"/_api/(?:web|site)/recyclebin/deleteall(?:\(\))?",
        "items.purge_all",
        "recyclebin.deleteall",
    ),
    ("POST", RECYCLED + r"/restore(?:\(\))?", "items.restore", "recyclebin.restore"),
    # web, site, regional settings
    ("GET", r"/_api/web", "web.get_web", "web.get"),
    ("GET", r"/_api/site", "web.get_site", "site.get"),
    ("GET", r"/_api/site/rootweb", "web.get_web", "web.get"),
    ("GET", r"/_api/web/regionalsettings", "web.regional_settings", "web.regionalsettings"),
    ("GET", r"/_api/web/regionalsettings/timezone", "web.time_zone", "web.timezone"),
    # users
    ("GET", r"/_api/web/siteusers", "web.site_users", "users.list"),
    (
        "GET",
        r"/_api/web/(?:siteusers/getbyid|getuserbyid)\((?P<uid>\d+)\)",
        "web.user_by_id",
        "users.get",
    ),
    (
        "GET",
        rf"/_api/web/siteusers/getbyemail\('(?P<email>{QUOTED})'\)",
        "web.user_by_email",
        "users.get",
    ),
    ("GET", r"/_api/web/currentuser", "web.current_user", "users.current"),
    (
        "GET",
        rf"/_api/web/siteusers/getbyloginname\('(?P<login>{QUOTED})'\)",
        "web.user_by_login",
        "users.get",
    ),
    ("POST", r"/_api/web/ensureuser", "web.ensure_user", "users.ensure"),
    ("POST", rf"/_api/web/ensureuser\('(?P<login>{QUOTED})'\)", "web.ensure_user", "users.ensure"),
    # lists
    ("GET", r"/_api/web/lists", "web.get_lists", "lists.list"),
    ("POST", r"/_api/web/lists", "web.create_list", "lists.create"),
    ("GET", L, "web.get_list", "lists.get"),
    # GetListUsingPath is a service operation: office365 POSTs it.
    ("POST", LIST_BY_PATH, "web.get_list", "lists.getbypath"),
    ("MERGE", L, "web.update_list", "lists.update"),
    ("PATCH", L, "web.update_list", "lists.update"),
    ("DELETE", L, "web.delete_list", "lists.delete"),
    # fields
    ("GET", L + r"/fields", "web.get_fields", "fields.list"),
    ("POST", L + r"/fields", "web.post_field", "fields.create"),
    ("POST", L + r"/fields/addfield", "web.add_field", "fields.addfield"),
    ("POST", L + r"/fields/createfieldasxml", "web.create_field_as_xml", "fields.createfieldasxml"),
    ("GET", FIELD, "web.get_field", "fields.get"),
    ("MERGE", FIELD, "web.update_field", "fields.update"),
    ("PATCH", FIELD, "web.update_field", "fields.update"),
    ("DELETE", FIELD, "web.delete_field", "fields.delete"),
    ("POST", FIELD + r"/deleteobject(?:\(\))?", "web.delete_field", "fields.delete"),
    # site columns of the root web
    ("GET", r"/_api/(?:web|site/rootweb)/fields", "web.get_fields", "fields.list"),
    ("POST", r"/_api/web/fields", "web.post_field", "fields.create"),
    ("POST", r"/_api/web/fields/addfield", "web.add_field", "fields.addfield"),
    (
        "POST",
        r"/_api/web/fields/createfieldasxml",
        "web.create_field_as_xml",
        "fields.createfieldasxml",
    ),
    ("GET", WEB_FIELD, "web.get_field", "fields.get"),
    ("MERGE", WEB_FIELD, "web.update_field", "fields.update"),
    ("PATCH", WEB_FIELD, "web.update_field", "fields.update"),
    ("DELETE", WEB_FIELD, "web.delete_field", "fields.delete"),
    ("POST", WEB_FIELD + r"/deleteobject(?:\(\))?", "web.delete_field", "fields.delete"),
    # views
    ("GET", L + r"/views", "views.list_views", "views.list"),
    ("POST", L + r"/views(?:/add)?", "views.create_view", "views.create"),
    ("GET", VIEW, "views.get_view", "views.get"),
    ("MERGE", VIEW, "views.update_view", "views.update"),
    ("PATCH", VIEW, "views.update_view", "views.update"),
    ("DELETE", VIEW, "views.delete_view", "views.delete"),
    ("POST", VIEW + r"/deleteobject(?:\(\))?", "views.delete_view", "views.delete"),
    ("GET", VIEW + r"/viewfields", "views.view_fields", "views.fields"),
    (
        "POST",
        VIEW + r"/viewfields/addviewfield" + VIEW_FIELD,
        "views.add_view_field",
        "views.update",
    ),
    (
        "POST",
        VIEW + r"/viewfields/removeviewfield" + VIEW_FIELD,
        "views.remove_view_field",
        "views.update",
    ),
    (
        "POST",
        VIEW + r"/viewfields/removeallviewfields(?:\(\))?",
        "views.remove_all_view_fields",
        "views.update",
    ),
    # permissions
    *_securable(r"/_api/web"),
    *_securable(L),
    *_securable(ITEM),
    ("GET", r"/_api/web/roledefinitions", "security.role_definitions", "security.get"),
    (
        "GET",
        r"/_api/web/roledefinitions(?:/getbytype\((?P<rtype>\d+)\)|/getbyid\((?P<rid>\d+)\)"
        rf"|\((?P<rid2>\d+)\)|/getbyname\('(?P<rname>{QUOTED})'\))",
        "security.role_definition",
        "security.get",
    ),
    ("GET", r"/_api/web/sitegroups", "security.groups", "groups.list"),
    ("POST", r"/_api/web/sitegroups", "security.create_group", "groups.create"),
    ("GET", GROUP, "security.group", "groups.get"),
    ("GET", GROUP + r"/users", "security.group_users", "groups.users"),
    ("POST", GROUP + r"/users", "security.add_group_user", "groups.adduser"),
    ("POST", r"/_api/sp\.movecopyutil\.(?P<op>\w+)", "files.move_copy_util", "files.movecopy"),
    # folders and files: one navigator walks the rest of the path
    ("GET", FILE_DOWNLOAD_PATH, "files.handle", "files.download"),
    ("POST", FILE_UPLOAD_PATH, "files.handle", "files.upload_chunk"),
    ("POST", FILE_ADD_PATH, "files.handle", "files.add"),
    ("*", FILE_PATH, "files.handle", "files.entity"),
)

# POSTs that only read: they must pass for read-only apps.
READ_ONLY_POSTS = frozenset(
    {
        "contextinfo",
        "changes.list",
        "changes.web",
        "changes.site",
        "batch",
        "lists.getbypath",
        "items.query",
        "items.render",
    }
)

ADMIN_ROUTES: tuple[RouteRow, ...] = (
    ("GET", MI_ROUTE, "identity.managed_identity_token", "identity.token"),
    ("GET", r"/_emulator/stats", "admin.stats", "admin.stats"),
    ("POST", r"/_emulator/stats/reset", "admin.stats_reset", "admin.stats.reset"),
    ("GET", r"/_emulator/journal", "admin.journal", "admin.journal"),
    ("GET", r"/_emulator/faults", "admin.faults_get", "admin.faults"),
    ("POST", r"/_emulator/faults", "admin.faults_add", "admin.faults.add"),
    ("POST", r"/_emulator/faults/clear", "admin.faults_clear", "admin.faults.clear"),
    ("POST", r"/_emulator/digests/expire", "admin.expire_digests", "admin.digests.expire"),
    ("POST", r"/_emulator/tokens/expire", "admin.expire_tokens", "admin.tokens.expire"),
    ("POST", r"/_emulator/reset", "admin.reset", "admin.reset"),
    ("GET", r"/_emulator/sites", "admin.sites_get", "admin.sites"),
    ("POST", r"/_emulator/sites", "admin.sites_add", "admin.sites.add"),
    ("POST", r"/_emulator/seed", "admin.seed", "admin.seed"),
    ("GET", r"/_emulator/clock", "admin.clock_get", "admin.clock"),
    ("POST", r"/_emulator/clock", "admin.clock_post", "admin.clock.advance"),
    ("POST", r"/_emulator/token", "admin.token", "admin.token"),
    ("POST", r"/_emulator/grants", "admin.grant", "admin.grant"),
)


def build_router(rows: tuple[RouteRow, ...], areas: Mapping[str, object]) -> Router:
    """Bind a route table to the responses objects named in its rows."""
    router = Router()
    for method, pattern, target, name in rows:
        area, attr = target.split(".", 1)
        router.add(method, pattern, getattr(areas[area], attr), name)
    return router
