"""Folders, files and uploads, driven through office365-rest-python-client 3.3.0 and raw HTTP."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from office365.runtime.client_request_exception import ClientRequestException
from office365.sharepoint.client_context import ClientContext

from sp_emulator import SharePointEmulator

LIB = "Shared Documents"


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    with SharePointEmulator(sites=["x"]) as e:
        yield e


@pytest.fixture
def ctx(emu: Any) -> ClientContext:
    token = emu.issue_token()
    return ClientContext(emu.site_url("x")).with_access_token(
        lambda: {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
    )


@pytest.fixture
def raw(emu: Any) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.headers.update(
        {"Authorization": "Bearer " + emu.issue_token(), "Accept": "application/json;odata=verbose"}
    )
    return s


def api(emu: Any, path: str) -> str:
    return f"{emu.site_url('x')}/_api/{path}"


def download(ctx: ClientContext, server_relative_url: str) -> bytes:
    f = ctx.web.get_file_by_server_relative_url(server_relative_url)
    return f.get_content().execute_query().value


def unique(name: str) -> str:
    return f"{uuid.uuid4().hex[:8]}-{name}"


def test_simple_upload_and_download_round_trip(ctx: ClientContext) -> None:
    name = unique("a.txt")
    content = "hej världen".encode()
    f = ctx.web.get_folder_by_server_relative_url(LIB).upload_file(name, content).execute_query()
    assert f.name == name
    assert f.unique_id
    assert f.length == len(content)
    assert f.properties["ServerRelativeUrl"] == f"/sites/x/{LIB}/{name}"
    assert download(ctx, f"/sites/x/{LIB}/{name}") == content
    # web-relative addressing and GetFileById reach the same bytes
    assert download(ctx, f"{LIB}/{name}") == content
    by_id = ctx.web.get_file_by_id(f.unique_id).get_content().execute_query().value
    assert by_id == content


def test_add_without_overwrite_conflicts(ctx: ClientContext) -> None:
    name = unique("b.bin")
    folder = ctx.web.get_folder_by_server_relative_url(LIB)
    folder.files.add(name, b"first", overwrite=False).execute_query()
    with pytest.raises(ClientRequestException) as info:
        folder.files.add(name, b"second", overwrite=False).execute_query()
    assert info.value.response is not None
    assert info.value.response.status_code == 400
    assert info.value.code == "-2130575257, Microsoft.SharePoint.SPException"
    assert "already exists" in info.value.message
    assert download(ctx, f"{LIB}/{name}") == b"first"


def test_overwrite_keeps_previous_versions(
    ctx: ClientContext, emu: Any, raw: requests.Session
) -> None:
    name = unique("c.xlsx")
    folder = ctx.web.get_folder_by_server_relative_url(LIB)
    for body in (b"v1", b"v2-longer", b"v3"):
        f = folder.files.add(name, body, overwrite=True).execute_query()
    assert f.major_version == 3
    assert f.properties["UIVersionLabel"] == "3.0"
    assert download(ctx, f"{LIB}/{name}") == b"v3"
    versions = f.versions.get().execute_query()
    assert [v.version_label for v in versions] == ["1.0", "2.0"]
    r = raw.get(api(emu, f"web/GetFileById('{f.unique_id}')/versions"))
    assert [v["Size"] for v in r.json()["d"]["results"]] == [2, 9]
    assert r.json()["d"]["results"][1]["Length"] == "9"


def test_chunked_upload_through_the_client(ctx: ClientContext, emu: Any) -> None:
    name = unique("big.bin")
    content = os.urandom(1000)
    emu_stats_before = None
    f = (
        ctx.web.get_folder_by_server_relative_url(LIB)
        .upload_file(name, content, chunk_size=300)
        .execute_query()
    )
    assert f.length == 1000
    assert download(ctx, f"{LIB}/{name}") == content
    del emu_stats_before


def test_chunked_upload_raw_protocol(emu: Any, raw: requests.Session) -> None:
    """start/continue/finish with offsets; content replaced only at finish; Int64 as strings."""
    name = unique("raw.bin")
    r = raw.post(
        api(
            emu, f"web/getFolderByServerRelativeUrl('{LIB}')/Files/add(url='{name}',overwrite=true)"
        ),
        data=b"old",
    )
    assert r.status_code == 200
    uid = r.json()["d"]["UniqueId"]
    file_url = api(emu, f"web/GetFileById('{uid}')")
    upload = str(uuid.uuid4())
    parts = [b"a" * 100, b"b" * 100, b"c" * 100, b"d" * 50]
    r = raw.post(f"{file_url}/StartUpload(uploadId=guid'{upload}')", data=parts[0])
    assert r.json() == {"d": {"StartUpload": "100"}}
    r = raw.post(
        f"{file_url}/ContinueUpload(uploadId=guid'{upload}',fileOffset=100)", data=parts[1]
    )
    assert r.json() == {"d": {"ContinueUpload": "200"}}
    # offset that does not match the bytes received so far
    r = raw.post(
        f"{file_url}/ContinueUpload(uploadId=guid'{upload}',fileOffset=150)", data=parts[2]
    )
    assert r.status_code == 400
    r = raw.post(f"{file_url}/continueupload(fileoffset=200,uploadid='{upload}')", data=parts[2])
    assert r.json() == {"d": {"ContinueUpload": "300"}}
    assert raw.get(f"{file_url}/$value").content == b"old"  # unchanged until finish
    r = raw.post(f"{file_url}/FinishUpload(uploadId=guid'{upload}',fileOffset=300)", data=parts[3])
    assert r.status_code == 200
    assert r.json()["d"]["Length"] == "350"
    got = raw.get(f"{file_url}/$value")
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert got.content == b"".join(parts)
    # the session is gone after finish
    r = raw.post(f"{file_url}/ContinueUpload(uploadId=guid'{upload}',fileOffset=350)", data=b"x")
    assert r.status_code == 400


def test_cancel_upload_discards_the_session(emu: Any, raw: requests.Session) -> None:
    name = unique("cancel.bin")
    r = raw.post(
        api(
            emu, f"web/getFolderByServerRelativeUrl('{LIB}')/Files/add(overwrite=true,url='{name}')"
        ),
        data=b"keep",
    )
    file_url = api(emu, f"web/GetFileById('{r.json()['d']['UniqueId']}')")
    upload = str(uuid.uuid4())
    assert raw.post(f"{file_url}/startUpload(uploadID='{upload}')", data=b"new").status_code == 200
    assert raw.post(f"{file_url}/cancelUpload(uploadID='{upload}')").status_code == 200
    r = raw.post(f"{file_url}/finishUpload(uploadID='{upload}',fileOffset=3)", data=b"!")
    assert r.status_code == 400
    assert raw.get(f"{file_url}/$value").content == b"keep"


def test_folders_create_list_and_missing(
    ctx: ClientContext, emu: Any, raw: requests.Session
) -> None:
    sub = unique("Rapporter")
    root = ctx.web.get_folder_by_server_relative_url(LIB)
    created = root.folders.add(sub).execute_query()
    assert created.properties["ServerRelativeUrl"] == f"/sites/x/{LIB}/{sub}"
    f = created.upload_file("2026/q1.txt", b"q1").execute_query()  # nested path creates folders
    assert f.properties["ServerRelativeUrl"] == f"/sites/x/{LIB}/{sub}/2026/q1.txt"
    names = [
        x.name
        for x in ctx.web.get_folder_by_server_relative_url(f"{LIB}/{sub}")
        .folders.get()
        .execute_query()
    ]
    assert names == ["2026"]
    r = raw.get(
        api(emu, f"web/getFolderByServerRelativePath(DecodedUrl='/sites/x/{LIB}/{sub}/2026')/Files")
    )
    assert [x["Name"] for x in r.json()["d"]["results"]] == ["q1.txt"]
    r = raw.get(api(emu, f"web/getFolderByServerRelativeUrl('{LIB}/{sub}')"))
    assert r.json()["d"]["ItemCount"] == 1
    r = raw.get(api(emu, "web/getFolderByServerRelativeUrl('Shared Documents/nope')"))
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "-2147024894, System.IO.FileNotFoundException"
    assert r.json()["error"]["message"]["value"] == "File Not Found."
    for path in (
        "web/defaultDocumentLibrary/RootFolder",
        "web/lists/GetByTitle('Dokument')/RootFolder",
    ):
        assert raw.get(api(emu, path)).json()["d"]["ServerRelativeUrl"] == f"/sites/x/{LIB}"


def test_quotes_and_percent_in_names(emu: Any, raw: requests.Session) -> None:
    name = unique("O'Brien 100%.txt")
    escaped = name.replace("'", "''")
    url = api(
        emu, f"web/getFolderByServerRelativeUrl('{LIB}')/Files/add(url='{escaped}',overwrite=true)"
    )
    r = raw.post(url.replace("%", "%25"), data=b"q")
    assert r.status_code == 200, r.text
    assert r.json()["d"]["Name"] == name
    r = raw.get(
        api(
            emu, f"web/getFileByServerRelativePath(DecodedUrl='/sites/x/{LIB}/{escaped}')/$value"
        ).replace("%", "%25")
    )
    assert r.content == b"q"


def test_delete_file(ctx: ClientContext, raw: requests.Session, emu: Any) -> None:
    name = unique("gone.txt")
    f = ctx.web.get_folder_by_server_relative_url(LIB).upload_file(name, b"x").execute_query()
    f.delete_object().execute_query()
    assert raw.get(api(emu, f"web/GetFileById('{f.unique_id}')")).status_code == 404


def test_minimal_metadata_shapes(emu: Any, raw: requests.Session) -> None:
    r = raw.get(
        api(emu, f"web/getFolderByServerRelativeUrl('{LIB}')/Files"),
        headers={"Accept": "application/json;odata=nometadata"},
    )
    assert isinstance(r.json()["value"], list)
    r = raw.get(
        api(emu, "web/getFolderByServerRelativeUrl('missing')"),
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 404 and "odata.error" in r.json()


@pytest.mark.slow
def test_ten_megabyte_upload(ctx: ClientContext) -> None:
    name = unique("10mb.bin")
    content = os.urandom(10 * 1024 * 1024)
    folder = ctx.web.get_folder_by_server_relative_url(LIB)
    f = folder.upload_file(name, content, chunk_size=4 * 1024 * 1024).execute_query()
    assert f.length == len(content)
    assert download(ctx, f"{LIB}/{name}") == content


def test_upload_creates_and_versions_a_library_item(emu: Any, raw: requests.Session) -> None:
    lst = api(emu, "web/lists/GetByTitle('Dokument')")
    before = raw.get(lst).json()["d"]["ItemCount"]
    name = unique("item.txt")
    add = api(
        emu, f"web/getFolderByServerRelativeUrl('{LIB}')/Files/add(url='{name}',overwrite=true)"
    )
    assert raw.post(add, data=b"1").status_code == 200
    assert raw.get(lst).json()["d"]["ItemCount"] == before + 1
    assert raw.post(add, data=b"22").status_code == 200
    assert raw.get(lst).json()["d"]["ItemCount"] == before + 1  # overwrite is a new version


def test_file_store_state_round_trip() -> None:
    from sp_emulator.filestore import FileStore

    store = FileStore(lambda: 1_700_000_000.0)
    lib = store.create_library(
        "x", "/sites/x", "0f9a0000-0000-0000-0000-000000000001", "Dokument", LIB
    )
    sub = store.add_folder(lib.root, "a/b")
    f, _ = store.add_file(sub, "r.bin", b"one", overwrite=False)
    store.add_file(sub, "r.bin", b"two", overwrite=True)
    other = FileStore(lambda: 0.0)
    other.load_state(store.to_state())
    got = other.resolve_file("x", "/sites/x", f"/sites/x/{LIB}/a/b/r.bin")
    assert got is not None and got.content == b"two" and got.unique_id == f.unique_id
    assert [v.content for v in got.versions] == [b"one"]
