"""Calls of other clients that the emulator used to refuse (issue 15 items 3, 4, 5, 7, 8, 9).

Each test drives the real office365 client 3.3.0 (or raw HTTP where the client has no call)
and checks the outcome on the server side: folders that exist, bytes that were stored,
items that came back from the recycle bin, a field's stored MaxLength.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from office365.runtime.client_request_exception import ClientRequestException
from office365.sharepoint.client_context import ClientContext
from office365.sharepoint.lists.creation_information import ListCreationInformation
from office365.sharepoint.lists.templates.type import ListTemplateType

from sp_emulator import SharePointEmulator

LIB = "Shared Documents"


@pytest.fixture
def emu() -> Iterator[SharePointEmulator]:
    with SharePointEmulator(sites=["x"]) as e:
        yield e


@pytest.fixture
def ctx(emu: SharePointEmulator) -> ClientContext:
    token = emu.issue_token()
    return ClientContext(emu.site_url("x")).with_access_token(
        lambda: {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
    )


@pytest.fixture
def raw(emu: SharePointEmulator) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.headers.update(
        {"Authorization": "Bearer " + emu.issue_token(), "Accept": "application/json;odata=verbose"}
    )
    return s


def _new_list(ctx: ClientContext, title: str, template: int = 100) -> Any:
    """A query adding a list (office365 types the template as an enum)."""
    info = ListCreationInformation(title, None, ListTemplateType(template))
    return ctx.web.lists.add(info)


def _id(value: int | None) -> int:
    assert value is not None
    return value


def _status(err: pytest.ExceptionInfo[ClientRequestException]) -> int:
    assert err.value.response is not None
    return int(err.value.response.status_code)


def _content(ctx: ClientContext, url: str) -> bytes:
    return bytes(ctx.web.get_file_by_server_relative_url(url).get_content().execute_query().value)


def _folder_names(emu: SharePointEmulator, url: str) -> list[str]:
    folder = emu.backend.files.resolve_folder("x", "/sites/x", url)
    assert folder is not None, url
    return sorted(f.name for f in folder.folders.values())


# ---- item 3: Web/RootFolder/Folders/Add('Shared Documents') returns the existing folder -----


def test_ensure_folder_path_starts_at_the_web_root_and_creates_the_rest(
    ctx: ClientContext, emu: SharePointEmulator
) -> None:
    folder = ctx.web.ensure_folder_path(f"{LIB}/Län/Skåne").execute_query()
    assert folder.server_relative_url == f"/sites/x/{LIB}/Län/Skåne"
    assert "Län" in _folder_names(emu, LIB)
    assert _folder_names(emu, f"{LIB}/Län") == ["Skåne"]
    again = ctx.web.root_folder.folders.add(LIB).execute_query()
    assert again.server_relative_url == f"/sites/x/{LIB}"
    root = ctx.web.root_folder.get().execute_query()
    assert root.server_relative_url == "/sites/x"


# ---- item 4: AddUsingPath, AddSubFolderUsingPath, GetByPath ---------------------------------


def test_folders_add_using_path_add_sub_folder_using_path_and_get_by_path(
    ctx: ClientContext, emu: SharePointEmulator
) -> None:
    lib = ctx.web.get_folder_by_server_relative_url(LIB)
    added = lib.folders.add_using_path("Underlag", overwrite=True).execute_query()
    assert added.server_relative_url == f"/sites/x/{LIB}/Underlag"
    lib.add_sub_folder_using_path("Protokoll").execute_query()
    assert _folder_names(emu, LIB) == ["Forms", "Protokoll", "Underlag"]
    found = lib.folders.get_by_path("Protokoll").get().execute_query()
    assert found.server_relative_url == f"/sites/x/{LIB}/Protokoll"
    with pytest.raises(ClientRequestException) as err:
        lib.folders.get_by_path("Saknas").get().execute_query()
    assert _status(err) == 404


# ---- item 5: RecycleBin/GetById('…')/Restore for items, files and folders --------------------


def test_recycled_item_is_restored_by_id_with_its_id_and_values(ctx: ClientContext) -> None:
    lst = _new_list(ctx, "Uppgifter", 100).execute_query()
    item = lst.add_item({"Title": "Ring Region Skåne"}).execute_query()
    entry_id = item.recycle().execute_query().value
    bin_items = ctx.web.recycle_bin.get().execute_query()
    assert [(b.id, b.properties["ItemType"]) for b in bin_items] == [(entry_id, 3)]
    ctx.web.recycle_bin.get_by_id(entry_id).restore().execute_query()
    back = lst.items.get_by_id(_id(item.id)).get().execute_query()
    assert back.properties["Title"] == "Ring Region Skåne"
    assert len(ctx.web.recycle_bin.get().execute_query()) == 0


def test_recycled_folder_comes_back_with_its_files(
    ctx: ClientContext, emu: SharePointEmulator
) -> None:
    lib = ctx.web.get_folder_by_server_relative_url(LIB)
    sub = lib.folders.add("Arkiv").execute_query()
    sub.upload_file("plan.txt", b"Plan 2027").execute_query()
    docs = ctx.web.lists.get_by_title("Dokument")
    assert docs.get().execute_query().item_count == 1
    entry_id = sub.recycle().execute_query().value
    assert "Arkiv" not in _folder_names(emu, LIB)
    assert docs.get().execute_query().item_count == 0
    entry = ctx.web.recycle_bin.get_by_id(entry_id).get().execute_query()
    assert (entry.properties["ItemType"], entry.properties["LeafName"]) == (5, "Arkiv")
    ctx.web.recycle_bin.get_by_id(entry_id).restore().execute_query()
    assert "Arkiv" in _folder_names(emu, LIB)
    assert _content(ctx, f"/sites/x/{LIB}/Arkiv/plan.txt") == b"Plan 2027"
    assert docs.get().execute_query().item_count == 1


def test_restoring_a_file_whose_name_was_taken_again_is_refused(ctx: ClientContext) -> None:
    lib = ctx.web.get_folder_by_server_relative_url(LIB)
    f = lib.upload_file("a.txt", b"first").execute_query()
    entry_id = f.recycle().execute_query().value
    lib.upload_file("a.txt", b"second").execute_query()
    with pytest.raises(ClientRequestException) as err:
        ctx.web.recycle_bin.get_by_id(entry_id).restore().execute_query()
    assert _status(err) == 400
    assert _content(ctx, f"/sites/x/{LIB}/a.txt") == b"second"


def test_unknown_recycle_bin_entry_is_an_error(
    raw: requests.Session, emu: SharePointEmulator
) -> None:
    url = emu.site_url("x") + "/_api/web/RecycleBin/GetById('00000000-0000-0000-0000-000000000001')"
    r = raw.post(url + "/Restore")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "-1, System.ArgumentException"


# ---- item 7: document libraries have a Forms folder ---------------------------------------


def test_document_library_has_a_forms_folder_not_counted_as_an_item(ctx: ClientContext) -> None:
    _new_list(ctx, "Rapporter", 101).execute_query()
    forms = ctx.web.get_folder_by_server_relative_url("Rapporter/Forms").get().execute_query()
    assert forms.server_relative_url == "/sites/x/Rapporter/Forms"
    names = [
        f.name
        for f in ctx.web.get_folder_by_server_relative_url("Rapporter")
        .folders.get()
        .execute_query()
    ]
    assert names == ["Forms"]
    root = ctx.web.lists.get_by_title("Rapporter").root_folder.get().execute_query()
    assert root.properties["ItemCount"] == 0


# ---- item 8: File/SaveBinaryStream ----------------------------------------------------------


def test_save_binary_stream_replaces_the_content_and_keeps_a_version(ctx: ClientContext) -> None:
    f = ctx.web.get_folder_by_server_relative_url(LIB).upload_file("b.txt", b"old").execute_query()
    f.save_binary_stream(b"new content").execute_query()
    assert _content(ctx, f"/sites/x/{LIB}/b.txt") == b"new content"
    again = ctx.web.get_file_by_server_relative_url(f"/sites/x/{LIB}/b.txt")
    versions = again.versions.get().execute_query()
    assert [v.properties["VersionLabel"] for v in versions] == ["1.0"]


# ---- item 9: a plain POST …/fields keeps MaxLength ------------------------------------------


def test_post_fields_keeps_max_length_and_enforces_it(
    raw: requests.Session, emu: SharePointEmulator
) -> None:
    base = emu.site_url("x") + "/_api/web"
    assert raw.post(base + "/lists", json={"Title": "Kort", "BaseTemplate": 100}).status_code == 201
    body: dict[str, Any] = {
        "__metadata": {"type": "SP.FieldText"},
        "Title": "Kod",
        "FieldTypeKind": 2,
        "MaxLength": 5,
    }
    r = raw.post(base + "/lists/getbytitle('Kort')/fields", json=body)
    assert r.status_code == 201
    assert r.json()["d"]["MaxLength"] == 5
    field = raw.get(base + "/lists/getbytitle('Kort')/fields/getbyinternalnameortitle('Kod')")
    assert field.json()["d"]["MaxLength"] == 5
    assert 'MaxLength="5"' in field.json()["d"]["SchemaXml"]
    items = base + "/lists/getbytitle('Kort')/items"
    assert raw.post(items, json={"Kod": "AB"}).status_code == 201
    too_long = raw.post(items, json={"Kod": "ABCDEF"})
    assert too_long.status_code == 400
    assert "too long" in too_long.json()["error"]["message"]["value"]


# ---- item 2: task lists (107 Tasks, 171 tasks with timeline and hierarchy) --------------------

TASK_COLUMNS = {
    "AssignedTo": "UserMulti",
    "Status": "Choice",
    "PercentComplete": "Number",
    "StartDate": "DateTime",
    "DueDate": "DateTime",
    "Priority": "Choice",
    "Body": "Note",
    "Predecessors": "LookupMulti",
}


@pytest.mark.parametrize("template", [107, 171])
def test_task_lists_have_the_task_columns_and_store_task_values(
    ctx: ClientContext, template: int
) -> None:
    lst = _new_list(ctx, "Att göra", template).execute_query()
    assert lst.properties["BaseTemplate"] == template
    fields = {f.internal_name: f.type_as_string for f in lst.fields.get().execute_query()}
    assert {k: fields.get(k) for k in TASK_COLUMNS} == TASK_COLUMNS
    user = ctx.web.site_users.get().execute_query()[0]
    first = lst.add_item({"Title": "Boka dialog"}).execute_query()
    item = lst.add_item(
        {
            "Title": "Skicka underlag",
            "Status": "In Progress",
            "PercentComplete": 0.5,
            "DueDate": "2027-03-01",
            "AssignedToId": {"results": [user.id]},
            "PredecessorsId": {"results": [first.id]},
        }
    ).execute_query()
    back = lst.items.get_by_id(_id(item.id)).get().execute_query().properties
    assert back["Status"] == "In Progress"
    assert back["PercentComplete"] == 0.5
    assert back["Priority"] == "(2) Normal"  # the column default
    assert back["DueDate"] == "2027-02-28T23:00:00Z"  # date only: midnight Stockholm in UTC
    # office365 3.3.0 keeps a Collection(Edm.Int32) as {index: value}.
    assert list(dict(back["AssignedToId"]).values()) == [user.id]
    assert list(dict(back["PredecessorsId"]).values()) == [first.id]


def test_unknown_list_template_is_refused(raw: requests.Session, emu: SharePointEmulator) -> None:
    r = raw.post(
        emu.site_url("x") + "/_api/web/lists", json={"Title": "Okänd", "BaseTemplate": 99999}
    )
    assert r.status_code == 400
    assert "99999" in r.json()["error"]["message"]["value"]


# ---- item 6: site/getchanges, site/rootweb/getchanges, list and field changes ----------------


def test_site_and_root_web_change_logs_include_list_and_field_changes(
    ctx: ClientContext, raw: requests.Session, emu: SharePointEmulator
) -> None:
    from office365.sharepoint.changes.query import ChangeQuery

    lst = _new_list(ctx, "Logg", 100).execute_query()
    start = lst.properties["Id"]
    lst.add_item({"Title": "rad"}).execute_query()
    body = {
        "query": {
            "__metadata": {"type": "SP.ChangeQuery"},
            "List": True,
            "Field": True,
            "Item": True,
            "Add": True,
            "Update": True,
            "DeleteObject": True,
        }
    }
    raw.post(
        emu.site_url("x") + "/_api/web/lists/getbytitle('Logg')/fields",
        json={"__metadata": {"type": "SP.FieldText"}, "Title": "Kod", "FieldTypeKind": 2},
    )
    for path in ("/_api/site/getchanges", "/_api/site/rootweb/getchanges", "/_api/web/getchanges"):
        r = raw.post(emu.site_url("x") + path, json=body)
        assert r.status_code == 200, (path, r.text)
        rows = r.json()["d"]["results"]
        ours = [
            (c["__metadata"]["type"], c["ChangeType"])
            for c in rows
            if c.get("ListId") == start or c["__metadata"]["type"] == "SP.ChangeField"
        ]
        assert ("SP.ChangeList", 1) in ours, path
        assert ("SP.ChangeItem", 1) in ours, path
        assert ("SP.ChangeField", 1) in ours, path
        scope = "1;1;" if path == "/_api/site/getchanges" else "1;2;"
        assert all(c["ChangeToken"]["StringValue"].startswith(scope) for c in rows)
    # The office365 client's Site.get_changes reaches the same endpoint.
    changes = ctx.site.get_changes(ChangeQuery(List=True, Add=True)).execute_query()
    assert start in [c.properties.get("ListId") for c in changes]
    # Items only (what the sync engine asks for) still excludes schema changes.
    only_items = lst.get_changes(ChangeQuery(Item=True, Add=True)).execute_query()
    assert [c.properties.get("ItemId") for c in only_items] == [1]


def test_list_rename_and_delete_are_logged_with_list_scope_and_web_scope(
    ctx: ClientContext, raw: requests.Session, emu: SharePointEmulator
) -> None:
    lst = _new_list(ctx, "Gammal", 100).execute_query()
    list_id = lst.properties["Id"]
    lst.set_property("Title", "Ny").update().execute_query()
    query = {"query": {"List": True, "Update": True, "DeleteObject": True}}
    r = raw.post(emu.site_url("x") + "/_api/web/lists/getbytitle('Ny')/getchanges", json=query)
    assert [(c["__metadata"]["type"], c["ChangeType"]) for c in r.json()["d"]["results"]] == [
        ("SP.ChangeList", 2)
    ]
    lst.delete_object().execute_query()
    r = raw.post(emu.site_url("x") + "/_api/web/getchanges", json=query)
    mine = [c["ChangeType"] for c in r.json()["d"]["results"] if c["ListId"] == list_id]
    assert mine == [2, 3]


# ---- item 13 (part): Site Pages, list lookups by path/title, login names, contextinfo -------


def test_every_site_has_its_site_pages_library_reachable_every_way(ctx: ClientContext) -> None:
    by_path = ctx.web.get_list_using_path("/sites/x/SitePages").execute_query()
    by_url = ctx.web.get_list("/sites/x/SitePages").get().execute_query()
    by_title = ctx.web.get_list_by_title("Webbplatssidor").get().execute_query()
    ids = {by_path.properties["Id"], by_url.properties["Id"], by_title.properties["Id"]}
    assert len(ids) == 1
    assert by_url.properties["BaseTemplate"] == 119
    assert by_url.properties["ListItemEntityTypeFullName"] == "SP.Data.SitePagesItem"
    root = by_url.root_folder.get().execute_query()
    assert root.server_relative_url == "/sites/x/SitePages"


def test_site_user_by_login_name_and_static_context_information(
    ctx: ClientContext, raw: requests.Session, emu: SharePointEmulator
) -> None:
    login = "i:0#.f|membership|anna.lindqvist@example.se"
    user = ctx.web.site_users.get_by_login_name(login).get().execute_query()
    assert user.properties["Email"] == "anna.lindqvist@example.se"
    r = raw.post(emu.site_url("x") + "/_api/SP.Web.GetContextWebInformation")
    assert r.status_code == 200
    assert r.json()["d"]["GetContextWebInformation"]["FormDigestTimeoutSeconds"] == 1800
    missing = raw.get(
        emu.site_url("x") + "/_api/web/siteusers/getbyloginname('i:0#.f|membership|nobody@x')"
    )
    assert missing.status_code == 404


def test_recycle_bin_delete_all_and_delete_one(ctx: ClientContext) -> None:
    lst = _new_list(ctx, "Skräp", 100).execute_query()
    ids = [lst.add_item({"Title": str(n)}).execute_query().id for n in range(3)]
    entries = [lst.items.get_by_id(i).recycle().execute_query().value for i in ids]
    assert len(ctx.web.recycle_bin.get().execute_query()) == 3
    ctx.web.recycle_bin.get_by_id(entries[0]).delete_object().execute_query()
    assert len(ctx.web.recycle_bin.get().execute_query()) == 2
    ctx.web.recycle_bin.delete_all().execute_query()
    assert len(ctx.web.recycle_bin.get().execute_query()) == 0
    assert lst.get().execute_query().item_count == 0


# ---- item 12 (part): versions, SystemUpdate, UpdateOverwriteVersion, attachments ---------------


def _item_json(raw: requests.Session, emu: SharePointEmulator, path: str) -> dict[str, Any]:
    r = raw.get(emu.site_url("x") + "/_api/web/lists/getbytitle('Versioner')" + path)
    assert r.status_code == 200, r.text
    return dict(r.json()["d"])


def test_item_versions_and_the_three_kinds_of_update(
    ctx: ClientContext, raw: requests.Session, emu: SharePointEmulator
) -> None:
    lst = _new_list(ctx, "Versioner", 100).execute_query()
    item = lst.add_item({"Title": "v1"}).execute_query()
    emu.clock.advance(60)
    item.set_property("Title", "v2").update().execute_query()  # a new version
    after_update = _item_json(raw, emu, "/items(1)")
    assert after_update["OData__UIVersionString"] == "2.0"
    emu.clock.advance(60)
    base = emu.site_url("x") + "/_api/web/lists/getbytitle('Versioner')/items(1)"
    assert raw.post(base + "/SystemUpdate", json={"Title": "v2 tyst"}).status_code == 204
    system = _item_json(raw, emu, "/items(1)")
    assert (system["Title"], system["OData__UIVersionString"]) == ("v2 tyst", "2.0")
    assert system["Modified"] == after_update["Modified"]  # SystemUpdate keeps Modified
    emu.clock.advance(60)
    item.update_overwrite_version().execute_query()
    overwrite = _item_json(raw, emu, "/items(1)")
    assert overwrite["OData__UIVersionString"] == "2.0"
    assert overwrite["Modified"] > system["Modified"]  # UpdateOverwriteVersion moves it
    versions = item.versions.get().execute_query()
    assert [(v.properties["VersionLabel"], v.properties["IsCurrentVersion"]) for v in versions] == [
        ("2.0", True),
        ("1.0", False),
    ]
    first = _item_json(raw, emu, "/items(1)/versions/GetByLabel('1.0')")
    assert (first["Title"], first["VersionId"]) == ("v1", 512)
    assert _item_json(raw, emu, "/items(1)/versions(1024)")["Title"] == "v2 tyst"
    expanded = _item_json(raw, emu, "/items(1)?$expand=Versions")
    assert [v["VersionLabel"] for v in expanded["Versions"]["results"]] == ["2.0", "1.0"]


def test_validate_update_list_item_sets_modified_and_editor_without_a_new_version(
    ctx: ClientContext, raw: requests.Session, emu: SharePointEmulator
) -> None:
    lst = _new_list(ctx, "Versioner", 100).execute_query()
    item = lst.add_item({"Title": "a"}).execute_query()
    result = item.validate_update_list_item(
        {
            "Title": "b",
            "Modified": "2026-01-15T10:00:00Z",
            "Editor": '[{"Key": "i:0#.f|membership|erik.johansson@example.se"}]',
        },
        new_document_update=True,
        dates_in_utc=True,
    ).execute_query()
    assert [v.HasException for v in result.value] == [False, False, False]
    d = _item_json(raw, emu, "/items(1)?$select=Title,Modified,EditorId,OData__UIVersionString")
    erik = ctx.web.site_users.get_by_email("erik.johansson@example.se").get().execute_query()
    assert (d["Title"], d["Modified"], d["EditorId"]) == ("b", "2026-01-15T10:00:00Z", erik.id)
    assert d["OData__UIVersionString"] == "1.0"
    bad = item.validate_update_list_item({"Saknas": "x"}).execute_query()
    assert [v.HasException for v in bad.value] == [True]
    assert _item_json(raw, emu, "/items(1)")["Title"] == "b"


def test_attachments_add_list_expand_download_delete(
    ctx: ClientContext, raw: requests.Session, emu: SharePointEmulator
) -> None:
    lst = _new_list(ctx, "Bilagor", 100).execute_query()
    item = lst.add_item({"Title": "med bilaga"}).execute_query()
    item.attachment_files.add(
        {"filename": "protokoll.txt", "content": b"Protokoll"}
    ).execute_query()
    names = [a.file_name for a in item.attachment_files.get().execute_query()]
    assert names == ["protokoll.txt"]
    base = emu.site_url("x") + "/_api/web/lists/getbytitle('Bilagor')/items(1)"
    assert raw.get(base).json()["d"]["Attachments"] is True
    content = raw.get(base + "/AttachmentFiles('protokoll.txt')/$value").content
    assert content == b"Protokoll"
    expanded = raw.get(base + "?$expand=AttachmentFiles").json()["d"]["AttachmentFiles"]
    assert [a["FileName"] for a in expanded["results"]] == ["protokoll.txt"]
    dup = raw.post(base + "/AttachmentFiles/add(FileName='protokoll.txt')", data=b"x")
    assert dup.status_code == 400
    assert raw.delete(base + "/AttachmentFiles/GetByFileName('protokoll.txt')").status_code == 200
    assert raw.get(base + "/AttachmentFiles").json()["d"]["results"] == []
    assert raw.get(base).json()["d"]["Attachments"] is False


# ---- item 12 (part): CAML GetItems ------------------------------------------------------------


def test_caml_get_items_filters_orders_limits_and_pages(ctx: ClientContext) -> None:
    from office365.sharepoint.listitems.caml.query import CamlQuery

    lst = _new_list(ctx, "Caml", 100).execute_query()
    for n, county in enumerate(["Skåne", "Uppsala", "Skåne", "Gotland", "Skåne"], start=1):
        lst.add_item({"Title": f"{county} {n}"}).execute_query()
    query = CamlQuery()
    query.ViewXml = (
        "<View><Query><Where><BeginsWith><FieldRef Name='Title'/>"
        "<Value Type='Text'>Skåne</Value></BeginsWith></Where>"
        "<OrderBy><FieldRef Name='ID' Ascending='FALSE'/></OrderBy></Query>"
        "<RowLimit>2</RowLimit></View>"
    )
    first = lst.get_items(query).execute_query()
    assert [i.properties["Title"] for i in first] == ["Skåne 5", "Skåne 3"]
    from office365.sharepoint.listitems.collection_position import ListItemCollectionPosition

    query.ListItemCollectionPosition = ListItemCollectionPosition("Paged=TRUE&p_ID=3")
    second = lst.get_items(query).execute_query()
    assert [i.properties["Title"] for i in second] == ["Skåne 1"]
    everything = lst.get_items().execute_query()
    assert len(everything) == 5


def test_caml_elements_the_emulator_does_not_evaluate_are_refused(
    raw: requests.Session, emu: SharePointEmulator
) -> None:
    base = emu.site_url("x") + "/_api/web/lists"
    raw.post(base, json={"Title": "Caml2", "BaseTemplate": 100})
    view = (
        "<View><Query><Where><DateRangesOverlap><FieldRef Name='Created'/>"
        "<FieldRef Name='Modified'/><Value Type='DateTime'><Year/></Value>"
        "</DateRangesOverlap></Where></Query></View>"
    )
    r = raw.post(base + "/getbytitle('Caml2')/GetItems", json={"query": {"ViewXml": view}})
    assert r.status_code == 400
    assert "not supported by the emulator" in r.json()["error"]["message"]["value"]
    bad_column = "<View><Query><Where><Eq><FieldRef Name='Saknas'/><Value Type='Text'>x</Value></Eq></Where></Query></View>"
    r = raw.post(base + "/getbytitle('Caml2')/GetItems", json={"query": {"ViewXml": bad_column}})
    assert r.status_code == 400
    assert "Saknas" in r.json()["error"]["message"]["value"]


# ---- item 12 (part): listItemAllFields of files -------------------------------------------------


def test_file_list_item_all_fields_reads_and_merges_the_files_item(
    ctx: ClientContext, raw: requests.Session, emu: SharePointEmulator
) -> None:
    base = emu.site_url("x") + "/_api/web"
    r = raw.post(
        base + "/lists/getbytitle('Dokument')/fields",
        json={"__metadata": {"type": "SP.FieldText"}, "Title": "Kategori", "FieldTypeKind": 2},
    )
    assert r.status_code == 201
    f = ctx.web.get_folder_by_server_relative_url(LIB).upload_file("c.txt", b"c").execute_query()
    fields = f.listItemAllFields.get().execute_query()
    assert fields.properties["FileLeafRef"] == "c.txt"
    file_url = f"{base}/GetFileByServerRelativeUrl('/sites/x/{LIB}/c.txt')/ListItemAllFields"
    merge = raw.post(
        file_url,
        json={"Kategori": "Protokoll"},
        headers={"X-HTTP-Method": "MERGE", "IF-MATCH": "*"},
    )
    assert merge.status_code == 204, merge.text
    item_id = fields.properties["Id"]
    item = raw.get(f"{base}/lists/getbytitle('Dokument')/items({item_id})").json()["d"]
    assert item["Kategori"] == "Protokoll"
    assert raw.get(file_url + "?$select=Kategori").json()["d"]["Kategori"] == "Protokoll"
    folder = raw.get(f"{base}/GetFolderByServerRelativeUrl('{LIB}')/ListItemAllFields")
    assert folder.status_code == 400
    assert "not supported by the emulator" in folder.json()["error"]["message"]["value"]


# ---- item 11: permissions ------------------------------------------------------------------------


def test_break_inheritance_assign_roles_and_reset_on_a_list_and_an_item(
    ctx: ClientContext, raw: requests.Session, emu: SharePointEmulator
) -> None:
    from office365.sharepoint.sharing.role_type import RoleType

    lst = _new_list(ctx, "Hemlig", 100).execute_query()
    item = lst.add_item({"Title": "känsligt"}).execute_query()
    assert lst.get_property("HasUniqueRoleAssignments") is None  # not loaded yet
    base = emu.site_url("x") + "/_api/web/lists/getbytitle('Hemlig')"
    unique = raw.get(base + "/HasUniqueRoleAssignments").json()["d"]
    assert unique == {"HasUniqueRoleAssignments": False}
    groups = {g.title: g.id for g in ctx.web.site_groups.get().execute_query()}
    assert set(groups) == {"x Owners", "x Members", "x Visitors"}
    inherited = {a.principal_id for a in lst.role_assignments.get().execute_query()}
    assert inherited == set(groups.values())
    lst.break_role_inheritance(copy_role_assignments=False, clear_sub_scopes=True).execute_query()
    assert raw.get(base + "/HasUniqueRoleAssignments").json()["d"]["HasUniqueRoleAssignments"]
    caller = ctx.web.current_user.get().execute_query().id
    assert [a.principal_id for a in lst.role_assignments.get().execute_query()] == [caller]
    reader = ctx.web.role_definitions.get_by_type(RoleType.Reader).get().execute_query()
    assert (reader.properties["Name"], reader.properties["Id"]) == ("Read", 1073741826)
    erik = ctx.web.site_users.get_by_email("erik.johansson@example.se").get().execute_query()
    lst.role_assignments.add_role_assignment(erik.id, reader.properties["Id"]).execute_query()
    bindings = raw.get(
        base + f"/RoleAssignments/GetByPrincipalId({erik.id})/RoleDefinitionBindings"
    ).json()["d"]["results"]
    assert [b["Name"] for b in bindings] == ["Read"]
    # The item inherits the list's (now unique) assignments until it breaks away itself.
    item_ra = raw.get(base + f"/items({item.id})/RoleAssignments").json()["d"]["results"]
    assert sorted(a["PrincipalId"] for a in item_ra) == sorted([caller, erik.id])
    lst.role_assignments.remove_role_assignment(erik.id, reader.properties["Id"]).execute_query()
    missing = raw.get(base + f"/RoleAssignments/GetByPrincipalId({erik.id})")
    assert missing.status_code == 404
    lst.reset_role_inheritance().execute_query()
    assert not raw.get(base + "/HasUniqueRoleAssignments").json()["d"]["HasUniqueRoleAssignments"]


def test_site_groups_get_create_and_add_users(
    ctx: ClientContext, raw: requests.Session, emu: SharePointEmulator
) -> None:
    web = emu.site_url("x") + "/_api/web"
    r = raw.post(web + "/sitegroups", json={"Title": "Länsansvariga", "Description": "Alla län"})
    assert r.status_code == 201
    gid = r.json()["d"]["Id"]
    add = raw.post(
        web + f"/sitegroups/GetById({gid})/users",
        json={"LoginName": "i:0#.f|membership|anna.lindqvist@example.se"},
    )
    assert add.status_code == 201
    users = raw.get(web + "/sitegroups/GetByName('Länsansvariga')/users").json()["d"]["results"]
    assert [u["Email"] for u in users] == ["anna.lindqvist@example.se"]
    assert raw.get(web + "/sitegroups/GetById(9999)").status_code == 404


def test_has_unique_role_assignments_is_selectable_on_web_list_and_item(
    raw: requests.Session, emu: SharePointEmulator
) -> None:
    web = emu.site_url("x") + "/_api/web"
    raw.post(web + "/lists", json={"Title": "Valbar", "BaseTemplate": 100})
    raw.post(web + "/lists/getbytitle('Valbar')/items", json={"Title": "a"})
    sel = "?$select=HasUniqueRoleAssignments"
    assert raw.get(web + sel).json()["d"]["HasUniqueRoleAssignments"] is True
    lst = web + "/lists/getbytitle('Valbar')"
    assert raw.get(lst + sel).json()["d"]["HasUniqueRoleAssignments"] is False
    raw.post(lst + "/items(1)/breakroleinheritance(copyRoleAssignments=true,clearSubscopes=true)")
    assert raw.get(lst + "/items(1)" + sel).json()["d"]["HasUniqueRoleAssignments"] is True


# ---- item 13 (part): views ---------------------------------------------------------------------


def test_views_default_view_add_view_and_view_fields(
    ctx: ClientContext, raw: requests.Session, emu: SharePointEmulator
) -> None:
    from office365.runtime.types.collections import StringCollection
    from office365.sharepoint.views.create_information import ViewCreationInformation

    lst = _new_list(ctx, "Vyer", 100).execute_query()
    raw.post(
        emu.site_url("x") + "/_api/web/lists/getbytitle('Vyer')/fields",
        json={"__metadata": {"type": "SP.FieldText"}, "Title": "Lan", "FieldTypeKind": 2},
    )
    default = lst.default_view.get().execute_query()
    assert default.properties["Title"] == "Alla objekt"
    assert default.properties["ServerRelativeUrl"] == "/sites/x/Lists/Vyer/AllItems.aspx"
    info = ViewCreationInformation(
        Title="Per län",
        RowLimit=50,
        Query="<OrderBy><FieldRef Name='Lan'/></OrderBy>",
        ViewFields=StringCollection(["LinkTitle"]),
    )
    view = lst.views.add(info).execute_query()
    assert view.properties["RowLimit"] == 50
    view.view_fields.add_view_field("Lan").execute_query()
    fields = lst.views.get_by_title("Per län").view_fields.get().execute_query()
    assert list(fields.properties["Items"]) == ["LinkTitle", "Lan"]
    view.view_fields.remove_view_field("LinkTitle").execute_query()
    base = emu.site_url("x") + "/_api/web/lists/getbytitle('Vyer')"
    items = raw.get(base + "/Views/GetByTitle('Per län')/ViewFields").json()["d"]["Items"]
    assert items["results"] == ["Lan"]
    titles = [v.properties["Title"] for v in lst.views.get().execute_query()]
    assert titles == ["Alla objekt", "Per län"]
    bad = raw.post(base + "/Views/GetByTitle('Per län')/ViewFields/AddViewField('Saknas')")
    assert bad.status_code == 400
    merged = raw.post(
        base + "/Views/GetByTitle('Per län')",
        json={"RowLimit": 10, "DefaultView": True},
        headers={"X-HTTP-Method": "MERGE", "IF-MATCH": "*"},
    )
    assert merged.status_code == 204
    assert raw.get(base + "/DefaultView").json()["d"]["Title"] == "Per län"


# ---- item 13 (part): site columns on the root web -------------------------------------------


def test_site_columns_on_the_root_web(
    ctx: ClientContext, raw: requests.Session, emu: SharePointEmulator
) -> None:
    from office365.sharepoint.fields.type import FieldType

    names = {f.internal_name for f in ctx.web.fields.get().execute_query()}
    assert {"Title", "Created", "Modified"} <= names
    added = ctx.web.fields.add(FieldType.Text, Title="Regionkod").execute_query()
    assert added.properties["InternalName"] == "Regionkod"
    found: Any = ctx.web.fields.get_by_internal_name_or_title("Regionkod").get().execute_query()
    assert found.properties["Id"] == added.properties["Id"]
    web = emu.site_url("x") + "/_api/web"
    by_xml = raw.post(
        web + "/fields/createfieldasxml",
        json={
            "parameters": {"SchemaXml": "<Field Type='Number' Name='Antal' DisplayName='Antal'/>"}
        },
    )
    assert by_xml.status_code == 200
    assert by_xml.json()["d"]["__metadata"]["uri"].startswith(
        web.replace("/web", "/Web") + "/Fields("
    )
    docs = {
        f["InternalName"]
        for f in raw.get(web + "/lists/getbytitle('Dokument')/fields").json()["d"]["results"]
    }
    assert "Regionkod" not in docs  # site columns are not list columns until added to a list
    assert raw.delete(web + "/fields/getbyinternalnameortitle('Regionkod')").status_code == 200
    assert raw.get(web + "/fields/getbyinternalnameortitle('Regionkod')").status_code == 404


# ---- item 13 (part): copy and move of files and folders --------------------------------------


def test_copy_and_move_files_and_folders(
    ctx: ClientContext, raw: requests.Session, emu: SharePointEmulator
) -> None:
    lib = ctx.web.get_folder_by_server_relative_url(LIB)
    lib.folders.add("Arkiv").execute_query()
    src = lib.upload_file("plan.txt", b"Plan").execute_query()
    docs = ctx.web.lists.get_by_title("Dokument")
    src.copyto(f"/sites/x/{LIB}/Arkiv", overwrite=False).execute_query()
    assert _content(ctx, f"/sites/x/{LIB}/Arkiv/plan.txt") == b"Plan"
    assert docs.get().execute_query().item_count == 2
    with pytest.raises(ClientRequestException) as err:
        src.copyto(f"/sites/x/{LIB}/Arkiv", overwrite=False).execute_query()
    assert _status(err) == 400
    web = emu.site_url("x") + "/_api/web"
    moved = raw.post(
        f"{web}/GetFileByServerRelativeUrl('/sites/x/{LIB}/plan.txt')"
        f"/MoveTo(newUrl='/sites/x/{LIB}/plan-2027.txt',flags=1)"
    )
    assert moved.status_code == 200, moved.text
    assert _content(ctx, f"/sites/x/{LIB}/plan-2027.txt") == b"Plan"
    gone = raw.get(f"{web}/GetFileByServerRelativeUrl('/sites/x/{LIB}/plan.txt')")
    assert gone.status_code == 404
    refs = raw.get(f"{web}/lists/getbytitle('Dokument')/items?$select=FileRef").json()["d"]
    assert sorted(r["FileRef"] for r in refs["results"]) == [
        f"/sites/x/{LIB}/Arkiv/plan.txt",
        f"/sites/x/{LIB}/plan-2027.txt",
    ]
    # Folders: MoveTo renames with the content; MoveCopyUtil copies a whole tree.
    r = raw.post(
        f"{web}/GetFolderByServerRelativeUrl('{LIB}/Arkiv')/MoveTo(newUrl='/sites/x/{LIB}/Arkiv 2026')"
    )
    assert r.status_code == 200, r.text
    assert _content(ctx, f"/sites/x/{LIB}/Arkiv 2026/plan.txt") == b"Plan"
    r = raw.post(
        emu.site_url("x") + "/_api/SP.MoveCopyUtil.CopyFolder",
        json={
            "srcUrl": f"{emu.site_url('x')}/{LIB}/Arkiv 2026",
            "destUrl": f"{emu.site_url('x')}/{LIB}/Kopia",
        },
    )
    assert r.status_code == 200, r.text
    assert _content(ctx, f"/sites/x/{LIB}/Kopia/plan.txt") == b"Plan"
    assert docs.get().execute_query().item_count == 3


# ---- item 12 (part): RenderListDataAsStream for simple views ------------------------------------


def test_render_list_data_as_stream_returns_display_rows_and_pages(
    ctx: ClientContext, raw: requests.Session, emu: SharePointEmulator
) -> None:
    lst = _new_list(ctx, "Rendera", 100).execute_query()
    for n in range(3):
        lst.add_item({"Title": f"Rad {n + 1}"}).execute_query()
    view_xml = (
        "<View><Query><OrderBy><FieldRef Name='ID'/></OrderBy></Query>"
        "<ViewFields><FieldRef Name='Title'/><FieldRef Name='Author'/><FieldRef Name='Modified'/>"
        "</ViewFields><RowLimit>2</RowLimit></View>"
    )
    url = emu.site_url("x") + "/_api/web/lists/getbytitle('Rendera')/RenderListDataAsStream"
    data = raw.post(url, json={"parameters": {"ViewXml": view_xml, "RenderOptions": 2}}).json()
    assert [r["Title"] for r in data["Row"]] == ["Rad 1", "Rad 2"]
    assert data["Row"][0]["ID"] == "1"
    assert data["Row"][0]["Author"][0]["title"] == "SharePoint App"
    assert (data["FirstRow"], data["LastRow"], data["RowLimit"]) == (1, 2, 2)
    assert data["NextHref"].startswith("?Paged=TRUE&p_ID=2")
    params = {"ViewXml": view_xml, "Paging": "Paged=TRUE&p_ID=2", "DatesInUtc": True}
    rest = raw.post(url, json={"parameters": params}).json()
    assert [row["Title"] for row in rest["Row"]] == ["Rad 3"]
    assert rest["Row"][0]["Modified"].endswith("Z")
    assert "NextHref" not in rest


def test_generic_lists_have_a_root_folder_that_holds_folders(ctx: ClientContext) -> None:
    lst = _new_list(ctx, "Mappar", 100).execute_query()
    root = lst.root_folder.get().execute_query()
    assert root.server_relative_url == "/sites/x/Lists/Mappar"
    sub = root.folders.add("Skåne").execute_query()
    assert sub.server_relative_url == "/sites/x/Lists/Mappar/Skåne"
    names = [f.name for f in lst.root_folder.folders.get().execute_query()]
    assert names == ["Skåne"]


def test_recycled_folder_survives_a_restart_and_restores(tmp_path: Any) -> None:
    data = str(tmp_path / "state")
    with SharePointEmulator(sites=["x"], data_dir=data) as first:
        token = first.issue_token()
        ctx = ClientContext(first.site_url("x")).with_access_token(
            lambda: {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
        )
        sub = ctx.web.get_folder_by_server_relative_url(LIB).folders.add("Arkiv").execute_query()
        sub.upload_file("plan.txt", b"Plan").execute_query()
        entry_id = sub.recycle().execute_query().value
    with SharePointEmulator(sites=["x"], data_dir=data) as second:
        token2 = second.issue_token()
        ctx2 = ClientContext(second.site_url("x")).with_access_token(
            lambda: {"access_token": token2, "token_type": "Bearer", "expires_in": 3600}
        )
        ctx2.web.recycle_bin.get_by_id(entry_id).restore().execute_query()
        assert _content(ctx2, f"/sites/x/{LIB}/Arkiv/plan.txt") == b"Plan"
        assert ctx2.web.lists.get_by_title("Dokument").get().execute_query().item_count == 1
