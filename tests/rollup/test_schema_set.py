"""The rollup is built from the SchemaSet it is given: labels and reference data, no disk read."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from openpyxl import load_workbook

from sp_sync.i18n import label
from sp_sync.report.layouts import render_overview
from sp_sync.report.publish import build_tables
from sp_sync.report.tables import RollupReference
from sp_sync.schema import default_schema_dir, load_schemas
from tests.rollup.helpers import GENERATED_AT, SITE, STHLM, make_snapshots


@pytest.fixture
def own_schemas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of list_schemas/ with one English label changed."""
    target = tmp_path / "schemas"
    shutil.copytree(default_schema_dir(), target)
    path = target / "dialogaterkoppling.yaml"
    text = path.read_text(encoding="utf-8")
    assert "{name: Pågående, en: In progress}" in text
    path.write_text(
        text.replace("{name: Pågående, en: In progress}", "{name: Pågående, en: Underway}"),
        encoding="utf-8",
    )
    # Reading the schema directory from the environment would find the repository's files.
    monkeypatch.setenv("SP_SYNC_SCHEMA_DIR", str(default_schema_dir()))
    return target


def test_english_choice_labels_come_from_the_given_schema_set(own_schemas: Path) -> None:
    schemas = load_schemas(own_schemas)
    snapshots = make_snapshots(knowledge=40, feedback=60, seed=3)
    tables = build_tables(
        snapshots, None, schemas, site_url=SITE, generated_at=GENERATED_AT, time_zone=STHLM
    )
    assert tables.reference == RollupReference.from_schemas(schemas)
    assert tables.reference.translations["Pågående"] == "Underway"

    book = render_overview(tables, language="en")
    sheet = load_workbook(io.BytesIO(book.data))[label("sheet_feedback", "en")]
    header = [c.value for c in sheet[4]]
    status = header.index(label("status", "en"))
    shown = {row[status] for row in sheet.iter_rows(min_row=5, values_only=True)}
    assert "Underway" in shown
    assert "In progress" not in shown and "Pågående" not in shown
