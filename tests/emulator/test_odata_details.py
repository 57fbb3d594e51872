"""OData details other clients meet (issue 15 item 10): Atom without JSON Accept, date
functions, property names in error messages."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator

import pytest
import requests

from sp_emulator import SharePointEmulator

ATOM = "{http://www.w3.org/2005/Atom}"
D = "{http://schemas.microsoft.com/ado/2007/08/dataservices}"
M = "{http://schemas.microsoft.com/ado/2007/08/dataservices/metadata}"


def _at(el: ET.Element, path: str) -> ET.Element:
    found = el.find(path)
    assert found is not None, path
    return found


def _text(el: ET.Element, path: str) -> str:
    return _at(el, path).text or ""


@pytest.fixture(scope="module")
def emu() -> Iterator[SharePointEmulator]:
    with SharePointEmulator(sites=["x"]) as e:
        e.backend.bulk_add_items(
            "x",
            e.backend.create_list(e.backend.get_site("x"), "Uppgifter", "", 100).title,
            [{"Title": "Första"}, {"Title": "Andra"}],
        )
        yield e


@pytest.fixture(scope="module")
def call(emu: SharePointEmulator) -> Callable[..., requests.Response]:
    session = requests.Session()
    session.trust_env = False
    token = emu.issue_token()

    def get(path: str, accept: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"}
        if accept is not None:
            headers["Accept"] = accept
        return session.get(emu.site_url("x") + path, headers=headers, timeout=30)

    return get


@pytest.mark.parametrize("accept", [None, "*/*", "application/atom+xml", "application/xml"])
def test_without_a_json_accept_header_the_answer_is_atom(
    call: Callable[..., requests.Response], accept: str | None
) -> None:
    r = call("/_api/web", accept)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/atom+xml;type=entry")
    entry = ET.fromstring(r.content)
    assert entry.tag == f"{ATOM}entry"
    assert _at(entry, f"{ATOM}category").get("term") == "SP.Web"
    props = _at(entry, f"{ATOM}content/{M}properties")
    assert _text(props, f"{D}Title") == "x"
    assert _at(props, f"{D}Language").get(f"{M}type") == "Edm.Int32"
    related = {link.get("title") for link in entry.findall(f"{ATOM}link") if link.get("title")}
    assert {"Lists", "RootFolder", "SiteUsers"} <= related


def test_item_collection_is_an_atom_feed_with_every_item(
    call: Callable[..., requests.Response],
) -> None:
    r = call("/_api/web/lists/getbytitle('Uppgifter')/items?$select=Id,Title")
    assert r.headers["Content-Type"].startswith("application/atom+xml;type=feed")
    feed = ET.fromstring(r.content)
    titles = [
        _text(e, f"{ATOM}content/{M}properties/{D}Title") for e in feed.findall(f"{ATOM}entry")
    ]
    assert titles == ["Första", "Andra"]


def test_paged_atom_feed_links_the_next_page(call: Callable[..., requests.Response]) -> None:
    feed = ET.fromstring(call("/_api/web/lists/getbytitle('Uppgifter')/items?$top=1").content)
    assert len(feed.findall(f"{ATOM}entry")) == 1
    nxt = [link.get("href") for link in feed.findall(f"{ATOM}link") if link.get("rel") == "next"]
    assert len(nxt) == 1 and "p_ID%3D1" in str(nxt[0])


def test_errors_without_json_accept_are_xml(call: Callable[..., requests.Response]) -> None:
    r = call("/_api/web/lists/getbytitle('Saknas')")
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/xml")
    err = ET.fromstring(r.content)
    assert err.tag == f"{M}error"
    assert _text(err, f"{M}code").endswith("System.ArgumentException")
    assert "Saknas" in _text(err, f"{M}message")


def test_json_accept_still_gets_json(call: Callable[..., requests.Response]) -> None:
    assert call("/_api/web", "application/json").json()["Title"] == "x"
    assert call("/_api/web", "application/json;odata=verbose").json()["d"]["Title"] == "x"


@pytest.mark.parametrize("function", ["year", "month", "day", "hour", "minute", "second"])
def test_date_functions_in_filter_are_refused_as_sharepoint_online_does(
    call: Callable[..., requests.Response], function: str
) -> None:
    # Documented, but SharePoint Online answers 400 "The query is not valid." on list items
    # (SharePoint/sp-dev-docs#5481, #8323); the emulator must not answer rows SPO would not.
    r = call(
        f"/_api/web/lists/getbytitle('Uppgifter')/items?$filter={function}(Created) eq 1",
        "application/json;odata=verbose",
    )
    assert r.status_code == 400
    assert r.json()["error"]["message"]["value"] == "The query is not valid."


@pytest.mark.parametrize(
    ("path", "type_name"),
    [
        ("/_api/web?$select=NoSuchProp", "SP.Web"),
        ("/_api/web/lists/getbytitle('Uppgifter')?$select=FooBar", "SP.List"),
        ("/_api/web/lists/getbytitle('Uppgifter')/fields?$select=FooBar", "SP.Field"),
    ],
)
def test_unknown_property_is_named_as_the_request_spelled_it(
    call: Callable[..., requests.Response], path: str, type_name: str
) -> None:
    r = call(path, "application/json;odata=verbose")
    assert r.status_code == 400
    name = path.rsplit("=", 1)[1]
    assert r.json()["error"]["message"]["value"] == (
        f"The property '{name}' does not exist on type '{type_name}'."
    )
