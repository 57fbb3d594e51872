"""Issue 11 item 8, the blob store: storage trouble is named. An unreachable account, a refused
key, a container deleted during the run, a container name Azure refuses and 5xx answers after
the SDK's retries end with a sentence naming the account and container and a documented exit
code (6 retry later, 3 permission, 2 setting), never exit 1 "unexpected"."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sp_sync.errors import ExitCode, SettingsError, SpSyncError, TransientError
from sp_sync.state import BlobStateStore
from tests.helpers.azurite import Azurite, unique_container
from tests.reliability.helpers import RequestTrigger, World, is_sync_request
from tests.reliability.scenarios import record

pytestmark = [pytest.mark.azurite]


def _with_key(connection: str, key: str) -> str:
    return re.sub(r"AccountKey=[^;]+", f"AccountKey={key}", connection)


def _with_endpoint(connection: str, endpoint: str) -> str:
    return re.sub(r"BlobEndpoint=[^;]+", f"BlobEndpoint={endpoint}", connection)


def _unreachable(connection: str) -> str:
    return _with_endpoint(connection, "http://127.0.0.1:9/devstoreaccount1")


CLI_CASES = {
    "unreachable": (_unreachable, ExitCode.RETRY_LATER),
    "wrong key": (lambda c: _with_key(c, "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk="), ExitCode.PERMISSION),
}  # fmt: skip


def _use_blob_state(world: World, connection: str, container: str) -> None:
    world.extra_env.update(
        {
            "SP_SYNC_STATE": "azure",
            "AzureWebJobsStorage": connection,
            "SP_SYNC_STATE_CONTAINER": container,
        }
    )


def _assert_named(proc: Any, code: ExitCode, container: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    err = proc.stderr.lower()
    assert "oväntat" not in err and "unexpected" not in err and "traceback" not in err, err
    assert container.lower() in err and "devstoreaccount1" in err, err


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_an_unusable_account_is_named_with_its_exit_code(
    world: World, azurite: Azurite, case: str
) -> None:
    change, code = CLI_CASES[case]
    container = unique_container("errors")
    _use_blob_state(world, change(azurite.connection_string), container)
    # A short time budget bounds the storage SDK's real retries against the closed port
    # (BudgetRetry), as SP_SYNC_TIME_BUDGET_SECONDS does on Azure: ~5 s instead of ~18 s.
    _assert_named(world.cli_run(timeout=300, SP_SYNC_TIME_BUDGET_SECONDS="4"), code, container)


def test_a_container_deleted_during_the_run_is_named_and_the_next_run_recovers(
    world: World, azurite: Azurite
) -> None:
    from azure.storage.blob import ContainerClient

    container = unique_container("deleted")
    _use_blob_state(world, azurite.connection_string, container)
    assert world.cli_run().returncode == ExitCode.OK
    client = ContainerClient.from_connection_string(azurite.connection_string, container)
    trigger = RequestTrigger(world.emu)
    trigger.when(is_sync_request, 1, client.delete_container, "container deleted")
    proc = world.cli_run(timeout=300)
    assert trigger.fired == ["container deleted"]
    _assert_named(proc, ExitCode.RETRY_LATER, container)
    assert "finns inte längre" in proc.stderr
    trigger.clear()
    # The next run creates the container again and reads every list in full: nothing lost.
    assert world.cli_run().returncode == ExitCode.OK
    sizes = world.assert_exact(world.store())
    record(
        "blob-errors",
        tries=5,
        failures=0,
        rows_lost=sum(world.counts.values()) - sum(sizes.values()),
    )


def test_a_container_name_azure_refuses_names_the_setting(azurite: Azurite) -> None:
    store = BlobStateStore(azurite.connection_string, "Not_A_Name")
    with pytest.raises(SettingsError) as raised:
        store.write_json("probe.json", {"x": 1})
    assert raised.value.setting == "SP_SYNC_STATE_CONTAINER"
    assert raised.value.exit_code == ExitCode.CONFIGURATION
    assert "Not_A_Name" in str(raised.value)


@pytest.fixture
def failing_account(azurite: Azurite) -> Iterator[tuple[str, list[int]]]:
    """A blob endpoint that answers every request with 500 (an account in trouble)."""
    seen: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def _fail(self) -> None:
            seen.append(500)
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _fail

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/devstoreaccount1"
    try:
        yield _with_endpoint(azurite.connection_string, endpoint), seen
    finally:
        server.shutdown()
        server.server_close()


def test_5xx_after_the_sdk_retries_is_a_named_retry_later(
    failing_account: tuple[str, list[int]],
) -> None:
    connection, seen = failing_account
    store = BlobStateStore(connection, "nightly-state", retry_total=1)
    with pytest.raises(SpSyncError) as raised:
        store.write_json("probe.json", {"x": 1})
    assert isinstance(raised.value, TransientError)
    assert raised.value.exit_code == ExitCode.RETRY_LATER
    assert "devstoreaccount1/nightly-state" in str(raised.value)
    assert len(seen) == 2  # the first try and the SDK's one retry
