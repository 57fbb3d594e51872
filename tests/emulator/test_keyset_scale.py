"""Keyset pages (`$filter=ID gt last`, `$orderby=ID`) cost the page, not the list.

A filter on ID alone in ID order is answered by walking the ids from the paging position and
stopping one match past the page (`item_query._id_page`). These tests check that it gives exactly
the page the full evaluation gives (every row filtered, ordered, cut after the skiptoken, `$top`
taken) on a list with holes, in both orders, and that it evaluates only about one page of rows
whatever the list's length (counted, not timed).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sp_emulator.errors import SPError
from sp_emulator.item_query import parse_item_query, run_item_query
from sp_emulator.model import Backend, Item, Site, SPList
from sp_emulator.query import parse_filter


@pytest.fixture(scope="module")
def holey() -> Iterator[tuple[Backend, Site, SPList]]:
    """A 12,000-item list (above the list view threshold) with every seventh item deleted."""
    backend = Backend()
    site = backend.create_site("x")
    lst = backend.create_list(site, "Holey")
    backend.bulk_add_items(site, "Holey", [{"Title": f"rad {i}"} for i in range(12_000)])
    for i in range(7, 12_001, 7):
        backend.delete_item(site, lst, lst.items[i])
    yield backend, site, lst


def _expected(
    backend: Backend, site: Site, lst: SPList, text: str, top: int, after: int | None, desc: bool
) -> tuple[list[int], bool]:
    """The page by brute force: every row evaluated, sorted, cut after `after`, `top` taken."""
    expr = parse_filter(text)
    rows = sorted(
        (it.id for it in lst.items.values() if expr.evaluate(backend.row(site, lst, it))),
        reverse=desc,
    )
    if after is not None:
        rows = [i for i in rows if (i < after if desc else i > after)]
    return rows[:top], len(rows) > top


def _page(
    backend: Backend, site: Site, lst: SPList, options: dict[str, str]
) -> tuple[list[int], str | None]:
    page = run_item_query(backend, site, lst, parse_item_query(options))
    return [it.id for it in page.items], page.skiptoken


FILTERS = [
    "ID gt 0",
    "ID gt 5000",
    "ID ge 7",
    "ID gt 11990",
    "ID gt 20000",
    "ID lt 300",
    "ID le 5001 and ID gt 4000",
    "ID gt 100 and ID lt 90",
    "ID eq 14 or ID eq 15 or ID eq 16",
    "ID gt 10 and not (ID eq 11)",
    "ID ne 1",
    "id gt 3",
    "(ID gt 50 and ID lt 60) or ID gt 11995",
]


@pytest.mark.parametrize("text", FILTERS)
@pytest.mark.parametrize("desc", [False, True])
@pytest.mark.parametrize(("top", "after"), [(5000, None), (100, 4999), (3, 50), (0, None)])
def test_id_filter_pages_equal_the_full_evaluation(
    holey: tuple[Backend, Site, SPList], text: str, desc: bool, top: int, after: int | None
) -> None:
    backend, site, lst = holey
    options = {"$filter": text, "$orderby": "ID desc" if desc else "ID", "$top": str(top)}
    if after is not None:
        options["$skiptoken"] = f"Paged=TRUE&p_ID={after}"
    got, token = _page(backend, site, lst, options)
    want, more = _expected(backend, site, lst, text, top, after, desc)
    assert got == want
    assert token == (f"Paged=TRUE&p_ID={want[-1]}" if more and want and top > 0 else None)


def test_keyset_read_visits_every_row_once(holey: tuple[Backend, Site, SPList]) -> None:
    """A full keyset read as sync engines do it returns every live row once, in order."""
    backend, site, lst = holey
    seen: list[int] = []
    last = 0
    while True:
        ids, token = _page(
            backend, site, lst, {"$filter": f"ID gt {last}", "$orderby": "ID", "$top": "5000"}
        )
        seen += ids
        if token is None:
            break
        last = ids[-1]
    assert seen == sorted(lst.items)
    assert len(seen) == 12_000 - 12_000 // 7


class _Counting(Backend):
    """A backend that counts the rows the filter looks at."""

    rows_seen = 0

    def row(self, site: Site, lst: SPList, item: Item):  # type: ignore[no-untyped-def]
        self.rows_seen += 1
        return super().row(site, lst, item)


@pytest.mark.parametrize("n", [10_000, 60_000])
def test_a_keyset_page_evaluates_one_page_of_rows_whatever_the_list(n: int) -> None:
    backend = _Counting()
    site = backend.create_site("x")
    lst = backend.create_list(site, "Big")
    backend.bulk_add_items(site, "Big", ({"Title": f"t{i}"} for i in range(n)))
    for last, desc in ((0, False), (n // 2, False), (n - 300, False), (0, True)):
        backend.rows_seen = 0
        options = {"$filter": f"ID gt {last}", "$orderby": "ID desc" if desc else "ID"}
        options["$top"] = "100"
        ids, _ = _page(backend, site, lst, options)
        assert len(ids) == 100
        # One row past the page tells whether more follow; nothing else is evaluated.
        assert backend.rows_seen <= 101


@pytest.mark.parametrize("after", [None, "Paged=TRUE&p_ID=99999"])
def test_a_type_error_in_an_id_filter_is_still_a_400(
    holey: tuple[Backend, Site, SPList], after: str | None
) -> None:
    """`ID gt 'abc'` is SharePoint's 400 even when the paging position is past every row."""
    backend, site, lst = holey
    options = {"$filter": "ID gt 'abc'", "$orderby": "ID", "$top": "10"}
    if after:
        options["$skiptoken"] = after
    with pytest.raises(SPError) as err:
        _page(backend, site, lst, options)
    assert err.value.status == 400


