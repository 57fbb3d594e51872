"""Token providers: caching and renewal, managed identity and certificate against the emulator."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sp_emulator import SharePointEmulator
from sp_emulator.identity import generate_client_certificate
from sp_sync.auth import (
    RENEW_BEFORE_SECONDS,
    CertificateTokenProvider,
    ManagedIdentityTokenProvider,
    StaticTokenProvider,
    TokenProvider,
    certificate_thumbprint,
    token_from_msal_result,
)
from sp_sync.errors import AuthenticationError, SettingsError
from sp_sync.redact import install
from sp_sync.sharepoint import SharePointClient


@pytest.fixture(scope="module")
def emu() -> Iterator[SharePointEmulator]:
    with SharePointEmulator(sites=["x", "y"]) as instance:
        backend = instance.backend
        backend.create_list(backend.get_site("x"), "Tasks")
        backend.bulk_add_items("x", "Tasks", [{"Title": "a"}, {"Title": "b"}])
        yield instance


@pytest.fixture
def mi_env(emu: SharePointEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", emu.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", emu.identity_header)


def count_items(emu: SharePointEmulator, provider: TokenProvider, site: str = "x") -> int:
    client = SharePointClient(emu.site_url(site), provider, organisation="T")
    return sum(len(p.items) for p in client.iter_item_pages("Tasks", select=["Title"]))


def test_static_provider_caches_and_renews_five_minutes_early() -> None:
    now = [0.0]
    minted: list[str] = []

    def mint() -> str:
        minted.append(f"token-{len(minted)}-xyz")
        return minted[-1]

    provider = StaticTokenProvider(mint, lifetime=3600, clock=lambda: now[0])
    first = provider.get_token()
    now[0] = 3600 - RENEW_BEFORE_SECONDS - 1
    assert provider.get_token() is first
    now[0] = 3600 - RENEW_BEFORE_SECONDS + 1
    assert provider.get_token().token == "token-1-xyz"
    provider.invalidate()
    assert provider.get_token().token == "token-2-xyz"
    assert "token-2-xyz" not in repr(provider.get_token())


def test_managed_identity_provider_reads_a_list(emu: SharePointEmulator, mi_env: None) -> None:
    provider = ManagedIdentityTokenProvider(resource=emu.url)
    assert isinstance(provider, TokenProvider)
    token = provider.get_token()
    assert token.token and token.expires_on > 0
    assert provider.get_token() is token  # cached
    assert count_items(emu, provider) == 2
    provider.invalidate()
    assert provider.get_token() is not token
    assert provider.fetches == 2


def test_managed_identity_wrong_resource_is_authentication_error(
    emu: SharePointEmulator, mi_env: None
) -> None:
    provider = ManagedIdentityTokenProvider(resource="https://contoso.sharepoint.com")
    with pytest.raises(AuthenticationError) as info:
        provider.get_token()
    assert "AADSTS500011" in str(info.value)


@pytest.fixture(scope="module")
def cert_app(emu: SharePointEmulator) -> dict[str, str]:
    key_pem, cert_pem, thumb = generate_client_certificate("sp-sync-h4b")
    client_id = str(uuid.uuid4())
    emu.register_app(client_id, cert_pem, grants={"x": "read"})
    return {
        "client_id": client_id,
        "key": key_pem.decode(),
        "cert": cert_pem.decode(),
        "thumbprint": thumb,
    }


def cert_provider(
    emu: SharePointEmulator, app: dict[str, str], **overrides: str
) -> CertificateTokenProvider:
    kwargs = {
        "client_id": app["client_id"],
        "private_key_pem": app["key"],
        "certificate_pem": app["cert"],
        "authority_url": emu.authority_url,
        "resource": emu.url,
        "ca_bundle": emu.ca_cert_path,
    }
    kwargs.update(overrides)
    return CertificateTokenProvider(**kwargs)  # type: ignore[arg-type]


def test_certificate_provider_reads_a_list_and_respects_grants(
    emu: SharePointEmulator, cert_app: dict[str, str]
) -> None:
    provider = cert_provider(emu, cert_app)
    assert count_items(emu, provider) == 2
    assert certificate_thumbprint(cert_app["cert"]) == cert_app["thumbprint"].upper()
    from sp_sync.errors import PermissionDeniedError

    backend = emu.backend
    if backend.get_site("y").list_by_title("Tasks") is None:
        backend.create_list(backend.get_site("y"), "Tasks")
    with pytest.raises(PermissionDeniedError, match="grant it 'read'"):
        count_items(emu, provider, site="y")


def test_certificate_from_pem_file_with_thumbprint(
    emu: SharePointEmulator, cert_app: dict[str, str], tmp_path: Path
) -> None:
    pem = tmp_path / "app.pem"
    pem.write_text(cert_app["key"] + cert_app["cert"])
    provider = CertificateTokenProvider.from_pem_file(
        pem,
        client_id=cert_app["client_id"],
        resource=emu.url,
        authority_url=emu.authority_url,
        thumbprint=cert_app["thumbprint"],
        ca_bundle=emu.ca_cert_path,
    )
    assert count_items(emu, provider) == 2
    with pytest.raises(SettingsError) as info:
        CertificateTokenProvider.from_pem_file(
            tmp_path / "missing.pem", client_id="c", resource=emu.url, tenant_id="t"
        )
    assert info.value.setting == "SP_SYNC_CERT_PATH"


def test_unknown_app_gives_aadsts_code_and_never_the_key(
    emu: SharePointEmulator, cert_app: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    install()
    provider = cert_provider(emu, cert_app, client_id=str(uuid.uuid4()))
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthenticationError) as info:
        provider.get_token()
    message = str(info.value)
    assert "AADSTS" in message and info.value.code and info.value.code.startswith("AADSTS")
    key_body = cert_app["key"].splitlines()[1]
    assert key_body not in message and key_body not in caplog.text
    assert "client_assertion=" not in caplog.text.replace("client_assertion=***", "")


def test_msal_error_dict_is_mapped_without_secrets() -> None:
    """An msal error keeps its code and first line, with secrets masked; a token is registered."""
    from sp_sync.redact import MASK, redact, register_secret

    register_secret("client-secret-value-42")
    with pytest.raises(AuthenticationError) as info:
        token_from_msal_result(
            {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided: "
                "client-secret-value-42 with client_assertion=eyJhbGciOi.eyJzdWIi.c2ln\n"
                "Trace ID: 1 client-secret-value-42",
            },
            "app x",
            now=0,
        )
    assert str(info.value) == (
        "Could not get a token for app x: invalid_client (AADSTS7000215): AADSTS7000215: "
        f"Invalid client secret provided: {MASK} with client_assertion={MASK}"
    )
    assert info.value.code == "AADSTS7000215"
    token = token_from_msal_result(
        {"access_token": "abc-secret-123", "expires_in": 60}, "app", now=100
    )
    assert token.expires_on == 160
    assert token.token == "abc-secret-123"
    # The token is a registered secret from now on: it cannot reach a log or a message.
    assert redact("sent abc-secret-123") == f"sent {MASK}"


def test_client_from_settings_with_certificate(
    emu: SharePointEmulator, cert_app: dict[str, str], tmp_path: Path
) -> None:
    from sp_sync.settings import Settings

    pem = tmp_path / "app.pem"
    pem.write_text(cert_app["key"] + cert_app["cert"])
    settings = Settings.from_env(
        {
            "SP_SYNC_SITE_URL": emu.site_url("x"),
            "SP_SYNC_AUTH": "certificate",
            "SP_SYNC_CLIENT_ID": cert_app["client_id"],
            "SP_SYNC_AUTHORITY_URL": emu.authority_url,
            "SP_SYNC_CERT_PATH": str(pem),
            "SP_SYNC_CA_BUNDLE": emu.ca_cert_path,
            "SP_SYNC_ORGANISATION": "Region Test",
        }
    )
    client = SharePointClient.from_settings(settings)
    assert client.user_agent == "NONISV|Region Test|sp-sync/0.1.0"
    assert client.get_list("Tasks").item_count == 2


def test_managed_identity_from_settings(emu: SharePointEmulator, mi_env: None) -> None:
    from sp_sync.settings import Settings

    settings = Settings.from_env({"SP_SYNC_SITE_URL": emu.site_url("x")})
    client = SharePointClient.from_settings(settings)
    assert client.get_list("Tasks").item_count == 2


def test_managed_identity_outside_azure_is_a_clear_settings_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No App Service variables: say so at once instead of msal probing the VM metadata address."""
    from sp_sync.auth import ManagedIdentityTokenProvider

    for name in (
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "IDENTITY_SERVER_THUMBPRINT",
        "MSI_ENDPOINT",
        "MSI_SECRET",
        "IMDS_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    provider = ManagedIdentityTokenProvider("https://contoso.sharepoint.com")
    with pytest.raises(SettingsError) as info:
        provider.get_token()
    assert info.value.setting == "SP_SYNC_AUTH"
    assert "IDENTITY_ENDPOINT" in str(info.value) and "certificate" in str(info.value)


def test_token_errors_are_written_in_both_languages_quoting_the_provider() -> None:
    with pytest.raises(AuthenticationError) as info:
        token_from_msal_result(
            {
                "error": "invalid_client",
                "error_description": "AADSTS700027: Client assertion failed signature validation.",
            },
            CertificateTokenProvider(
                client_id="11111111-2222-3333-4444-555555555555",
                private_key_pem="-----BEGIN PRIVATE KEY-----not-used-----END PRIVATE KEY-----",
                thumbprint="AB" * 20,
                resource="https://contoso.sharepoint.com",
                tenant_id="contoso",
            )._describe(),
            now=0,
        )
    err = info.value
    assert err.render("sv") == (
        "Kunde inte hämta en token för appen 11111111-2222-3333-4444-555555555555 hos "
        "https://login.microsoftonline.com/contoso: invalid_client (AADSTS700027): "
        "”AADSTS700027: Client assertion failed signature validation.”"
    )
    assert (
        err.render("en")
        == str(err)
        == (
            "Could not get a token for app 11111111-2222-3333-4444-555555555555 at "
            "https://login.microsoftonline.com/contoso: invalid_client (AADSTS700027): "
            "AADSTS700027: Client assertion failed signature validation."
        )
    )
    with pytest.raises(AuthenticationError) as empty:
        token_from_msal_result({}, "app x", now=0)
    assert empty.value.render("sv") == "Identitetstjänsten svarade inte med något för app x."


def test_a_missing_identity_endpoint_is_a_setting_error_in_both_languages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IDENTITY_ENDPOINT", raising=False)
    monkeypatch.delenv("IDENTITY_HEADER", raising=False)
    provider = ManagedIdentityTokenProvider("https://contoso.sharepoint.com")
    with pytest.raises(SettingsError) as info:
        provider.get_token()
    assert info.value.render("sv").startswith(
        "Inställningen SP_SYNC_AUTH: managed_identity behöver funktionsappens identitetstjänst"
    )
    assert info.value.render("en").startswith(
        "Setting SP_SYNC_AUTH: managed_identity needs the Function app's identity endpoint"
    )
