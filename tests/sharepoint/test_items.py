"""Keyset paging and items-by-id against the emulator, with request counts from its stats."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from sp_emulator import SharePointEmulator
from sp_sync.errors import NotFoundError, ThresholdError
from sp_sync.sharepoint import SharePointClient, item_version

from .conftest import SIZES

Make = Callable[..., SharePointClient]


def item_requests(emu: SharePointEmulator) -> int:
    return int(emu.stats()["routes"].get("items.list", 0))


@pytest.mark.parametrize("title", list(SIZES))
def test_keyset_paging_returns_every_row_in_ceil_n_over_5000_requests(
    big_emu: SharePointEmulator, make_client: Make, title: str
) -> None:
    n = SIZES[title]
    client = make_client(big_emu)
    big_emu.reset_stats()
    pages = list(client.iter_item_pages(title, select=["Title"]))
    ids = [item["ID"] for page in pages for item in page.items]
    assert ids == list(range(1, n + 1))
    assert item_requests(big_emu) == max(1, math.ceil(n / 5000))
    # Only the pages: reads need no form digest, and nothing else is fetched.
    assert big_emu.stats()["requests"] == item_requests(big_emu)
    assert client.stats.requests == big_emu.stats()["requests"]
    assert not pages[-1].has_more


def test_paging_resumes_after_id_and_rows_carry_values_and_version(
    big_emu: SharePointEmulator, make_client: Make
) -> None:
    client = make_client(big_emu)
    pages = list(
        client.iter_item_pages("Over", select=["Title", "OData__UIVersionString"], after_id=4990)
    )
    items = [i for p in pages for i in p.items]
    assert [i["ID"] for i in items] == list(range(4991, 5002))
    assert items[0]["Title"] == "Over 4991"
    assert item_version(items[0]) == 1
    assert "__metadata" not in items[0]


def test_small_pages_follow_the_key(big_emu: SharePointEmulator, make_client: Make) -> None:
    client = make_client(big_emu)
    big_emu.reset_stats()
    pages = list(client.iter_item_pages("One", select=["Title"], page_size=1))
    assert [len(p.items) for p in pages] == [1]
    assert item_requests(big_emu) == 1


@pytest.mark.parametrize(("count", "batches"), [(1, 1), (50, 1), (5000, 1), (5001, 2)])
def test_get_items_by_ids_uses_one_batch_per_5000_ids(
    big_emu: SharePointEmulator, make_client: Make, count: int, batches: int
) -> None:
    client = make_client(big_emu)
    wanted = list(range(12000, 12000 - count, -1))  # unordered input, high ids
    big_emu.reset_stats()
    items = client.get_items_by_ids("Big", wanted, select=["Title"])
    assert [i["ID"] for i in items] == sorted(wanted)
    assert items[-1]["Title"] == "Big 12000"
    routes = big_emu.stats()["routes"]
    assert routes.get("batch", 0) == batches
    # Requests over the wire: the batches (+ digest); sub-requests are not separate HTTP calls.
    assert client.stats.requests == batches + 1


def test_get_items_by_ids_skips_missing_and_empty_input(
    big_emu: SharePointEmulator, make_client: Make
) -> None:
    client = make_client(big_emu)
    assert client.get_items_by_ids("One", [], select=["Title"]) == []
    items = client.get_items_by_ids("One", [1, 2, 999], select=["Title"])
    assert [i["ID"] for i in items] == [1]


def test_threshold_error_is_mapped_and_not_retried(
    big_emu: SharePointEmulator, make_client: Make, fake_clock: object
) -> None:
    client = make_client(big_emu)
    big_emu.reset_stats()
    with pytest.raises(ThresholdError) as info:
        list(client.iter_item_pages("Big", select=["Title"], extra_filter="Title eq 'Big 5'"))
    assert info.value.status == 500
    assert info.value.code and info.value.code.startswith("-2147024860")
    assert "list view threshold" in str(info.value)
    assert item_requests(big_emu) == 1
    assert client.stats.retries == 0


def test_modified_since_filters(big_emu: SharePointEmulator, make_client: Make) -> None:
    client = make_client(big_emu)
    future = datetime.now(UTC) + timedelta(days=3650)
    pages = list(client.iter_items_modified_since("One", future, select=["Title"]))
    assert sum(len(p.items) for p in pages) == 0
    pages = list(
        client.iter_items_modified_since("One", datetime(2000, 1, 1, tzinfo=UTC), select=["Title"])
    )
    assert [i["ID"] for p in pages for i in p.items] == [1]


def test_missing_list_is_not_found(big_emu: SharePointEmulator, make_client: Make) -> None:
    client = make_client(big_emu)
    with pytest.raises(NotFoundError) as info:
        list(client.iter_item_pages("Nope", select=["Title"]))
    assert info.value.status == 404
    assert client.stats.retries == 0
