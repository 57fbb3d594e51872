"""A view's query filters what is rendered through it (issue 15 item 13, views).

`RenderListDataAsStream` with a base view (`overrideParameters.ViewId`, `?View={guid}`, or the
default view) applies the view's `ViewQuery` (Where, OrderBy), `RowLimit` and `ViewFields`;
a `ViewXml` in the parameters replaces the view's query. `…/items` ignores views, as in
SharePoint (views are presentation; OData queries carry their own filter)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from office365.sharepoint.client_context import ClientContext
from office365.sharepoint.views.create_information import ViewCreationInformation

from sp_emulator import SharePointEmulator

ACTIVE = (
    "<Where><Eq><FieldRef Name='Status'/><Value Type='Choice'>Aktiv</Value></Eq></Where>"
    "<OrderBy><FieldRef Name='Title' Ascending='FALSE'/></OrderBy>"
)


@pytest.fixture
def emu() -> Iterator[SharePointEmulator]:
    with SharePointEmulator(sites=["x"]) as e:
        yield e


@pytest.fixture
def raw(emu: SharePointEmulator) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.headers.update(
        {"Authorization": "Bearer " + emu.issue_token(), "Accept": "application/json;odata=verbose"}
    )
    return s


@pytest.fixture
def ctx(emu: SharePointEmulator) -> ClientContext:
    token = emu.issue_token()
    return ClientContext(emu.site_url("x")).with_access_token(
        lambda: {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
    )


@pytest.fixture
def view_id(emu: SharePointEmulator, raw: requests.Session, ctx: ClientContext) -> str:
    """List `Ärenden` (Title, Status, Nummer) with five items and a view `Aktiva`."""
    api = emu.site_url("x") + "/_api/web/lists"
    assert raw.post(api, json={"Title": "Ärenden", "BaseTemplate": 100}).status_code == 201
    for xml in (
        '<Field Type="Choice" Name="Status" DisplayName="Status"><CHOICES>'
        "<CHOICE>Aktiv</CHOICE><CHOICE>Stängd</CHOICE></CHOICES></Field>",
        '<Field Type="Number" Name="Nummer" DisplayName="Nummer"/>',
    ):
        r = raw.post(
            api + "/getbytitle('Ärenden')/fields/createfieldasxml",
            json={"parameters": {"SchemaXml": xml}},
        )
        assert r.status_code in (200, 201), r.text
    lst = ctx.web.lists.get_by_title("Ärenden")
    for n, (title, status) in enumerate(
        [("A", "Aktiv"), ("B", "Stängd"), ("C", "Aktiv"), ("D", "Aktiv"), ("E", "Stängd")], 1
    ):
        lst.add_item({"Title": title, "Status": status, "Nummer": n}).execute_query()
    info = ViewCreationInformation()
    info.Title = "Aktiva"
    info.Query = ACTIVE
    info.RowLimit = 2
    info.ViewFields = ["Title", "Status"]  # type: ignore[assignment]
    view = lst.views.add(info).execute_query()
    return str(view.id)


def _render(raw: requests.Session, emu: SharePointEmulator, body: Any, query: str = "") -> Any:
    url = emu.site_url("x") + "/_api/web/lists/getbytitle('Ärenden')/RenderListDataAsStream"
    r = raw.post(url + query, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_render_through_a_view_applies_its_query_limit_and_fields(
    emu: SharePointEmulator, raw: requests.Session, view_id: str
) -> None:
    data = _render(raw, emu, {"parameters": {}, "overrideParameters": {"ViewId": view_id}})
    assert [(r["Title"], r["Status"]) for r in data["Row"]] == [("D", "Aktiv"), ("C", "Aktiv")]
    assert "Nummer" not in data["Row"][0]  # not one of the view's fields
    assert data["RowLimit"] == 2 and data["NextHref"].startswith("?Paged=TRUE&p_ID=")
    # The same view named in the query string, as the list UI and PnPjs send it.
    same = _render(raw, emu, {"parameters": {}}, f"?View={view_id}")
    assert [r["Title"] for r in same["Row"]] == ["D", "C"]
    # The next page of the view.
    rest = _render(
        raw,
        emu,
        {
            "parameters": {"Paging": data["NextHref"].lstrip("?")},
            "overrideParameters": {"ViewId": view_id},
        },
    )
    assert [r["Title"] for r in rest["Row"]] == ["A"] and "NextHref" not in rest


def test_view_xml_replaces_the_views_query(
    emu: SharePointEmulator, raw: requests.Session, view_id: str
) -> None:
    closed = (
        "<View><Query><Where><Eq><FieldRef Name='Status'/><Value Type='Choice'>Stängd</Value>"
        "</Eq></Where></Query></View>"
    )
    data = _render(
        raw,
        emu,
        {"parameters": {"ViewXml": closed}, "overrideParameters": {"ViewId": view_id}},
    )
    # The ViewXml's query, the base view's row limit and fields.
    assert [r["Title"] for r in data["Row"]] == ["B", "E"]
    assert set(data["Row"][0]) >= {"Title", "Status"} and "Nummer" not in data["Row"][0]


def test_default_views_query_applies_and_items_ignore_views(
    emu: SharePointEmulator, raw: requests.Session, view_id: str
) -> None:
    lists = emu.site_url("x") + "/_api/web/lists/getbytitle('Ärenden')"
    r = raw.post(
        lists + "/DefaultView",
        json={"ViewQuery": ACTIVE, "RowLimit": 30},
        headers={"X-HTTP-Method": "MERGE"},
    )
    assert r.status_code == 204, r.text
    data = _render(raw, emu, {"parameters": {}})
    # The default view of a generic list shows LinkTitle (the title with its menu).
    assert [r["LinkTitle"] for r in data["Row"]] == ["D", "C", "A"]
    items = raw.get(lists + "/items?$select=Title").json()["d"]["results"]
    assert [i["Title"] for i in items] == ["A", "B", "C", "D", "E"]


def test_unknown_view_is_refused(
    emu: SharePointEmulator, raw: requests.Session, view_id: str
) -> None:
    url = emu.site_url("x") + "/_api/web/lists/getbytitle('Ärenden')/RenderListDataAsStream"
    r = raw.post(
        url,
        json={
            "parameters": {},
            "overrideParameters": {"ViewId": "00000000-0000-0000-0000-000000000001"},
        },
    )
    assert r.status_code == 404
    assert r.json()["error"]["message"]["value"] == "The specified view is invalid."
