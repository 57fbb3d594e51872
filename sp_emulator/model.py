"""The emulator's backend: sites, lists, fields, items, users, change log and recycle bin.

Like a moto backend, this module owns all state and every SharePoint rule that does not depend on
HTTP (name encoding, value validation, change tokens, thresholds). Handlers translate requests into
calls on `Backend` and render the results with `sp_emulator.odata`. All mutation happens under
`Backend.lock` (one re-entrant lock: the emulator is I/O bound, and one lock keeps the rules simple).
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import functools
import gc
import json
import logging
import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sp_emulator.clock import Clock
from sp_emulator.errors import (
    SPError,
    argument_error,
    change_token_error,
    duplicate_field,
    etag_mismatch,
    file_conflict,
    invalid_query,
    item_not_found,
    list_exists,
    not_found,
    read_only_field,
    user_not_unique,
    value_too_long,
)

logger = logging.getLogger(__name__)

UTC = dt.UTC
TICKS_AT_UNIX_EPOCH = 62_135_596_800 * 10_000_000
LIST_VIEW_THRESHOLD = 5000
LOOKUP_COLUMN_THRESHOLD = 12
DEFAULT_RETENTION_SECONDS = 60 * 24 * 3600
DEFAULT_TIME_ZONE = "Europe/Stockholm"

# FieldTypeKind numbers ([MS-WSSTS] 2.3.1, mirrored in office365/sharepoint/fields/type.py).
KIND_BY_TYPE: dict[str, int] = {
    "Integer": 1,
    "Text": 2,
    "Note": 3,
    "DateTime": 4,
    "Counter": 5,
    "Choice": 6,
    "Lookup": 7,
    "LookupMulti": 7,
    "Boolean": 8,
    "Number": 9,
    "Currency": 10,
    "URL": 11,
    "Computed": 12,
    "Guid": 14,
    "MultiChoice": 15,
    "Calculated": 17,
    "File": 18,
    "Attachments": 19,
    "User": 20,
    "UserMulti": 20,
    "ModStat": 23,
    "ContentTypeId": 25,
}
TYPE_BY_KIND: dict[int, str] = {
    1: "Integer",
    2: "Text",
    3: "Note",
    4: "DateTime",
    5: "Counter",
    6: "Choice",
    7: "Lookup",
    8: "Boolean",
    9: "Number",
    10: "Currency",
    11: "URL",
    12: "Computed",
    14: "Guid",
    15: "MultiChoice",
    17: "Calculated",
    18: "File",
    19: "Attachments",
    20: "User",
    23: "ModStat",
    25: "ContentTypeId",
}
LOOKUP_TYPES = frozenset({"Lookup", "LookupMulti", "User", "UserMulti"})


# --------------------------------------------------------------------------------------------
# Names


def encode_name(title: str, limit: int = 32) -> str:
    """Encode a display name the way SharePoint builds internal names from titles.

    Characters outside [A-Za-z0-9_] become `_xHHHH_` (lower-case hex), e.g. "Län ID" →
    `L_x00e4_n_x0020_ID`; the result is cut at 32 characters without splitting an escape.
    """
    out: list[str] = []
    length = 0
    for ch in title:
        piece = ch if (ch.isascii() and (ch.isalnum() or ch == "_")) else f"_x{ord(ch):04x}_"
        if length + len(piece) > limit:
            break
        out.append(piece)
        length += len(piece)
    return "".join(out)


def entity_property_name(internal_name: str) -> str:
    """REST property name of a field: a leading underscore gets the `OData_` prefix."""
    return "OData_" + internal_name if internal_name.startswith("_") else internal_name


def entity_type_name(list_url_name: str, library: bool) -> str:
    base = encode_name(list_url_name.replace(" ", " "), limit=255)
    base = base[:1].upper() + base[1:]
    return f"{base}Item" if library else f"{base}ListItem"


def to_ticks(ts: float) -> int:
    return int(ts * 10_000_000) + TICKS_AT_UNIX_EPOCH


def from_ticks(ticks: int) -> float:
    return (ticks - TICKS_AT_UNIX_EPOCH) / 10_000_000


def iso(ts: float | dt.datetime | None) -> str | None:
    """UTC ISO-8601 with `Z`, seconds precision, as SharePoint's REST endpoint returns it."""
    if ts is None:
        return None
    if isinstance(ts, dt.datetime):
        return _iso_datetime(ts.astimezone(UTC) if ts.tzinfo is not UTC else ts)
    return _iso_seconds(int(ts))


def _iso_datetime(d: dt.datetime) -> str:
    """`d` (UTC) as `YYYY-MM-DDTHH:MM:SSZ`: `isoformat` is C and ~5x cheaper than `strftime`,
    which matters on pages of 5,000 items with several date columns. Years before 1000 keep
    `strftime`, which does not pad them to four digits as `isoformat` does."""
    if d.year < 1000:
        return d.strftime("%Y-%m-%dT%H:%M:%SZ")
    return d.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


@functools.lru_cache(maxsize=4096)
def _iso_seconds(seconds: int) -> str:
    # Items written together share their timestamps; caching keeps page rendering cheap.
    # `gmtime` + `strftime` is about 2.5x cheaper than going through a datetime.
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _group_allowed(site: Site, f: Field, ident: int) -> bool:
    """A site group in a person column that allows groups (SelectionMode 1, "PeopleAndGroups"),
    as SharePoint lets a task be assigned to a group. Groups live in `permissions.Security`."""
    security = site.security
    return f.selection_mode == 1 and security is not None and ident in security.groups


def new_guid() -> str:
    return str(uuid.uuid4())


