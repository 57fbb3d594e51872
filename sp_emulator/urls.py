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
# One item of a list: items(N), items/GetById(N), GetItemById(N).
ITEM = L + r"/(?:items\(|items/getbyid\(|getitembyid\()(?P<iid>\d+)\)"
# One field of a list, by internal name or title, title, or id.
FIELD = (
    L + rf"/fields(?:/getbyinternalnameortitle\('(?P<fname>{QUOTED})'\)"
    rf"|/getbytitle\('(?P<ftitle>{QUOTED})'\)"
    rf"|\(guid'(?P<fid>{GUID_RE})'\)"
    rf"|/getbyid\('(?P<fid2>{GUID_RE})'\))"
)

SHAREPOINT_ROUTES: tuple[RouteRow, ...] = (
    # service
    ("POST", r"/_api/contextinfo", "service.contextinfo", "contextinfo"),
    ("POST", r"/_api/\$batch", "service.batch", "batch"),
    # items
    ("GET", L + r"/items", "items.list_items", "items.list"),
    ("POST", L + r"/items", "items.create_item", "items.create"),
    ("GET", ITEM, "items.get_item", "items.get"),
    ("MERGE", ITEM, "items.update_item", "items.update"),
    ("PATCH", ITEM, "items.update_item", "items.update"),
    ("PUT", ITEM, "items.update_item", "items.update"),
    ("DELETE", ITEM, "items.delete_item", "items.delete"),
    ("POST", ITEM + r"/deleteobject(?:\(\))?", "items.delete_item", "items.delete"),
    ("POST", ITEM + r"/recycle(?:\(\))?", "items.recycle_item", "items.recycle"),
    ("GET", ITEM + r"/parentlist", "items.parent_list", "lists.get"),
    # change log and recycle bin
    ("POST", L + r"/getchanges", "items.list_changes", "changes.list"),
    ("POST", r"/_api/web/getchanges", "items.web_changes", "changes.web"),
    ("GET", r"/_api/(?:web|site)/recyclebin", "items.recycle_bin", "recyclebin.list"),
    (
        "POST",
        rf"/_api/(?:web|site)/recyclebin\('(?P<rid>{GUID_RE})'\)/restore(?:\(\))?",
        "items.restore",
        "recyclebin.restore",
    ),
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
    ("POST", r"/_api/web/ensureuser", "web.ensure_user", "users.ensure"),
    ("POST", rf"/_api/web/ensureuser\('(?P<login>{QUOTED})'\)", "web.ensure_user", "users.ensure"),
    # lists
    ("GET", r"/_api/web/lists", "web.get_lists", "lists.list"),
    ("POST", r"/_api/web/lists", "web.create_list", "lists.create"),
    ("GET", L, "web.get_list", "lists.get"),
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
    # folders and files: one navigator walks the rest of the path
    ("GET", FILE_DOWNLOAD_PATH, "files.handle", "files.download"),
    ("POST", FILE_UPLOAD_PATH, "files.handle", "files.upload_chunk"),
    ("POST", FILE_ADD_PATH, "files.handle", "files.add"),
    ("*", FILE_PATH, "files.handle", "files.entity"),
)

# POSTs that only read: they must pass for read-only apps.
READ_ONLY_POSTS = frozenset({"contextinfo", "changes.list", "changes.web", "batch"})

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
