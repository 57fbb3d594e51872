"""List view threshold and lookup column threshold, with SharePoint's 500 bodies."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests
from office365.runtime.client_request_exception import ClientRequestException

from sp_emulator import SharePointEmulator
from sp_emulator.model import field_from_schema_xml
from tests.emulator.conftest import make_client

LVT = "-2147024860, Microsoft.SharePoint.SPQueryThrottledException"
LOOKUP = "-2147024749, Microsoft.SharePoint.SPQueryThrottledException"


@pytest.fixture(scope="module")
def emu() -> Iterator[SharePointEmulator]:
    with SharePointEmulator(sites=["x"]) as emu:
        b = emu.backend
        site = b.get_site("x")
        big = b.create_list(site, "Stor")
        b.add_field(
            site,
            big,
            field_from_schema_xml(
                '<Field Type="Text" Name="County" DisplayName="Län" Indexed="TRUE"/>'
            ),
        )
        b.add_field(
            site,
            big,
            field_from_schema_xml('<Field Type="Text" Name="Note1" DisplayName="Anteckning"/>'),
        )
        b.bulk_add_items(
            "x",
            "Stor",
            [
                {"Title": f"r{i}", "County": "Skåne" if i < 6000 else f"L{i % 20}", "Note1": "n"}
                for i in range(7000)
            ],
        )
        small = b.create_list(site, "Liten")
        b.add_field(
            site,
            small,
            field_from_schema_xml('<Field Type="Text" Name="Note1" DisplayName="Anteckning"/>'),
        )
        b.bulk_add_items("x", "Liten", [{"Title": f"r{i}", "Note1": "n"} for i in range(50)])
        target = b.create_list(site, "Mål")
        b.bulk_add_items("x", "Mål", [{"Title": "m"}])
        many = b.create_list(site, "Uppslag")
        for i in range(11):
            b.add_field(
                site,
                many,
                field_from_schema_xml(
                    f'<Field Type="Lookup" Name="Ref{i}" DisplayName="Ref{i}" List="{{{target.id}}}" ShowField="Title"/>'
                ),
            )
        b.bulk_add_items("x", "Uppslag", [{"Title": "u", "Ref0Id": 1}])
        yield emu


@pytest.fixture
def get(emu: SharePointEmulator) -> Callable[[str], requests.Response]:
    s = requests.Session()
    tok = emu.issue_token()
    return lambda path: s.get(
        emu.site_url("x") + path,
        headers={"Authorization": f"Bearer {tok}", "Accept": "application/json;odata=verbose"},
    )


@pytest.mark.parametrize(
    "query",
    [
        "$filter=Note1 eq 'n'",
        "$orderby=Note1",
        "$top=5001",
        "$filter=County eq 'Skåne'",  # indexed, but still matches more than 5,000 rows
        "$filter=ID gt 10 and Note1 eq 'n'",
    ],
)
def test_threshold_errors_on_big_list(get: Callable[[str], requests.Response], query: str) -> None:
    r = get(f"/_api/web/lists/getbytitle('Stor')/items?{query}")
    assert r.status_code == 500
    err = r.json()["error"]
    assert err["code"] == LVT
    assert (
        err["message"]["value"]
        == "The attempted operation is prohibited because it exceeds the list view threshold."
    )


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("$filter=County eq 'L7'&$top=5000", 50),
        ("$orderby=County&$top=10", 10),
        ("$filter=ID gt 6990", 10),
        ("$filter=ID gt 0&$top=5000", 5000),
        ("$orderby=ID desc&$top=3", 3),
        ("$top=5000", 5000),
    ],
)
def test_no_threshold_error_on_indexed_columns_and_id(
    get: Callable[[str], requests.Response], query: str, count: int
) -> None:
    r = get(f"/_api/web/lists/getbytitle('Stor')/items?{query}")
    assert r.status_code == 200, r.text[:300]
    assert len(r.json()["d"]["results"]) == count


def test_small_list_never_throttles(get: Callable[[str], requests.Response]) -> None:
    r = get(
        "/_api/web/lists/getbytitle('Liten')/items?$filter=Note1 eq 'n'&$orderby=Note1 desc&$top=6000"
    )
    assert r.status_code == 200 and len(r.json()["d"]["results"]) == 50


def test_threshold_error_through_the_client(emu: SharePointEmulator) -> None:
    ctx = make_client(emu)
    with pytest.raises(ClientRequestException) as info:
        ctx.web.lists.get_by_title("Stor").items.filter("Note1 eq 'n'").get().execute_query()
    assert info.value.code == LVT
    assert type(info.value).__name__ == "SPQueryThrottledException"


def test_lookup_threshold(get: Callable[[str], requests.Response]) -> None:
    # 11 lookups + Author + Editor = 13 lookup-type columns when nothing is selected.
    r = get("/_api/web/lists/getbytitle('Uppslag')/items")
    assert r.status_code == 500 and r.json()["error"]["code"] == LOOKUP
    # Selecting 11 lookups and Author: 12 is still allowed.
    sel = ",".join(f"Ref{i}Id" for i in range(11)) + ",AuthorId"
    r = get(f"/_api/web/lists/getbytitle('Uppslag')/items?$select={sel}")
    assert r.status_code == 200 and r.json()["d"]["results"][0]["Ref0Id"] == 1
    r = get(
        f"/_api/web/lists/getbytitle('Uppslag')/items?$select={sel},Editor/Title&$expand=Editor"
    )
    assert r.status_code == 500 and r.json()["error"]["code"] == LOOKUP
