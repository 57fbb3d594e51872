"""Lists, fields through every client path, item JSON per field type, ETags, validation."""

from __future__ import annotations

from typing import Any

import pytest
from office365.runtime.client_request_exception import ClientRequestException
from office365.sharepoint.client_context import ClientContext
from office365.sharepoint.fields.creation_information import FieldCreationInformation
from office365.sharepoint.fields.type import FieldType
from office365.sharepoint.lists.creation_information import ListCreationInformation
from office365.sharepoint.lists.templates.type import ListTemplateType

from sp_emulator import SharePointEmulator
from sp_emulator.model import encode_name


def _new_list(
    ctx: ClientContext, title: str, template: ListTemplateType = ListTemplateType.GenericList
) -> Any:
    return ctx.web.lists.add(
        ListCreationInformation(title, "beskrivning", template)
    ).execute_query()


def test_encode_name_like_sharepoint() -> None:
    assert encode_name("Län namn") == "L_x00e4_n_x0020_namn"
    assert encode_name("Åtgärd ö") == "_x00c5_tg_x00e4_rd_x0020__x00f6_"
    assert len(encode_name("Mycket lång kolumnrubrik med många ord")) <= 32


def test_list_create_get_update_delete(
    emulator: SharePointEmulator, client: ClientContext, raw: Any
) -> None:
    lst = _new_list(client, "Dialoger")
    assert lst.properties["ListItemEntityTypeFullName"] == "SP.Data.DialogerListItem"
    assert lst.properties["BaseTemplate"] == 100 and lst.properties["ItemCount"] == 0
    same = client.web.lists.get_by_id(lst.id).get().execute_query()
    assert same.title == "Dialoger"
    r = raw("GET", f"/_api/web/lists(guid'{lst.id}')?$select=Title,ItemCount")
    assert r.status_code == 200 and set(r.json()["d"]) == {"__metadata", "Title", "ItemCount"}
    r = raw("GET", "/_api/web/lists/GETBYTITLE('dialoger')")
    assert r.status_code == 200
    r = raw(
        "POST",
        f"/_api/web/lists('{lst.id}')",
        headers={"X-HTTP-Method": "MERGE", "Content-Type": "application/json;odata=verbose"},
        json={"__metadata": {"type": "SP.List"}, "Title": "Dialoger 2", "Description": "ny"},
    )
    assert r.status_code == 204
    assert raw("GET", "/_api/web/lists/getbytitle('Dialoger 2')").json()["d"]["Description"] == "ny"
    r = raw("GET", "/_api/web/lists/getbytitle('Saknas')")
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "-1, System.ArgumentException"
    assert err["message"]["value"] == "List 'Saknas' does not exist at site with URL '/sites/x'."
    r = raw("POST", f"/_api/web/lists('{lst.id}')", headers={"X-HTTP-Method": "DELETE"})
    assert r.status_code == 200
    assert raw("GET", f"/_api/web/lists(guid'{lst.id}')").status_code == 404


def test_quote_escapes_in_get_by_title(client: ClientContext, raw: Any) -> None:
    _new_list(client, "Kund's lista")
    r = raw("GET", "/_api/web/lists/getbytitle('Kund''s lista')")
    assert r.status_code == 200 and r.json()["d"]["Title"] == "Kund's lista"


def test_default_document_library_and_user_information_list(raw: Any) -> None:
    d = raw("GET", "/_api/web/defaultDocumentLibrary").json()["d"]
    assert (
        d["Title"] == "Dokument"
        and d["BaseTemplate"] == 101
        and d["ListItemEntityTypeFullName"] == "SP.Data.Shared_x0020_DocumentsItem"
    )
    hidden = raw("GET", "/_api/web/lists?$filter=Hidden eq true&$select=Title").json()["d"][
        "results"
    ]
    assert {"Title": "User Information List"} in [
        {k: v for k, v in x.items() if k != "__metadata"} for x in hidden
    ]
    uil = raw(
        "GET", "/_api/web/lists/getbytitle('User Information List')/items?$select=Title,EMail,Name"
    ).json()["d"]["results"]
    assert any(
        u["EMail"] == "anna.lindqvist@example.se" and u["Title"] == "Anna Lindqvist" for u in uil
    )


