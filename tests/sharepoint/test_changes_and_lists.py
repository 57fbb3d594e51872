"""Change log, list/field/web reads and the time zone mapping, against the emulator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from zoneinfo import ZoneInfo

import pytest

from sp_emulator import SharePointEmulator
from sp_sync.auth import StaticTokenProvider
from sp_sync.errors import NotFoundError
from sp_sync.sharepoint import ChangeTokenExpiredError, SharePointClient, resolve_time_zone

Make = Callable[..., SharePointClient]


def test_changes_report_adds_updates_deletes_and_restores(
    emu: SharePointEmulator, make_client: Make
) -> None:
    client = make_client(emu)
    token = client.get_current_change_token("Tasks")
    backend = emu.backend
    site = backend.get_site("x")
    lst = backend.get_list(site, title="Tasks")
    backend.bulk_add_items("x", "Tasks", [{"Title": "new"}])  # id 13
    backend.update_item(site, lst, backend.get_item(lst, 2), {"Title": "changed"}, if_match=None)
    recycled = backend.delete_item(site, lst, backend.get_item(lst, 3))
    assert recycled is not None
    backend.restore(site, recycled)
    backend.delete_item(site, lst, backend.get_item(lst, 4), recycle=False)
    emu.reset_stats()
    changes = client.get_changes("Tasks", token)
    assert [(c.kind, c.item_id) for c in changes] == [
        ("add", 13),
        ("update", 2),
        ("delete", 3),
        ("restore", 3),
        ("delete", 4),
    ]
    assert emu.stats()["routes"].get("changes.list") == 1
    tokens = [c.token for c in changes]
    assert len(set(tokens)) == len(tokens)
    assert all(c.time.tzinfo is not None for c in changes)
    # From the last token on: nothing new, one request.
    assert client.get_changes("Tasks", tokens[-1]) == []
    assert client.get_changes("Tasks", client.get_current_change_token("Tasks")) == []


def test_more_than_1000_changes_are_read_in_batches(
    emu: SharePointEmulator, make_client: Make
) -> None:
    client = make_client(emu)
    token = client.get_current_change_token("Tasks")
    emu.backend.bulk_add_items("x", "Tasks", [{"Title": f"n{i}"} for i in range(2500)])
    emu.reset_stats()
    changes = client.get_changes("Tasks", token)
    assert [c.item_id for c in changes] == list(range(13, 13 + 2500))
    assert emu.stats()["routes"].get("changes.list") == 3


def test_expired_change_token_raises_the_specific_error(
    emu: SharePointEmulator, make_client: Make
) -> None:
    # Advancing the emulator's clock also expires its tokens: the provider mints new ones.
    client = make_client(emu, provider=StaticTokenProvider(lambda: emu.issue_token()))
    token = client.get_current_change_token("Tasks")
    emu.clock.advance(emu.backend.retention_seconds + 86400)
    emu.reset_stats()
    with pytest.raises(ChangeTokenExpiredError) as info:
        client.get_changes("Tasks", token)
    assert "full read" in str(info.value)
    statuses = [e["status"] for e in emu.journal() if e["route"] == "changes.list"]
    # 401 (token expired with the clock) → renewed; 403 (digest expired) → office365 refreshes
    # it once; then the one 500 for the token, which is not retried.
    assert statuses.count(500) == 1 and statuses[-1] == 500
    assert client.stats.retries == 1  # the one token renewal, no retry of the 500


def test_garbage_change_token_is_expired_too(emu: SharePointEmulator, make_client: Make) -> None:
    client = make_client(emu)
    with pytest.raises(ChangeTokenExpiredError):
        client.get_changes("Tasks", "1;3;not-a-list;0;0")


def test_get_list_and_fields(emu: SharePointEmulator, make_client: Make) -> None:
    client = make_client(emu)
    info = client.get_list("Tasks")
    assert (info.title, info.item_count, info.url, info.base_template) == (
        "Tasks",
        12,
        "Tasks",
        100,
    )
    assert info.entity_type_full_name == "SP.Data.TasksListItem"
    assert info.last_item_modified is not None and info.last_item_modified.tzinfo is not None
    fields = {f.internal_name: f for f in client.get_fields("Tasks")}
    assert fields["Title"].type_as_string == "Text" and fields["Title"].kind == 2
    assert fields["ID"].read_only
    with pytest.raises(NotFoundError, match="does not exist"):
        client.get_fields("Nope")


def test_get_list_with_fields_is_one_request_with_the_same_answer(
    emu: SharePointEmulator, make_client: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(emu)
    client.get_web()  # token in hand
    emu.reset_stats()
    info, fields = client.get_list_with_fields("Tasks")
    assert emu.stats()["routes"] == {"lists.get": 1}
    # (the change token carries the time of asking)
    assert replace(info, change_token="") == replace(client.get_list("Tasks"), change_token="")
    assert info.change_token
    assert fields == client.get_fields("Tasks") and len(fields) > 10
    with pytest.raises(NotFoundError, match="does not exist"):
        client.get_list_with_fields("Nope")
    # A server that ignores the $expand (the fields stay deferred): they are asked for apart.
    real = client._get_json

    def deferred_fields(path: str, params: object = None, **kw: object) -> object:
        data = real(path, params, **kw)
        if isinstance(data, dict) and "Fields" in data:
            data["Fields"] = {"__deferred": {"uri": "…/Fields"}}
        return data

    monkeypatch.setattr(client, "_get_json", deferred_fields)
    emu.reset_stats()
    again, fields_again = client.get_list_with_fields("Tasks")
    assert (again.id, again.url, fields_again) == (info.id, info.url, fields)
    assert emu.stats()["routes"] == {"lists.get": 1, "fields.list": 1}


def test_get_web_time_zone_and_users(emu: SharePointEmulator, make_client: Make) -> None:
    client = make_client(emu)
    web = client.get_web()
    assert web.url == emu.site_url("x")
    assert web.server_relative_url == "/sites/x"
    assert web.time_zone == ZoneInfo("Europe/Stockholm")
    users = client.get_site_users()
    assert users and all(u.id == key for key, u in users.items())
    assert any(u.email for u in users.values())


@pytest.mark.parametrize(
    ("description", "tz_id", "bias", "expected"),
    [
        (
            "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna",
            4,
            None,
            "Europe/Stockholm",
        ),
        (
            "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna",
            None,
            None,
            "Europe/Stockholm",
        ),
        (
            "(UTC+02:00) Helsinki, Kyiv, Riga, Sofia, Tallinn, Vilnius",
            None,
            None,
            "Europe/Helsinki",
        ),
        ("(UTC-05:00) Eastern Time (US and Canada)", 10, None, "America/New_York"),
        ("(UTC+01:00) Somewhere Unknown", None, None, "Europe/Stockholm"),
        ("(UTC+03:00) Nowhere", None, None, "Etc/GMT-3"),
        ("", None, -60, "Europe/Stockholm"),
        ("(UTC) Coordinated Universal Time", None, None, "UTC"),
    ],
)
def test_resolve_time_zone(
    description: str, tz_id: int | None, bias: int | None, expected: str
) -> None:
    assert resolve_time_zone(description, tz_id, bias) == ZoneInfo(expected)
