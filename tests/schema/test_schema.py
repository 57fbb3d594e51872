"""Loading list_schemas/: the shipped files, the API, and one test per promised error message."""

from __future__ import annotations

from pathlib import Path

import pytest

from sp_sync.errors import SchemaError
from sp_sync.schema import County, SchemaSet, default_schema_dir, label, load_schemas

from .conftest import edit, line_of


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(SchemaError) as info:
        load_schemas(directory)
    return info.value.problems


def only_problem(directory: Path) -> str:
    problems = problems_of(directory)
    assert len(problems) == 1, problems
    return problems[0]


# ----------------------------------------------------------------------------- shipped files


def test_lists_load_in_dependency_order(schemas: SchemaSet) -> None:
    titles = list(schemas.lists)
    assert sorted(titles) == ["Dialoger", "Dialogåterkoppling", "Länskunskap"]
    # Dialogåterkoppling looks up both others, so it must come last.
    assert titles[-1] == "Dialogåterkoppling"


def test_reference_data_matches_domain(schemas: SchemaSet) -> None:
    ref = schemas.reference
    assert len(ref.counties) == 21
    by_team = ref.counties_by_team()
    assert {t: len(c) for t, c in by_team.items()} == {"Norr": 7, "Mellan": 7, "Södra": 7}
    assert ref.county("AB") == County("Stockholms län", "AB", "Mellan")
    assert ref.county("Skåne län") == County("Skåne län", "M", "Södra")
    assert [p.name for p in ref.phases] == [
        "Förberedelse",
        "Internt inspel",
        "Dialog",
        "Återkoppling",
        "Uppföljning",
    ]
    assert [p.number for p in ref.phases] == [1, 2, 3, 4, 5]
    assert len(ref.subject_areas) == 11
    assert [d.name for d in ref.departments] == [
        "Företag",
        "Regioner",
        "Analys",
        "Kommunikation",
        "Verksamhetsstöd",
    ]


def test_columns_typed_and_choices_resolved(schemas: SchemaSet) -> None:
    lk = schemas["Länskunskap"]
    county = lk.column("County")
    assert (county.type, county.required, county.indexed, county.title) == (
        "choice",
        True,
        True,
        "Län",
    )
    assert county.choice_ref == "counties"
    assert len(county.choices) == 21 and county.choices[0] == "Norrbottens län"
    assert lk.county_column is county
    assert lk.column("Description").rich_text is True
    assert lk.column("Priority").default == "Medel"
    fb = schemas["Dialogåterkoppling"]
    assert (fb.column("Dialogue").type, fb.column("Dialogue").lookup_list) == ("lookup", "Dialoger")
    assert fb.column("LinkedKnowledge").type == "multi_lookup"
    assert fb.column("LinkedKnowledge").lookup_list == "Länskunskap"
    assert schemas["Dialoger"].column("Phase").choices[2] == "Dialog"
    assert schemas["Dialoger"].column("Year").min == 2000
    assert {r.kind for r in fb.rules} == {"date_order", "same_county"}


def test_labels_in_swedish_and_english(schemas: SchemaSet) -> None:
    fb = schemas["Dialogåterkoppling"]
    assert fb.label() == "Dialogåterkoppling"
    assert fb.label("en") == "Dialogue feedback"
    due = fb.column("DueDate")
    assert (label(due), label(due, "en")) == ("Sista datum", "Due date")
    status = fb.column("Status")
    assert status.choice_label("Pågående", "en") == "In progress"
    assert status.choice_label("Pågående") == "Pågående"
    assert schemas.reference.phases[0].label("en") == "Preparation"


def test_version_is_stable_and_content_based(schema_dir: Path, schemas: SchemaSet) -> None:
    first = load_schemas(schema_dir)
    assert first.version == schemas.version == load_schemas(schema_dir).version
    edit(
        schema_dir / "reference.yaml",
        "{name: Övrigt, en: Other}",
        "{name: Övrigt, en: Other}\n  - {name: Turism, en: Tourism2}",
    )
    assert load_schemas(schema_dir).version != first.version


