"""List views: the backend for `Views`, `DefaultView` and `ViewFields`.

Every list has its default view ("Alla objekt", the Swedish site's name for All Items, at
`AllItems.aspx`); views keep their title, row limit, paging flag, view fields and query (the
inner XML of `<Query>`). Sources: the office365 client's `sharepoint/views/` (the calls other
clients make: Views/Add with SP.ViewCreationInformation, ViewFields/AddViewField('name')) and
https://learn.microsoft.com/en-us/sharepoint/dev/sp-add-ins/working-with-lists-and-list-items-with-rest.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from sp_emulator.errors import argument_error, column_not_found, invalid_argument
from sp_emulator.model import Backend, Site, SPList

DEFAULT_VIEW_TITLE = "Alla objekt"
# Computed columns every view may show besides the list's own fields.
COMPUTED_VIEW_FIELDS = frozenset(
    {"LinkTitle", "LinkTitleNoMenu", "LinkFilename", "LinkFilenameNoMenu", "DocIcon", "Edit"}
)


@dataclass
class View:
    id: str
    title: str
    url_name: str  # file name, e.g. "AllItems.aspx"
    default: bool = False
    row_limit: int = 30
    paged: bool = True
    personal: bool = False
    hidden: bool = False
    query: str = ""
    fields: list[str] = field(default_factory=list)


def _default_fields(lst: SPList) -> list[str]:
    if lst.is_library:
        return ["DocIcon", "LinkFilename", "Modified", "Editor"]
    return ["LinkTitle"]


class ViewsBackend:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def views(self, lst: SPList) -> list[View]:
        views: list[View] | None = lst.views
        if views is None:
            views = [
                View(
                    str(uuid.uuid4()),
                    DEFAULT_VIEW_TITLE,
                    "AllItems.aspx",
                    True,
                    fields=_default_fields(lst),
                )
            ]
            lst.views = views
        return views

    def url(self, site: Site, lst: SPList, view: View) -> str:
        base = lst.server_relative_url(site.path)
        return f"{base}/Forms/{view.url_name}" if lst.is_library else f"{base}/{view.url_name}"

    def find(
        self,
        lst: SPList,
        *,
        view_id: str | None = None,
        title: str | None = None,
        default: bool = False,
    ) -> View:
        for v in self.views(lst):
            if (
                (default and v.default)
                or (view_id and v.id == view_id.strip("{}").lower())
                or (title is not None and v.title.lower() == title.lower())
            ):
                return v
        raise invalid_argument("The specified view is invalid.", status=404)

    @staticmethod
    def view_xml(view: View) -> str:
        """The CAML `<View>` a view stands for: its query, fields and row limit."""
        fields = "".join(f"<FieldRef Name={quoteattr(n)}/>" for n in view.fields)
        return (
            f"<View><Query>{view.query}</Query><ViewFields>{fields}</ViewFields>"
            f"<RowLimit>{view.row_limit}</RowLimit></View>"
        )

    def _check_field(self, lst: SPList, name: str) -> str:
        if name in COMPUTED_VIEW_FIELDS:
            return name
        f = lst.field_by_name(name)
        if f is None:
            raise column_not_found(name)
        return f.internal_name

    def add(self, lst: SPList, props: Mapping[str, Any]) -> View:
        with self.backend.lock:
            title = str(props.get("Title") or "")
            if not title:
                raise argument_error("Value cannot be null.\r\nParameter name: Title")
            views = self.views(lst)
            if any(v.title.lower() == title.lower() for v in views):
                raise argument_error(f"A view named '{title}' already exists.")
            raw_fields = props.get("ViewFields")
            if isinstance(raw_fields, Mapping):
                raw_fields = raw_fields.get("results", [])
            names = [self._check_field(lst, str(n)) for n in (raw_fields or _default_fields(lst))]
            view = View(
                str(uuid.uuid4()),
                title,
                title.replace(" ", "") + ".aspx",
                row_limit=int(props.get("RowLimit") or 30),
                paged=bool(props.get("Paged", True)),
                personal=bool(props.get("PersonalView", False)),
                query=str(props.get("ViewQuery") or props.get("Query") or ""),
                fields=names,
            )
            views.append(view)
            if props.get("SetAsDefaultView") or props.get("DefaultView"):
                self._make_default(views, view)
            self.backend.touch()
            return view

    @staticmethod
    def _make_default(views: list[View], view: View) -> None:
        for v in views:
            v.default = v is view

    def update(self, lst: SPList, view: View, props: Mapping[str, Any]) -> None:
        with self.backend.lock:
            if "Title" in props:
                view.title = str(props["Title"])
            if "RowLimit" in props:
                view.row_limit = int(props["RowLimit"])
            if "Paged" in props:
                view.paged = bool(props["Paged"])
            if "ViewQuery" in props:
                view.query = str(props["ViewQuery"] or "")
            if props.get("DefaultView"):
                self._make_default(self.views(lst), view)
            self.backend.touch()

    def delete(self, lst: SPList, view: View) -> None:
        with self.backend.lock:
            if view.default:
                raise invalid_argument("The default view of a list cannot be deleted.")
            self.views(lst).remove(view)
            self.backend.touch()

    def add_field(self, lst: SPList, view: View, name: str) -> None:
        with self.backend.lock:
            internal = self._check_field(lst, name)
            if internal not in view.fields:
                view.fields.append(internal)
            self.backend.touch()

    def remove_field(self, lst: SPList, view: View, name: str) -> None:
        with self.backend.lock:
            internal = name if name in view.fields else self._check_field(lst, name)
            if internal in view.fields:
                view.fields.remove(internal)
            self.backend.touch()

    def remove_all_fields(self, view: View) -> None:
        with self.backend.lock:
            view.fields.clear()
            self.backend.touch()