_gc_lock = threading.Lock()
_gc_pauses = 0


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small objects.

    Rendering or inserting thousands of items allocates many dicts; with 100,000 items alive,
    the collector's full passes would otherwise double the cost. Nested and concurrent pauses
    are counted so the collector resumes only when the last one ends.
    """
    global _gc_pauses
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_state["enabled"] = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_state.get("enabled"):
                gc.enable()


_gc_state: dict[str, bool] = {}


# --------------------------------------------------------------------------------------------
# State


@dataclass
class User:
    id: int
    title: str
    email: str
    login_name: str
    is_site_admin: bool = False
    principal_type: int = 1  # 1 user, 4 security group

    @property
    def name(self) -> str:
        return self.login_name


@dataclass
class Field:
    """A list column. `type_as_string` carries Lookup/LookupMulti, User/UserMulti distinctions."""

    id: str
    internal_name: str
    title: str
    type_as_string: str
    description: str = ""
    required: bool = False
    indexed: bool = False
    hidden: bool = False
    read_only: bool = False
    sealed: bool = False
    can_be_deleted: bool = True
    built_in: bool = False
    default_value: str | None = None
    choices: list[str] = field(default_factory=list)
    fill_in_choice: bool = False
    date_only: bool = False
    rich_text: bool = False
    number_of_lines: int = 6
    lookup_list: str = ""  # list guid without braces
    lookup_field: str = "Title"
    selection_mode: int = 0  # 0 people only, 1 people and groups
    max_length: int = 255
    schema_xml: str = ""

    @property
    def kind(self) -> int:
        return KIND_BY_TYPE.get(self.type_as_string, 0)

    @property
    def entity_name(self) -> str:
        return entity_property_name(self.internal_name)

    @property
    def is_lookup(self) -> bool:
        return self.type_as_string in LOOKUP_TYPES

    @property
    def is_user(self) -> bool:
        return self.type_as_string in ("User", "UserMulti")

    @property
    def multi(self) -> bool:
        return self.type_as_string in ("LookupMulti", "UserMulti", "MultiChoice")

    @property
    def value_key(self) -> str:
        """Property name used in item JSON for reading and writing this field."""
        return self.entity_name + "Id" if self.is_lookup else self.entity_name


@dataclass
class Item:
    id: int
    values: dict[str, Any]  # internal name → Python value (aware UTC datetimes, ints, lists…)
    created: float
    modified: float
    author_id: int
    editor_id: int
    guid: str
    version: int = 1  # owshiddenversion: the ETag, grows on every write
    cache: dict[str, Any] | None = None  # rendered verbose JSON, rebuilt after each change
    major: int = 1  # the version label's major number: grows only on a versioned update
    # Earlier versions (oldest first); None until the first versioned update. Defaults are
    # class attributes so items from older snapshots load unchanged.
    history: list[ItemVersion] | None = None
    attachments: dict[str, Attachment] | None = None  # lower-case file name → attachment

    @property
    def ui_version(self) -> str:
        return f"{self.major}.0"


@dataclass(frozen=True)
class ItemVersion:
    """A list item as it was: SP.ListItemVersion (`VersionId` = major × 512)."""

    major: int
    values: dict[str, Any]
    modified: float
    editor_id: int


@dataclass(frozen=True)
class Attachment:
    """A file attached to a list item (SP.Attachment)."""

    name: str
    content: bytes


@dataclass
class Change:
    number: int
    ticks: int
    change_type: int  # 1 Add, 2 Update, 3 DeleteObject, 7 Restore, 15 SystemUpdate
    list_id: str
    item_id: int
    unique_id: str
    editor: str = ""
    editor_email: str = ""
    kind: str = "item"  # "item", "list" (SP.ChangeList) or "field" (SP.ChangeField)
    field_id: str = ""

    @property
    def time(self) -> float:
        return from_ticks(self.ticks)


def _change_number(change: Change) -> int:
    return change.number


@dataclass
class SPList:
    id: str
    title: str
    url_name: str  # the list's URL segment ("Lists/<url_name>" or the library folder)
    description: str
    base_template: int
    created: float
    last_modified: float
    hidden: bool = False
    fields: list[Field] = field(default_factory=list)
    items: dict[int, Item] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)  # sorted item ids, for O(log n) paging
    next_id: int = 1
    changes: list[Change] = field(default_factory=list)
    entity_type: str = ""
    views: Any = None  # list[views.View], created on first use
    # A folder's list item (its ListItemAllFields) by folder UniqueId, made on first use. Kept
    # apart from `items`: the emulator's folders are not rows of `…/items` (README).
    folder_items: dict[str, Item] | None = None

    @property
    def is_library(self) -> bool:
        """Document libraries (base type 1): 101, picture library 109, site pages 119."""
        return self.base_template in LIBRARY_TEMPLATES

    @property
    def base_type(self) -> int:
        return 1 if self.is_library else 0

    @property
    def entity_type_full_name(self) -> str:
        return f"SP.Data.{self.entity_type}"

    def server_relative_url(self, site_path: str) -> str:
        if self.is_library:
            return f"{site_path}/{self.url_name}"
        if self.hidden and self.url_name.startswith("_catalogs"):
            return f"{site_path}/{self.url_name}"
        return f"{site_path}/Lists/{self.url_name}"

    def field_by_name(self, name: str) -> Field | None:
        """Find a field by internal name, entity name or title (exact first, then ignoring case)."""
        for f in self.fields:
            if name in (f.internal_name, f.entity_name):
                return f
        low = name.lower()
        for f in self.fields:
            if low in (f.internal_name.lower(), f.entity_name.lower()):
                return f
        for f in self.fields:
            if f.title.lower() == low:
                return f
        return None

    def field_by_id(self, fid: str) -> Field | None:
        fid = fid.strip("{}").lower()
        return next((f for f in self.fields if f.id == fid), None)


@dataclass
class RecycleBinEntry:
    """A deleted list item, file or folder (SP.RecycleBinItem).

    `item_type` is SharePoint's RecycleBinItemType: 1 file, 3 list item, 5 folder. A file or
    folder keeps the detached `stored` object of the file store and the list items of the
    files it held (`items`), so a restore brings back exactly what was deleted.
    """

    id: str
    list_id: str
    item: Item | None
    deleted: float
    title: str
    item_type: int = 3
    leaf_name: str = ""
    dir_name: str = ""
    stored: Any = None
    items: tuple[Item, ...] = ()  # immutable default: entries from older snapshots load too


@dataclass
class Site:
    name: str
    id: str
    web_id: str
    title: str
    time_zone: str = DEFAULT_TIME_ZONE
    users: dict[int, User] = field(default_factory=dict)
    lists: dict[str, SPList] = field(default_factory=dict)  # id → list
    recycle_bin: dict[str, RecycleBinEntry] = field(default_factory=dict)
    next_user_id: int = 1
    created: float = 0.0
    changes: list[Change] = field(default_factory=list)  # web-scope changes (lists)
    security: Any = None  # permissions.Security, created on first use
    site_columns: Any = None  # SPList of the web's site columns, created on first use

    @property
    def path(self) -> str:
        return f"/sites/{self.name}" if self.name else ""

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def list_by_title(self, title: str) -> SPList | None:
        low = title.lower()
        return next((lst for lst in self.lists.values() if lst.title.lower() == low), None)

    def list_by_id(self, list_id: str) -> SPList | None:
        return self.lists.get(list_id.strip("{}").lower())

    def list_by_url(self, url: str) -> SPList | None:
        """Resolve a server- or web-relative list URL ("Lists/Foo", "/sites/x/Shared Documents")."""
        u = url.strip("/")
        prefix = self.path.strip("/")
        if prefix and u.lower().startswith(prefix.lower() + "/"):
            u = u[len(prefix) + 1 :]
        low = u.lower()
        for lst in self.lists.values():
            rel = lst.server_relative_url("").strip("/").lower()
            if low == rel or low.startswith(rel + "/"):
                return lst
        return None

    def user_by_email(self, email: str) -> User | None:
        low = email.lower()
        return next((u for u in self.users.values() if u.email.lower() == low), None)

    def user_by_login(self, login: str) -> User | None:
        low = login.lower()
        for u in self.users.values():
            if low in (u.login_name.lower(), u.email.lower()) or (
                u.login_name.lower().endswith("|" + low)
            ):
                return u
        return None


SEED_USERS: list[tuple[str, str]] = [
    ("Anna Lindqvist", "anna.lindqvist"),
    ("Erik Johansson", "erik.johansson"),
    ("Maria Nilsson", "maria.nilsson"),
    ("Lars Öberg", "lars.oberg"),
    ("Karin Åström", "karin.astrom"),
    ("Johan Bäckström", "johan.backstrom"),
]


# --------------------------------------------------------------------------------------------
# Built-in fields


def _bf(internal: str, title: str, type_: str, fid: str, **kw: Any) -> Field:
    return Field(
        id=fid,
        internal_name=internal,
        title=title,
        type_as_string=type_,
        built_in=True,
        can_be_deleted=False,
        sealed=kw.pop("sealed", True),
        **kw,
    )


# List templates the emulator creates (SPListTemplateType): generic list, document library,
# announcements, events, tasks (107, legacy), picture library (109), tasks with timeline
# and hierarchy (171).
SITE_PAGES_TITLE = "Webbplatssidor"
# The web's site columns live in a list-shaped container that is not one of the site's lists.
SITE_COLUMNS_TEMPLATE = 0
LIST_TEMPLATES = frozenset({100, 101, 104, 106, 107, 109, 119, 171})
LIBRARY_TEMPLATES = frozenset({101, 109, 119})
TASK_TEMPLATES = frozenset({107, 171})


def task_fields(list_id: str) -> list[Field]:
    """The columns of SharePoint's Task content type (0x0108) that task lists carry.

    Internal names, types and choice texts as SharePoint's task list defines them: Priority
    "(1) High"/"(2) Normal"/"(3) Low", Status "Not Started"…, PercentComplete a number
    shown as a percentage (0–1), Predecessors a multi-lookup to the list itself.
    """

    def task(internal: str, title: str, type_: str, **kw: Any) -> Field:
        return Field(id=new_guid(), internal_name=internal, title=title, type_as_string=type_, **kw)

    return [
        task("Predecessors", "Predecessors", "LookupMulti", lookup_list=list_id),
        task(
            "Priority",
            "Priority",
            "Choice",
            choices=["(1) High", "(2) Normal", "(3) Low"],
            default_value="(2) Normal",
        ),
        task(
            "Status",
            "Task Status",
            "Choice",
            choices=[
                "Not Started",
                "In Progress",
                "Completed",
                "Deferred",
                "Waiting on someone else",
            ],
            default_value="Not Started",
        ),
        task("PercentComplete", "% Complete", "Number"),
        task("AssignedTo", "Assigned To", "UserMulti", selection_mode=1),
        task("Body", "Description", "Note", rich_text=True),
        task("StartDate", "Start Date", "DateTime", date_only=True),
        task("DueDate", "Due Date", "DateTime", date_only=True),
    ]


def builtin_fields(library: bool) -> list[Field]:
    """SharePoint's standard columns of a generic list (and the file columns of a library)."""
    fields = [
        _bf(
            "ContentTypeId",
            "Content Type ID",
            "ContentTypeId",
            "03e45e84-1992-4d42-9116-26f756012634",
            hidden=True,
            read_only=True,
        ),
        _bf(
            "Title",
            "Title",
            "Text",
            "fa564e0f-0c70-4ab9-b863-0177e6ddd247",
            required=not library,
            sealed=False,
        ),
        _bf(
            "ID",
            "ID",
            "Counter",
            "1d22ea11-1e32-424e-89ab-9fedbadb6ce1",
            read_only=True,
            indexed=True,
        ),
        _bf(
            "Modified",
            "Modified",
            "DateTime",
            "28cf69c5-fa48-462a-b5cd-27b6f9d2bd5f",
            read_only=True,
        ),
        _bf(
            "Created", "Created", "DateTime", "8c06beca-0777-48f7-91c7-6da68bc07b69", read_only=True
        ),
        _bf("Author", "Created By", "User", "1df5e554-ec7e-46a6-901d-d85a3881cb18", read_only=True),
        _bf(
            "Editor", "Modified By", "User", "d31655d1-1d5b-4511-95a1-7a09e9b75bf2", read_only=True
        ),
        _bf(
            "_UIVersionString",
            "Version",
            "Text",
            "dce8262a-3ae9-45aa-aab4-83bd75fb738a",
            read_only=True,
        ),
        _bf(
            "Attachments",
            "Attachments",
            "Attachments",
            "67df98f4-9dec-48ff-a553-29bece9c5bf4",
            read_only=True,
        ),
        _bf(
            "GUID",
            "GUID",
            "Guid",
            "ae069f25-3ac2-4256-b9c3-15dbc15da0e0",
            hidden=True,
            read_only=True,
        ),
        _bf(
            "FSObjType",
            "Item Type",
            "Lookup",
            "30bb605f-5bae-48fe-b4e3-1f81d9772af9",
            hidden=True,
            read_only=True,
        ),
        _bf(
            "LinkTitle", "Title", "Computed", "82642ec8-ef9b-478f-acf9-31f7d45fbc31", read_only=True
        ),
        _bf(
            "LinkTitleNoMenu",
            "Title",
            "Computed",
            "bc91a437-52e7-49e1-8c4e-4698904b2b6d",
            read_only=True,
        ),
        _bf("Edit", "Edit", "Computed", "503f1caa-358e-4918-9094-4a2cdc4bc034", read_only=True),
        _bf("DocIcon", "Type", "Computed", "081c6e4c-5c14-4f20-b23e-1a71ceb6a67c", read_only=True),
    ]
    for f in fields:
        if f.internal_name == "FSObjType":
            f.lookup_field = "FSType"
    if library:
        fields.append(
            _bf(
                "FileLeafRef", "Name", "File", "8553196d-ec8d-4564-9861-3dbe931050c8", required=True
            )
        )
        fields.append(
            _bf(
                "FileRef",
                "URL Path",
                "Lookup",
                "94f89715-e097-4e8b-ba79-ea02aa8b7adb",
                hidden=True,
                read_only=True,
            )
        )
    return fields