def test_web_regional_settings_and_users(raw: Any) -> None:
    web = raw("GET", "/_api/web").json()["d"]
    assert web["ServerRelativeUrl"] == "/sites/x" and web["Url"].endswith("/sites/x")
    tz = raw("GET", "/_api/web/RegionalSettings/TimeZone").json()["d"]
    assert tz["Description"] == "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna"
    assert (
        tz["Id"] == 4
        and tz["Information"]["Bias"] == -60
        and tz["Information"]["DaylightBias"] == -60
    )
    users = raw("GET", "/_api/web/SiteUsers").json()["d"]["results"]
    assert len(users) >= 6
    u = raw("GET", "/_api/web/GetUserById(2)").json()["d"]
    assert u["Title"] == "Erik Johansson" and u["Email"] == "erik.johansson@example.se"
    by_mail = raw("GET", "/_api/web/siteusers/getbyemail('maria.nilsson@example.se')").json()["d"]
    assert by_mail["Id"] == 3
    new = raw(
        "POST", "/_api/web/ensureuser", json={"logonName": "i:0#.f|membership|sara.ek@example.se"}
    ).json()["d"]
    assert new["Email"] == "sara.ek@example.se" and new["Title"] == "Sara Ek"
    again = raw("POST", "/_api/web/ensureuser", json={"logonName": "sara.ek@example.se"}).json()[
        "d"
    ]
    assert again["Id"] == new["Id"]


@pytest.fixture
def typed_list(emulator: SharePointEmulator, client: ClientContext) -> Any:
    """A list with one column of each kind, created through every client path."""
    target = _new_list(client, "Projekt")
    target.add_item({"Title": "Alfa"}).execute_query()
    target.add_item({"Title": "Beta"}).execute_query()
    lst = _new_list(client, "Typer")
    f = lst.fields
    f.add_field(
        FieldCreationInformation("Status", FieldType.Choice, Choices=["Ny", "Klar"])
    ).execute_query()
    f.add_choice_field("Taggar", ["a", "b", "c"], multiple_values=True).execute_query()
    f.add_text_field("Kort text").execute_query()
    f.add_note("Anteckning").execute_query()
    f.add(FieldType.Number, Title="Belopp").execute_query()
    f.add(FieldType.Boolean, Title="Klar").execute_query()
    f.add_url_field("Länk").execute_query()
    f.add_lookup_field("Projekt", target.id, "Title").execute_query()
    f.add_lookup_field("Projekten", target.id, "Title", allow_multiple_values=True).execute_query()
    f.add_user_field("Ansvarig").execute_query()
    f.create_field_as_xml(
        '<Field Type="DateTime" Name="Startdatum" DisplayName="Startdatum" Format="DateOnly" Indexed="TRUE"/>'
    ).execute_query()
    f.create_field_as_xml(
        '<Field Type="DateTime" Name="Mote" DisplayName="Möte" Format="DateTime"/>'
    ).execute_query()
    f.create_field_as_xml(
        '<Field Type="Choice" Name="Fas" DisplayName="Fas" Required="TRUE"><Default>1</Default><CHOICES><CHOICE>1</CHOICE><CHOICE>2</CHOICE></CHOICES></Field>'
    ).execute_query()
    return lst


