"""Read side of the site: web (with its time zone), lists, fields and site users."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, available_timezones

from sp_sync.errors import NotFoundError
from sp_sync.i18n import Text, log_text
from sp_sync.sharepoint.client import clean_entity, quote_path_literal

if TYPE_CHECKING:
    from sp_sync.sharepoint.client import ClientCore

    _Base = ClientCore
else:
    _Base = object

log = logging.getLogger(__name__)

# What each request does, named in error messages and retry warnings (both languages).
_OP_READ_SITE = Text(sv="läsning av webbplatsen", en="reading the site")
_OP_TIME_ZONE = Text(sv="läsning av webbplatsens tidszon", en="reading the site's time zone")
_OP_READ_LIST = Text(sv="läsning av listan '{title}'", en="reading list '{title}'")
_OP_LIST_FOLDER = Text(
    sv="läsning av mappen för listan '{title}'", en="reading the folder of list '{title}'"
)
_OP_LOOKUP_LIST = Text(sv="sökning efter listan '{title}'", en="looking up list '{title}'")
_OP_LIST_LISTS = Text(sv="listning av webbplatsens listor", en="listing the site's lists")
_OP_READ_FIELDS = Text(
    sv="läsning av kolumnerna i listan '{title}'", en="reading the fields of list '{title}'"
)
_OP_USERS = Text(sv="läsning av webbplatsens användare", en="reading the site's users")
_LIST_MISSING = Text(
    sv="Listan '{title}' finns inte på webbplatsen {site}",
    en="The list '{title}' does not exist on site {site}",
)
_LIST_MISSING_HINT = Text(
    sv="Listan '{title}' finns inte på webbplatsen {site} "
    "(kör `sp-sync provision` eller kontrollera SP_SYNC_LISTS)",
    en="The list '{title}' does not exist on site {site} "
    "(run `sp-sync provision` or check SP_SYNC_LISTS)",
)
_UNKNOWN_ZONE = Text(
    sv="Okänd SharePoint-tidszon {zone!r}; antar {default}",
    en="Unknown SharePoint time zone {zone!r}; assuming {default}",
)
_NO_IANA_ZONE = Text(
    sv="SharePoint-tidszonen {zone!r} har ingen IANA-motsvarighet här; använder {default}",
    en="SharePoint time zone {zone!r} has no IANA equivalent here; using {default}",
)

#: The product's home zone: used when a +01:00 SharePoint zone cannot be mapped more precisely.
DEFAULT_ZONE = "Europe/Stockholm"

# SharePoint (SP.TimeZone) ids whose meaning is stable across tenants.
_SP_TIMEZONE_IDS: dict[int, str] = {
    2: "Europe/London",  # (UTC) Dublin, Edinburgh, Lisbon, London
    3: "Europe/Paris",  # (UTC+01:00) Brussels, Copenhagen, Madrid, Paris
    4: "Europe/Stockholm",  # (UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna
    10: "America/New_York",  # (UTC-05:00) Eastern Time (US and Canada)
    11: "America/Chicago",  # (UTC-06:00) Central Time (US and Canada)
    12: "America/Denver",  # (UTC-07:00) Mountain Time (US and Canada)
    13: "America/Los_Angeles",  # (UTC-08:00) Pacific Time (US and Canada)
}
# Windows zone names (Description/StandardName variants) for the Nordic region and neighbours.
_WINDOWS_NAMES: dict[str, str] = {
    "w. europe": "Europe/Stockholm",
    "romance": "Europe/Paris",
    "central europe": "Europe/Budapest",
    "central european": "Europe/Warsaw",
    "gmt": "Europe/London",
    "fle": "Europe/Helsinki",
    "utc": "UTC",
}


@dataclass(frozen=True)
class WebInfo:
    title: str
    url: str
    server_relative_url: str
    time_zone: ZoneInfo
    time_zone_description: str = ""
    language: int | None = None
    id: str | None = None


@dataclass(frozen=True)
class ListInfo:
    id: str
    title: str
    item_count: int
    entity_type_full_name: str
    url: str  # the root folder's name: the list's URL segment (Lists/<url>)
    base_template: int
    last_item_modified: datetime | None
    description: str = ""
    #: The list's change token when this was read (`CurrentChangeToken`, in the same request):
    #: a full read takes it here instead of asking for it separately.
    change_token: str | None = None


@dataclass(frozen=True)
class FieldInfo:
    internal_name: str
    title: str
    type_as_string: str
    kind: int
    required: bool = False
    indexed: bool = False
    choices: tuple[str, ...] = ()
    lookup_list_id: str | None = None
    lookup_field: str | None = None
    allow_multiple: bool = False
    display_format: int | None = None
    hidden: bool = False
    read_only: bool = False
    description: str = ""
    default: str | None = None
    entity_property_name: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class SiteUser:
    id: int
    title: str
    email: str
    login_name: str


def _city_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for name in available_timezones():
        if "/" in name and not name.startswith(("Etc/", "SystemV/", "US/")):
            index.setdefault(name.rsplit("/", 1)[1].replace("_", " ").lower(), name)
    return index


def resolve_time_zone(
    description: str | None, tz_id: int | None = None, bias_minutes: int | None = None
) -> ZoneInfo:
    """Map SharePoint's time zone (Id, Description, Information.Bias) to an IANA zone.

    Order: known SharePoint ids; a city named in the description ("… Stockholm, Vienna");
    a Windows zone name; finally the UTC offset (+01:00 → Europe/Stockholm, else Etc/GMT±N).
    """
    if tz_id is not None and tz_id in _SP_TIMEZONE_IDS:
        return ZoneInfo(_SP_TIMEZONE_IDS[tz_id])
    text = (description or "").strip()
    cities = _city_index()
    tail = re.sub(r"^\(UTC[^)]*\)\s*", "", text)
    names = [p.strip().lower() for p in re.split(r"[,;/]| and ", tail) if p.strip()]
    # Prefer the home zone when it is listed among several cities of the same offset.
    if "stockholm" in names:
        return ZoneInfo("Europe/Stockholm")
    for name in names:
        if name in cities:
            return ZoneInfo(cities[name])
    lowered = text.lower()
    for key, zone in _WINDOWS_NAMES.items():
        if lowered.startswith(key) or f"{key} standard time" in lowered:
            return ZoneInfo(zone)
    offset_minutes: int | None = None
    match = re.match(r"\(UTC(?:([+-])(\d{2}):(\d{2}))?\)", text)
    if match:
        offset_minutes = 0
        if match.group(1):
            offset_minutes = (int(match.group(2)) * 60 + int(match.group(3))) * (
                1 if match.group(1) == "+" else -1
            )
    elif bias_minutes is not None:
        offset_minutes = -int(bias_minutes)  # SharePoint's Bias is UTC minus local
    if offset_minutes == 60 or offset_minutes is None:
        if offset_minutes is None:
            log.warning(
                "Unknown SharePoint time zone %r; assuming %s",
                text,
                DEFAULT_ZONE,
                extra=log_text(_UNKNOWN_ZONE.fill(zone=text, default=DEFAULT_ZONE)),
            )
        return ZoneInfo(DEFAULT_ZONE)
    if offset_minutes % 60 == 0:
        hours = offset_minutes // 60
        return ZoneInfo("UTC" if hours == 0 else f"Etc/GMT{'-' if hours > 0 else '+'}{abs(hours)}")
    log.warning(
        "SharePoint time zone %r has no IANA equivalent here; using %s",
        text,
        DEFAULT_ZONE,
        extra=log_text(_NO_IANA_ZONE.fill(zone=text, default=DEFAULT_ZONE)),
    )
    return ZoneInfo(DEFAULT_ZONE)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _choices(value: Any) -> tuple[str, ...]:
    if isinstance(value, dict):
        value = value.get("results", [])
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return ()


def _token_text(value: Any) -> str | None:
    """`CurrentChangeToken` as text: verbose JSON gives {"StringValue": "..."}."""
    if isinstance(value, dict):
        value = value.get("StringValue")
    return str(value) if value else None


def _guid(value: Any) -> str | None:
    if not value:
        return None
    return str(value).strip("{}").lower()


class ListsMixin(_Base):
    """Web, list, field and user reads. Mixed into `SharePointClient`."""

    def _list_path(self, title: str) -> str:
        return f"/_api/web/lists/GetByTitle({quote_path_literal(title)})"

    def get_web(self) -> WebInfo:
        """The site's title, URLs and time zone (from RegionalSettings/TimeZone)."""
        # One request: the time zone is expanded into the web (a full sync's budget has room
        # for exactly one request about the site); read separately only if it did not come.
        web = self._get_json(
            "/_api/web",
            {
                "$select": "Id,Title,Url,ServerRelativeUrl,Language,RegionalSettings/TimeZone",
                "$expand": "RegionalSettings/TimeZone",
            },
            description=_OP_READ_SITE,
        )
        regional = web.get("RegionalSettings") if isinstance(web, dict) else None
        tz = regional.get("TimeZone") if isinstance(regional, dict) else None
        if not isinstance(tz, dict) or "Description" not in tz:
            tz = self._get_json(
                "/_api/web/RegionalSettings/TimeZone",
                None,
                description=_OP_TIME_ZONE,
            )
        tz = tz if isinstance(tz, dict) else {}
        info = tz.get("Information") if isinstance(tz.get("Information"), dict) else {}
        zone = resolve_time_zone(
            tz.get("Description"),
            int(tz["Id"]) if str(tz.get("Id", "")).lstrip("-").isdigit() else None,
            int(info["Bias"]) if info and str(info.get("Bias", "")).lstrip("-").isdigit() else None,
        )
        return WebInfo(
            title=str(web.get("Title", "")),
            url=str(web.get("Url", self.site_url)),
            server_relative_url=str(web.get("ServerRelativeUrl", "")),
            time_zone=zone,
            time_zone_description=str(tz.get("Description", "")),
            language=int(web["Language"]) if str(web.get("Language", "")).isdigit() else None,
            id=_guid(web.get("Id")),
        )

    def get_list(self, title: str) -> ListInfo:
        """The list's id, counts and names; NotFoundError when the site has no such list."""
        return self._read_list(title, with_fields=False)[0]

    def get_list_with_fields(self, title: str) -> tuple[ListInfo, list[FieldInfo]]:
        """`get_list` and `get_fields` in one request (`$expand=Fields`): the drift check reads
        both for every list every night, and each request costs a round trip to the tenant."""
        return self._read_list(title, with_fields=True)

    def _read_list(self, title: str, *, with_fields: bool) -> tuple[ListInfo, list[FieldInfo]]:
        select = (
            "Id,Title,ItemCount,ListItemEntityTypeFullName,BaseTemplate,"
            "LastItemModifiedDate,Description,CurrentChangeToken,RootFolder/Name"
        )
        try:
            data = self._get_json(
                self._list_path(title),
                {
                    # A navigation property named in both $select and $expand comes inline,
                    # every property of every field (MS Learn: "Use OData query operations in
                    # SharePoint REST requests").
                    "$select": f"{select},Fields" if with_fields else select,
                    "$expand": "RootFolder,Fields" if with_fields else "RootFolder",
                },
                description=_OP_READ_LIST.fill(title=title),
            )
        except NotFoundError as err:
            raise NotFoundError(
                _LIST_MISSING_HINT.fill(title=title, site=self.site_url),
                status=err.status,
                code=err.code,
                request_id=err.request_id,
            ) from err
        root = data.get("RootFolder")
        url = root.get("Name") if isinstance(root, dict) else None
        if not url:
            folder = self._get_json(
                f"{self._list_path(title)}/RootFolder",
                {"$select": "Name"},
                description=_OP_LIST_FOLDER.fill(title=title),
            )
            url = folder.get("Name", "") if isinstance(folder, dict) else ""
        info = ListInfo(
            id=_guid(data.get("Id")) or "",
            title=str(data.get("Title", title)),
            item_count=int(data.get("ItemCount") or 0),
            entity_type_full_name=str(data.get("ListItemEntityTypeFullName", "")),
            url=str(url or ""),
            base_template=int(data.get("BaseTemplate") or 100),
            last_item_modified=_parse_time(data.get("LastItemModifiedDate")),
            description=str(data.get("Description") or ""),
            change_token=_token_text(data.get("CurrentChangeToken")),
        )
        if not with_fields:
            return info, []
        fields = clean_entity(data.get("Fields"))
        if not isinstance(fields, list):
            # The fields did not come inline (a server that ignores the $expand): ask for them.
            return info, self.get_fields(title)
        return info, [field_info(f) for f in fields]

    def list_exists(self, title: str) -> bool:
        """True when the site has a list with this title (raises when it cannot tell)."""
        try:
            self._get_json(
                self._list_path(title),
                {"$select": "Id"},
                description=_OP_LOOKUP_LIST.fill(title=title),
            )
        except NotFoundError:
            return False
        return True

    def list_lists(self) -> list[ListInfo]:
        """All lists of the site (titles, ids, counts; `url` not resolved)."""
        data = self._get_json(
            "/_api/web/lists",
            {
                "$select": "Id,Title,ItemCount,ListItemEntityTypeFullName,BaseTemplate,LastItemModifiedDate"
            },
            description=_OP_LIST_LISTS,
        )
        rows = data.get("results", []) if isinstance(data, dict) else []
        return [
            ListInfo(
                id=_guid(r.get("Id")) or "",
                title=str(r.get("Title", "")),
                item_count=int(r.get("ItemCount") or 0),
                entity_type_full_name=str(r.get("ListItemEntityTypeFullName", "")),
                url="",
                base_template=int(r.get("BaseTemplate") or 100),
                last_item_modified=_parse_time(r.get("LastItemModifiedDate")),
            )
            for r in rows
        ]

    def get_fields(self, title: str) -> list[FieldInfo]:
        """Every field of the list (hidden and read-only ones too; filter as needed)."""
        try:
            data = self._get_json(
                f"{self._list_path(title)}/fields",
                None,
                description=_OP_READ_FIELDS.fill(title=title),
            )
        except NotFoundError as err:
            raise NotFoundError(
                _LIST_MISSING.fill(title=title, site=self.site_url),
                status=err.status,
                code=err.code,
                request_id=err.request_id,
            ) from err
        rows = data.get("results", []) if isinstance(data, dict) else []
        return [field_info(clean_entity(r)) for r in rows]

    def get_site_users(self) -> dict[int, SiteUser]:
        """The site's users by id (to resolve person columns without `$expand`)."""
        users: dict[int, SiteUser] = {}
        path: str = "/_api/web/siteusers"
        params: dict[str, str] | None = {"$select": "Id,Title,Email,LoginName"}
        while True:
            data = self._get_json(path, params, description=_OP_USERS)
            for r in data.get("results", []) if isinstance(data, dict) else []:
                users[int(r["Id"])] = SiteUser(
                    int(r["Id"]),
                    str(r.get("Title") or ""),
                    str(r.get("Email") or ""),
                    str(r.get("LoginName") or ""),
                )
            nxt = data.get("__next") if isinstance(data, dict) else None
            if not nxt:
                return users
            path, params = str(nxt), None


