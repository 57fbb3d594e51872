"""The change log: ChangeQuery/ChangeToken through the client, and SharePoint's token errors."""

from __future__ import annotations

from typing import Any

import pytest
from office365.runtime.client_request_exception import ClientRequestException
from office365.sharepoint.changes.query import ChangeQuery
from office365.sharepoint.changes.token import ChangeToken
from office365.sharepoint.client_context import ClientContext

from sp_emulator import SharePointEmulator
from sp_emulator.model import to_ticks
from tests.emulator.conftest import make_client

OUT_OF_RANGE = "-2146233086, System.ArgumentOutOfRangeException"


def _changes(lst: Any, token: str | None, **flags: Any) -> list[Any]:
    q = ChangeQuery(
        Item=True,
        Add=True,
        Update=True,
        DeleteObject=True,
        Restore=True,
        # office365 annotates ChangeTokenStart as str but serialises a ChangeToken object.
        ChangeTokenStart=ChangeToken(token) if token else None,  # type: ignore[arg-type]
        **flags,
    )
    return list(lst.get_changes(q).execute_query())


def test_adds_updates_deletes_and_restore(
    emulator: SharePointEmulator, client: ClientContext, raw: Any
) -> None:
    emulator.backend.create_list(emulator.backend.get_site("x"), "Logg")
    lst = client.web.lists.get_by_title("Logg")
    start = raw("GET", "/_api/web/lists/getbytitle('Logg')?$select=CurrentChangeToken").json()["d"][
        "CurrentChangeToken"
    ]["StringValue"]
    assert start.startswith("1;3;")
    a = lst.add_item({"Title": "a"}).execute_query()
    b = lst.add_item({"Title": "b"}).execute_query()
    a.set_property("Title", "a2").update().execute_query()
    b.delete_object().execute_query()
    changes = _changes(lst, start)
    kinds = [(c.properties["ChangeType"], c.properties["ItemId"]) for c in changes]
    assert [(int(getattr(k, "value", k)), i) for k, i in kinds] == [
        (1, a.id),
        (1, b.id),
        (2, a.id),
        (3, b.id),
    ]
    tokens = [c.change_token.StringValue for c in changes]
    numbers = [int(t.split(";")[4]) for t in tokens]
    assert numbers == sorted(numbers) and len(set(numbers)) == 4
    deleted = raw(
        "POST",
        "/_api/web/lists/getbytitle('Logg')/getchanges",
        json={
            "query": {
                "__metadata": {"type": "SP.ChangeQuery"},
                "Item": True,
                "DeleteObject": True,
                "ChangeTokenStart": {
                    "__metadata": {"type": "SP.ChangeToken"},
                    "StringValue": tokens[2],
                },
            }
        },
    ).json()["d"]["results"]
    assert len(deleted) == 1 and deleted[0]["ChangeType"] == 3 and deleted[0]["ItemId"] == b.id
    assert "UniqueId" not in deleted[0] and deleted[0]["ListId"]
    # Nothing after the last token.
    assert _changes(lst, tokens[-1]) == []
    # Restore from the recycle bin yields ChangeType 7.
    bin_items = raw("GET", "/_api/web/RecycleBin").json()["d"]["results"]
    assert len(bin_items) == 1
    assert raw("POST", f"/_api/web/RecycleBin('{bin_items[0]['Id']}')/restore()").status_code == 200
    restored = _changes(lst, tokens[-1])
    assert [
        (
            int(getattr(c.properties["ChangeType"], "value", c.properties["ChangeType"])),
            c.properties["ItemId"],
        )
        for c in restored
    ] == [(7, b.id)]
    assert (
        raw("GET", f"/_api/web/lists/getbytitle('Logg')/items({b.id})").json()["d"]["Title"] == "b"
    )


def test_fetch_limit_and_default_cap(emulator: SharePointEmulator, client: ClientContext) -> None:
    emulator.backend.create_list(emulator.backend.get_site("x"), "Mycket")
    lst_obj = emulator.backend.get_site("x").list_by_title("Mycket")
    assert lst_obj is not None
    token = f"1;3;{lst_obj.id};{to_ticks(emulator.clock.now()) - 1};-1"
    emulator.backend.bulk_add_items("x", "Mycket", [{"Title": str(i)} for i in range(1200)])
    lst = client.web.lists.get_by_title("Mycket")
    first = _changes(lst, token)
    assert len(first) == 1000
    rest = _changes(lst, first[-1].change_token.StringValue)
    assert len(rest) == 200
    limited = _changes(lst, token, FetchLimit=10)
    assert len(limited) == 10


