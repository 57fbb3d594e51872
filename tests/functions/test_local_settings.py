"""local.settings.example.json documents every app setting and stays in sync with SETTINGS."""

from __future__ import annotations

import json
from pathlib import Path

from sp_sync.settings import SETTINGS, Settings, example_local_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "local.settings.example.json"


def test_example_is_generated_from_settings() -> None:
    on_disk = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert on_disk == example_local_settings(), (
        "local.settings.example.json is stale: regenerate it with\n"
        "  python -c 'import json; from sp_sync.settings import example_local_settings; "
        "print(json.dumps(example_local_settings(), ensure_ascii=False, indent=2))' "
        "> local.settings.example.json"
    )


def test_example_names_every_setting_with_its_default() -> None:
    values = json.loads(EXAMPLE.read_text(encoding="utf-8"))["Values"]
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert "AzureWebJobsStorage" in values
    for spec in SETTINGS:
        assert spec.name in values, spec.name
        if spec.name == "SP_SYNC_STATE":
            # The Functions app keeps state in Blob Storage (shared, durable), not on disk.
            assert values[spec.name] == "azure"
        else:
            assert values[spec.name] == (spec.default or "")
    # Functions Core Tools only accepts strings as values.
    assert all(isinstance(v, str) for v in values.values())
    assert set(values) - {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage"} == {
        s.name for s in SETTINGS
    }


def test_example_values_pass_validation_once_the_site_is_filled_in() -> None:
    values = dict(json.loads(EXAMPLE.read_text(encoding="utf-8"))["Values"])
    values["SP_SYNC_SITE_URL"] = "https://contoso.sharepoint.com/sites/uppfoljning"
    settings = Settings.from_env(values)
    assert settings.schedule == "0 0 2 * * *"
    assert settings.queue == "sp-sync-jobs"
    assert [s.url for s in settings.sites] == ["https://contoso.sharepoint.com/sites/uppfoljning"]
