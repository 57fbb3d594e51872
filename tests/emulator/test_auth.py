"""Bearer tokens, the two token services (real msal) and per-site grants."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import msal
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from office365.runtime.client_request_exception import ClientRequestException
from office365.sharepoint.client_context import ClientContext

from sp_emulator import SharePointEmulator
from sp_emulator.identity import SHAREPOINT_PRINCIPAL_ID, generate_client_certificate

ACCESS_DENIED_CODE = "-2147024891, System.UnauthorizedAccessException"


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    with SharePointEmulator(sites=["x", "y"]) as e:
        yield e


def session_trusting(emu: Any) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify= (reference §4.1)
    s.verify = emu.ca_cert_path
    return s


def items_url(emu: Any, site: str = "x") -> str:
    return f"{emu.site_url(site)}/_api/web/lists/GetByTitle('Dokument')"


def read_list_title(emu: Any, token_source: Any, site: str = "x") -> str:
    ctx = ClientContext(emu.site_url(site)).with_access_token(token_source)
    lst = ctx.web.lists.get_by_title("Dokument").get().execute_query()
    return str(lst.title)


@pytest.fixture
def mi_env(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", emu.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", emu.identity_header)


def test_managed_identity_token_reads_a_list(emu: Any, mi_env: None) -> None:
    mi = msal.ManagedIdentityClient(
        msal.SystemAssignedManagedIdentity(), http_client=requests.Session()
    )
    result = mi.acquire_token_for_client(resource=emu.url)
    assert "access_token" in result, result
    assert result["token_type"] == "Bearer"
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["appid"] == emu.managed_identity_app_id
    assert claims["aud"] == emu.url
    assert read_list_title(emu, lambda: mi.acquire_token_for_client(resource=emu.url)) == "Dokument"


def test_managed_identity_endpoint_errors(emu: Any) -> None:
    s = requests.Session()
    s.trust_env = False
    ok = {"api-version": "2019-08-01", "resource": emu.url}
    assert s.get(emu.identity_endpoint, params=ok).status_code == 400  # header missing
    r = s.get(emu.identity_endpoint, params=ok, headers={"X-IDENTITY-HEADER": "wrong"})
    assert r.status_code == 401
    hdr = {"X-IDENTITY-HEADER": emu.identity_header}
    r = s.get(emu.identity_endpoint, params={"api-version": "2019-08-01"}, headers=hdr)
    assert r.status_code == 400 and "resource" in r.json()["message"]
    r = s.get(
        emu.identity_endpoint,
        params={**ok, "resource": "https://contoso.sharepoint.com"},
        headers=hdr,
    )
    assert r.status_code == 400 and "AADSTS500011" in r.json()["message"]
    r = s.get(emu.identity_endpoint, params=ok, headers=hdr)
    body = r.json()
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert isinstance(body["expires_on"], str) and body["expires_on"].isdigit()


@pytest.fixture(scope="module")
def cert_app(emu: Any) -> dict[str, Any]:
    key_pem, cert_pem, thumb = generate_client_certificate("sp-sync-test")
    client_id = str(uuid.uuid4())
    emu.register_app(client_id, cert_pem, grants={"x": "read"})
    return {
        "client_id": client_id,
        "key": key_pem.decode(),
        "cert": cert_pem.decode(),
        "thumbprint": thumb,
    }


def cca(emu: Any, client_id: str, credential: Any) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=credential,
        authority=emu.authority_url,
        instance_discovery=False,
        http_client=session_trusting(emu),
    )


@pytest.mark.parametrize("form", ["thumbprint", "public_certificate"])
def test_certificate_client_credentials_token_reads_a_list(
    emu: Any, cert_app: dict[str, Any], form: str
) -> None:
    credential = {"private_key": cert_app["key"]}
    credential[form] = cert_app["thumbprint"] if form == "thumbprint" else cert_app["cert"]
    app = cca(emu, cert_app["client_id"], credential)
    result = app.acquire_token_for_client([f"{emu.url}/.default"])
    assert "access_token" in result, result
    assert result["expires_in"] > 3000
    assert (
        jwt.decode(result["access_token"], options={"verify_signature": False})["appid"]
        == cert_app["client_id"]
    )
    assert (
        read_list_title(emu, lambda: app.acquire_token_for_client([f"{emu.url}/.default"]))
        == "Dokument"
    )


def test_the_authoritys_token_and_discovery_calls_are_counted(
    emu: Any, cert_app: dict[str, Any]
) -> None:
    """The HTTPS authority is a server of its own; its calls still show in the route stats, so a
    test can count a certificate run's token requests as it counts managed-identity ones."""
    emu.reset_stats()
    credential = {"private_key": cert_app["key"], "thumbprint": cert_app["thumbprint"]}
    app = cca(emu, cert_app["client_id"], credential)
    assert "access_token" in app.acquire_token_for_client([f"{emu.url}/.default"])
    assert "access_token" in app.acquire_token_for_client([f"{emu.url}/.default"])  # cached
    routes = emu.stats()["routes"]
    assert routes.get("identity.authority_token") == 1
    assert routes.get("identity.authority_discovery", 0) >= 1  # msal reads the metadata first
    assert "identity.token" not in routes  # the managed-identity endpoint was not used
    assert emu.stats()["requests"] == 0  # not SharePoint requests


