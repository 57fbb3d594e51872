"""Recipients come only from the reference data (departments: mail), loaded and checked by the
schema loader; the allow-list refuses everything else."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sp_sync.errors import ConfigurationError, SchemaError
from sp_sync.notify import (
    RecipientDirectory,
    UnconfiguredRecipientError,
    is_mail_address,
    recipients_from_schemas,
)
from sp_sync.schema import SchemaSet, load_schemas


def schemas_with(tmp_path: Path, replacements: dict[str, str]) -> Path:
    folder = tmp_path / "schemas"
    shutil.copytree(load_schemas().directory, folder)
    text = (folder / "reference.yaml").read_text(encoding="utf-8")
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    (folder / "reference.yaml").write_text(text, encoding="utf-8")
    return folder


def load(tmp_path: Path, replacements: dict[str, str]) -> SchemaSet:
    return load_schemas(schemas_with(tmp_path, replacements))


def test_addresses_are_read_per_department(tmp_path: Path) -> None:
    schemas = load(
        tmp_path,
        {
            "{name: Företag, en: Business}": "{name: Företag, en: Business, mail: foretag@myndighet.se}",
            "{name: Regioner, en: Regions}": "{name: Regioner, en: Regions, mail: ' regioner@myndighet.se '}",
        },
    )
    directory = recipients_from_schemas(schemas, "it@myndighet.se")
    assert directory.departments == {
        "Företag": "foretag@myndighet.se",
        "Regioner": "regioner@myndighet.se",
    }
    assert directory.for_department("Analys") is None
    assert directory.allowed() == {
        "foretag@myndighet.se",
        "regioner@myndighet.se",
        "it@myndighet.se",
    }


def test_the_repository_reference_data_configures_no_address() -> None:
    # A deployment adds its own; nothing is sent anywhere until it does.
    assert recipients_from_schemas(load_schemas()).departments == {}


@pytest.mark.parametrize(
    "value",
    [
        "'Företag <foretag@myndighet.se>'",
        "'a@b.se, c@d.se'",
        '"foretag@myndighet.se\\nBcc: x@evil.example"',
        "'no-at-sign'",
        "'a@b'",
        "'a..b@myndighet.se'",
    ],
)
def test_anything_but_one_plain_address_is_a_schema_error_with_its_line(
    tmp_path: Path, value: str
) -> None:
    with pytest.raises(SchemaError) as info:
        load(
            tmp_path,
            {"{name: Företag, en: Business}": f"{{name: Företag, en: Business, mail: {value}}}"},
        )
    [problem] = info.value.problems
    assert "reference.yaml, line" in problem and "Företag" in problem


def test_mail_is_only_known_for_departments(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="unknown key 'mail'"):
        load(
            tmp_path,
            {"{name: Norr, en: North}": "{name: Norr, en: North, mail: norr@myndighet.se}"},
        )


def test_allow_list_check_and_admin_validation() -> None:
    directory = RecipientDirectory({"Företag": "Foretag@Myndighet.se"}, "it@myndighet.se")
    directory.check(["foretag@myndighet.se", "IT@myndighet.se"])
    with pytest.raises(UnconfiguredRecipientError, match=r"other@myndighet\.se"):
        directory.check(["foretag@myndighet.se", "other@myndighet.se"])
    assert is_mail_address("a.b+c@sub.myndighet.se")
    with pytest.raises(ConfigurationError, match="SP_SYNC_ADMIN_MAIL"):
        directory.with_admin("it at myndighet")
