"""Failures map to sp-sync's error tree without leaking the account key; the store factory."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from sp_sync.errors import PermissionDeniedError, SettingsError, StateError, TransientError
from sp_sync.settings import Settings
from sp_sync.state import BlobStateStore, LocalStateStore, open_state_store, site_key
from sp_sync.state.local import LocalStateStore as _Local
from tests.helpers.azurite import ACCOUNT_KEY, Azurite, unique_container

SITE = "https://contoso.sharepoint.com/sites/team"

SECRET_KEY = "c2VjcmV0LWNhbmFyeS1rZXktZG8tbm90LWxlYWs="  # base64 of a canary phrase


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def conn(port: int, key: str) -> str:
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={key};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )


def test_unreachable_storage_is_transient_and_hides_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    store = BlobStateStore(conn(free_port(), SECRET_KEY), unique_container(), retry_total=0)
    with pytest.raises(TransientError) as info:
        store.read_list_state("https://x.sharepoint.com/sites/a", "Dialoger")
    assert "could not be reached" in str(info.value) or "kunde inte nås" in str(info.value)
    assert SECRET_KEY not in str(info.value) and SECRET_KEY not in repr(info.value.details())
    with pytest.raises(TransientError), store.lock("x"):
        pass
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert SECRET_KEY not in logged


@pytest.mark.azurite
def test_wrong_account_key_is_a_permission_error(azurite: Azurite) -> None:
    bad = azurite.connection_string.replace(ACCOUNT_KEY, SECRET_KEY)
    store = BlobStateStore(bad, unique_container(), retry_total=0)
    with pytest.raises(PermissionDeniedError) as info:
        store.write_json("runs/a.json", {"a": 1})
    assert SECRET_KEY not in str(info.value)


def test_malformed_connection_string_hides_the_key() -> None:
    with pytest.raises(StateError) as info:
        BlobStateStore(f"AccountKey={SECRET_KEY};nonsense", "c")
    assert SECRET_KEY not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_corrupt_state_is_a_state_error(tmp_path: Path) -> None:
    from sp_sync.state import SyncCheckpoint
    from tests.state.helpers import quality, snapshot

    store = LocalStateStore(tmp_path)
    store.commit_list_state("s", "l", snapshot(1), quality(1), SyncCheckpoint(), expected_etag=None)
    (rows,) = tmp_path.glob("s/l/g1-*/rows.parquet")
    rows.write_bytes(rows.read_bytes()[:-10])
    with pytest.raises(StateError, match=r"corrupt|skadat"):
        store.read_list_state("s", "l")
    (tmp_path / "s" / "l" / "checkpoint.json").write_text("{not json")
    with pytest.raises(StateError):
        store.read_list_state("s", "l")


def test_keys_are_safe_path_segments() -> None:
    assert (
        site_key("https://Contoso.SharePoint.com/sites/Team/")
        == "contoso.sharepoint.com_sites_team"
    )
    assert site_key("http://127.0.0.1:8123/sites/x") == site_key("http://127.0.0.1:9999/sites/x")
    odd = site_key("https://c.sharepoint.com/sites/Län ../..%2F")
    assert "/" not in odd and ".." not in odd.split("_")
    # Distinct sites never share a key even when slugs collide.
    assert site_key("https://c.sharepoint.com/sites/a b") != site_key(
        "https://c.sharepoint.com/sites/a-b"
    )
    with pytest.raises(StateError):
        LocalStateStore(Path("/tmp")).read_json("../etc/passwd")


def test_factory_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_env(
        {"SP_SYNC_SITE_URL": SITE, "SP_SYNC_STATE_DIR": str(tmp_path / "st")}
    )
    store = open_state_store(settings)
    assert isinstance(store, _Local) and store.root == tmp_path / "st"
    monkeypatch.chdir(tmp_path)
    default = open_state_store(Settings(site_url=SITE))
    assert isinstance(default, _Local) and default.root == Path(".sp-sync/state")


@pytest.mark.azurite
def test_factory_azure(azurite: Azurite) -> None:
    """The store takes what `Settings` resolved: the connection string named by
    SP_SYNC_STATE_CONNECTION (default AzureWebJobsStorage) or given directly."""
    container = unique_container()
    named = Settings.from_env(
        {
            "SP_SYNC_SITE_URL": SITE,
            "SP_SYNC_STATE": "azure",
            "SP_SYNC_STATE_CONTAINER": container,
            "AzureWebJobsStorage": azurite.connection_string,
        }
    )
    store = open_state_store(named)
    assert isinstance(store, BlobStateStore) and store.container_name == container
    store.write_json("a.json", {"x": 1})  # creates the container
    direct = open_state_store(
        Settings.from_env(
            {
                "SP_SYNC_SITE_URL": SITE,
                "SP_SYNC_STATE": "azure",
                "SP_SYNC_STATE_CONNECTION": azurite.connection_string,
                "SP_SYNC_STATE_CONTAINER": container,
            }
        )
    )
    assert direct.read_json("a.json")[0] == {"x": 1}
    with pytest.raises(SettingsError, match="AzureWebJobsStorage"):
        Settings.from_env({"SP_SYNC_SITE_URL": SITE, "SP_SYNC_STATE": "azure"})
    with pytest.raises(SettingsError, match="AzureWebJobsStorage"):
        open_state_store(Settings(site_url=SITE, state="azure"))
    with pytest.raises(SettingsError, match="SP_SYNC_STATE"):
        Settings.from_env({"SP_SYNC_SITE_URL": SITE, "SP_SYNC_STATE": "s3"})


def test_factory_passes_the_language_to_the_store(tmp_path: Path) -> None:
    """Messages follow Settings.language, handed to the store; no environment lookup inside."""
    english = open_state_store(
        Settings.from_env(
            {
                "SP_SYNC_SITE_URL": SITE,
                "SP_SYNC_STATE_DIR": str(tmp_path),
                "SP_SYNC_LANGUAGE": "en",
            }
        )
    )
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "bad.json").write_bytes(b"{not json")
    with pytest.raises(StateError, match=r"The document runs/bad\.json is corrupt"):
        english.read_json("runs/bad.json")
    swedish = open_state_store(Settings(site_url=SITE, state_dir=tmp_path))
    with pytest.raises(StateError, match=r"Dokumentet runs/bad\.json är skadat"):
        swedish.read_json("runs/bad.json")
