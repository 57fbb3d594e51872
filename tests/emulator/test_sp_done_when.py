"""Issue 2's "done when", through the pinned office365 client over real HTTP."""

from __future__ import annotations

import pytest
from office365.sharepoint.client_context import ClientContext
from office365.sharepoint.fields.creation_information import FieldCreationInformation
from office365.sharepoint.fields.type import FieldType
from office365.sharepoint.lists.creation_information import ListCreationInformation
from office365.sharepoint.lists.templates.type import ListTemplateType

from sp_emulator import SharePointEmulator


@pytest.mark.slow
def test_client_creates_list_adds_fields_writes_and_pages_12000_items(
    emulator: SharePointEmulator, client: ClientContext
) -> None:
    lst = client.web.lists.add(
        ListCreationInformation("Länskunskap", "", ListTemplateType.GenericList)
    ).execute_query()
    lst.fields.add_field(
        FieldCreationInformation("Län", FieldType.Choice, Choices=["Skåne", "Västra Götaland"])
    ).execute_query()
    lst.fields.create_field_as_xml(
        '<Field Type="Number" Name="Poang" DisplayName="Poäng" Indexed="TRUE"/>'
    ).execute_query()
    # 300 items through $batch (queue_records + execute_batch), the rest seeded in bulk.
    lst.items.queue_records(
        [{"Title": f"rad {i}", "L_x00e4_n": "Skåne", "Poang": i} for i in range(300)]
    )
    client.execute_batch()
    emulator.backend.bulk_add_items(
        "x",
        "Länskunskap",
        [
            {"Title": f"rad {i}", "L_x00e4_n": "Västra Götaland", "Poang": i}
            for i in range(300, 12000)
        ],
    )
    emulator.reset_stats()
    items = (
        client.web.lists.get_by_title("Länskunskap")
        .items.select(["Id", "Title", "Poang"])
        .get_all(page_size=5000)
        .execute_query()
    )
    assert [it.properties["Id"] for it in items] == list(range(1, 12001))
    assert items[299].properties["Title"] == "rad 299" and items[11999].properties["Poang"] == 11999
    assert emulator.stats()["routes"]["items.list"] == 3