def test_authority_rejects_unknown_app_secret_and_foreign_certificate(
    emu: Any, cert_app: dict[str, Any]
) -> None:
    unknown = cca(
        emu,
        str(uuid.uuid4()),
        {"private_key": cert_app["key"], "thumbprint": cert_app["thumbprint"]},
    )
    result = unknown.acquire_token_for_client([f"{emu.url}/.default"])
    assert result["error"] == "unauthorized_client" and 700016 in result["error_codes"]
    secret = cca(emu, cert_app["client_id"], "a-client-secret")
    result = secret.acquire_token_for_client([f"{emu.url}/.default"])
    assert result["error"] == "invalid_client" and 7000215 in result["error_codes"]
    other_key, _, _ = generate_client_certificate("intruder")
    forged = cca(
        emu,
        cert_app["client_id"],
        {"private_key": other_key.decode(), "thumbprint": cert_app["thumbprint"]},
    )
    result = forged.acquire_token_for_client([f"{emu.url}/.default"])
    assert result["error"] == "invalid_client" and 700027 in result["error_codes"]
    wrong_scope = cca(
        emu,
        cert_app["client_id"],
        {"private_key": cert_app["key"], "thumbprint": cert_app["thumbprint"]},
    )
    result = wrong_scope.acquire_token_for_client(["https://contoso.sharepoint.com/.default"])
    assert result["error"] == "invalid_resource"


def test_oidc_authority_form_is_served(emu: Any) -> None:
    s = session_trusting(emu)
    v2 = s.get(f"{emu.authority_url}/v2.0/.well-known/openid-configuration").json()
    v1 = s.get(f"{emu.authority_url}/.well-known/openid-configuration").json()
    assert v2["token_endpoint"] == f"{emu.authority_url}/oauth2/v2.0/token"
    assert v1["issuer"] == emu.authority_url


def auth_service(emu: Any) -> Any:
    """The emulator's AuthService (SharePointEmulator keeps it on `app`)."""
    app = getattr(emu, "app", None)
    return app.auth if app is not None else emu.auth


def expire_tokens(emu: Any) -> None:
    faults = getattr(emu, "faults", None)
    if faults is not None:
        faults.expire_tokens()
    else:
        emu.expire_tokens()


