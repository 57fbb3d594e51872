"""Drift: hand-made changes through raw REST, found by `sp-sync check` (run_check)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from sp_emulator import SharePointEmulator
from sp_sync.errors import DriftError
from sp_sync.schema.drift import check_drift, run_check
from sp_sync.schema.model import SchemaSet
from sp_sync.schema.provision import run_provision
from sp_sync.schema.site import SiteField, SiteList, SiteState

from .conftest import RawRest, make_client


@pytest.fixture
def emu() -> Iterator[SharePointEmulator]:
    with SharePointEmulator(sites=["x"]) as instance:
        yield instance


def test_unprovisioned_site_misses_every_list(emu: SharePointEmulator, schemas: SchemaSet) -> None:
    report = run_check(make_client(emu), schemas)
    assert [(f.kind, f.severity, f.list_title) for f in report.findings] == [
        ("list_missing", "breaking", t) for t in schemas.lists
    ]
    assert report.has_drift and len(report.breaking) == 3


def test_hand_made_drift_is_named(emu: SharePointEmulator, schemas: SchemaSet) -> None:
    client = make_client(emu)
    run_provision(client, schemas, apply=True)
    assert not run_check(client, schemas).has_drift

    rest = RawRest(emu)
    rest.add_field_xml(
        "Länskunskap",
        '<Field Type="Text" Name="Note2" StaticName="Note2" DisplayName="Anteckning"/>',
    )
    rest.set_field("Dialoger", "Year", Title="Verksamhetsår")
    rest.delete_field("Dialogåterkoppling", "DueDate")
    rest.delete_field("Länskunskap", "ValidUntil")
    rest.add_field_xml(
        "Länskunskap",
        '<Field Type="Text" Name="ValidUntil" StaticName="ValidUntil" DisplayName="Giltig till"/>',
    )
    status = rest.fields("Dialogåterkoppling")["Status"]["Choices"]["results"]
    rest.set_field("Dialogåterkoppling", "Status", Choices=[*status, "Avvaktar"])
    rest.set_field("Länskunskap", "County", Indexed=False)
    rest.set_field("Dialoger", "Phase", Required=False)
    rest.set_field("Dialoger", "Modified", Indexed=False)

    report = run_check(client, schemas)
    found = {(f.kind, f.list_title, f.column): f for f in report.findings}
    assert set(found) == {
        ("column_added", "Länskunskap", "Note2"),
        ("column_renamed", "Dialoger", "Year"),
        ("column_missing", "Dialogåterkoppling", "DueDate"),
        ("column_retyped", "Länskunskap", "ValidUntil"),
        ("choices_added", "Dialogåterkoppling", "Status"),
        ("index_dropped", "Länskunskap", "County"),
        ("required_changed", "Dialoger", "Phase"),
        ("index_dropped", "Dialoger", "Modified"),
    }
    assert {(f.list_title, f.column) for f in report.breaking} == {
        ("Dialogåterkoppling", "DueDate"),
        ("Länskunskap", "ValidUntil"),
    }
    missing = found[("column_missing", "Dialogåterkoppling", "DueDate")]
    assert missing.message_sv == (
        "Kolumnen Dialogåterkoppling.DueDate ('Sista datum') har tagits bort; "
        "rapporterna behöver den."
    )
    assert missing.message_en == (
        "The column Dialogåterkoppling.DueDate ('Sista datum') was removed; the reports need it."
    )
    retyped = found[("column_retyped", "Länskunskap", "ValidUntil")]
    assert (retyped.expected, retyped.actual) == ("date", "text")
    assert found[("choices_added", "Dialogåterkoppling", "Status")].message_en.endswith(
        "has choices not in the schema: Avvaktar."
    )
    renamed = found[("column_renamed", "Dialoger", "Year")]
    assert (renamed.severity, renamed.expected, renamed.actual) == (
        "harmless",
        "År",
        "Verksamhetsår",
    )

    text = report.format_text("sv")
    assert text.startswith("Avvikelser som stoppar rapporterna (2):")
    assert "Ofarliga avvikelser (6):" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["has_drift"] is True and data["breaking"] == 2 and data["harmless"] == 6
    assert {f["column"] for f in data["findings"]} >= {"DueDate", "ValidUntil", "Note2"}
    with pytest.raises(DriftError) as info:
        report.raise_if_breaking("en")
    assert "Dialogåterkoppling.DueDate" in str(info.value) and "ValidUntil" in str(info.value)
    assert info.value.exit_code == 4

    # Provisioning repairs what it can; the retype and the extra column need the flag.
    p, _result = run_provision(client, schemas, apply=True)
    assert {(s.action, s.list_title, s.column) for s in p.destructive} == {
        ("retype_column", "Länskunskap", "ValidUntil"),
        ("remove_column", "Länskunskap", "Note2"),
    }
    after = run_check(client, schemas)
    assert {(f.kind, f.column) for f in after.findings} == {
        ("column_added", "Note2"),
        ("column_retyped", "ValidUntil"),
    }
    run_provision(client, schemas, apply=True, allow_destructive=True)
    assert not run_check(client, schemas).has_drift


def test_check_drift_pure(schemas: SchemaSet) -> None:
    """A site state built by hand: only harmless drift keeps `breaking` empty."""
    from sp_sync.schema.site import SP_TYPES

    lists = {}
    for ls in schemas.lists.values():
        fields = {
            c.name: SiteField(
                c.name,
                c.title,
                SP_TYPES[c.type],
                c.type,
                c.required,
                c.indexed,
                c.choices,
                lookup_list=c.lookup_list,
            )
            for c in ls.columns
        }
        fields["Modified"] = SiteField(
            "Modified", "Modified", "DateTime", "datetime", indexed=True, builtin=True
        )
        lists[ls.title] = SiteList(ls.title, "id", ls.url, ls.description or "", fields)
    state = SiteState("http://site", lists)
    assert not check_drift(schemas, state).has_drift
    assert check_drift(schemas, state).format_text("en") == (
        "No drift: the site matches the schemas."
    )
    extra = dict(lists["Dialoger"].fields)
    extra["Extra"] = SiteField("Extra", "Extra", "Text", "text")
    lists["Dialoger"] = SiteList("Dialoger", "id", "Dialoger", "", extra)
    report = check_drift(schemas, SiteState("http://site", lists))
    assert [(f.kind, f.severity, f.column) for f in report.findings] == [
        ("column_added", "harmless", "Extra")
    ]
    assert report.has_drift and report.breaking == ()
    report.raise_if_breaking()  # harmless drift does not stop a run


def test_drift_check_reads_each_list_with_its_fields_in_one_request(
    emu: SharePointEmulator, schemas: SchemaSet
) -> None:
    """The check runs before every night's sync: one list read per list, which also says
    whether the list exists and brings its fields (`$expand=Fields`), nothing else."""
    client = make_client(emu)
    run_provision(client, schemas, apply=True)
    client.get_web()  # the client's digest and token are in hand, as at a night's start
    emu.reset_stats()
    assert not run_check(client, schemas).has_drift
    n = len(schemas.lists)
    assert emu.stats()["routes"] == {"lists.get": n}
    site = emu.backend.get_site("x")
    emu.backend.delete_list(site, emu.backend.get_list(site, title="Dialoger"))
    emu.reset_stats()
    report = run_check(client, schemas)
    missing = [f.list_title for f in report.breaking if f.kind == "list_missing"]
    assert missing == ["Dialoger"]
    assert emu.stats()["routes"] == {"lists.get": n}