def test_field_json_per_type(typed_list: Any, raw: Any) -> None:
    fields = {
        x["InternalName"]: x
        for x in raw("GET", "/_api/web/lists/getbytitle('Typer')/fields").json()["d"]["results"]
    }
    assert fields["Status"]["__metadata"]["type"] == "SP.FieldChoice"
    assert (
        fields["Status"]["Choices"]["results"] == ["Ny", "Klar"]
        and fields["Status"]["FieldTypeKind"] == 6
    )
    assert (
        fields["Taggar"]["__metadata"]["type"] == "SP.FieldMultiChoice"
        and fields["Taggar"]["FieldTypeKind"] == 15
    )
    assert fields["Kort_x0020_text"]["__metadata"]["type"] == "SP.FieldText"
    assert fields["Anteckning"]["__metadata"]["type"] == "SP.FieldMultiLineText"
    assert fields["Belopp"]["__metadata"]["type"] == "SP.FieldNumber"
    assert fields["Klar"]["TypeAsString"] == "Boolean" and fields["Klar"]["FieldTypeKind"] == 8
    assert fields["L_x00e4_nk"]["__metadata"]["type"] == "SP.FieldUrl"
    lk = fields["Projekt"]
    assert (
        lk["__metadata"]["type"] == "SP.FieldLookup"
        and lk["LookupField"] == "Title"
        and lk["AllowMultipleValues"] is False
    )
    assert lk["LookupList"].startswith("{") and lk["LookupList"].endswith("}")
    assert (
        fields["Projekten"]["AllowMultipleValues"] is True
        and fields["Projekten"]["TypeAsString"] == "LookupMulti"
    )
    assert (
        fields["Ansvarig"]["__metadata"]["type"] == "SP.FieldUser"
        and fields["Ansvarig"]["SelectionMode"] == 0
    )
    assert fields["Startdatum"]["DisplayFormat"] == 0 and fields["Startdatum"]["Indexed"] is True
    assert fields["Mote"]["DisplayFormat"] == 1 and fields["Mote"]["Title"] == "Möte"
    assert fields["Fas"]["Required"] is True and fields["Fas"]["DefaultValue"] == "1"
    assert fields["ID"]["Indexed"] is True and fields["ID"]["CanBeDeleted"] is False
    one = raw(
        "GET", "/_api/web/lists/getbytitle('Typer')/fields/getbyinternalnameortitle('Möte')"
    ).json()["d"]
    assert one["InternalName"] == "Mote"
    by_id = raw("GET", f"/_api/web/lists/getbytitle('Typer')/fields(guid'{one['Id']}')").json()["d"]
    assert by_id["Title"] == "Möte"


def test_field_update_and_delete(typed_list: Any, raw: Any) -> None:
    base = "/_api/web/lists/getbytitle('Typer')/fields/getbyinternalnameortitle"
    r = raw(
        "POST",
        f"{base}('Status')",
        headers={"X-HTTP-Method": "MERGE"},
        json={
            "__metadata": {"type": "SP.FieldChoice"},
            "Choices": {"results": ["Ny", "Pågår", "Klar"]},
            "Required": True,
            "Indexed": True,
            "Title": "Läge",
            "Description": "d",
        },
    )
    assert r.status_code == 204
    f = raw("GET", f"{base}('Status')").json()["d"]
    assert (
        f["Choices"]["results"] == ["Ny", "Pågår", "Klar"]
        and f["Required"]
        and f["Indexed"]
        and f["Title"] == "Läge"
    )
    assert raw("POST", f"{base}('Belopp')", headers={"X-HTTP-Method": "DELETE"}).status_code == 200
    assert raw("GET", f"{base}('Belopp')").status_code == 404
    r = raw("POST", f"{base}('Title')", headers={"X-HTTP-Method": "DELETE"})
    assert r.status_code >= 400


def test_post_fields_with_sp_field_body(typed_list: Any, raw: Any) -> None:
    r = raw(
        "POST",
        "/_api/web/lists/getbytitle('Typer')/fields",
        json={"__metadata": {"type": "SP.FieldText"}, "Title": "Övrigt", "FieldTypeKind": 2},
    )
    assert r.status_code == 201 and r.json()["d"]["InternalName"] == "_x00d6_vrigt"
    assert r.json()["d"]["EntityPropertyName"] == "OData__x00d6_vrigt"