def raw_get(emu: Any, authorization: str | None, site: str = "x") -> requests.Response:
    headers = {"Accept": "application/json;odata=verbose"}
    if authorization is not None:
        headers["Authorization"] = authorization
    s = requests.Session()
    s.trust_env = False
    return s.get(items_url(emu, site), headers=headers)


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer not-a-jwt", "None abc", "Basic dXNlcjpwYXNz", "Bearer a.b.c"],
)
def test_missing_or_malformed_tokens_get_401(emu: Any, authorization: str | None) -> None:
    r = raw_get(emu, authorization)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == ACCESS_DENIED_CODE
    assert f'client_id="{SHAREPOINT_PRINCIPAL_ID}"' in r.headers["WWW-Authenticate"]


def test_foreign_token_gets_401(emu: Any) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = jwt.decode(emu.issue_token(), options={"verify_signature": False})
    forged = jwt.encode(good, key, algorithm="RS256")
    r = raw_get(emu, f"Bearer {forged}")
    assert r.status_code == 401
    assert r.json()["error_description"] == "Invalid issuer or signature."


def test_expired_token_gets_401(emu: Any) -> None:
    token = emu.issue_token(lifetime=60)
    assert raw_get(emu, f"Bearer {token}").status_code == 200
    emu.clock.advance(61)
    r = raw_get(emu, f"Bearer {token}")
    assert r.status_code == 401
    assert "expired" in r.json()["error"]["message"]["value"]
    fresh = emu.issue_token()
    assert raw_get(emu, f"Bearer {fresh}").status_code == 200
    expire_tokens(emu)
    assert raw_get(emu, f"Bearer {fresh}").status_code == 401
    assert raw_get(emu, f"Bearer {emu.issue_token()}").status_code == 200


def test_expired_token_through_the_client_raises(emu: Any) -> None:
    token = emu.issue_token(lifetime=30)
    emu.clock.advance(31)
    with pytest.raises(ClientRequestException) as info:
        read_list_title(emu, lambda: {"access_token": token, "token_type": "Bearer"})
    assert info.value.response is not None
    assert info.value.response.status_code == 401


def test_grants_read_write_none(emu: Any) -> None:
    app_id = str(uuid.uuid4())
    emu.grant(app_id, "x", "read")
    token = emu.issue_token(app_id)
    assert raw_get(emu, f"Bearer {token}").status_code == 200
    r = raw_get(emu, f"Bearer {token}", site="y")  # no grant on y
    assert r.status_code == 403
    assert r.json()["error"]["code"] == ACCESS_DENIED_CODE
    upload = (
        f"{emu.site_url('x')}/_api/web/getFolderByServerRelativeUrl('Shared Documents')"
        f"/Files/add(url='{uuid.uuid4().hex}.txt',overwrite=true)"
    )
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json;odata=verbose"}
    s = requests.Session()
    s.trust_env = False
    r = s.post(upload, data=b"x", headers=headers)
    assert r.status_code == 403
    assert r.json()["error"]["message"]["value"].startswith("Access denied.")
    emu.grant(app_id, "x", "write")
    assert s.post(upload, data=b"x", headers=headers).status_code == 200
    emu.grant(app_id, "x", None)
    assert raw_get(emu, f"Bearer {token}").status_code == 403


def test_read_only_app_writing_through_the_client_gets_403(
    emu: Any, cert_app: dict[str, Any]
) -> None:
    token = emu.issue_token(cert_app["client_id"])
    ctx = ClientContext(emu.site_url("x")).with_access_token(
        lambda: {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
    )
    folder = ctx.web.get_folder_by_server_relative_url("Shared Documents")
    with pytest.raises(ClientRequestException) as info:
        folder.upload_file("denied.txt", b"no").execute_query()
    assert info.value.response is not None
    assert info.value.response.status_code == 403


def test_state_round_trip_keeps_tokens_valid(emu: Any) -> None:
    from sp_emulator.identity import AuthService

    token = emu.issue_token()
    state = auth_service(emu).to_state()
    other = AuthService(emu.clock, lambda s: True)
    other.load_state(state)
    other.bind(emu.url)
    assert other._verify(token, None).__class__.__name__ == "Identity"