def field_from_schema_xml(schema_xml: str) -> Field:
    """Build a Field from CreateFieldAsXml's SchemaXml (attributes as SharePoint reads them)."""
    try:
        root = ET.fromstring(schema_xml)
    except ET.ParseError as exc:
        raise argument_error(f"Invalid field schema XML: {exc}") from exc
    a = {k: v for k, v in root.attrib.items()}
    type_ = a.get("Type", "Text")
    if type_ not in KIND_BY_TYPE:
        raise argument_error(f"Invalid field type '{type_}'.")
    display = a.get("DisplayName") or a.get("Name") or a.get("StaticName") or "Field"
    name = a.get("Name") or a.get("StaticName") or encode_name(display)
    truthy = ("TRUE", "true", "True", "1")
    mult = a.get("Mult", "FALSE") in truthy
    if type_ == "Lookup" and mult:
        type_ = "LookupMulti"
    if type_ == "User" and mult:
        type_ = "UserMulti"
    f = Field(
        id=(a.get("ID") or new_guid()).strip("{}").lower(),
        internal_name=name,
        title=display,
        type_as_string=type_,
        description=a.get("Description", ""),
        required=a.get("Required", "FALSE") in truthy,
        indexed=a.get("Indexed", "FALSE") in truthy,
        hidden=a.get("Hidden", "FALSE") in truthy,
        date_only=a.get("Format", "") == "DateOnly",
        rich_text=a.get("RichText", "FALSE") in truthy,
        number_of_lines=int(a.get("NumLines", "6") or 6),
        lookup_list=a.get("List", "").strip("{}").lower(),
        lookup_field=a.get("ShowField", "Title"),
        selection_mode=1
        if a.get("UserSelectionMode", "PeopleOnly") in ("PeopleAndGroups", "1")
        else 0,
        fill_in_choice=a.get("FillInChoice", "FALSE") in truthy,
        schema_xml=schema_xml,
    )
    if "MaxLength" in a:
        f.max_length = int(a["MaxLength"])
    choices = root.find("CHOICES")
    if choices is not None:
        f.choices = [c.text or "" for c in choices.findall("CHOICE")]
    default = root.find("Default")
    if default is not None:
        f.default_value = default.text
    return f


def _int_property(props: Mapping[str, Any], name: str, low: int, high: int) -> int:
    try:
        value = int(props[name])
    except (TypeError, ValueError) as exc:
        raise invalid_query(f"Cannot convert '{props[name]}' to Edm.Int32 for {name}.") from exc
    if not low <= value <= high:
        raise argument_error(f"The value of {name} must be between {low} and {high}.")
    return value


def field_from_properties(props: Mapping[str, Any]) -> Field:
    """Build a Field from AddField's FieldCreationInformation or a `POST fields` SP.Field* body."""
    title = str(props.get("Title") or "")
    if not title:
        raise argument_error("Value cannot be null.\r\nParameter name: Title")
    kind = int(props.get("FieldTypeKind", 2))
    type_ = TYPE_BY_KIND.get(kind)
    if type_ is None:
        raise argument_error(f"Invalid field type kind {kind}.")
    md_type = str((props.get("__metadata") or {}).get("type", ""))
    multi = bool(props.get("AllowMultipleValues"))
    if type_ == "Lookup" and multi:
        type_ = "LookupMulti"
    if type_ == "User" and multi:
        type_ = "UserMulti"
    f = Field(
        id=new_guid(),
        internal_name=encode_name(title),
        title=title,
        type_as_string=type_,
        description=str(props.get("Description") or ""),
        required=bool(props.get("Required", False)),
        indexed=bool(props.get("Indexed", False)),
        lookup_list=str(props.get("LookupListId") or props.get("LookupList") or "")
        .strip("{}")
        .lower(),
        lookup_field=str(props.get("LookupFieldName") or props.get("LookupField") or "Title"),
        selection_mode=int(props.get("SelectionMode", 0) or 0),
        date_only=int(props.get("DisplayFormat", 1) or 0) == 0 if type_ == "DateTime" else False,
        rich_text=bool(props.get("RichText", False)),
    )
    if md_type == "SP.FieldDateTime" and "DisplayFormat" not in props:
        f.date_only = False
    if "DefaultValue" in props:
        f.default_value = props.get("DefaultValue")
    # Type-specific properties of SP.FieldText / SP.FieldMultiLineText / SP.FieldChoice bodies.
    if props.get("MaxLength") is not None and type_ == "Text":
        f.max_length = _int_property(props, "MaxLength", 1, 255)
    if props.get("NumberOfLines") is not None and type_ == "Note":
        f.number_of_lines = _int_property(props, "NumberOfLines", 1, 1000)
    if "FillInChoice" in props:
        f.fill_in_choice = bool(props["FillInChoice"])
    choices = props.get("Choices")
    if isinstance(choices, Mapping):
        choices = choices.get("results", [])
    if choices:
        f.choices = [str(c) for c in choices]
    return f


