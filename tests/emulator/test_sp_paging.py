"""Paging exactly as SharePoint Online: 100 by default, 5,000 at most, absolute `__next`, `$skip` ignored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from office365.sharepoint.client_context import ClientContext

from sp_emulator import SharePointEmulator
from tests.emulator.conftest import make_client


class RawCall(Protocol):
    """The `raw_paged` fixture: one authenticated request against the paging emulator."""

    def __call__(
        self, method: str, path: str, accept: str = "application/json;odata=verbose"
    ) -> requests.Response: ...


SIZES = [0, 1, 99, 100, 101, 5000, 5001, 12000]


@pytest.fixture(scope="module")
def paged_emu() -> Iterator[SharePointEmulator]:
    with SharePointEmulator(sites=["x"]) as emu:
        site = emu.backend.get_site("x")
        for n in SIZES:
            emu.backend.create_list(site, f"N{n}")
            emu.backend.bulk_add_items("x", f"N{n}", [{"Title": f"rad {i}"} for i in range(n)])
        yield emu


@pytest.fixture
def ctx(paged_emu: SharePointEmulator) -> ClientContext:
    return make_client(paged_emu)


def _ids(items: object) -> list[int]:
    return [it.properties["Id"] for it in items]  # type: ignore[attr-defined]


CLIENT_CASES = (
    [(n, None) for n in SIZES if n <= 5001]
    + [(n, 100) for n in (0, 1, 99, 101)]
    + [(5000, 1000), (5001, 5000), (12000, 5000)]
)


@pytest.mark.parametrize(("n", "page_size"), CLIENT_CASES)
def test_client_get_all_reads_every_item_once(
    paged_emu: SharePointEmulator, ctx: ClientContext, n: int, page_size: int | None
) -> None:
    """The pinned client follows `__next` until it is absent (`$select=Id` keeps the client fast)."""
    effective = page_size or 100
    paged_emu.reset_stats()
    items = (
        ctx.web.lists.get_by_title(f"N{n}")
        .items.select(["Id"])
        .get_all(page_size=page_size)
        .execute_query()
    )
    assert _ids(items) == list(range(1, n + 1))
    pages = paged_emu.stats()["routes"].get("items.list", 0)
    assert pages == max(1, -(-n // effective))
    assert all("$skip" not in e["query"] for e in paged_emu.journal())


# One-item pages only on the small lists: 5,000+ single-item pages would prove nothing more.
RAW_CASES = [
    (n, top) for n in SIZES for top in (None, 1, 100, 999, 5000) if not (top == 1 and n > 101)
]


@pytest.mark.parametrize(("n", "top"), RAW_CASES)
def test_raw_paging_follows_next_to_the_end(raw_paged: RawCall, n: int, top: int | None) -> None:
    url = f"/_api/web/lists/getbytitle('N{n}')/items?$select=Id" + (f"&$top={top}" if top else "")
    seen: list[int] = []
    pages = 0
    while url:
        d = raw_paged("GET", url).json()["d"]
        pages += 1
        assert len(d["results"]) <= (top or 100)
        seen += [r["Id"] for r in d["results"]]
        url = d.get("__next")
        if url:
            assert url.startswith("http://127.0.0.1:")
    assert seen == list(range(1, n + 1))
    assert pages == max(1, -(-n // (top or 100)))


def test_count_equal_to_page_size_makes_the_client_fall_back_to_skip(
    paged_emu: SharePointEmulator, ctx: ClientContext
) -> None:
    """100 items with `page_size=100`: the last page is full and has no `__next`, so the pinned
    client retries with `$skip`, which SharePoint Online ignores on items. The emulator serves the
    first page again, exactly as SPO would, so `get_all` would loop forever; a guard stops it.
    """
    pages: list[int] = []

    class Loop(Exception):
        pass

    def guard(col: object) -> None:
        pages.append(len(col))  # type: ignore[arg-type]
        if len(pages) >= 3:
            raise Loop()

    paged_emu.reset_stats()
    with pytest.raises(Loop):
        ctx.web.lists.get_by_title("N100").items.select(["Id"]).get_all(
            page_size=100, page_loaded=guard
        ).execute_query()
    queries = [e["query"] for e in paged_emu.journal() if e["route"] == "items.list"]
    assert queries[1].get("$skip") == "100" and queries[2].get("$skip") == "200"
    # Every page was the same first page: the collection keeps growing with duplicates.
    assert pages == [100, 200, 300]


def test_skip_is_ignored_on_items(paged_emu: SharePointEmulator, raw_paged: RawCall) -> None:
    first = raw_paged("GET", "/_api/web/lists/getbytitle('N101')/items?$top=10").json()["d"][
        "results"
    ]
    skipped = raw_paged("GET", "/_api/web/lists/getbytitle('N101')/items?$top=10&$skip=50").json()[
        "d"
    ]["results"]
    assert [r["Id"] for r in skipped] == [r["Id"] for r in first] == list(range(1, 11))


@pytest.fixture
def raw_paged(paged_emu: SharePointEmulator) -> RawCall:
    s = requests.Session()
    tok = paged_emu.issue_token()

    def call(
        method: str, path: str, accept: str = "application/json;odata=verbose"
    ) -> requests.Response:
        url = path if path.startswith("http") else paged_emu.site_url("x") + path
        return s.request(
            method, url, headers={"Authorization": f"Bearer {tok}", "Accept": accept}, timeout=30
        )

    return call


def test_next_link_is_absolute_and_carries_the_query(
    paged_emu: SharePointEmulator, raw_paged: RawCall
) -> None:
    r = raw_paged(
        "GET",
        "/_api/web/lists/getbytitle('N101')/items?$select=Id,Title&$filter=ID%20ge%205&$top=10",
    )
    assert r.status_code == 200
    d = r.json()["d"]
    nxt = d["__next"]
    lst = paged_emu.backend.get_site("x").list_by_title("N101")
    assert lst is not None
    assert nxt.startswith(
        f"{paged_emu.site_url('x')}/_api/Web/Lists(guid'{lst.id}')/Items?%24skiptoken=Paged%3DTRUE%26p_ID%3D14&%24top=10"
    )
    q = parse_qs(urlsplit(nxt).query)
    assert (
        q["$select"] == ["Id,Title"]
        and q["$filter"] == ["ID ge 5"]
        and q["$skiptoken"] == ["Paged=TRUE&p_ID=14"]
    )
    seen = [row["Id"] for row in d["results"]]
    while "__next" in d:
        d = raw_paged("GET", d["__next"]).json()["d"]
        seen += [row["Id"] for row in d["results"]]
        assert set(d["results"][0]) == {"__metadata", "Id", "Title"} if d["results"] else True
    assert seen == list(range(5, 102))


def test_no_next_link_on_last_page(raw_paged: RawCall) -> None:
    d = raw_paged("GET", "/_api/web/lists/getbytitle('N99')/items").json()["d"]
    assert len(d["results"]) == 99 and "__next" not in d
    d = raw_paged("GET", "/_api/web/lists/getbytitle('N101')/items").json()["d"]
    assert len(d["results"]) == 100 and "__next" in d


def test_default_page_is_100_and_5000_is_allowed(raw_paged: RawCall) -> None:
    assert (
        len(raw_paged("GET", "/_api/web/lists/getbytitle('N5001')/items").json()["d"]["results"])
        == 100
    )
    d = raw_paged("GET", "/_api/web/lists/getbytitle('N12000')/items?$top=5000").json()["d"]
    assert len(d["results"]) == 5000 and "p_ID%3D5000" in d["__next"]


def test_orderby_desc_pages_with_skiptoken(raw_paged: RawCall) -> None:
    d = raw_paged(
        "GET", "/_api/web/lists/getbytitle('N101')/items?$orderby=ID%20desc&$top=60"
    ).json()["d"]
    ids = [r["Id"] for r in d["results"]]
    d = raw_paged("GET", d["__next"]).json()["d"]
    ids += [r["Id"] for r in d["results"]]
    assert ids == list(range(101, 0, -1)) and "__next" not in d


def test_orderby_title_pages_with_field_in_skiptoken(raw_paged: RawCall) -> None:
    d = raw_paged("GET", "/_api/web/lists/getbytitle('N99')/items?$orderby=Title&$top=40").json()[
        "d"
    ]
    titles = [r["Title"] for r in d["results"]]
    assert "p_Title" in d["__next"]
    while "__next" in d:
        d = raw_paged("GET", d["__next"]).json()["d"]
        titles += [r["Title"] for r in d["results"]]
    assert titles == sorted((f"rad {i}" for i in range(99)), key=str.lower)