def test_item_json_per_type(typed_list: Any, client: ClientContext, raw: Any) -> None:
    item = typed_list.add_item(
        {
            "Title": "Första",
            "Status": "Ny",
            "Taggar": {"results": ["a", "c"]},
            "Kort_x0020_text": "k",
            "Anteckning": "<div><b>fet</b></div>",
            "Belopp": 12.5,
            "Klar": True,
            "L_x00e4_nk": {
                "__metadata": {"type": "SP.FieldUrlValue"},
                "Url": "https://example.se",
                "Description": "ex",
            },
            "ProjektId": 2,
            "ProjektenId": {"results": [1, 2]},
            "AnsvarigId": 3,
            "Startdatum": "2026-03-29",
            "Mote": "2026-05-01T10:00:00+00:00",
        }
    ).execute_query()
    d = raw("GET", f"/_api/web/lists/getbytitle('Typer')/items({item.id})").json()["d"]
    assert d["Status"] == "Ny" and d["Taggar"]["results"] == ["a", "c"]
    assert d["Taggar"]["__metadata"]["type"] == "Collection(Edm.String)"
    assert d["Anteckning"] == "<div><b>fet</b></div>" and d["Belopp"] == 12.5 and d["Klar"] is True
    assert d["L_x00e4_nk"] == {
        "__metadata": {"type": "SP.FieldUrlValue"},
        "Description": "ex",
        "Url": "https://example.se",
    }
    assert d["ProjektId"] == 2 and d["ProjektenId"]["results"] == [1, 2]
    assert d["AnsvarigId"] == 3 and d["AnsvarigStringId"] == "3"
    assert d["Startdatum"] == "2026-03-28T23:00:00Z"  # midnight in Stockholm (winter) in UTC
    assert d["Mote"] == "2026-05-01T10:00:00Z"
    assert d["Fas"] == "1"  # the column default
    assert d["__metadata"]["etag"] == '"1"' and d["OData__UIVersionString"] == "1.0"
    assert d["AuthorId"] == d["EditorId"] and d["GUID"] and d["Created"].endswith("Z")
    sel = raw(
        "GET",
        f"/_api/web/lists/getbytitle('Typer')/items({item.id})?$select=Title,Projekt/Title,Ansvarig/EMail,Ansvarig/Title,Projekten/Title&$expand=Projekt,Ansvarig,Projekten",
    ).json()["d"]
    assert sel["Projekt"]["Title"] == "Beta"
    assert (
        sel["Ansvarig"]["EMail"] == "maria.nilsson@example.se"
        and sel["Ansvarig"]["Title"] == "Maria Nilsson"
    )
    assert [p["Title"] for p in sel["Projekten"]["results"]] == ["Alfa", "Beta"]
    flt = raw(
        "GET",
        "/_api/web/lists/getbytitle('Typer')/items?$filter=Projekt/Id eq 2 and Startdatum eq datetime'2026-03-28T23:00:00Z'&$select=Id",
    ).json()["d"]["results"]
    assert [r["Id"] for r in flt] == [item.id]


