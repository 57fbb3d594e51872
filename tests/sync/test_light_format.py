"""Item reads in JSON light without metadata: same rows as verbose, far fewer bytes; read-ahead.

The sync reads `odata=nometadata` (issue 14 goal 2). These tests read one list holding every
column type both ways through the real client and the emulator and compare the normalised
frames cell for cell, and check the byte saving and request budget at scale.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from datetime import date
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from sp_emulator import SharePointEmulator
from sp_emulator.model import field_from_schema_xml
from sp_sync.errors import ThresholdError
from sp_sync.sharepoint.client import clean_entity, quote_path_literal
from sp_sync.sharepoint.items import _shape_item
from sp_sync.sync.engine import _read_ahead
from sp_sync.sync.normalize import normalize_page, plan_select
from tests.sync.helpers import STHLM, client_for, field_xml


def _col(name: str, type_: str, **kw: Any) -> SimpleNamespace:
    base: dict[str, Any] = {
        "name": name,
        "title": name,
        "type": type_,
        "required": False,
        "indexed": False,
        "choices": [],
        "lookup_list": None,
        "lookup_column": None,
        "rich_text": False,
    }
    base.update(kw)
    return SimpleNamespace(**base)


TARGET = "Mål"
SCHEMA = SimpleNamespace(
    title="Alla typer",
    url="AllaTyper",
    columns=[
        _col("Title", "text"),
        _col("County", "choice", choices=["Skåne län", "Uppsala län"]),
        _col("Tags", "multi_choice", choices=["a", "b", "c"]),
        _col("Body", "note", rich_text=True),
        _col("Amount", "number"),
        _col("Done", "boolean"),
        _col("Due", "date"),
        _col("When", "datetime"),
        _col("Owner", "person"),
        _col("Dialogue", "lookup", lookup_list=TARGET, lookup_column="Title"),
        _col("Linked", "multi_lookup", lookup_list=TARGET, lookup_column="Title"),
        _col("Link", "url"),
    ],
    rules=[],
)


def _rows(n: int, user_ids: list[int]) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        row: dict[str, Any] = {"Title": f"rad {i} – åäö"}
        if i % 5:  # every fifth row leaves every optional column empty
            row.update(
                {
                    "County": ["Skåne län", "Uppsala län"][i % 2],
                    "Tags": {"results": ["a", "c"][: 1 + i % 2]},
                    "Body": f"<div><p>Hej&nbsp;<b>världen</b> {i}</p><p>rad två &amp; mer</p></div>",
                    "Amount": i * 1.5,
                    "Done": bool(i % 2),
                    "Due": date(2026, 3, 28 + i % 3).isoformat(),
                    "When": f"2026-06-01T10:{i % 60:02d}:00Z",
                    "OwnerId": user_ids[i % len(user_ids)],
                    "DialogueId": 1 + i % 3,
                    "LinkedId": {"results": [1, 1 + i % 3]},
                    "Link": {"Url": f"https://example.se/{i}", "Description": f"Länk {i}"},
                }
            )
        out.append(row)
    return out


@pytest.fixture(scope="module")
def emu() -> Iterator[SharePointEmulator]:
    with SharePointEmulator(sites=["x"]) as e:
        backend = e.backend
        site = backend.get_site("x")
        target = backend.create_list(site, TARGET, url_name="Mal")
        backend.bulk_add_items(site, TARGET, [{"Title": f"Mål {i}"} for i in range(1, 4)])
        lst = backend.create_list(site, SCHEMA.title, url_name=SCHEMA.url)
        for col in SCHEMA.columns[1:]:
            xml = field_xml(col, {TARGET: target.id})
            backend.add_field(site, lst, field_from_schema_xml(xml), unique_name=False)
        user_ids = sorted(site.users)[:3]
        backend.bulk_add_items(site, SCHEMA.title, _rows(60, user_ids))
        yield e


def _normalize(items: list[dict[str, Any]], emu: Any) -> pd.DataFrame:
    frame, issues = normalize_page(
        items, SCHEMA, tz=STHLM, site_url=emu.site_url("x"), list_url=SCHEMA.url
    )
    assert issues == []
    return frame


def _verbose_items(client: Any, select: list[str], expand: list[str]) -> list[dict[str, Any]]:
    """What the client read before: verbose JSON, shaped like office365 shapes entities."""
    path = f"/_api/web/lists/GetByTitle({quote_path_literal(SCHEMA.title)})/items"
    data = client._get_json(
        path,
        {"$select": ",".join(select), "$expand": ",".join(expand), "$top": "5000"},
        description="verbose read",
    )
    return [_shape_item(r) for r in data["results"]]


def test_every_column_type_normalises_identically_from_nometadata_and_verbose(emu: Any) -> None:
    client = client_for(emu)
    plan = plan_select(SCHEMA)
    select, expand = list(plan.select), list(plan.expand)

    before = client.stats.bytes_received
    light = [
        i
        for p in client.iter_item_pages(SCHEMA.title, select=select, expand=expand)
        for i in p.items
    ]
    light_bytes = client.stats.bytes_received - before
    before = client.stats.bytes_received
    verbose = _verbose_items(client, select, expand)
    verbose_bytes = client.stats.bytes_received - before

    assert len(light) == len(verbose) == 60
    # The light shape carries no metadata wrappers at all.
    assert not any("__metadata" in i or "__deferred" in str(i) for i in light)
    assert isinstance(light[1]["Tags"], list) and isinstance(light[1]["LinkedId"], list)

    got, expected = _normalize(light, emu), _normalize(verbose, emu)
    pd.testing.assert_frame_equal(got, expected)
    # Every column type really carries values (not a comparison of two empty frames).
    row = got.set_index("ID").loc[2]
    assert row["Tags"] == ["a", "c"] and row["Linked"] == ["Mål 1", "Mål 2"]
    assert row["Body_text"] == "Hej världen 1\n\nrad två & mer"
    assert row["Amount"] == 1.5 and row["Done"] is True
    assert row["Due"] == date(2026, 3, 29)
    assert row["Owner"] and row["Owner_email"] and row["Dialogue"] == "Mål 2"
    assert (row["Link"], row["Link_description"]) == ("https://example.se/1", "Länk 1")
    assert row["_version"] == 1
    assert light_bytes < 0.7 * verbose_bytes


def test_by_id_batch_reads_the_light_shape_too(emu: Any) -> None:
    client = client_for(emu)
    plan = plan_select(SCHEMA)
    select, expand = list(plan.select), list(plan.expand)
    by_id = client.get_items_by_ids(SCHEMA.title, [2, 7, 999], select=select, expand=expand)
    assert [i["ID"] for i in by_id] == [2, 7]
    verbose = {i["ID"]: i for i in _verbose_items(client, select, expand)}
    pd.testing.assert_frame_equal(_normalize(by_id, emu), _normalize([verbose[2], verbose[7]], emu))


def test_minimal_metadata_rows_keep_their_etag_and_lose_annotations() -> None:
    raw = {"odata.type": "SP.Data.XItem", "odata.etag": '"4"', "odata.id": "u", "Id": 3, "T": 1}
    assert _shape_item(raw) == {"Id": 3, "ID": 3, "T": 1, "_etag": '"4"'}
    verbose = {
        "__metadata": {"etag": '"2"'},
        "ID": 1,
        "L": {"results": [1]},
        "D": {"__deferred": {}},
    }
    assert (
        _shape_item(verbose)
        == {"ID": 1, "L": [1], "_etag": '"2"'}
        == {
            **clean_entity(verbose),
            "_etag": '"2"',
        }
    )


def test_a_threshold_refusal_in_the_light_format_is_mapped_not_retried(emu: Any) -> None:
    backend = emu.backend
    site = backend.get_site("x")
    backend.create_list(site, "Stor")
    backend.bulk_add_items(site, "Stor", [{"Title": f"s {i}"} for i in range(5001)])
    client = client_for(emu)
    emu.reset_stats()
    with pytest.raises(ThresholdError) as info:
        list(client.iter_item_pages("Stor", select=["Title"], extra_filter="Title eq 's 5'"))
    assert info.value.code and info.value.code.startswith("-2147024860")
    assert client.stats.retries == 0


def test_a_full_read_at_scale_costs_its_budget_and_half_the_bytes(tmp_path: Any) -> None:
    """20,000 items: ceil(N/5000) page requests, and under 0.55 × a verbose read of every field."""
    from sp_sync.schema import load_schemas
    from sp_sync.state.local import LocalStateStore
    from sp_sync.sync.engine import sync_list
    from tests.sync.helpers import create_lists, now

    schemas = load_schemas()
    schema = schemas["Länskunskap"]
    n = 20_000
    with SharePointEmulator(sites=["x"]) as e:
        create_lists(e, schemas)
        users = sorted(e.backend.get_site("x").users)[:3]
        rows = [
            {
                "Title": f"Kunskap {i}",
                "County": "Skåne län",
                "SubjectArea": "Innovation",
                "Department": "Analys",
                "EntryType": "Kunskap",
                "Description": f"<p>Beskrivning {i} av läget i länet.</p>",
                "Priority": "Medel",
                "ValidUntil": "2027-01-31",
                "OwnerId": users[i % len(users)],
                "Status": "Aktuell",
            }
            for i in range(n)
        ]
        e.backend.bulk_add_items("x", schema.title, rows)
        client = client_for(e)
        e.reset_stats()
        result = sync_list(
            client,
            LocalStateStore(tmp_path / "state"),
            "s",
            schema,
            web=client.get_web(),
            users={},
            full=True,
            now=now(),
            schema_set=schemas,
        )
        routes = e.stats()["routes"]
        assert result.rows == n
        assert sum(v for k, v in routes.items() if "items" in k) == math.ceil(n / 5000)
        assert result.requests <= math.ceil(n / 5000) + 3 + 1  # + the web read passed in above
        # The naive read: every field, verbose (what office365's get_all asks for).
        e.reset_stats()
        naive = client_for(e)
        path = f"/_api/web/lists/GetByTitle({quote_path_literal(schema.title)})/items"
        last = 0
        while True:
            page = naive._get_json(
                path,
                {"$filter": f"ID gt {last}", "$orderby": "ID", "$top": "5000"},
                description="naive",
            )["results"]
            if not page:
                break
            last = page[-1]["ID"]
        assert result.bytes_received <= 0.55 * naive.stats.bytes_received


def _pages(n: int, log: list[str], *, fail_at: int | None = None) -> Iterator[int]:
    for i in range(n):
        log.append(f"start {i}")
        time.sleep(0.02)  # a request in flight
        if fail_at == i:
            raise ThresholdError("refused")
        log.append(f"end {i}")
        yield i


def test_read_ahead_yields_every_page_in_order_and_reads_one_ahead() -> None:
    log: list[str] = []
    seen = []
    for page in _read_ahead(_pages(5, log)):
        time.sleep(0.05)
        seen.append(page)
        # While the caller works on page k, page k+1 is being (or has been) read.
        assert f"start {min(page + 1, 4)}" in log
    assert seen == [0, 1, 2, 3, 4]


def test_read_ahead_raises_the_read_error_after_the_pages_before_it() -> None:
    log: list[str] = []
    seen = []
    with pytest.raises(ThresholdError):
        for page in _read_ahead(_pages(5, log, fail_at=3)):
            seen.append(page)
    assert seen == [0, 1, 2]


def test_read_ahead_stopped_early_waits_for_the_page_in_flight() -> None:
    log: list[str] = []
    reader = _read_ahead(_pages(50, log))
    assert next(reader) == 0
    reader.close()
    # Nothing is still reading once close() returns: the client is free for the caller.
    started = [e for e in log if e.startswith("start")]
    ended = [e for e in log if e.startswith("end")]
    assert len(started) == len(ended) and len(started) <= 3
    assert not any(t.name == "sp-sync-read-ahead" for t in threading.enumerate())
