"""The client talks to SharePoint through office365's request pipeline without loading its
entity tree (issue 14 goal 4: `ClientContext`'s import was a quarter of a CPU-second of every
night's start-up); the `ClientContext` is still there, built on first use, on the same request."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

from sp_emulator import SharePointEmulator
from sp_sync.sharepoint import SharePointClient

Make = Callable[..., SharePointClient]


def test_a_nights_requests_never_import_the_entity_tree() -> None:
    script = textwrap.dedent(
        """
        import sys
        from sp_emulator import SharePointEmulator
        from sp_sync.auth import StaticTokenProvider
        from sp_sync.sharepoint import SharePointClient

        with SharePointEmulator(sites=["x"]) as emu:
            backend = emu.backend
            backend.create_list(backend.get_site("x"), "Tasks")
            backend.bulk_add_items("x", "Tasks", [{"Title": f"t{i}"} for i in range(5)])
            client = SharePointClient(
                emu.site_url("x"), StaticTokenProvider(emu.issue_token()), organisation="T"
            )
            client.get_web()
            token = client.get_current_change_token("Tasks")
            backend.bulk_add_items("x", "Tasks", [{"Title": "new"}])
            changes = client.get_changes("Tasks", token)
            page = client.get_items_by_ids("Tasks", [c.item_id for c in changes], select=["Title"])
            print(len(changes), [r["Title"] for r in page])
            print("office365.sharepoint.client_context" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split("\n")[:2] == ["1 ['new']", "False"], done.stdout + done.stderr


def test_entity_queries_still_run_on_the_clients_request(
    emu: SharePointEmulator, make_client: Make
) -> None:
    client = make_client(emu)
    client.get_web()  # raw requests first: the context is not built for them
    assert client._context is None
    before = client.stats.requests

    def build() -> Any:
        return client._ctx.web.lists.get_by_title("Tasks").get()

    tasks = client._execute(build, description="test")
    assert tasks.properties["Title"] == "Tasks" and tasks.properties["ItemCount"] == 12
    # Same request object (auth, digest, counted transport): one more request, no new digest.
    assert client._ctx.pending_request() is client._request
    assert client.stats.requests == before + 1