def test_cold_page_text_equals_the_item_dicts(
    emulator: SharePointEmulator, typed_list: Any, raw: Any
) -> None:
    """A cold verbose page is written as text (`item_text`), not by encoding each item's dict:
    the bytes must be exactly what encoding `item_json` gives, for every column type, for
    empty columns and for text that needs escaping."""
    from sp_emulator import odata
    from sp_emulator.http import Request

    typed_list.add_item(
        {
            "Title": 'Citat "x" \\ ny\nrad \u00e5\u00e4\u00f6 \u2028 \U0001f600',
            "Status": "Klar",
            "Taggar": {"results": ["b"]},
            "Anteckning": "<p>\t</p>",
            "Belopp": 2.0,
            "Klar": False,
            "ProjektId": 1,
            "ProjektenId": {"results": []},
            "AnsvarigId": 2,
            "Mote": "2026-12-31T23:59:59+00:00",
        }
    ).execute_query()
    typed_list.add_item({"Title": None}).execute_query()
    typed_list.add_item({"Title": "tal", "Belopp": 1e21}).execute_query()
    page = raw("GET", "/_api/web/lists/getbytitle('Typer')/items")
    assert page.status_code == 200
    served = page.content.decode("utf-8")
    site = emulator.backend.get_site("x")
    lst = emulator.backend.get_list(site, title="Typer")
    request = Request(
        method="GET",
        raw_path="/sites/x/_api/web/lists/getbytitle('Typer')/items",
        path="/_api/web/lists/getbytitle('Typer')/items",
        site="x",
        query={},
        headers={},
        body=b"",
        base_url=emulator.url,
    )
    items = emulator.app.items
    texts = [items.item_text(request, site, lst, lst.items[i]) for i in lst.ids]
    assert len(texts) == 3
    for i in lst.ids:
        lst.items[i].cache = None
    dicts = [odata.dumps_text(items.item_json(request, site, lst, lst.items[i])) for i in lst.ids]
    assert texts == dicts
    assert served == '{"d":{"results":[' + ",".join(dicts) + "]}}"


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?$select=Title,Projekt/Title,Ansvarig/EMail,Ansvarig/Title,Projekten/Title,Taggar,"
        "L_x00e4_nk,Belopp,Klar,Mote,ParentList,Versions,AttachmentFiles,HasUniqueRoleAssignments"
        "&$expand=Projekt,Ansvarig,Projekten",
        "?$expand=Projekt,Ansvarig,Projekten,Author,Editor",
        "?$select=Id,Title,Author/Title&$expand=Author",
    ],
)
def test_nometadata_pages_equal_the_verbose_pages_in_light_form(
    typed_list: Any, raw: Any, query: str
) -> None:
    """nometadata item pages are written in their light form directly (`_light_item`); they
    must equal the verbose page converted to JSON light, for every column type and expansion."""
    from sp_emulator import odata

    typed_list.add_item(
        {
            "Title": "Första",
            "Taggar": {"results": ["a", "c"]},
            "Belopp": 12.5,
            "Klar": True,
            "L_x00e4_nk": {"Url": "https://example.se", "Description": "ex"},
            "ProjektId": 2,
            "ProjektenId": {"results": [1, 2]},
            "AnsvarigId": 3,
            "Mote": "2026-05-01T10:00:00+00:00",
        }
    ).execute_query()
    typed_list.add_item({"Title": "Tom", "ProjektenId": {"results": []}}).execute_query()
    url = "/_api/web/lists/getbytitle('Typer')/items" + query
    verbose = raw("GET", url).json()["d"]["results"]
    light = raw("GET", url, fmt="nometadata")
    assert light.status_code == 200, light.text
    rows = light.json()["value"]
    assert len(rows) == 2
    assert rows == [odata.to_light(r, "nometadata") for r in verbose]
    assert list(rows[0]) == list(odata.to_light(verbose[0], "nometadata"))  # same key order


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("2026-03-29", "2026-03-28T23:00:00Z"),  # winter: CET, UTC+1 (DST starts 03-29 02:00)
        ("2026-03-30", "2026-03-29T22:00:00Z"),  # summer: CEST, UTC+2
        ("2026-03-29T00:00:00Z", "2026-03-28T23:00:00Z"),  # midnight UTC of the day means that day
        ("2026-03-29T22:00:00+00:00", "2026-03-29T22:00:00Z"),  # local midnight of 03-30 already
        ("2026-10-25", "2026-10-24T22:00:00Z"),  # DST ends 10-25 03:00: midnight still CEST
        ("2026-10-26", "2026-10-25T23:00:00Z"),
    ],
)
def test_date_only_values_are_local_midnight_in_utc(
    typed_list: Any, raw: Any, written: str, stored: str
) -> None:
    r = raw(
        "POST",
        "/_api/web/lists/getbytitle('Typer')/items",
        json={"__metadata": {"type": "SP.Data.TyperListItem"}, "Title": "d", "Startdatum": written},
    )
    assert r.status_code == 201, r.text
    assert r.json()["d"]["Startdatum"] == stored


def test_merge_with_etags(typed_list: Any, raw: Any) -> None:
    url = "/_api/web/lists/getbytitle('Typer')/items"
    created = raw(
        "POST", url, json={"__metadata": {"type": "SP.Data.TyperListItem"}, "Title": "v1"}
    )
    assert created.status_code == 201 and created.headers["ETag"] == '"1"'
    iid = created.json()["d"]["Id"]
    h = {"X-HTTP-Method": "MERGE", "IF-MATCH": '"1"'}
    r = raw(
        "POST",
        f"{url}({iid})",
        headers=h,
        json={"__metadata": {"type": "SP.Data.TyperListItem"}, "Title": "v2"},
    )
    assert r.status_code == 204 and r.headers["ETag"] == '"2"'
    stale = raw(
        "POST",
        f"{url}({iid})",
        headers=h,
        json={"__metadata": {"type": "SP.Data.TyperListItem"}, "Title": "v3"},
    )
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "-1, Microsoft.SharePoint.Client.ClientServiceException"
    star = raw(
        "POST",
        f"{url}/GetById({iid})",
        headers={"X-HTTP-Method": "MERGE", "IF-MATCH": "*"},
        json={"Title": "v3"},
    )
    assert star.status_code == 204
    got = raw("GET", f"/_api/web/lists/getbytitle('Typer')/getItemById({iid})")
    assert (
        got.headers["ETag"] == '"3"'
        and got.json()["d"]["Title"] == "v3"
        and got.json()["d"]["OData__UIVersionString"] == "3.0"
    )


