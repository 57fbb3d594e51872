"""Issue 11 item 10 (last part): departments whose workbooks would get the same file name are
refused by `provision` and `check`, naming them, before anything reaches SharePoint."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from sp_sync.errors import SchemaError
from sp_sync.run import pipeline
from sp_sync.run.runtime import Runtime
from sp_sync.schema import load_schemas
from sp_sync.settings import Settings
from tests.reliability.scenarios import record

ROOT = Path(__file__).resolve().parents[2]


def _runtime(tmp_path: Path, extra_departments: str) -> Runtime:
    schemas = tmp_path / "schemas"
    shutil.copytree(ROOT / "list_schemas", schemas)
    ref = schemas / "reference.yaml"
    text = ref.read_text(encoding="utf-8")
    marker = "departments:\n"
    ref.write_text(text.replace(marker, marker + extra_departments, 1), encoding="utf-8")
    settings = Settings.from_env(
        {
            "SP_SYNC_SITE_URL": "https://contoso.sharepoint.com/sites/a",
            "SP_SYNC_STATE_DIR": str(tmp_path / "state"),
            "SP_SYNC_SCHEMA_DIR": str(schemas),
        }
    )

    def no_sharepoint(*_: Any) -> Any:
        raise AssertionError("refused before contacting SharePoint")

    return Runtime(settings=settings, client_factory=no_sharepoint, schemas_loader=load_schemas)


@pytest.mark.parametrize(
    "departments",
    [
        "  - {name: Analys/Plan, en: Analysis and planning}\n"
        "  - {name: Analys-Plan, en: Analysis planning}\n",
        "  - {name: Stöd, en: Support}\n  - {name: STÖD, en: Support desk}\n",
    ],
)
def test_departments_with_the_same_workbook_name_are_refused(
    tmp_path: Path, departments: str
) -> None:
    runtime = _runtime(tmp_path, departments)
    site = runtime.settings.sites[0]
    for action in (
        lambda: pipeline.run_check(runtime, site),
        lambda: pipeline.run_provision(runtime, site, apply=False, allow_destructive=False),
    ):
        with pytest.raises(SchemaError) as caught:
            action()
        message = str(caught.value)
        first, second = (
            line.split(",")[0].split(":")[1].strip() for line in departments.splitlines()
        )
        assert first in message and second in message, message
    record("department-names", tries=2, failures=0, rows_lost=0)


def test_the_shipped_departments_are_distinct() -> None:
    pipeline.check_workbook_names(load_schemas(), "sv")