def test_changes_after_a_token_equal_the_full_scan() -> None:
    """The change log is entered by bisection on the token's number: same answer as a scan of
    every change, for every token, with adds, updates, deletes and field changes interleaved
    over two lists (so each list's numbers have gaps)."""
    from sp_emulator.model import Field

    backend = Backend()
    site = backend.create_site("x")
    a, b = backend.create_list(site, "A"), backend.create_list(site, "B")
    for i in range(40):
        lst = a if i % 3 else b
        item = backend.add_item(site, lst, {"Title": f"t{i}"})
        if i % 4 == 0:
            backend.update_item(site, lst, item, {"Title": f"u{i}"}, if_match=None)
        if i % 9 == 0:
            backend.delete_item(site, lst, item)
        if i == 20:
            backend.add_field(site, a, Field("", "Extra", "Extra", "Text"), unique_name=True)
    flags = {k: True for k in ("Item", "Field", "Add", "Update", "DeleteObject")}
    # A token's ticks only count when its number is negative (then every change is newer).
    flags["IgnoreStartTokenNotFoundError"] = True
    ticks = 0
    top = backend.change_number
    for lst in (a, b):
        for number in range(-1, top + 2):
            token = f"1;3;{lst.id};{ticks};{number}"
            got = backend.get_changes(
                [lst], {**flags, "ChangeTokenStart": {"StringValue": token}}, "3", lst.id
            )
            want = [c for c in lst.changes if number < 0 or c.number > number]
            assert [c.number for c in got] == [c.number for c in want]


def test_the_server_process_makes_full_collections_rare() -> None:
    """`python -m sp_emulator` raises only the collector's third threshold (full passes); the
    young generations keep their defaults, and nothing else is changed."""
    import gc

    from sp_emulator.__main__ import FULL_COLLECTION_THRESHOLD, _tune_collector

    before = gc.get_threshold()
    try:
        _tune_collector()
        assert gc.get_threshold() == (before[0], before[1], FULL_COLLECTION_THRESHOLD)
        assert gc.isenabled()
    finally:
        gc.set_threshold(*before)