def test_client_update_and_delete(typed_list: Any, client: ClientContext, raw: Any) -> None:
    item = typed_list.add_item({"Title": "x"}).execute_query()
    item.set_property("Title", "y").update().execute_query()
    assert (
        raw("GET", f"/_api/web/lists/getbytitle('Typer')/items({item.id})").json()["d"]["Title"]
        == "y"
    )
    item.delete_object().execute_query()
    r = raw("GET", f"/_api/web/lists/getbytitle('Typer')/items({item.id})")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "-2147024809, System.ArgumentException"


def test_write_validation(typed_list: Any, raw: Any) -> None:
    url = "/_api/web/lists/getbytitle('Typer')/items"
    r = raw("POST", url, json={"__metadata": {"type": "SP.Data.TyperListItem"}, "Okänd": 1})
    assert r.status_code == 400
    assert (
        r.json()["error"]["code"] == "-1, Microsoft.SharePoint.Client.InvalidClientQueryException"
    )
    assert r.json()["error"]["message"]["value"].startswith(
        "The property 'Okänd' does not exist on type 'SP.Data.TyperListItem'."
    )
    r = raw("POST", url, json={"__metadata": {"type": "SP.Data.FelListItem"}, "Title": "x"})
    assert r.status_code == 400
    r = raw(
        "POST",
        url,
        json={"__metadata": {"type": "SP.Data.TyperListItem"}, "Belopp": "inte ett tal"},
    )
    assert r.status_code == 400
    # An invalid choice is accepted over REST, as SharePoint does.
    r = raw(
        "POST", url, json={"__metadata": {"type": "SP.Data.TyperListItem"}, "Status": "Okänt värde"}
    )
    assert r.status_code == 201 and r.json()["d"]["Status"] == "Okänt värde"


def test_unknown_dollar_option_is_rejected(typed_list: Any, client: ClientContext) -> None:
    """The pinned client's `order_by()` sends `$order_by`; SharePoint answers 400."""
    with pytest.raises(ClientRequestException) as info:
        typed_list.items.order_by("Modified desc").get().execute_query()
    assert info.value.response is not None
    assert info.value.response.status_code == 400
    assert info.value.code == "-1, Microsoft.SharePoint.Client.InvalidClientQueryException"


def test_filter_on_unknown_column_and_bad_syntax(typed_list: Any, raw: Any) -> None:
    r = raw("GET", "/_api/web/lists/getbytitle('Typer')/items?$filter=Finns eq 1")
    assert (
        r.status_code == 400
        and "Column 'Finns' does not exist" in r.json()["error"]["message"]["value"]
    )
    r = raw("GET", "/_api/web/lists/getbytitle('Typer')/items?$filter=Title eq")
    assert r.status_code == 400
    assert (
        r.json()["error"]["code"] == "-1, Microsoft.SharePoint.Client.InvalidClientQueryException"
    )


def test_items_are_authored_by_the_app(typed_list: Any, raw: Any) -> None:
    r = raw(
        "POST",
        "/_api/web/lists/getbytitle('Typer')/items?$select=Author/Title",
        json={"__metadata": {"type": "SP.Data.TyperListItem"}, "Title": "a"},
    )
    iid = r.json()["d"]["Id"]
    d = raw(
        "GET",
        f"/_api/web/lists/getbytitle('Typer')/items({iid})?$select=Author/Title,Editor/Title&$expand=Author,Editor",
    ).json()["d"]
    assert d["Author"]["Title"] == "SharePoint App" and d["Editor"]["Title"] == "SharePoint App"
