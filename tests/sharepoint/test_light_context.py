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

    emu.reset_stats()
    tasks = client._execute(build, description="test")
    assert tasks.properties["Title"] == "Tasks" and tasks.properties["ItemCount"] == 12
    # Same request object (auth, digest, counted transport); entity queries get the form
    # digest first (most of them POST).
    assert client._ctx.pending_request() is client._request
    assert emu.stats()["routes"] == {"contextinfo": 1, "lists.get": 1}
    assert client.stats.requests == before + 2


def test_reads_go_without_a_form_digest_and_writes_fetch_one_once(
    emu: SharePointEmulator, make_client: Make
) -> None:
    """A client that only reads (the site check before a night) sends no contextinfo; the
    first POST fetches the digest, and later POSTs reuse it."""
    client = make_client(emu)
    emu.reset_stats()
    client.get_web()
    client.get_list("Tasks")
    assert "contextinfo" not in emu.stats()["routes"]
    token = client.get_current_change_token("Tasks")
    emu.backend.bulk_add_items("x", "Tasks", [{"Title": "new"}])
    assert [c.item_id for c in client.get_changes("Tasks", token)] == [13]
    assert client.get_items_by_ids("Tasks", [13], select=["Title"])[0]["Title"] == "new"
    routes = [(e["route"], e["method"]) for e in emu.journal()]
    assert [r for r, _ in routes].count("contextinfo") == 1
    assert routes.index(("contextinfo", "POST")) == routes.index(("changes.list", "POST")) - 1
    # The POSTs carried the digest; a digest that SharePoint no longer accepts is fetched
    # again once (office365's recovery), and the read still succeeds.
    emu.faults.expire_digests()
    emu.reset_stats()
    assert client.get_changes("Tasks", token)[0].item_id == 13
    assert emu.stats()["routes"]["contextinfo"] == 1