# --------------------------------------------------------------------------------------------
# Backend


class Backend:
    """All emulator state. Thread-safe through `lock`; `on_change` is the persistence hook."""

    def __init__(
        self, clock: Clock | None = None, *, retention_seconds: float = DEFAULT_RETENTION_SECONDS
    ):
        self.lock = threading.RLock()
        self.clock = clock or Clock()
        self.sites: dict[str, Site] = {}
        self.change_number = 0
        self.retention_seconds = retention_seconds
        self.files: Any = (
            None  # files.FileStore (installed by files.install), saved with the snapshot
        )
        self.extensions: dict[str, Any] = {}  # other persisted state owned by add-ons
        self.on_change: Callable[[], None] | None = None
        # Called for every new list (the file store gives it a root folder).
        self.on_list_created: Callable[[Backend, Site, SPList], None] | None = None
        # Puts a recycled file or folder back (installed by the file store).
        self.on_restore_stored: Callable[[Backend, Site, RecycleBinEntry], None] | None = None
        self.app_user_title = "SharePoint App"

    # ---- lifecycle -----------------------------------------------------------------------

    def touch(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def now(self) -> float:
        return self.clock.now()

    def next_change_number(self) -> int:
        self.change_number += 1
        return self.change_number

    # ---- sites ---------------------------------------------------------------------------

    def site_exists(self, name: str) -> bool:
        return name.lower() in self.sites

    def get_site(self, name: str) -> Site:
        site = self.sites.get(name.lower())
        if site is None:
            raise not_found()
        return site

    def create_site(self, name: str, title: str | None = None) -> Site:
        with self.lock:
            key = name.lower()
            if key in self.sites:
                return self.sites[key]
            now = self.now()
            site = Site(
                name=name, id=new_guid(), web_id=new_guid(), title=title or name, created=now
            )
            self.sites[key] = site
            for display, login in SEED_USERS:
                self._add_user(
                    site, display, f"{login}@example.se", f"i:0#.f|membership|{login}@example.se"
                )
            self._add_user(site, self.app_user_title, "", "i:0i.t|ms.sp.ext|app@emulator")
            uil = self._new_list(
                site, "User Information List", "", 100, url_name="_catalogs/users", hidden=True
            )
            uil.fields.append(
                Field(
                    id=new_guid(), internal_name="EMail", title="Work e-mail", type_as_string="Text"
                )
            )
            uil.fields.append(
                Field(id=new_guid(), internal_name="Name", title="Account", type_as_string="Text")
            )
            for u in site.users.values():
                self._insert_uil_row(site, uil, u)
            self.create_list(site, "Dokument", "", 101, url_name="Shared Documents")
            # Every team site has its Site Pages library (titled in the site's language).
            self.create_list(site, SITE_PAGES_TITLE, "", 119, url_name="SitePages")
            self.touch()
            return site

    def _add_user(self, site: Site, title: str, email: str, login: str) -> User:
        user = User(id=site.next_user_id, title=title, email=email, login_name=login)
        site.users[user.id] = user
        site.next_user_id += 1
        return user

    def _insert_uil_row(self, site: Site, uil: SPList, user: User) -> None:
        now = self.now()
        item = Item(
            id=user.id,
            values={"Title": user.title, "EMail": user.email, "Name": user.login_name},
            created=now,
            modified=now,
            author_id=user.id,
            editor_id=user.id,
            guid=new_guid(),
        )
        uil.items[user.id] = item
        bisect.insort(uil.ids, user.id)
        uil.next_id = max(uil.next_id, user.id + 1)

    def site_columns(self, site: Site) -> SPList:
        """The root web's site columns (`/_api/web/fields`): SharePoint's base columns plus
        those added with `AddField`/`CreateFieldAsXml`; lists do not inherit them here."""
        with self.lock:
            if site.site_columns is None:
                site.site_columns = SPList(
                    id=site.web_id,
                    title="",
                    url_name="",
                    description="",
                    base_template=SITE_COLUMNS_TEMPLATE,
                    created=site.created,
                    last_modified=site.created,
                    hidden=True,
                    fields=builtin_fields(False),
                )
            columns: SPList = site.site_columns
            return columns

    def user_information_list(self, site: Site) -> SPList:
        lst = site.list_by_title("User Information List")
        assert lst is not None
        return lst

    def ensure_user(self, site: Site, logon_name: str) -> User:
        with self.lock:
            existing = site.user_by_login(logon_name)
            if existing is not None:
                return existing
            login = logon_name if "|" in logon_name else f"i:0#.f|membership|{logon_name}"
            email = logon_name.split("|")[-1] if "@" in logon_name else ""
            local = email.split("@")[0] if email else logon_name.split("|")[-1]
            title = " ".join(p.capitalize() for p in re.split(r"[._]", local) if p) or logon_name
            user = self._add_user(site, title, email, login)
            self._insert_uil_row(site, self.user_information_list(site), user)
            self.touch()
            return user

    def app_user(self, site: Site, identity: Any) -> User:
        """The site user that writes made with `identity` are attributed to."""
        name = None
        if identity is not None:
            name = getattr(identity, "display_name", None) or getattr(identity, "user", None)
            if isinstance(identity, Mapping):
                name = identity.get("display_name") or identity.get("name")
        if name:
            for u in site.users.values():
                if u.title == name or u.email == name:
                    return u
            with self.lock:
                return self._add_user_with_uil(site, str(name))
        return next(u for u in site.users.values() if u.title == self.app_user_title)

    def _add_user_with_uil(self, site: Site, title: str) -> User:
        user = self._add_user(site, title, "", f"i:0i.t|ms.sp.ext|{encode_name(title)}@emulator")
        self._insert_uil_row(site, self.user_information_list(site), user)
        return user

    # ---- lists ---------------------------------------------------------------------------

    def _new_list(
        self,
        site: Site,
        title: str,
        description: str,
        template: int,
        *,
        url_name: str | None = None,
        hidden: bool = False,
    ) -> SPList:
        now = self.now()
        url = url_name or title
        lst = SPList(
            id=new_guid(),
            title=title,
            url_name=url,
            description=description,
            base_template=template,
            created=now,
            last_modified=now,
            hidden=hidden,
            fields=builtin_fields(template in LIBRARY_TEMPLATES),
        )
        if template in TASK_TEMPLATES:
            lst.fields.extend(task_fields(lst.id))
        entity_base = url.split("/")[-1] if not url.startswith("_catalogs/users") else "UserInfo"
        if url.startswith("_catalogs/users"):
            lst.entity_type = "UserInfoItem"
        else:
            lst.entity_type = entity_type_name(entity_base, template in LIBRARY_TEMPLATES)
        site.lists[lst.id] = lst
        return lst

    def create_list(
        self,
        site: Site,
        title: str,
        description: str = "",
        template: int = 100,
        *,
        url_name: str | None = None,
    ) -> SPList:
        with self.lock:
            if site.list_by_title(title) is not None:
                raise list_exists(
                    "A list, survey, discussion board, or document library with the specified title already exists in this Web site.  Please choose another title."
                )
            if template not in LIST_TEMPLATES:
                raise argument_error(f"Invalid list template {template}.")
            lst = self._new_list(site, title, description, template, url_name=url_name)
            if self.on_list_created is not None:
                self.on_list_created(self, site, lst)
            self._record_schema(site, lst, 1)
            self.touch()
            return lst

    def get_list(
        self, site: Site, *, title: str | None = None, list_id: str | None = None
    ) -> SPList:
        lst = site.list_by_title(title) if title is not None else site.list_by_id(list_id or "")
        if lst is None:
            if title is not None:
                raise argument_error(
                    f"List '{title}' does not exist at site with URL '{site.path or '/'}'.",
                    status=404,
                )
            raise argument_error(
                "List does not exist.\n\nThe page you selected contains a list that does not exist.  "
                "It may have been deleted by another user.",
                status=404,
            )
        return lst

    def update_list(self, site: Site, lst: SPList, props: Mapping[str, Any]) -> None:
        with self.lock:
            if "Title" in props:
                other = site.list_by_title(str(props["Title"]))
                if other is not None and other is not lst:
                    raise list_exists("A list with the specified title already exists.")
                lst.title = str(props["Title"])
            if "Description" in props:
                lst.description = str(props["Description"] or "")
            if "Hidden" in props:
                lst.hidden = bool(props["Hidden"])
            self._record_schema(site, lst, 2)
            self.touch()

    def delete_list(self, site: Site, lst: SPList) -> None:
        with self.lock:
            site.lists.pop(lst.id, None)
            self._record_schema(site, lst, 3)
            self.touch()

    # ---- fields --------------------------------------------------------------------------

    def add_field(self, site: Site, lst: SPList, f: Field, *, unique_name: bool = True) -> Field:
        with self.lock:
            if (
                f.is_lookup
                and not f.is_user
                and f.lookup_list
                and site.list_by_id(f.lookup_list) is None
            ):
                raise argument_error("List does not exist.", status=404)
            existing = {x.internal_name.lower() for x in lst.fields}
            if f.internal_name.lower() in existing:
                if not unique_name:
                    raise duplicate_field(f.internal_name)
                # SharePoint appends a counter to a duplicate name built from a title.
                base, n = f.internal_name[:31], 0
                while f.internal_name.lower() in existing:
                    n += 1
                    f.internal_name = f"{base[: 32 - len(str(n))]}{n}"
            if not f.schema_xml:
                f.schema_xml = self.schema_xml(f)
            lst.fields.append(f)
            for item in lst.items.values():
                item.cache = None
            self._record_schema(site, lst, 1, f)
            self.touch()
            return f

    @staticmethod
    def schema_xml(f: Field) -> str:
        el = ET.Element(
            "Field",
            {
                "ID": "{" + f.id + "}",
                "Type": f.type_as_string,
                "Name": f.internal_name,
                "StaticName": f.internal_name,
                "DisplayName": f.title,
            },
        )
        if f.required:
            el.set("Required", "TRUE")
        if f.indexed:
            el.set("Indexed", "TRUE")
        if f.date_only:
            el.set("Format", "DateOnly")
        if f.type_as_string == "Text" and f.max_length != 255:
            el.set("MaxLength", str(f.max_length))
        if f.lookup_list:
            el.set("List", "{" + f.lookup_list + "}")
            el.set("ShowField", f.lookup_field)
        if f.choices:
            ch = ET.SubElement(el, "CHOICES")
            for c in f.choices:
                ET.SubElement(ch, "CHOICE").text = c
        return ET.tostring(el, encoding="unicode")

    def update_field(self, lst: SPList, f: Field, props: Mapping[str, Any]) -> None:
        with self.lock:
            if "Title" in props:
                f.title = str(props["Title"])
            if "Description" in props:
                f.description = str(props["Description"] or "")
            if "Required" in props:
                f.required = bool(props["Required"])
            if "Indexed" in props:
                f.indexed = bool(props["Indexed"])
            if "Hidden" in props:
                f.hidden = bool(props["Hidden"])
            if "DefaultValue" in props:
                f.default_value = props["DefaultValue"]
            if "Choices" in props:
                ch = props["Choices"]
                if isinstance(ch, Mapping):
                    ch = ch.get("results", [])
                f.choices = [str(c) for c in ch or []]
            if "DisplayFormat" in props and f.type_as_string == "DateTime":
                f.date_only = int(props["DisplayFormat"]) == 0
            f.schema_xml = self.schema_xml(f)
            self._record_schema(None, lst, 2, f)
            self.touch()

    def delete_field(self, lst: SPList, f: Field) -> None:
        with self.lock:
            if f.built_in or not f.can_be_deleted:
                raise read_only_field()
            lst.fields.remove(f)
            for item in lst.items.values():
                item.values.pop(f.internal_name, None)
                item.cache = None
            self._record_schema(None, lst, 3, f)
            self.touch()

    # ---- item values ---------------------------------------------------------------------

    def _parse_datetime(self, site: Site, f: Field, value: Any) -> dt.datetime | None:
        if value is None or value == "":
            return None
        if isinstance(value, dt.datetime):
            d = value if value.tzinfo else value.replace(tzinfo=UTC)
        elif isinstance(value, dt.date):
            d = dt.datetime(value.year, value.month, value.day, tzinfo=site.tz)
            return d.astimezone(UTC)
        else:
            text = str(value).strip()
            try:
                if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                    day = dt.date.fromisoformat(text)
                    return dt.datetime(day.year, day.month, day.day, tzinfo=site.tz).astimezone(UTC)
                d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError as exc:
                raise invalid_query(
                    "Cannot convert a primitive value to the expected type 'Edm.DateTime'. "
                    "See the inner exception for more details."
                ) from exc
            if d.tzinfo is None:
                d = d.replace(tzinfo=UTC)
        d = d.astimezone(UTC)
        if f.date_only:
            # A date-only column keeps the local calendar day and stores its midnight.
            local = d.astimezone(site.tz)
            # Readers write back what they read (local midnight in UTC); others send midnight
            # UTC of the intended day ("2026-03-29T00:00:00Z"). Both mean that calendar day.
            if (local.hour, local.minute, local.second) == (0, 0, 0):
                day = local.date()
            elif (d.hour, d.minute, d.second) == (0, 0, 0):
                day = d.date()
            else:
                day = local.date()
            return dt.datetime(day.year, day.month, day.day, tzinfo=site.tz).astimezone(UTC)
        return d.replace(microsecond=0)

    def coerce_value(self, site: Site, lst: SPList, f: Field, value: Any) -> Any:
        """Validate a REST-shaped value for field `f` and return the stored Python value."""
        t = f.type_as_string
        if isinstance(value, Mapping) and "results" in value:
            value = list(value["results"])
        if value is None:
            return [] if f.multi else None
        bad = invalid_query(
            f"A node of type 'PrimitiveValue' was read from the JSON reader when trying to read "
            f"the value of the property '{f.value_key}'; however, a value of a different type was expected."
        )
        if t in ("Text", "Note", "Choice", "Guid", "File"):
            if isinstance(value, (dict, list)):
                raise bad
            text = str(value)
            if t == "Text" and len(text) > f.max_length:
                raise value_too_long()
            return text
        if t == "MultiChoice":
            if isinstance(value, str):
                return [v for v in value.split(";#") if v]
            if not isinstance(value, list):
                raise bad
            return [str(v) for v in value]
        if t in ("Number", "Currency", "Integer"):
            if isinstance(value, bool):
                raise bad
            try:
                num = float(value)
            except (TypeError, ValueError) as exc:
                raise bad from exc
            return int(num) if t == "Integer" else num
        if t == "Boolean":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes"):
                return True
            if str(value).lower() in ("false", "0", "no"):
                return False
            raise bad
        if t == "DateTime":
            return self._parse_datetime(site, f, value)
        if t == "URL":
            if isinstance(value, Mapping):
                return {
                    "Url": value.get("Url"),
                    "Description": value.get("Description") or value.get("Url"),
                }
            return {"Url": str(value), "Description": str(value)}
        if t in ("Lookup", "User"):
            if isinstance(value, list):
                raise bad
            try:
                ident = int(value)
            except (TypeError, ValueError) as exc:
                raise bad from exc
            if ident <= 0:
                return None
            if t == "User" and ident not in site.users and not _group_allowed(site, f, ident):
                raise user_not_unique()
            return ident
        if t in ("LookupMulti", "UserMulti"):
            if not isinstance(value, list):
                value = [value]
            try:
                ids = [int(v) for v in value]
            except (TypeError, ValueError) as exc:
                raise bad from exc
            if t == "UserMulti" and any(
                i not in site.users and not _group_allowed(site, f, i) for i in ids
            ):
                raise user_not_unique()
            return ids
        raise invalid_query(f"The property '{f.value_key}' cannot be set.")

    @staticmethod
    def write_keys(lst: SPList) -> dict[str, Field]:
        """REST property name → field, for validating writes."""
        by_key: dict[str, Field] = {}
        for f in lst.fields:
            by_key[f.value_key] = f
            if f.is_lookup:
                by_key.setdefault(f.entity_name + "StringId", f)
        return by_key

    def _resolve_write(
        self,
        site: Site,
        lst: SPList,
        body: Mapping[str, Any],
        *,
        bulk: bool,
        by_key: dict[str, Field] | None = None,
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if by_key is None:
            by_key = self.write_keys(lst)
        for key, value in body.items():
            if key == "__metadata":
                continue
            f = by_key.get(key)
            if f is None:
                raise invalid_query(
                    f"The property '{key}' does not exist on type '{lst.entity_type_full_name}'. "
                    "Make sure to only use property names that are defined by the type."
                )
            if f.read_only or f.type_as_string in (
                "Counter",
                "Computed",
                "Attachments",
                "ContentTypeId",
                "Calculated",
            ):
                if bulk and f.internal_name in ("Created", "Modified", "Author", "Editor"):
                    values["__" + f.internal_name] = value
                    continue
                # SharePoint ignores read-only system columns in a plain REST write.
                continue
            if key.endswith("StringId") and f.is_user:
                if isinstance(value, Mapping):
                    value = value.get("results", [])
                value = (
                    [int(v) for v in value]
                    if isinstance(value, list)
                    else (int(value) if value else None)
                )
            values[f.internal_name] = self.coerce_value(site, lst, f, value)
        return values

    # ---- items ---------------------------------------------------------------------------

    def _record(
        self,
        site: Site,
        lst: SPList,
        change_type: int,
        item_id: int,
        unique_id: str,
        editor: User | None,
        at: float | None = None,
    ) -> Change:
        """Log a change made at `at` (the clock's now when not given). A write passes the time
        it gave the item's Modified: SharePoint stamps both in one transaction, and two
        readings of a clock that moves with real time could fall in different seconds (a sync
        cuts `Modified` windows from the change log's times)."""
        when = self.now() if at is None else at
        ch = Change(
            number=self.next_change_number(),
            ticks=to_ticks(when),
            change_type=change_type,
            list_id=lst.id,
            item_id=item_id,
            unique_id=unique_id,
            editor=editor.title if editor else "",
            editor_email=editor.email if editor else "",
        )
        lst.changes.append(ch)
        lst.last_modified = when
        return ch

    def _record_schema(
        self, site: Site | None, lst: SPList, change_type: int, f: Field | None = None
    ) -> None:
        """Log a list change (kept on the site: it outlives the list) or a field change."""
        ch = Change(
            number=self.next_change_number(),
            ticks=to_ticks(self.now()),
            change_type=change_type,
            list_id=lst.id,
            item_id=0,
            unique_id="",
            kind="field" if f is not None else "list",
            field_id=f.id if f is not None else "",
        )
        if f is not None:
            lst.changes.append(ch)
        elif site is not None:
            site.changes.append(ch)

    def add_item(
        self, site: Site, lst: SPList, body: Mapping[str, Any], *, user: User | None = None
    ) -> Item:
        with self.lock:
            md_type = (
                (body.get("__metadata") or {}).get("type")
                if isinstance(body.get("__metadata"), Mapping)
                else None
            )
            if md_type is not None and md_type != lst.entity_type_full_name:
                raise invalid_query(
                    f"A type named '{md_type}' could not be resolved by the model. When a model is "
                    "available, each type name must resolve to a valid type."
                )
            values = self._resolve_write(site, lst, body, bulk=False)
            item = self._insert(site, lst, values, user)
            self.touch()
            return item

    def _insert(self, site: Site, lst: SPList, values: dict[str, Any], user: User | None) -> Item:
        now = self.now()
        author = user.id if user else self.app_user(site, None).id
        created = values.pop("__Created", None)
        modified = values.pop("__Modified", None)
        author_v = values.pop("__Author", None)
        editor_v = values.pop("__Editor", None)
        for f in lst.fields:
            if (
                f.internal_name not in values
                and f.default_value not in (None, "")
                and not f.built_in
            ):
                try:
                    values[f.internal_name] = self.coerce_value(site, lst, f, f.default_value)
                except SPError:
                    pass
        plain = Field("", "", "", "DateTime")
        c_dt = self._parse_datetime(site, plain, created) if created else None
        m_dt = self._parse_datetime(site, plain, modified) if modified else None
        c_ts = c_dt.timestamp() if c_dt else now
        m_ts = m_dt.timestamp() if m_dt else c_ts
        item = Item(
            id=lst.next_id,
            values=values,
            created=c_ts,
            modified=m_ts,
            author_id=int(author_v) if author_v else author,
            editor_id=int(editor_v) if editor_v else (int(author_v) if author_v else author),
            guid=new_guid(),
        )
        lst.next_id += 1
        lst.items[item.id] = item
        lst.ids.append(item.id)  # ids only grow, so the list stays sorted
        self._record(site, lst, 1, item.id, item.guid, user, at=now)
        return item

    def bulk_add_items(
        self,
        site: str | Site,
        list_title: str,
        rows: Iterable[Mapping[str, Any]],
        *,
        user: User | None = None,
    ) -> list[int]:
        """Insert many items without HTTP (REST write shape; `Created`/`Modified`/`AuthorId` allowed)."""
        with self.lock:
            s = site if isinstance(site, Site) else self.get_site(site)
            lst = self.get_list(s, title=list_title)
            ids = []
            by_key = self.write_keys(lst)
            with gc_paused():
                for row in rows:
                    values = self._resolve_write(s, lst, row, bulk=True, by_key=by_key)
                    ids.append(self._insert(s, lst, values, user).id)
            self.touch()
            return ids

    def get_item(self, lst: SPList, item_id: int) -> Item:
        item = lst.items.get(item_id)
        if item is None:
            raise item_not_found()
        return item

    def update_item(
        self,
        site: Site,
        lst: SPList,
        item: Item,
        body: Mapping[str, Any],
        *,
        if_match: str | None,
        user: User | None = None,
        system: bool = False,
    ) -> Item:
        with self.lock:
            md = body.get("__metadata")
            md_type = md.get("type") if isinstance(md, Mapping) else None
            if md_type is not None and md_type != lst.entity_type_full_name:
                raise invalid_query(f"A type named '{md_type}' could not be resolved by the model.")
            self.check_etag(item, if_match)
            values = self._resolve_write(site, lst, body, bulk=False)
            self._apply_update(site, lst, item, values, user, mode="system" if system else "new")
            return item

    def _apply_update(
        self,
        site: Site,
        lst: SPList,
        item: Item,
        values: Mapping[str, Any],
        user: User | None,
        *,
        mode: str,
    ) -> None:
        """Write values with SharePoint's version semantics.

        `new` (MERGE, Update): a new version, Modified and Editor move. `overwrite`
        (UpdateOverwriteVersion): same version, Modified and Editor move. `system`
        (SystemUpdate): same version, Modified and Editor stay. The ETag grows in every case.
        """
        if mode == "new":
            history = item.history if item.history is not None else []
            history.append(
                ItemVersion(item.major, dict(item.values), item.modified, item.editor_id)
            )
            item.history = history
            item.major += 1
        item.values.update(values)
        item.version += 1
        now = self.now()
        if mode != "system":
            item.modified = now
            item.editor_id = user.id if user else self.app_user(site, None).id
        item.cache = None
        self._record(site, lst, 15 if mode == "system" else 2, item.id, item.guid, user, at=now)
        self.touch()

    def update_item_mode(
        self,
        site: Site,
        lst: SPList,
        item: Item,
        body: Mapping[str, Any],
        *,
        user: User | None,
        mode: str,
    ) -> None:
        """SystemUpdate / UpdateOverwriteVersion with an optional body of new values."""
        with self.lock:
            values = self._resolve_write(site, lst, body, bulk=False) if body else {}
            self._apply_update(site, lst, item, values, user, mode=mode)

    def validate_update(
        self,
        site: Site,
        lst: SPList,
        item: Item,
        form_values: list[Mapping[str, Any]],
        *,
        new_document_update: bool,
        user: User | None,
    ) -> list[dict[str, Any]]:
        """ValidateUpdateListItem: form values as text, one result per field.

        A field that does not exist or a value that does not parse is reported in its result
        (`HasException`, `ErrorMessage`) and nothing is written, as SharePoint does. With
        `bNewDocumentUpdate` the item keeps its version (like UpdateOverwriteVersion);
        `Modified`, `Created`, `Editor` and `Author` may be set here (REST writes ignore them).
        """
        with self.lock:
            results: list[dict[str, Any]] = []
            values: dict[str, Any] = {}
            system: dict[str, Any] = {}
            for fv in form_values:
                name = str(fv.get("FieldName") or "")
                text = fv.get("FieldValue")
                result = {
                    "__metadata": {"type": "SP.ListItemFormUpdateValue"},
                    "ErrorCode": 0,
                    "ErrorMessage": None,
                    "FieldName": name,
                    "FieldValue": text,
                    "HasException": False,
                    "ItemId": item.id,
                }
                try:
                    self._form_value(site, lst, name, text, values, system)
                except SPError as exc:
                    result.update(
                        {"ErrorCode": -1, "ErrorMessage": exc.message, "HasException": True}
                    )
                results.append(result)
            if any(r["HasException"] for r in results):
                return results
            mode = "overwrite" if new_document_update else "new"
            self._apply_update(site, lst, item, values, user, mode=mode)
            if "Modified" in system:
                item.modified = system["Modified"]
            if "Created" in system:
                item.created = system["Created"]
            if "Editor" in system:
                item.editor_id = system["Editor"]
            if "Author" in system:
                item.author_id = system["Author"]
            item.cache = None
            return results

    def _form_value(
        self,
        site: Site,
        lst: SPList,
        name: str,
        text: Any,
        values: dict[str, Any],
        system: dict[str, Any],
    ) -> None:
        if name in ("Modified", "Created"):
            parsed = self._parse_datetime(site, Field("", name, name, "DateTime"), text)
            if parsed is None:
                raise invalid_query(f"Invalid date for {name}.")
            system[name] = parsed.timestamp()
            return
        if name in ("Editor", "Author"):
            system[name] = self._form_user(site, text)
            return
        f = lst.field_by_name(name)
        if f is None:
            raise argument_error(f"Column '{name}' does not exist. It may have been deleted.")
        if f.is_user:
            ident = self._form_user(site, text) if text else None
            values[f.internal_name] = [ident] if f.multi and ident is not None else ident
            return
        if f.type_as_string == "MultiChoice":
            parts = [p for p in str(text or "").split(";#") if p]
            values[f.internal_name] = self.coerce_value(site, lst, f, parts)
            return
        if f.type_as_string == "DateTime" and isinstance(text, str) and text.strip():
            # Form values are what a person types: a time without a zone is the site's local
            # time (its regional settings), not UTC as in JSON writes.
            try:
                typed = dt.datetime.fromisoformat(text.strip())
            except ValueError:
                typed = None
            if typed is not None and typed.tzinfo is None and len(text.strip()) > 10:
                text = typed.replace(tzinfo=site.tz).astimezone(UTC).isoformat()
        if f.type_as_string in ("Number", "Currency") and isinstance(text, str):
            text = text.replace("\u00a0", "").replace(" ", "").replace(",", ".")
        values[f.internal_name] = self.coerce_value(site, lst, f, text if text != "" else None)

    @staticmethod
    def _form_user(site: Site, text: Any) -> int:
        """A person form value: `[{"Key": "<login>"}]` (JSON text) or a login/e-mail."""
        raw = text
        if isinstance(text, str) and text.strip().startswith("["):
            try:
                raw = json.loads(text)[0].get("Key")
            except (ValueError, IndexError, AttributeError) as exc:
                raise invalid_query("Invalid person value.") from exc
        user = site.user_by_login(str(raw or ""))
        if user is None:
            raise user_not_unique()
        return user.id

    @staticmethod
    def check_etag(item: Item, if_match: str | None) -> None:
        if if_match is None or if_match.strip() in ("", "*"):
            return
        wanted = if_match.strip().strip('"').strip("\\").strip('"')
        if wanted != str(item.version):
            raise etag_mismatch(if_match, f'"{item.version}"')

    def delete_item(
        self,
        site: Site,
        lst: SPList,
        item: Item,
        *,
        if_match: str | None = None,
        user: User | None = None,
        recycle: bool = True,
    ) -> str | None:
        with self.lock:
            self.check_etag(item, if_match)
            del lst.items[item.id]
            idx = bisect.bisect_left(lst.ids, item.id)
            if idx < len(lst.ids) and lst.ids[idx] == item.id:
                lst.ids.pop(idx)
            self._record(site, lst, 3, item.id, item.guid, user)
            entry_id = None
            if recycle:
                entry_id = new_guid()
                site.recycle_bin[entry_id] = RecycleBinEntry(
                    id=entry_id,
                    list_id=lst.id,
                    item=item,
                    deleted=self.now(),
                    title=str(item.values.get("Title") or item.id),
                    leaf_name=f"{item.id}_.000",
                    dir_name=lst.server_relative_url(site.path).lstrip("/"),
                )
            self.touch()
            return entry_id

    def add_recycle_entry(self, site: Site, entry: RecycleBinEntry) -> str:
        """Keep a deleted file or folder (built by the file store) in the site's recycle bin."""
        with self.lock:
            site.recycle_bin[entry.id] = entry
            self.touch()
            return entry.id

    def add_attachment(
        self, site: Site, lst: SPList, item: Item, name: str, content: bytes, *, user: User | None
    ) -> Attachment:
        """Attach a file to an item; an existing name is SharePoint's 'already exists' error."""
        with self.lock:
            if lst.is_library:
                raise invalid_query("Attachments are not supported on document libraries.")
            if not name or any(c in name for c in '"*:<>?/\\|'):
                raise argument_error(f"The file name '{name}' is not valid.")
            attachments = item.attachments if item.attachments is not None else {}
            if name.lower() in attachments:
                raise file_conflict(
                    f"A file with the name {lst.server_relative_url(site.path)}/Attachments/"
                    f"{item.id}/{name} already exists."
                )
            a = Attachment(name, bytes(content))
            attachments[name.lower()] = a
            item.attachments = attachments
            # Adding an attachment is an update of the item that does not change its version.
            self._apply_update(site, lst, item, {}, user, mode="overwrite")
            return a

    def delete_attachment(
        self, site: Site, lst: SPList, item: Item, name: str, *, user: User | None
    ) -> None:
        with self.lock:
            if item.attachments is None or item.attachments.pop(name.lower(), None) is None:
                raise not_found()
            self._apply_update(site, lst, item, {}, user, mode="overwrite")

    def purge(self, site: Site, entry_ids: list[str]) -> None:
        """Remove recycle-bin entries for good (second stage is not emulated)."""
        with self.lock:
            for entry_id in entry_ids:
                key = entry_id.strip("{}").lower()
                if key not in site.recycle_bin:
                    raise argument_error("Value does not fall within the expected range.")
                del site.recycle_bin[key]
            self.touch()

    def restore(self, site: Site, entry_id: str, user: User | None = None) -> None:
        """Put a recycle-bin entry back: its items (logged as Restore) and its file or folder."""
        with self.lock:
            key = entry_id.strip("{}").lower()
            entry = site.recycle_bin.get(key)
            if entry is None:
                raise argument_error("Value does not fall within the expected range.", status=400)
            lst = site.list_by_id(entry.list_id)
            if lst is None:
                raise argument_error("List does not exist.", status=404)
            if entry.stored is not None and self.on_restore_stored is not None:
                self.on_restore_stored(self, site, entry)  # raises when it cannot go back
            del site.recycle_bin[key]
            for item in [entry.item, *entry.items]:
                if item is None:
                    continue
                item.cache = None
                lst.items[item.id] = item
                bisect.insort(lst.ids, item.id)
                self._record(site, lst, 7, item.id, item.guid, user)
            self.touch()

    def remove_items(self, site: Site, lst: SPList, items: list[Item], user: User | None) -> None:
        """Take items out of a list without a recycle-bin entry of their own (a file's item)."""
        with self.lock:
            for item in items:
                if lst.items.pop(item.id, None) is None:
                    continue
                idx = bisect.bisect_left(lst.ids, item.id)
                if idx < len(lst.ids) and lst.ids[idx] == item.id:
                    lst.ids.pop(idx)
                self._record(site, lst, 3, item.id, item.guid, user)

    # ---- change log ----------------------------------------------------------------------

    def current_change_token(self, lst: SPList) -> str:
        return f"1;3;{lst.id};{to_ticks(self.now())};{self.change_number}"

    def site_change_token(self, site: Site) -> str:
        return f"1;1;{site.id};{to_ticks(self.now())};{self.change_number}"

    def web_change_token(self, site: Site) -> str:
        return f"1;2;{site.web_id};{to_ticks(self.now())};{self.change_number}"

    def _parse_token(self, token: str, scope: str, scope_id: str) -> tuple[int, int]:
        parts = token.split(";")
        if len(parts) != 5 or parts[0] != "1":
            raise change_token_error()
        if parts[1] != scope or parts[2].strip("{}").lower() != scope_id:
            raise change_token_error()
        try:
            ticks, number = int(parts[3]), int(parts[4])
        except ValueError as exc:
            raise change_token_error() from exc
        return ticks, number

    def get_changes(
        self,
        lists: list[SPList],
        query: Mapping[str, Any],
        scope: str,
        scope_id: str,
        list_changes: Iterable[Change] = (),
    ) -> list[Change]:
        """Changes strictly after ChangeTokenStart (up to ChangeTokenEnd) matching the query flags.

        `Item`, `List` and `Field` choose the kinds of change (item changes and field changes
        live on the lists, list changes on the site and come in as `list_changes`).
        """
        with self.lock:
            start = self._token_arg(query, "ChangeTokenStart")
            end = self._token_arg(query, "ChangeTokenEnd")
            now_ticks = to_ticks(self.now())
            horizon = now_ticks - int(self.retention_seconds * 10_000_000)
            lo: tuple[int, int] | None = None
            hi: tuple[int, int] | None = None
            if start is not None:
                ticks, number = self._parse_token(start, scope, scope_id)
                if ticks < horizon and not query.get("IgnoreStartTokenNotFoundError"):
                    raise change_token_error()
                lo = (ticks, number)
            if end is not None:
                hi = self._parse_token(end, scope, scope_id)
            wanted: set[int] = set()
            if query.get("Add"):
                wanted.add(1)
            if query.get("Update"):
                wanted.add(2)
            if query.get("DeleteObject"):
                wanted.add(3)
            if query.get("Restore"):
                wanted.add(7)
            if query.get("SystemUpdate"):
                wanted.add(15)
            kinds = {k.lower() for k in ("Item", "List", "Field") if query.get(k)}
            if not kinds:
                return []
            changes: list[Change] = []
            for lst in lists:
                source = lst.changes
                if lo is not None and lo[1] >= 0 and source:
                    # A list's log is in number order (numbers are global, only grow and are
                    # appended as they are made), so the changes after the token start at a
                    # bisection: a call costs what it returns, not the whole log (1,000,000
                    # entries after seeding a 1,000,000-item list).
                    source = source[bisect.bisect_right(source, lo[1], key=_change_number) :]
                changes.extend(c for c in source if c.change_type in wanted and c.kind in kinds)
            changes.extend(c for c in list_changes if c.change_type in wanted and c.kind in kinds)
            changes.sort(key=lambda c: c.number)
            # Changes older than the retention window are gone, as SharePoint purges its log.
            changes = [c for c in changes if c.ticks >= horizon]
            if lo is not None:
                ticks, number = lo
                if number >= 0:
                    changes = [c for c in changes if c.number > number]
                else:
                    changes = [c for c in changes if c.ticks > ticks]
            if hi is not None:
                changes = (
                    [c for c in changes if c.number <= hi[1]]
                    if hi[1] >= 0
                    else [c for c in changes if c.ticks <= hi[0]]
                )
            if query.get("LatestFirst"):
                changes.reverse()
            limit = int(query.get("FetchLimit") or 1000)
            return changes[: max(1, min(limit, 2000))]

    @staticmethod
    def _token_arg(query: Mapping[str, Any], key: str) -> str | None:
        value = query.get(key)
        if value is None:
            return None
        if isinstance(value, Mapping) and isinstance(value.get("StringValue"), str):
            return str(value["StringValue"])
        raise invalid_query(
            f"An unexpected 'PrimitiveValue' node was found when reading from the JSON reader. "
            f"A 'StartObject' node was expected. (property '{key}', type 'SP.ChangeToken')"
        )

    # ---- row view for $filter / $orderby ------------------------------------------------

    def row(self, site: Site, lst: SPList, item: Item) -> RowView:
        return RowView(self, site, lst, item)

    # ---- reset ---------------------------------------------------------------------------

    def reset(self, sites: Iterable[str] = ()) -> None:
        with self.lock:
            self.sites.clear()
            self.change_number = 0
            if self.files is not None and hasattr(self.files, "reset"):
                self.files.reset()
            elif self.files is not None and hasattr(self.files, "load_state"):
                self.files.load_state({"libraries": []})
            for name in sites:
                self.create_site(name)
            self.touch()


class RowView(Mapping[str, Any]):
    """An item as `$filter`/`$orderby` see it: values by internal/entity name and `Lookup/Field`."""

    __slots__ = ("backend", "item", "lst", "site")

    def __init__(self, backend: Backend, site: Site, lst: SPList, item: Item):
        self.backend, self.site, self.lst, self.item = backend, site, lst, item

    def _system(self, name: str) -> tuple[bool, Any]:
        it = self.item
        low = name.lower()
        if low in ("id",):
            return True, it.id
        if low == "created":
            return True, dt.datetime.fromtimestamp(it.created, UTC).replace(microsecond=0)
        if low == "modified":
            return True, dt.datetime.fromtimestamp(it.modified, UTC).replace(microsecond=0)
        if low == "authorid":
            return True, it.author_id
        if low == "editorid":
            return True, it.editor_id
        if low == "author":
            u = self.site.users.get(it.author_id)
            return True, u.title if u else None
        if low == "editor":
            u = self.site.users.get(it.editor_id)
            return True, u.title if u else None
        if low == "guid":
            return True, it.guid
        if low in ("_uiversionstring", "odata__uiversionstring"):
            return True, it.ui_version
        if low == "fsobjtype" or low == "filesystemobjecttype":
            return True, 0
        return False, None

    def _target(self, f: Field, ident: int, prop: str) -> Any:
        if f.is_user:
            u = self.site.users.get(ident)
            if u is None:
                return None
            p = prop.lower()
            return {
                "id": u.id,
                "title": u.title,
                "email": u.email,
                "name": u.login_name,
                "loginname": u.login_name,
            }.get(p)
        target = self.site.list_by_id(f.lookup_list)
        if target is None:
            return None
        it = target.items.get(ident)
        if it is None:
            return None
        if prop.lower() == "id":
            return ident
        return RowView(self.backend, self.site, target, it).get(prop)

    def __getitem__(self, name: str) -> Any:
        if "/" in name:
            base, prop = name.split("/", 1)
            f = self.lst.field_by_name(base)
            if f is None or not f.is_lookup:
                raise KeyError(name)
            if f.internal_name in ("Author", "Editor"):
                ident: Any = (
                    self.item.author_id if f.internal_name == "Author" else self.item.editor_id
                )
            else:
                ident = self.item.values.get(f.internal_name)
            if isinstance(ident, list):
                return [self._target(f, i, prop) for i in ident]
            return None if ident is None else self._target(f, ident, prop)
        found, value = self._system(name)
        if found:
            return value
        f = self.lst.field_by_name(name)
        if f is None and name.endswith("Id"):
            f = self.lst.field_by_name(name[:-2])
            if f is not None and f.is_lookup:
                return self.item.values.get(f.internal_name, [] if f.multi else None)
            raise KeyError(name)
        if f is None:
            raise KeyError(name)
        value = self.item.values.get(f.internal_name, [] if f.multi else None)
        if f.is_lookup and value is not None:
            # Filtering on a lookup column by name compares its display value.
            prop = "Title" if f.is_user else f.lookup_field
            if isinstance(value, list):
                return [self._target(f, i, prop) for i in value]
            return self._target(f, value, prop)
        if isinstance(value, dict) and "Url" in value:
            return value.get("Url")
        return value

    def __iter__(self) -> Iterator[str]:
        return iter([f.internal_name for f in self.lst.fields])

    def __len__(self) -> int:
        return len(self.lst.fields)