def field_info(r: dict[str, Any]) -> FieldInfo:
    """FieldInfo from a field's JSON (verbose, metadata already dropped)."""
    kind_raw = r.get("FieldTypeKind", 0)
    kind = int(getattr(kind_raw, "value", kind_raw) or 0)
    display = r.get("DisplayFormat")
    return FieldInfo(
        internal_name=str(r.get("InternalName", "")),
        title=str(r.get("Title", "")),
        type_as_string=str(r.get("TypeAsString", "")),
        kind=kind,
        required=bool(r.get("Required", False)),
        indexed=bool(r.get("Indexed", False)),
        choices=_choices(r.get("Choices")),
        lookup_list_id=_guid(r.get("LookupList")),
        lookup_field=r.get("LookupField") or None,
        allow_multiple=bool(r.get("AllowMultipleValues", False))
        or str(r.get("TypeAsString", "")) in ("LookupMulti", "UserMulti", "MultiChoice"),
        display_format=int(display) if isinstance(display, (int, float)) else None,
        hidden=bool(r.get("Hidden", False)),
        read_only=bool(r.get("ReadOnlyField", False)),
        description=str(r.get("Description") or ""),
        default=r.get("DefaultValue"),
        entity_property_name=r.get("EntityPropertyName"),
        raw=r,
    )
