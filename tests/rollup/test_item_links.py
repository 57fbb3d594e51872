"""Item links come from the list's real URL on the site, not from the schema (issue 12 item 8)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sp_emulator import SharePointEmulator
from sp_emulator.model import field_from_schema_xml
from sp_sync.schema import load_schemas
from sp_sync.state.local import LocalStateStore
from sp_sync.sync.engine import sync_list
from tests.sync.helpers import client_for, field_xml

SCHEMAS = load_schemas()
DIALOGER = SCHEMAS["Dialoger"]
SITE_KEY = "emulator_sites_x"
#: A list someone created by hand, so its URL is not the schema's "Dialoger".
HAND_MADE_URL = "Dialogplan2026"


@pytest.fixture
def emu() -> Iterator[SharePointEmulator]:
    with SharePointEmulator(sites=["x"]) as e:
        backend = e.backend
        site = backend.get_site("x")
        lst = backend.create_list(site, DIALOGER.title, url_name=HAND_MADE_URL)
        for col in DIALOGER.columns:
            if col.name != "Title":
                backend.add_field(
                    site, lst, field_from_schema_xml(field_xml(col, {})), unique_name=False
                )
        yield e


def _row(i: int) -> dict[str, Any]:
    return {"Title": f"Dialog {i}", "County": "Skåne län", "Year": 2026, "Phase": "Förberedelse"}


def _sync(emu: Any, store: LocalStateStore) -> Any:
    token = emu.issue_token(lifetime=3600)
    client = client_for(emu, token)
    return sync_list(
        client,
        store,
        SITE_KEY,
        DIALOGER,
        web=client.get_web(),
        users=client.get_site_users(),
        now=datetime.now(UTC),
        schema_set=SCHEMAS,
    )


def test_links_use_the_lists_url_as_the_site_reports_it(emu: Any, tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path / "state")
    emu.backend.bulk_add_items("x", DIALOGER.title, [_row(i) for i in range(3)])
    assert _sync(emu, store).mode == "full"
    # An incremental run (no list read) keeps building links from the stored real URL.
    emu.backend.bulk_add_items("x", DIALOGER.title, [_row(9)])
    assert _sync(emu, store).mode == "incremental"
    state = store.read_list_state(SITE_KEY, DIALOGER.title)
    assert state is not None and len(state.rows) == 4
    site_url = emu.site_url("x")
    for item_id, url in zip(state.rows["ID"], state.rows["_item_url"], strict=True):
        assert url == f"{site_url}/Lists/{HAND_MADE_URL}/DispForm.aspx?ID={item_id}"
