"""Provisioning: plan/apply against the emulator through the real client, plus pure plan tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sp_emulator import SharePointEmulator
from sp_sync.errors import PermissionDeniedError
from sp_sync.schema import SchemaSet, load_schemas
from sp_sync.schema.provision import field_schema_xml, plan, run_provision
from sp_sync.schema.site import SiteState, read_site_state

from .conftest import RawRest, edit, make_client

SP_TYPE = {
    "text": "Text",
    "note": "Note",
    "choice": "Choice",
    "multi_choice": "MultiChoice",
    "number": "Number",
    "boolean": "Boolean",
    "date": "DateTime",
    "datetime": "DateTime",
    "person": "User",
    "lookup": "Lookup",
    "multi_lookup": "LookupMulti",
    "url": "URL",
}


@pytest.fixture
def emu() -> Iterator[SharePointEmulator]:
    with SharePointEmulator(sites=["x"]) as instance:
        yield instance


def writes(emu: SharePointEmulator) -> list[str]:
    """Non-GET requests in the journal, except the form digest."""
    return [
        f"{e['method']} {e['path']}"
        for e in emu.journal()
        if e["method"] != "GET" and "contextinfo" not in e["path"].lower()
    ]


# ----------------------------------------------------------------------------- pure


def test_plan_for_empty_site_orders_lists_and_lookups(schemas: SchemaSet) -> None:
    p = plan(schemas, SiteState("http://site", {}))
    assert [s.list_title for s in p.lists_to_create] == list(schemas.lists)
    assert p.lists_to_create[-1].list_title == "Dialogåterkoppling"
    assert p.lists_to_create[0].detail["url"] == schemas[p.lists_to_create[0].list_title].url
    added = {(s.list_title, s.column) for s in p.columns_to_add}
    expected = {
        (ls.title, c.name) for ls in schemas.lists.values() for c in ls.columns if c.name != "Title"
    }
    assert added == expected
    assert {(s.list_title, s.column) for s in p.indexes_to_add} == {
        (t, "Modified") for t in schemas.lists
    }
    assert {(s.list_title, s.changes[0].new) for s in p.columns_to_change} == {
        (t, "Rubrik") for t in schemas.lists
    }
    assert p.destructive == ()
    assert not p.empty
    assert "Listor att skapa (3):" in p.format_text()
    assert "Lists to create (3):" in p.format_text("en")
    assert p.to_dict()["steps"][0] == {
        "action": "create_list",
        "list": p.lists_to_create[0].list_title,
        "detail": p.lists_to_create[0].detail,
        "destructive": False,
    }


def test_field_xml_has_exact_names_and_attributes(schemas: SchemaSet) -> None:
    county = schemas["Dialoger"].column("County")
    xml = field_schema_xml(county)
    assert xml.startswith(
        '<Field Type="Choice" Name="County" StaticName="County" DisplayName="Län" '
        'Required="TRUE" Indexed="TRUE" Format="Dropdown" FillInChoice="FALSE"><CHOICES>'
        "<CHOICE>Norrbottens län</CHOICE>"
    )
    assert xml.count("<CHOICE>") == 21
    fb = schemas["Dialogåterkoppling"]
    assert 'Format="DateOnly"' in field_schema_xml(fb.column("DueDate"))
    assert 'RichText="TRUE"' in field_schema_xml(fb.column("Feedback"))
    assert 'UserSelectionMode="PeopleOnly"' in field_schema_xml(fb.column("Owner"))
    lookup = field_schema_xml(fb.column("LinkedKnowledge"), lookup_list_id="abc")
    assert 'Type="LookupMulti"' in lookup and 'Mult="TRUE"' in lookup
    assert 'List="{abc}" ShowField="Title"' in lookup
    assert "<Default>Ny</Default>" in field_schema_xml(fb.column("Status"))
    with pytest.raises(ValueError):
        field_schema_xml(fb.column("Dialogue"))


# ----------------------------------------------------------------------------- emulator


def test_provision_empty_site_then_no_changes(emu: SharePointEmulator, schemas: SchemaSet) -> None:
    client = make_client(emu)
    first, result = run_provision(client, schemas, apply=True)
    assert result is not None and len(result.applied) == len(first.steps) and not result.skipped

    rest = RawRest(emu)
    ids = {}
    for ls in schemas.lists.values():
        info = rest.call(
            "GET",
            f"/_api/web/lists/GetByTitle('{ls.title}')?$select=Id,Description,RootFolder/Name"
            "&$expand=RootFolder",
        )
        ids[ls.title] = info["Id"].strip("{}").lower()
        assert info["RootFolder"]["Name"] == ls.url
        assert info["Description"] == ls.description
    for ls in schemas.lists.values():
        fields = rest.fields(ls.title)
        assert fields["Modified"]["Indexed"] is True
        for col in ls.columns:
            f = fields[col.name]
            assert f["Title"] == col.title, col.name
            assert f["TypeAsString"] == SP_TYPE[col.type], col.name
            assert f["Required"] is col.required, col.name
            assert f["Indexed"] is col.indexed, col.name
            if col.type in ("choice", "multi_choice"):
                assert f["Choices"]["results"] == list(col.choices), col.name
            if col.type in ("date", "datetime"):
                assert f["DisplayFormat"] == (0 if col.type == "date" else 1), col.name
            if col.type == "note":
                assert f["RichText"] is col.rich_text, col.name
            if col.is_lookup and col.lookup_list is not None:
                assert f["LookupList"].strip("{}").lower() == ids[col.lookup_list], col.name
                assert f["AllowMultipleValues"] is (col.type == "multi_lookup")
            if col.default is not None:
                assert f["DefaultValue"] == col.default
    # The County column is indexed on every list (the 5,000-item threshold).
    assert all(rest.fields(t)["County"]["Indexed"] for t in schemas.lists)

    emu.reset_stats()
    second, again = run_provision(client, schemas, apply=True)
    assert second.empty and again is not None and not again.applied
    assert second.format_text() == "Inga ändringar."
    assert again.format_text("en") == "No changes."
    assert writes(emu) == []


def test_evolved_schema_plans_exactly_the_changes(
    emu: SharePointEmulator, schemas: SchemaSet, schema_dir: Path
) -> None:
    client = make_client(emu)
    run_provision(client, schemas, apply=True)

    edit(
        schema_dir / "reference.yaml",
        "  - {name: Övrigt, en: Other}",
        "  - {name: Kultur, en: Culture}\n  - {name: Övrigt, en: Other}",
    )
    edit(
        schema_dir / "dialoger.yaml",
        "    title: Planerat datum\n    title_en: Planned date\n    type: date\n",
        "    title: Planerat datum\n    title_en: Planned date\n    type: date\n"
        "    required: true\n    indexed: true\n",
    )
    edit(
        schema_dir / "lanskunskap.yaml",
        "  - name: ValidUntil",
        "  - name: Source\n    title: Källa\n    title_en: Source\n    type: url\n"
        "  - name: ValidUntil",
    )
    evolved = load_schemas(schema_dir)

    p, _ = run_provision(client, evolved, apply=False)
    assert p.destructive == ()
    assert [(s.action, s.list_title, s.column) for s in p.steps] == [
        ("change_column", "Dialoger", "PlannedDate"),
        ("add_index", "Dialoger", "PlannedDate"),
        ("change_column", "Länskunskap", "SubjectArea"),
        ("add_column", "Länskunskap", "Source"),
        ("change_column", "Dialogåterkoppling", "SubjectArea"),
    ]
    assert [(c.attribute, c.old, c.new) for c in p.steps[0].changes] == [("required", False, True)]
    area = p.steps[2].changes[0]
    assert area.attribute == "choices" and [c for c in area.new if c not in area.old] == ["Kultur"]
    assert "+Kultur" in p.format_text()

    _, result = run_provision(client, evolved, apply=True)
    assert result is not None and len(result.applied) == 5
    fields = RawRest(emu).fields("Dialoger")
    assert fields["PlannedDate"]["Required"] is True and fields["PlannedDate"]["Indexed"] is True
    kn = RawRest(emu).fields("Länskunskap")
    assert kn["Source"]["TypeAsString"] == "URL" and kn["Source"]["Title"] == "Källa"
    assert "Kultur" in kn["SubjectArea"]["Choices"]["results"]
    assert run_provision(client, evolved, apply=False)[0].empty


def test_destructive_changes_need_the_flag(
    emu: SharePointEmulator, schemas: SchemaSet, schema_dir: Path
) -> None:
    client = make_client(emu)
    run_provision(client, schemas, apply=True)
    emu.backend.bulk_add_items(
        "x",
        "Dialogåterkoppling",
        [
            {
                "Title": "a",
                "County": "Skåne län",
                "DialogueDate": "2025-01-01T00:00:00Z",
                "ReceivingDepartment": "Företag",
                "Status": "Ingen åtgärd",
            },
        ],
    )
    # Remove a column, a choice still in use, an unused choice; retype a column.
    text = (schema_dir / "lanskunskap.yaml").read_text(encoding="utf-8")
    start = text.index("  - name: Priority")
    end = text.index("  - name: ValidUntil")
    (schema_dir / "lanskunskap.yaml").write_text(text[:start] + text[end:], encoding="utf-8")
    edit(schema_dir / "lanskunskap.yaml", "      - {name: Möjlighet, en: Opportunity}\n", "")
    edit(
        schema_dir / "dialogaterkoppling.yaml", "      - {name: Ingen åtgärd, en: No action}\n", ""
    )
    edit(
        schema_dir / "dialoger.yaml",
        "    type: number\n    min: 2000\n    max: 2100\n    decimals: 0\n",
        "    type: text\n",
    )
    evolved = load_schemas(schema_dir)

    p, result = run_provision(client, evolved, apply=True)
    assert [(s.action, s.list_title, s.column) for s in p.destructive] == [
        ("retype_column", "Dialoger", "Year"),
        ("remove_column", "Länskunskap", "Priority"),
        ("remove_choices", "Dialogåterkoppling", "Status"),
    ]
    assert p.destructive[2].detail["in_use"] == ("Ingen åtgärd",)
    # The unused choice goes without the flag.
    assert [(s.action, s.column) for s in p.steps] == [("change_column", "EntryType")]
    assert result is not None and result.skipped == p.destructive
    assert "Hoppade över 3 destruktiva" in result.format_text()
    rest = RawRest(emu)
    assert "Priority" in rest.fields("Länskunskap")
    assert rest.fields("Dialoger")["Year"]["TypeAsString"] == "Number"
    assert "Ingen åtgärd" in rest.fields("Dialogåterkoppling")["Status"]["Choices"]["results"]
    assert "Möjlighet" not in rest.fields("Länskunskap")["EntryType"]["Choices"]["results"]

    p2, result2 = run_provision(client, evolved, apply=True, allow_destructive=True)
    assert p2.steps == () and result2 is not None and len(result2.applied) == 3
    assert "Priority" not in rest.fields("Länskunskap")
    assert rest.fields("Dialoger")["Year"]["TypeAsString"] == "Text"
    assert rest.fields("Dialogåterkoppling")["Status"]["Choices"]["results"] == [
        "Ny",
        "Pågående",
        "Klar",
    ]
    assert run_provision(client, evolved, apply=False)[0].empty


def test_read_only_app_gets_a_clear_sentence(emu: SharePointEmulator, schemas: SchemaSet) -> None:
    emu.grant("reader-app", "x", "read")
    client = make_client(emu, emu.issue_token(app_id="reader-app"))
    p, _ = run_provision(client, schemas, apply=False)  # planning only reads
    assert len(p.lists_to_create) == 3
    with pytest.raises(PermissionDeniedError) as info:
        run_provision(client, schemas, apply=True)
    assert str(info.value).startswith(
        f"provisioning needs the 'manage' or 'fullcontrol' role on {emu.site_url('x')} through Sites.Selected "
        "(the nightly run itself needs only 'write')"
    )
    assert info.value.status == 403
    assert read_site_state(client, schemas).lists == {}
