"""Never wrong data: every navigation property the emulator lists expands to what its URL serves.

Issue 15 ("never wrong data"): a `$expand` the emulator cannot serve must fail with SharePoint's
error shape and a plain "not supported by the emulator" message, never answer 200 with the
property missing or empty. The walk below starts at every kind of entity the emulator renders,
collects each `__deferred` navigation property and checks `$expand` and `$select` against a GET
of the property's own URL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from office365.sharepoint.client_context import ClientContext

from sp_emulator import SharePointEmulator

LIB = "Shared Documents"


@pytest.fixture(scope="module")
def emu() -> Iterator[SharePointEmulator]:
    with SharePointEmulator(sites=["x"]) as e:
        yield e


@pytest.fixture(scope="module")
def get(emu: SharePointEmulator) -> Callable[..., requests.Response]:
    session = requests.Session()
    session.trust_env = False
    session.headers.update(
        {"Authorization": "Bearer " + emu.issue_token(), "Accept": "application/json;odata=verbose"}
    )

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else emu.site_url("x") + path
        return session.request(method, url, timeout=30, **kwargs)

    return call


@pytest.fixture(scope="module")
def entities(get: Callable[..., requests.Response]) -> list[str]:
    """One URL of every kind of entity, with content behind its navigation properties."""
    folder = f"/_api/web/GetFolderByServerRelativeUrl('{LIB}')"
    assert get("POST", folder + "/Folders/add('Underlag')").status_code == 200
    for body in (b"v1", b"v2"):  # two writes: the file then has one previous version
        r = get("POST", folder + "/Files/add(url='plan.txt',overwrite=true)", data=body)
        assert r.status_code == 200
    r = get("POST", "/_api/web/lists", json={"Title": "Uppgifter", "BaseTemplate": 100})
    assert r.status_code == 201
    r = get("POST", "/_api/web/lists/getbytitle('Uppgifter')/items", json={"Title": "Första"})
    assert r.status_code == 201
    title_field = "/_api/web/lists/getbytitle('Uppgifter')/fields/getbyinternalnameortitle('Title')"
    return [
        "/_api/web",
        "/_api/site",
        "/_api/web/RegionalSettings",
        "/_api/web/lists/getbytitle('Uppgifter')",
        "/_api/web/lists/getbytitle('Dokument')",
        title_field,
        "/_api/web/lists/getbytitle('Uppgifter')/items(1)",
        "/_api/web/currentuser",
        "/_api/web/RootFolder",
        folder,
        folder + "/Folders('Underlag')",
        f"/_api/web/GetFileByServerRelativeUrl('/sites/x/{LIB}/plan.txt')",
        f"/_api/web/GetFileByServerRelativeUrl('/sites/x/{LIB}/plan.txt')/Versions(512)",
    ]


def _deferred(d: dict[str, Any]) -> dict[str, str]:
    return {
        k: v["__deferred"]["uri"] for k, v in d.items() if isinstance(v, dict) and "__deferred" in v
    }


def _error(response: requests.Response) -> tuple[str, str]:
    err = response.json()["error"]
    return err["code"], err["message"]["value"]


def test_every_navigation_property_expands_to_its_own_content_or_fails_clearly(
    get: Callable[..., requests.Response], entities: list[str]
) -> None:
    checked = 0
    for url in entities:
        r = get("GET", url)
        assert r.status_code == 200, (url, r.text)
        for name, nav_url in _deferred(r.json()["d"]).items():
            direct = get("GET", nav_url)
            sep = "&" if "?" in url else "?"
            expanded = get("GET", f"{url}{sep}$expand={name}")
            if direct.status_code >= 400:
                code, message = _error(direct)  # SharePoint's error shape
                if direct.status_code in (404, 501) or "NotSupported" in code:
                    assert "not supported by the emulator" in message, (nav_url, message)
                assert expanded.status_code == direct.status_code, (url, name, expanded.text)
                assert _error(expanded) == (code, message)
            else:
                assert expanded.status_code == 200, (url, name, expanded.text)
                value = expanded.json()["d"][name]
                assert "__deferred" not in value, (url, name)
                assert value == direct.json()["d"], (url, name)
            checked += 1
    # web 3, list 3 + 3, item 2, folder 6 + 6, file 7, version 1: the walk really ran.
    assert checked >= 25


def test_selecting_a_navigation_property_never_drops_it_silently(
    get: Callable[..., requests.Response], entities: list[str]
) -> None:
    for url in entities:
        d = get("GET", url).json()["d"]
        for name in _deferred(d):
            r = get("GET", f"{url}?$select={name}")
            if r.status_code == 200:
                assert name in r.json()["d"], (url, name)
            else:
                _error(r)


def test_folder_expand_files_and_folders_lists_them_in_every_format(
    get: Callable[..., requests.Response], entities: list[str]
) -> None:
    folder = f"/_api/web/GetFolderByServerRelativeUrl('{LIB}')"
    d = get("GET", folder + "?$expand=Files,Folders").json()["d"]
    assert [f["Name"] for f in d["Files"]["results"]] == ["plan.txt"]
    assert "Underlag" in [f["Name"] for f in d["Folders"]["results"]]
    light = get(
        "GET", folder + "?$expand=Files", headers={"Accept": "application/json;odata=nometadata"}
    ).json()
    assert [f["Name"] for f in light["Files"]] == ["plan.txt"]
    nested = get("GET", folder + "?$expand=Folders/Files").json()["d"]
    assert {f["Name"]: f["Files"]["results"] for f in nested["Folders"]["results"]} == {
        "Forms": [],
        "Underlag": [],
    }


def test_office365_client_expand_files_sees_the_files(
    emu: SharePointEmulator, entities: list[str]
) -> None:
    token = emu.issue_token()
    ctx = ClientContext(emu.site_url("x")).with_access_token(
        lambda: {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
    )
    folder = ctx.web.get_folder_by_server_relative_url(LIB).expand(["Files"]).get().execute_query()
    assert [f.name for f in folder.files] == ["plan.txt"]


def test_unsupported_expand_is_a_clear_error(get: Callable[..., requests.Response]) -> None:
    r = get("GET", f"/_api/web/GetFolderByServerRelativeUrl('{LIB}')?$expand=StorageMetrics")
    assert r.status_code == 400
    code, message = _error(r)
    assert code == "-1, System.NotSupportedException"
    assert "not supported by the emulator" in message