def test_directory_is_a_parameter_and_the_environment_is_not_read(
    schema_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Settings owns SP_SYNC_SCHEMA_DIR and passes the directory in; the loader never reads it.
    monkeypatch.setenv("SP_SYNC_SCHEMA_DIR", str(schema_dir))
    repository = default_schema_dir()
    assert repository != schema_dir
    assert (repository / "reference.yaml").is_file()
    assert load_schemas().directory == str(repository)
    assert load_schemas(directory=None).directory == str(repository)
    assert load_schemas(schema_dir).directory == str(schema_dir)


def test_rule_kinds_table_matches_the_checks() -> None:
    # One row in each table per kind: a kind the loader accepts always has a check, and back.
    from sp_sync.schema.rules import RULE_KINDS
    from sp_sync.sync.quality import RULES

    assert set(RULE_KINDS) == set(RULES)
    assert all(spec.kind == kind for kind, spec in RULE_KINDS.items())


def test_choice_translations_come_from_the_schema_set(schemas: SchemaSet) -> None:
    translations = schemas.choice_translations()
    # Reference sets (phases, departments) and the lists' own choices (statuses) alike.
    assert translations["Pågående"] == "In progress"
    for phase in schemas.reference.phases:
        assert translations[phase.name] == phase.en
    for county in schemas.reference.counties:
        assert county.name not in translations


# ----------------------------------------------------------------------------- problems


def test_unknown_type(schema_dir: Path) -> None:
    f = schema_dir / "dialoger.yaml"
    edit(f, "type: number", "type: numbr")
    line = line_of(f, "type: numbr")
    assert only_problem(schema_dir) == (
        f"dialoger.yaml, line {line}, column 11: the column 'Year' has the unknown type "
        "'numbr'. Did you mean 'number'? Known types: text, note, choice, multi_choice, number, "
        "boolean, date, datetime, person, lookup, multi_lookup, url."
    )


def test_lookup_to_missing_list(schema_dir: Path) -> None:
    f = schema_dir / "dialogaterkoppling.yaml"
    edit(f, "lookup: {list: Dialoger,", "lookup: {list: Dialogerna,")
    line = line_of(f, "list: Dialogerna")
    problem = only_problem(schema_dir)
    assert problem.startswith(f"dialogaterkoppling.yaml, line {line}, column 20: ")
    assert "the column 'Dialogue' looks up the list 'Dialogerna', which does not exist." in problem
    assert "Did you mean 'Dialoger'?" in problem


def test_duplicate_internal_name(schema_dir: Path) -> None:
    f = schema_dir / "lanskunskap.yaml"
    edit(f, "name: Priority", "name: Status")
    first = line_of(f, "name: Status")
    second = line_of(f, "name: Status", 2)
    assert only_problem(schema_dir) == (
        f"lanskunskap.yaml, line {second}, column 11: the internal name 'Status' is used twice "
        f"in the list 'Länskunskap' (first on line {first})."
    )


def test_non_ascii_internal_name(schema_dir: Path) -> None:
    f = schema_dir / "dialoger.yaml"
    edit(f, "name: Year", "name: År")
    line = line_of(f, "name: År")
    assert only_problem(schema_dir) == (
        f"dialoger.yaml, line {line}, column 11: the internal name 'År' contains non-ASCII "
        "letters: use 1–32 ASCII letters, digits or '_', starting with a letter (the Swedish "
        "text goes in 'title')."
    )


def test_invalid_internal_name(schema_dir: Path) -> None:
    f = schema_dir / "dialoger.yaml"
    edit(f, "name: Year", "name: 2Year")
    problem = only_problem(schema_dir)
    assert problem.startswith(f"dialoger.yaml, line {line_of(f, 'name: 2Year')}, column 11: ")
    assert "the internal name '2Year' is not a valid internal name" in problem


def test_empty_choice_set(schema_dir: Path) -> None:
    f = schema_dir / "lanskunskap.yaml"
    text = f.read_text(encoding="utf-8")
    start = text.index("      - {name: Hög, en: High}")
    end = text.index("    default: Medel")
    f.write_text(text[:start] + text[end:].replace("    default: Medel\n", "", 1), encoding="utf-8")
    edit(f, "    choices:\n  - name: ValidUntil", "    choices: []\n  - name: ValidUntil")
    line = line_of(f, "choices: []")
    assert only_problem(schema_dir) == (
        f"lanskunskap.yaml, line {line}, column 14: the column 'Priority' has an empty choice set."
    )


def test_unknown_ref(schema_dir: Path) -> None:
    f = schema_dir / "lanskunskap.yaml"
    edit(f, "choices: {ref: subject_areas}", "choices: {ref: subjects}")
    line = line_of(f, "ref: subjects")
    problem = only_problem(schema_dir)
    assert problem.startswith(
        f"lanskunskap.yaml, line {line}, column 20: the column "
        "'SubjectArea' refers to the unknown reference set 'subjects'."
    )


def test_default_not_among_choices(schema_dir: Path) -> None:
    f = schema_dir / "dialoger.yaml"
    edit(f, "default: Förberedelse", "default: Planering")
    line = line_of(f, "default: Planering")
    assert only_problem(schema_dir) == (
        f"dialoger.yaml, line {line}, column 14: the default 'Planering' of the column 'Phase' "
        "is not one of its choices."
    )


def test_county_without_code(schema_dir: Path) -> None:
    f = schema_dir / "reference.yaml"
    edit(f, "{name: Gotlands län, code: I, team: Mellan}", "{name: Gotlands län, team: Mellan}")
    line = line_of(f, "Gotlands län")
    assert only_problem(schema_dir) == (
        f"reference.yaml, line {line}, column 5: the county 'Gotlands län' has no 'code'."
    )


def test_county_without_team(schema_dir: Path) -> None:
    f = schema_dir / "reference.yaml"
    edit(f, "{name: Gotlands län, code: I, team: Mellan}", "{name: Gotlands län, code: I}")
    line = line_of(f, "Gotlands län")
    assert only_problem(schema_dir) == (
        f"reference.yaml, line {line}, column 5: the county 'Gotlands län' has no 'team'."
    )


def test_county_with_unknown_team(schema_dir: Path) -> None:
    f = schema_dir / "reference.yaml"
    edit(
        f, "{name: Gotlands län, code: I, team: Mellan}", "{name: Gotlands län, code: I, team: Öst}"
    )
    line = line_of(f, "Gotlands län")
    column = f.read_text(encoding="utf-8").splitlines()[line - 1].index("Öst") + 1
    assert only_problem(schema_dir) == (
        f"reference.yaml, line {line}, column {column}: the county 'Gotlands län' belongs to the team "
        "'Öst', which is not one of the teams (Mellan, Norr, Södra)."
    )


def test_duplicate_county_code(schema_dir: Path) -> None:
    f = schema_dir / "reference.yaml"
    edit(f, "{name: Gotlands län, code: I,", "{name: Gotlands län, code: AB,")
    line = line_of(f, "Gotlands län")
    column = f.read_text(encoding="utf-8").splitlines()[line - 1].index("AB") + 1
    assert only_problem(schema_dir) == (
        f"reference.yaml, line {line}, column {column}: the county code 'AB' of 'Gotlands län' is "
        "already used by 'Stockholms län'."
    )


def test_unknown_key_typo(schema_dir: Path) -> None:
    f = schema_dir / "dialoger.yaml"
    edit(f, "    required: true\n    indexed: true", "    requird: true\n    indexed: true")
    line = line_of(f, "requird")
    problem = only_problem(schema_dir)
    assert problem.startswith(
        f"dialoger.yaml, line {line}, column 5: unknown key 'requird' in a column of 'Dialoger'. "
        "Did you mean 'required'?"
    )


def test_yaml_syntax_error_has_position(schema_dir: Path) -> None:
    f = schema_dir / "dialoger.yaml"
    edit(f, "    title: År\n", "    title: [År\n")
    line = line_of(f, "title: [År")
    problem = only_problem(schema_dir)
    assert problem.startswith(f"dialoger.yaml, line {line + 1}, column ")
    assert "the file is not valid YAML" in problem


def test_rule_with_unknown_column(schema_dir: Path) -> None:
    f = schema_dir / "dialogaterkoppling.yaml"
    edit(f, "later: DueDate", "later: Deadline")
    line = line_of(f, "later: Deadline")
    assert only_problem(schema_dir) == (
        f"dialogaterkoppling.yaml, line {line}, column 12: the 'date_order' rule refers to the "
        "column 'Deadline', which the list 'Dialogåterkoppling' does not have."
    )


def test_rule_nested_column_and_unknown_kind(schema_dir: Path) -> None:
    f = schema_dir / "dialoger.yaml"
    edit(f, "when: {column: Phase,", "when: {column: Fas,")
    edit(schema_dir / "dialogaterkoppling.yaml", "kind: same_county", "kind: same_countey")
    problems = problems_of(schema_dir)
    assert len(problems) == 2
    assert any("the 'required_if' rule refers to the column 'Fas'" in p for p in problems)
    assert any(
        "unknown rule kind 'same_countey'. Did you mean 'same_county'?" in p for p in problems
    )


def test_all_problems_reported_at_once(schema_dir: Path) -> None:
    edit(schema_dir / "dialoger.yaml", "type: number", "type: numbr")
    edit(schema_dir / "lanskunskap.yaml", "name: Priority", "name: Status")
    edit(schema_dir / "reference.yaml", "code: AB,", "code: BD,")
    problems = problems_of(schema_dir)
    files = sorted(p.split(",")[0] for p in problems)
    assert files == ["dialoger.yaml", "lanskunskap.yaml", "reference.yaml"]
    assert "3 problems" in str(SchemaError(problems))


def test_lookup_cycle_reported(schema_dir: Path) -> None:
    f = schema_dir / "dialoger.yaml"
    edit(
        f,
        "  - name: CountyLead",
        "  - name: Feedback\n    title: Återkoppling\n"
        "    type: lookup\n    lookup: {list: Dialogåterkoppling}\n  - name: CountyLead",
    )
    problem = only_problem(schema_dir)
    assert "the lookups form a cycle" in problem


def test_libyaml_and_the_pure_parser_load_the_same_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    """The schema files are composed by libyaml when PyYAML has it (0.03 s less per process);
    every list, column, choice and rule must be what the pure-Python parser gives."""
    import yaml

    from sp_sync.schema import loader

    assert loader._FAST_LOADER is yaml.CSafeLoader  # the wheels ship libyaml
    fast = load_schemas()
    monkeypatch.setattr(loader, "_FAST_LOADER", yaml.SafeLoader)
    assert load_schemas() == fast
    assert repr(load_schemas()) == repr(fast)
