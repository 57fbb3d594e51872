"""Recipients come only from the reference data: loading, validation, the allow-list."""

from __future__ import annotations

from pathlib import Path

import pytest

from sp_sync.errors import SchemaError
from sp_sync.notify import (
    RecipientDirectory,
    UnconfiguredRecipientError,
    is_mail_address,
    load_recipients,
)


def reference(tmp_path: Path, departments: str) -> Path:
    (tmp_path / "reference.yaml").write_text(
        "teams: [Norr]\ndepartments:\n" + departments, encoding="utf-8"
    )
    return tmp_path


def test_addresses_are_read_per_department(tmp_path: Path) -> None:
    folder = reference(
        tmp_path,
        "  - {name: Företag, en: Business, mail: foretag@myndighet.se}\n"
        "  - {name: Regioner, en: Regions, mail: ' regioner@myndighet.se '}\n"
        "  - {name: Analys, en: Analysis}\n",
    )
    directory = load_recipients(folder, known_departments=["Företag", "Regioner", "Analys"])
    assert directory.departments == {
        "Företag": "foretag@myndighet.se",
        "Regioner": "regioner@myndighet.se",
    }
    assert directory.for_department("Analys") is None
    with_admin = directory.with_admin("it@myndighet.se")
    assert with_admin.allowed() == {
        "foretag@myndighet.se",
        "regioner@myndighet.se",
        "it@myndighet.se",
    }


@pytest.mark.parametrize(
    "value",
    [
        "'Företag <foretag@myndighet.se>'",
        "'a@b.se, c@d.se'",
        "'foretag@myndighet.se\\nBcc: x@evil.example'",
        "[a@b.se]",
        "'no-at-sign'",
        "'a@b'",
        "'a..b@myndighet.se'",
    ],
)
def test_anything_but_one_plain_address_is_a_schema_error(tmp_path: Path, value: str) -> None:
    folder = reference(tmp_path, f"  - {{name: Företag, mail: {value}}}\n")
    with pytest.raises(SchemaError, match="Företag"):
        load_recipients(folder)


def test_an_address_for_an_unknown_department_is_refused(tmp_path: Path) -> None:
    folder = reference(tmp_path, "  - {name: Företagg, mail: f@myndighet.se}\n")
    with pytest.raises(SchemaError, match="unknown department 'Företagg'"):
        load_recipients(folder, known_departments=["Företag"])


def test_missing_file_is_a_schema_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="cannot be read"):
        load_recipients(tmp_path)


def test_allow_list_check_and_admin_validation() -> None:
    directory = RecipientDirectory({"Företag": "Foretag@Myndighet.se"}, "it@myndighet.se")
    directory.check(["foretag@myndighet.se", "IT@myndighet.se"])
    with pytest.raises(UnconfiguredRecipientError, match=r"other@myndighet\.se"):
        directory.check(["foretag@myndighet.se", "other@myndighet.se"])
    assert is_mail_address("a.b+c@sub.myndighet.se")
    from sp_sync.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="SP_SYNC_ADMIN_MAIL"):
        directory.with_admin("it at myndighet")


def test_the_repository_reference_data_loads(tmp_path: Path) -> None:
    from sp_sync.schema import load_schemas

    schemas = load_schemas()
    names = [d.name for d in schemas.reference.departments]
    directory = load_recipients(schemas.directory, known_departments=names)
    assert set(directory.departments) <= set(names)
