"""OData literals can never break or widen a filter: `Title eq <literal(t)>`, sent through sp_sync's
own client to the emulator, returns exactly the items titled t (SharePoint compares text
case-insensitively, so "exactly" means equal under casefold) — whatever quotes, operators,
URL metacharacters or non-ASCII text t holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sp_emulator import SharePointEmulator
from sp_sync.schema import load_schemas
from sp_sync.sharepoint.odata import literal
from tests.hostile.helpers import hostile, short_hostile_text
from tests.sync.helpers import client_for, create_lists

LIST = "Dialoger"

#: Titles built to escape a naive quote: each would widen `Title eq '…'` to every item.
INJECTIONS = (
    "'",
    "''",
    "O'Brien",
    "' or 1 eq 1 or Title eq '",
    "x' or substringof('',Title) or '",
    "') or (ID gt 0",
    "' or ID gt 0 and '' eq '",
    "\\'",
    "%27 or 1 eq 1",
    "a&$top=1",
    "a#b",
    "a?b",
    "a+b",
    "a%20b",
    "Åsa",
    "ÅSA",
    "åsa",
    "A\u030asa",
    "日本語",
    "مرحبا",
    "👩‍👩‍👧",
    "\u202e'",
    "＇",
    "null",
    "true",
    " leading",
    "trailing ",
    "",
)


@pytest.fixture(scope="module")
def emu() -> Iterator[SharePointEmulator]:
    with SharePointEmulator(sites=["x"]) as e:
        create_lists(e, load_schemas())
        e.backend.bulk_add_items(
            "x", LIST, [{"Title": t, "County": "Skåne län"} for t in INJECTIONS]
        )
        yield e


@pytest.fixture(scope="module")
def client(emu: SharePointEmulator) -> Any:
    return client_for(emu)


def _titles(emu: SharePointEmulator) -> dict[int, str]:
    backend = emu.backend
    lst = backend.get_list(backend.get_site("x"), title=LIST)
    return {int(i): it.values.get("Title") or "" for i, it in lst.items.items()}


def _query(client: Any, title: str) -> set[int]:
    ids: set[int] = set()
    for page in client.iter_item_pages(
        LIST, select=["Title"], extra_filter=f"Title eq {literal(title)}"
    ):
        ids |= {int(i["ID"]) for i in page.items}
    return ids


def _expected(emu: SharePointEmulator, title: str) -> set[int]:
    want = title.casefold()
    return {i for i, t in _titles(emu).items() if t.casefold() == want}


@pytest.mark.parametrize("title", INJECTIONS)
def test_injection_titles_match_exactly(emu: SharePointEmulator, client: Any, title: str) -> None:
    got = _query(client, title)
    assert got == _expected(emu, title)
    if title:
        assert got, "the item with this title must be found"
    assert len(got) < len(_titles(emu)), "the filter was widened to every item"


@hostile(40)
@given(title=short_hostile_text(120))
def test_any_title_matches_exactly(emu: SharePointEmulator, client: Any, title: str) -> None:
    emu.backend.bulk_add_items("x", LIST, [{"Title": title, "County": "Uppsala län"}])
    assert _query(client, title) == _expected(emu, title)


@given(st.text(max_size=30))
@hostile(60)
def test_literal_is_one_quoted_token(text: str) -> None:
    lit = literal(text)
    assert lit.startswith("'") and lit.endswith("'")
    inner = lit[1:-1]
    # Every quote inside is doubled, so the literal cannot end early.
    assert inner.replace("''", "").count("'") == 0
    assert inner.replace("''", "'") == text
