"""Responses for list views: `Views`, `DefaultView`, one view, and its `ViewFields`."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import quoteattr

from sp_emulator import odata
from sp_emulator.errors import invalid_query
from sp_emulator.http import Request, Response
from sp_emulator.model import Backend, Site, SPList
from sp_emulator.responses.web import WebResponses
from sp_emulator.views import View, ViewsBackend


class ViewResponses:
    def __init__(self, backend: Backend, web: WebResponses) -> None:
        self.backend = backend
        self.web = web
        self.views = ViewsBackend(backend)

    def view_json(self, request: Request, site: Site, lst: SPList, v: View) -> dict[str, Any]:
        uri = f"{request.site_url}/_api/Web/Lists(guid'{lst.id}')/Views(guid'{v.id}')"
        fields = "".join(f"<FieldRef Name={quoteattr(n)} />" for n in v.fields)
        return {
            "__metadata": {"id": uri, "uri": uri, "type": "SP.View"},
            "ViewFields": {"__deferred": {"uri": f"{uri}/ViewFields"}},
            "DefaultView": v.default,
            "Hidden": v.hidden,
            "Id": v.id,
            "Paged": v.paged,
            "PersonalView": v.personal,
            "RowLimit": v.row_limit,
            "ServerRelativeUrl": self.views.url(site, lst, v),
            "Title": v.title,
            "ViewQuery": v.query,
            "ViewType": "HTML",
            "ListViewXml": (
                f'<View Name="{{{v.id.upper()}}}" DefaultView="{"TRUE" if v.default else ""}" '
                f'Type="HTML" DisplayName={quoteattr(v.title)}><Query>{v.query}</Query>'
                f'<ViewFields>{fields}</ViewFields><RowLimit Paged="{"TRUE" if v.paged else "FALSE"}">'
                f"{v.row_limit}</RowLimit></View>"
            ),
        }

    def _view(self, request: Request, m: Any) -> tuple[Site, SPList, View]:
        site, lst = self.web.resolve_list(request, m)
        g = m.groupdict()
        if g.get("vdefault"):
            return site, lst, self.views.find(lst, default=True)
        if g.get("vtitle") is not None:
            return site, lst, self.views.find(lst, title=odata.unquote_literal(g["vtitle"]))
        return site, lst, self.views.find(lst, view_id=g.get("vguid") or g.get("vguid2"))

    def list_views(self, request: Request, m: Any) -> Response:
        site, lst = self.web.resolve_list(request, m)
        rows = [
            odata.select_props(self.view_json(request, site, lst, v), request.query.get("$select"))
            for v in self.views.views(lst)
        ]
        return odata.collection(request, rows, type_name="SP.ApiData.Views")

    def create_view(self, request: Request, m: Any) -> Response:
        site, lst = self.web.resolve_list(request, m)
        body = odata.parse_json_body(request)
        view = self.views.add(lst, body.get("parameters", body))
        status = 200 if "parameters" in body else 201
        return odata.entity(request, self.view_json(request, site, lst, view), status=status)

    def get_view(self, request: Request, m: Any) -> Response:
        site, lst, view = self._view(request, m)
        obj = self.view_json(request, site, lst, view)
        return odata.entity(request, odata.select_props(obj, request.query.get("$select")))

    def update_view(self, request: Request, m: Any) -> Response:
        _site, lst, view = self._view(request, m)
        self.views.update(lst, view, odata.parse_json_body(request))
        return odata.no_content()

    def delete_view(self, request: Request, m: Any) -> Response:
        _site, lst, view = self._view(request, m)
        self.views.delete(lst, view)
        return odata.empty_ok(request)

    def view_fields(self, request: Request, m: Any) -> Response:
        site, lst, view = self._view(request, m)
        uri = self.view_json(request, site, lst, view)["__metadata"]["uri"] + "/ViewFields"
        return odata.entity(
            request,
            {
                "__metadata": {"id": uri, "uri": uri, "type": "SP.ViewFieldCollection"},
                "Items": {
                    "__metadata": {"type": "Collection(Edm.String)"},
                    "results": list(view.fields),
                },
                "SchemaXml": "<FieldRefs>"
                + "".join(f"<FieldRef Name={quoteattr(n)} />" for n in view.fields)
                + "</FieldRefs>",
            },
        )

    def _field_name(self, request: Request, m: Any) -> str:
        name = m.groupdict().get("vfield")
        if name is not None:
            return odata.unquote_literal(name)
        body = odata.parse_json_body(request)
        found = body.get("strField") or body.get("fieldName")
        if not found:
            raise invalid_query("The parameter strField is missing.")
        return str(found)

    def add_view_field(self, request: Request, m: Any) -> Response:
        _site, lst, view = self._view(request, m)
        self.views.add_field(lst, view, self._field_name(request, m))
        return odata.value(request, "AddViewField", None)

    def remove_view_field(self, request: Request, m: Any) -> Response:
        _site, lst, view = self._view(request, m)
        self.views.remove_field(lst, view, self._field_name(request, m))
        return odata.value(request, "RemoveViewField", None)

    def remove_all_view_fields(self, request: Request, m: Any) -> Response:
        _site, _lst, view = self._view(request, m)
        self.views.remove_all_fields(view)
        return odata.value(request, "RemoveAllViewFields", None)
