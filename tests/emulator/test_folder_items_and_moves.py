"""Folders as list items (`ListItemAllFields`, read and MERGE) and folder moves to another
library of the same site (issue 15 items 12 and 13), through the office365 client and raw HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from office365.sharepoint.client_context import ClientContext
from office365.sharepoint.lists.creation_information import ListCreationInformation
from office365.sharepoint.lists.templates.type import ListTemplateType

from sp_emulator import SharePointEmulator

LIB = "Shared Documents"


@pytest.fixture
def emu() -> Iterator[SharePointEmulator]:
    with SharePointEmulator(sites=["x"]) as e:
        yield e


def _ctx(emu: SharePointEmulator) -> ClientContext:
    token = emu.issue_token()
    return ClientContext(emu.site_url("x")).with_access_token(
        lambda: {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
    )


def _raw(emu: SharePointEmulator) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.headers.update(
        {"Authorization": "Bearer " + emu.issue_token(), "Accept": "application/json;odata=verbose"}
    )
    return s


def _add_text_column(raw: requests.Session, api: str, title: str) -> None:
    r = raw.post(
        api + "/fields",
        json={"__metadata": {"type": "SP.FieldText"}, "Title": title, "FieldTypeKind": 2},
    )
    assert r.status_code == 201, r.text


def _library_files(raw: requests.Session, api: str) -> list[str]:
    rows = raw.get(api + "/items?$select=FileRef").json()["d"]["results"]
    return sorted(str(r["FileRef"]) for r in rows)


def test_folder_list_item_all_fields_reads_merges_and_persists(tmp_path: Path) -> None:
    data = str(tmp_path / "state")
    with SharePointEmulator(sites=["x"], data_dir=data) as emu:
        ctx, raw = _ctx(emu), _raw(emu)
        web = emu.site_url("x") + "/_api/web"
        _add_text_column(raw, web + "/lists/getbytitle('Dokument')", "Kategori")
        folder = ctx.web.get_folder_by_server_relative_url(LIB).folders.add("Protokoll")
        folder.execute_query()
        fields = folder.list_item_all_fields.get().execute_query()
        props = fields.properties
        assert props["FileSystemObjectType"] == 1
        assert props["FileLeafRef"] == "Protokoll" and props["Kategori"] is None
        url = f"{web}/GetFolderByServerRelativeUrl('{LIB}/Protokoll')/ListItemAllFields"
        merge = raw.post(
            url,
            json={"Kategori": "Styrelse"},
            headers={"X-HTTP-Method": "MERGE", "IF-MATCH": "*"},
        )
        assert merge.status_code == 204, merge.text
        again = raw.get(url + "?$select=Id,Kategori,FileRef").json()["d"]
        assert again["Kategori"] == "Styrelse" and again["Id"] == props["Id"]
        assert again["FileRef"] == f"/sites/x/{LIB}/Protokoll"
        # The folder's item has its own id: a file uploaded next gets the one after it.
        f = folder.upload_file("a.txt", b"a").execute_query()
        file_item = f.listItemAllFields.get().execute_query()
        assert file_item.properties["Id"] > props["Id"]
        assert file_item.properties["FileSystemObjectType"] == 0
        # Expanded from the folder, the same item.
        expanded = raw.get(
            f"{web}/GetFolderByServerRelativeUrl('{LIB}/Protokoll')?$expand=ListItemAllFields"
        ).json()["d"]["ListItemAllFields"]
        assert expanded["Kategori"] == "Styrelse"
        # Renamed (moved within the library), the item follows.
        moved = raw.post(
            f"{web}/GetFolderByServerRelativeUrl('{LIB}/Protokoll')/MoveTo(newUrl='{LIB}/Möten')"
        )
        assert moved.status_code == 200, moved.text
        renamed = raw.get(
            f"{web}/GetFolderByServerRelativeUrl('{LIB}/Möten')/ListItemAllFields"
        ).json()["d"]
        assert renamed["FileLeafRef"] == "Möten" and renamed["Kategori"] == "Styrelse"
        assert renamed["Id"] == props["Id"]
    with SharePointEmulator(sites=["x"], data_dir=data) as emu2:
        raw2 = _raw(emu2)
        url2 = (
            emu2.site_url("x")
            + f"/_api/web/GetFolderByServerRelativeUrl('{LIB}/Möten')/ListItemAllFields"
        )
        after = raw2.get(url2).json()["d"]
        assert after["Kategori"] == "Styrelse" and after["Id"] == props["Id"]


def test_root_folder_has_no_list_item(emu: SharePointEmulator) -> None:
    r = _raw(emu).get(
        emu.site_url("x") + f"/_api/web/GetFolderByServerRelativeUrl('{LIB}')/ListItemAllFields"
    )
    assert r.status_code == 400
    assert "not supported by the emulator" in r.json()["error"]["message"]["value"]


def test_folder_moves_to_another_library_with_its_files_items(emu: SharePointEmulator) -> None:
    ctx, raw = _ctx(emu), _raw(emu)
    ctx.web.lists.add(
        ListCreationInformation("Arkiv", None, ListTemplateType.DocumentLibrary)
    ).execute_query()
    web = emu.site_url("x") + "/_api/web"
    source = web + "/lists/getbytitle('Dokument')"
    target = web + "/lists/getbytitle('Arkiv')"
    top = ctx.web.get_folder_by_server_relative_url(LIB).folders.add("Protokoll").execute_query()
    top.upload_file("a.txt", b"A").execute_query()
    sub = top.folders.add("2026").execute_query()
    sub.upload_file("b.txt", b"B").execute_query()
    assert _library_files(raw, source) == [
        f"/sites/x/{LIB}/Protokoll/2026/b.txt",
        f"/sites/x/{LIB}/Protokoll/a.txt",
    ]
    # The client's own call: Folder.move_to resolves the destination and POSTs MoveTo.
    ctx.web.get_folder_by_server_relative_url(f"{LIB}/Protokoll").move_to(
        "/sites/x/Arkiv"
    ).execute_query()
    assert _library_files(raw, source) == []
    assert _library_files(raw, target) == [
        "/sites/x/Arkiv/Protokoll/2026/b.txt",
        "/sites/x/Arkiv/Protokoll/a.txt",
    ]
    content = raw.get(
        web + "/GetFileByServerRelativeUrl('/sites/x/Arkiv/Protokoll/2026/b.txt')/$value"
    )
    assert content.content == b"B"
    assert raw.get(target).json()["d"]["ItemCount"] == 2
    assert raw.get(source).json()["d"]["ItemCount"] == 0
    gone = raw.get(web + f"/GetFolderByServerRelativeUrl('{LIB}/Protokoll')")
    assert gone.status_code == 404
    # And back with SP.MoveCopyUtil.MoveFolder (absolute URLs, as PnPjs sends them).
    back = raw.post(
        emu.site_url("x") + "/_api/SP.MoveCopyUtil.MoveFolder",
        json={
            "srcUrl": emu.site_url("x") + "/Arkiv/Protokoll",
            "destUrl": emu.site_url("x") + f"/{LIB}/Protokoll",
        },
    )
    assert back.status_code == 200, back.text
    assert _library_files(raw, target) == []
    assert _library_files(raw, source) == [
        f"/sites/x/{LIB}/Protokoll/2026/b.txt",
        f"/sites/x/{LIB}/Protokoll/a.txt",
    ]


def test_files_cannot_move_into_a_generic_list(emu: SharePointEmulator) -> None:
    ctx, raw = _ctx(emu), _raw(emu)
    ctx.web.lists.add(
        ListCreationInformation("Uppgifter", None, ListTemplateType.GenericList)
    ).execute_query()
    top = ctx.web.get_folder_by_server_relative_url(LIB).folders.add("Protokoll").execute_query()
    top.upload_file("a.txt", b"A").execute_query()
    web = emu.site_url("x") + "/_api/web"
    r = raw.post(
        web + f"/GetFolderByServerRelativeUrl('{LIB}/Protokoll')"
        "/MoveTo(newUrl='/sites/x/Lists/Uppgifter/Protokoll')"
    )
    assert r.status_code == 400
    assert "not supported by the emulator" in r.json()["error"]["message"]["value"]
    # Nothing moved.
    assert _library_files(raw, web + "/lists/getbytitle('Dokument')") == [
        f"/sites/x/{LIB}/Protokoll/a.txt"
    ]
