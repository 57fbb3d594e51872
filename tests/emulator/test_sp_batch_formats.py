"""`$batch` through the client, and the JSON light formats for other clients."""

from __future__ import annotations

import time
from typing import Any

from office365.sharepoint.client_context import ClientContext

from sp_emulator import SharePointEmulator


def test_batch_with_changeset_and_get(emulator: SharePointEmulator, client: ClientContext) -> None:
    emulator.backend.create_list(emulator.backend.get_site("x"), "Batch")
    emulator.backend.bulk_add_items("x", "Batch", [{"Title": "finns"}])
    lst = client.web.lists.get_by_title("Batch").get().execute_query()
    lst.items.queue_records([{"Title": f"ny {i}"} for i in range(5)])
    items = lst.items.get()
    emulator.reset_stats()
    client.execute_batch()
    assert emulator.stats()["routes"]["batch"] == 1
    subs = [e for e in emulator.journal() if e["is_batch_sub"]]
    assert [e["route"] for e in subs] == ["items.create"] * 5 + ["items.list"]
    assert all(e["status"] in (200, 201) for e in subs)
    titles = [it.properties["Title"] for it in items]
    assert titles[0] == "finns" and len(titles) == 6
    stored = [
        it.values["Title"]
        for it in emulator.backend.get_list(
            emulator.backend.get_site("x"), title="Batch"
        ).items.values()
    ]
    assert stored == ["finns"] + [f"ny {i}" for i in range(5)]


def test_throttled_sub_response_is_retried_by_the_client(
    emulator: SharePointEmulator, client: ClientContext
) -> None:
    emulator.backend.create_list(emulator.backend.get_site("x"), "B2")
    lst = client.web.lists.get_by_title("B2").get().execute_query()
    lst.items.queue_records([{"Title": "a"}, {"Title": "b"}])
    emulator.faults.inject(
        status=429, count=1, method="POST", path=r"/items$", retry_after=1, batch=True
    )
    emulator.reset_stats()
    started = time.monotonic()
    client.execute_batch()
    assert time.monotonic() - started >= 0.9
    subs = [(e["route"], e["status"]) for e in emulator.journal() if e["is_batch_sub"]]
    assert subs.count(("items.create", 429)) == 1
    assert subs.count(("items.create", 201)) == 2
    stored = sorted(
        it.values["Title"]
        for it in emulator.backend.get_list(
            emulator.backend.get_site("x"), title="B2"
        ).items.values()
    )
    assert stored == ["a", "b"]


def _seed(emulator: SharePointEmulator, n: int = 3) -> None:
    emulator.backend.create_list(emulator.backend.get_site("x"), "F")
    emulator.backend.bulk_add_items("x", "F", [{"Title": f"t{i}"} for i in range(n)])


def test_minimalmetadata(emulator: SharePointEmulator, raw: Any) -> None:
    _seed(emulator)
    r = raw("GET", "/_api/web/lists/getbytitle('F')/items?$top=2&$select=Title", fmt="minimal")
    assert r.headers["Content-Type"].startswith("application/json;odata=minimalmetadata")
    body = r.json()
    assert [v["Title"] for v in body["value"]] == ["t0", "t1"]
    assert body["odata.nextLink"].startswith(emulator.site_url("x") + "/_api/Web/Lists(guid'")
    first = body["value"][0]
    assert (
        first["odata.type"] == "SP.Data.FListItem"
        and first["odata.etag"] == '"1"'
        and "odata.id" in first
        and "odata.editLink" in first
    )
    assert "__metadata" not in first and "odata.metadata" in body
    nxt = raw("GET", body["odata.nextLink"], fmt="minimal").json()
    assert [v["Title"] for v in nxt["value"]] == ["t2"] and "odata.nextLink" not in nxt


def test_nometadata_and_plain_json(emulator: SharePointEmulator, raw: Any) -> None:
    _seed(emulator)
    emulator.backend.add_field(
        emulator.backend.get_site("x"),
        emulator.backend.get_site("x").list_by_title("F"),  # type: ignore[arg-type]
        __import__("sp_emulator.model", fromlist=["x"]).field_from_schema_xml(
            '<Field Type="MultiChoice" Name="Val" DisplayName="Val"><CHOICES><CHOICE>a</CHOICE></CHOICES></Field>'
        ),
    )
    raw(
        "POST",
        "/_api/web/lists/getbytitle('F')/items",
        json={"Title": "m", "Val": {"results": ["a"]}},
    )
    body = raw(
        "GET", "/_api/web/lists/getbytitle('F')/items?$filter=Title eq 'm'", fmt="nometadata"
    ).json()
    row = body["value"][0]
    assert row["Val"] == ["a"] and not any(k.startswith("odata.") or k == "__metadata" for k in row)
    assert "ParentList" not in row  # deferred navigation properties are left out
    plain = raw("GET", "/_api/web", fmt="json").json()
    assert plain["Title"] == "x" and "odata.metadata" in plain


def test_errors_in_light_formats(raw: Any) -> None:
    for fmt in ("minimal", "nometadata", "json"):
        r = raw("GET", "/_api/web/lists/getbytitle('Saknas')", fmt=fmt)
        assert r.status_code == 404
        err = r.json()["odata.error"]
        assert err["code"] == "-1, System.ArgumentException" and err["message"]["lang"] == "en-US"