def test_expired_and_foreign_tokens(
    emulator: SharePointEmulator, client: ClientContext, raw: Any
) -> None:
    site = emulator.backend.get_site("x")
    emulator.backend.create_list(site, "A")
    emulator.backend.create_list(site, "B")
    a = site.list_by_title("A")
    assert a is not None
    lst = client.web.lists.get_by_title("A")
    token = raw("GET", "/_api/web/lists/getbytitle('A')?$select=CurrentChangeToken").json()["d"][
        "CurrentChangeToken"
    ]["StringValue"]
    lst.add_item({"Title": "x"}).execute_query()
    assert len(_changes(lst, token)) == 1
    # A token from another list is rejected.
    with pytest.raises(ClientRequestException) as info:
        _changes(client.web.lists.get_by_title("B"), token)
    assert info.value.response is not None
    assert info.value.response.status_code == 500 and info.value.code == OUT_OF_RANGE
    # Older than the 60-day retention window.
    emulator.clock.advance(61 * 24 * 3600)
    fresh = make_client(emulator)  # the old bearer token has expired with the clock
    with pytest.raises(ClientRequestException) as info:
        _changes(fresh.web.lists.get_by_title("A"), token)
    assert info.value.code == OUT_OF_RANGE
    assert info.value.response is not None
    assert "Parameter name: changeToken" in info.value.response.json()["error"]["message"]["value"]


def test_primitive_token_is_a_400(emulator: SharePointEmulator, client: ClientContext) -> None:
    """The client types ChangeTokenStart as str; a plain string is not an SP.ChangeToken."""
    emulator.backend.create_list(emulator.backend.get_site("x"), "P")
    lst = client.web.lists.get_by_title("P")
    with pytest.raises(ClientRequestException) as info:
        lst.get_changes(ChangeQuery(Item=True, ChangeTokenStart="1;3;x;1;1")).execute_query()
    assert info.value.response is not None
    assert info.value.response.status_code == 400
    assert info.value.code == "-1, Microsoft.SharePoint.Client.InvalidClientQueryException"


def test_web_changes(emulator: SharePointEmulator, raw: Any) -> None:
    site = emulator.backend.get_site("x")
    emulator.backend.create_list(site, "W")
    start = f"1;2;{site.web_id};{to_ticks(emulator.clock.now()) - 1};-1"
    emulator.backend.bulk_add_items("x", "W", [{"Title": "w"}])
    r = raw(
        "POST",
        "/_api/web/getchanges",
        json={
            "query": {
                "Item": True,
                "Add": True,
                "ChangeTokenStart": {
                    "__metadata": {"type": "SP.ChangeToken"},
                    "StringValue": start,
                },
            }
        },
    )
    rows = r.json()["d"]["results"]
    assert len(rows) == 1 and rows[0]["ChangeToken"]["StringValue"].startswith(
        f"1;2;{site.web_id};"
    )


def test_a_write_logs_its_change_at_the_time_it_gave_modified(
    emulator: SharePointEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SharePoint stamps an item's Modified and its change log entry in one transaction; the
    emulator reads its clock once per write, so a clock that moves between two readings (real
    time under load) never puts them in different seconds: a sync cuts `Modified` windows of at
    most 5,000 items from the change log's times."""
    backend = emulator.backend
    site = backend.get_site("x")
    lst = backend.create_list(site, "Tid")
    readings = iter(1_800_000_000.9 + 0.2 * k for k in range(1000))
    monkeypatch.setattr(backend, "now", lambda: next(readings))
    item = backend.add_item(site, lst, {"Title": "a"})
    backend.update_item(site, lst, item, {"Title": "b"}, if_match=None)
    added, updated = lst.changes[-2:]
    assert (added.change_type, updated.change_type) == (1, 2)
    assert added.ticks == to_ticks(item.created)
    assert updated.ticks == to_ticks(item.modified)
    assert lst.last_modified == item.modified
