"""Role assignments and the principals the emulator issues tokens to (issue 15 item 11).

The emulator issues app-only tokens only (client credentials, managed identity, the admin
API). SharePoint's add-in-only (app-only) policy checks only the app principal's permissions,
whatever the item-level role assignments say:
https://learn.microsoft.com/en-us/sharepoint/dev/sp-add-ins/add-in-authorization-policy-types-in-sharepoint
so an item whose unique role assignments name nobody stays readable and writable by the app,
and delegated (user) grants are refused at the token endpoint. These tests pin that decision."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from office365.sharepoint.client_context import ClientContext
from office365.sharepoint.lists.creation_information import ListCreationInformation
from office365.sharepoint.lists.templates.type import ListTemplateType
from office365.sharepoint.sharing.role_type import RoleType

from sp_emulator import SharePointEmulator


@pytest.fixture
def emu() -> Iterator[SharePointEmulator]:
    with SharePointEmulator(sites=["x"]) as e:
        yield e


def test_app_only_token_is_not_restricted_by_item_role_assignments(
    emu: SharePointEmulator,
) -> None:
    token = emu.issue_token()
    ctx = ClientContext(emu.site_url("x")).with_access_token(
        lambda: {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
    )
    lst = ctx.web.lists.add(
        ListCreationInformation("Hemlig", None, ListTemplateType.GenericList)
    ).execute_query()
    item = lst.add_item({"Title": "känsligt"}).execute_query()
    item.break_role_inheritance(copy_role_assignments=False, clear_sub_scopes=True).execute_query()
    caller = ctx.web.current_user.get().execute_query().id
    full = ctx.web.role_definitions.get_by_type(RoleType.Administrator).get().execute_query()
    item.role_assignments.remove_role_assignment(caller, full.properties["Id"]).execute_query()
    raw = requests.Session()
    raw.trust_env = False
    raw.headers.update(
        {"Authorization": f"Bearer {token}", "Accept": "application/json;odata=verbose"}
    )
    base = emu.site_url("x") + "/_api/web/lists/getbytitle('Hemlig')"
    assert raw.get(base + f"/items({item.id})/RoleAssignments").json()["d"]["results"] == []
    assert raw.get(base + f"/items({item.id})").json()["d"]["Title"] == "känsligt"
    rows = raw.get(base + "/items?$select=Title").json()["d"]["results"]
    assert [r["Title"] for r in rows] == ["känsligt"]
    merged = raw.post(
        base + f"/items({item.id})",
        json={"Title": "ändrat"},
        headers={"X-HTTP-Method": "MERGE", "IF-MATCH": "*"},
    )
    assert merged.status_code == 204
    assert raw.get(base + f"/items({item.id})").json()["d"]["Title"] == "ändrat"


@pytest.mark.parametrize("grant", ["authorization_code", "password", "refresh_token"])
def test_delegated_grants_are_refused(emu: SharePointEmulator, grant: str) -> None:
    session = requests.Session()
    session.trust_env = False
    r = session.post(
        emu.authority_url + "/oauth2/v2.0/token",
        data={"grant_type": grant, "client_id": "x", "scope": emu.url + "/.default"},
        verify=emu.ca_cert_path,
        timeout=10,
    )
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "unsupported_grant_type" and 70003 in body["error_codes"]
