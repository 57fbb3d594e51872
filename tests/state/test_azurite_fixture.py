"""The Azurite helper every Azure test uses: ports, connection string, restart, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from tests.helpers import azurite as azurite_module
from tests.helpers.azurite import Azurite, AzuriteMissingError, unique_container


@pytest.mark.azurite
def test_session_fixture_serves_blobs_on_loopback(azurite: Azurite) -> None:
    assert azurite.running and azurite.blob_port > 0
    assert f"BlobEndpoint=http://127.0.0.1:{azurite.blob_port}/devstoreaccount1;" in (
        azurite.connection_string
    )
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = client.create_container(unique_container())
    container.upload_blob("x.txt", b"hej")
    assert container.download_blob("x.txt").readall() == b"hej"


@pytest.mark.azurite
@pytest.mark.slow
def test_persistent_instance_keeps_data_and_ports_across_restart() -> None:
    with Azurite(persistent=True) as az:
        name = unique_container()
        BlobServiceClient.from_connection_string(az.connection_string).create_container(
            name
        ).upload_blob("a", b"1")
        ports = (az.blob_port, az.queue_port, az.table_port)
        az.restart()
        assert (az.blob_port, az.queue_port, az.table_port) == ports
        client = BlobServiceClient.from_connection_string(az.connection_string)
        assert client.get_container_client(name).download_blob("a").readall() == b"1"
        az.stop()
        assert not az.running
    with Azurite() as mem:
        name = unique_container()
        client = BlobServiceClient.from_connection_string(mem.connection_string)
        client.create_container(name).upload_blob("a", b"1")
        mem.restart()
        client = BlobServiceClient.from_connection_string(mem.connection_string)
        with pytest.raises(ResourceNotFoundError):
            client.get_container_client(name).download_blob("a").readall()


def test_missing_install_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(azurite_module, "REPO_ROOT", tmp_path)
    with pytest.raises(AzuriteMissingError, match="npm ci"):
        Azurite().start()
    monkeypatch.setattr(azurite_module.shutil, "which", lambda name: None)
    with pytest.raises(AzuriteMissingError, match="Node"):
        Azurite().start()
