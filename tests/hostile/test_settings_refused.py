"""Issue 11 item 10: settings that used to fail only at run time (or never, silently) are
refused when the settings load, naming the setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sp_sync.errors import SettingsError
from sp_sync.settings import Settings
from tests.reliability.scenarios import record

BASE = {"SP_SYNC_SITE_URL": "https://contoso.sharepoint.com/sites/a"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SP_SYNC_SCHEDULE", "a b c d e f"),
        ("SP_SYNC_SCHEDULE", "0 0 25 * * *"),
        ("SP_SYNC_SCHEDULE", "0 61 2 * * *"),
        ("SP_SYNC_SCHEDULE", "0 0 2 * FOO *"),
        ("SP_SYNC_SCHEDULE", "0 0 2 * * */0"),
        ("SP_SYNC_TIME_BUDGET_SECONDS", "9" * 400),
        ("SP_SYNC_TIME_BUDGET_SECONDS", "9" * 5000),
        ("SP_SYNC_TIME_BUDGET_SECONDS", str(10**9)),
        ("SP_SYNC_ROLLUP_FOLDER", ".."),
        ("SP_SYNC_ROLLUP_FOLDER", "Delade dokument/../../x"),
        ("SP_SYNC_ROLLUP_FOLDER", "Delade dokument//x"),
        ("SP_SYNC_ROLLUP_FOLDER", "Delade dokument/./x"),
    ],
)
def test_a_setting_that_would_fail_later_is_refused_now(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**BASE, name: value})
    assert caught.value.setting == name
    assert len(str(caught.value)) < 400  # a 5,000-digit value is not echoed back


@pytest.mark.parametrize(
    "schedule",
    ["0 0 2 * * *", "0 */5 1-3 * JAN-MAR MON-FRI", "0 30 9 * * 1-5", "0 0 0 1,15 * ?"],
)
def test_valid_schedules_still_load(schedule: str) -> None:
    assert Settings.from_env({**BASE, "SP_SYNC_SCHEDULE": schedule}).schedule == schedule


def test_dot_dot_in_a_sites_file_folder_is_refused(tmp_path: Path) -> None:
    sites = tmp_path / "sites.json"
    sites.write_text(
        json.dumps({"sites": [{"url": BASE["SP_SYNC_SITE_URL"], "rollup_folder": "a/../../b"}]}),
        encoding="utf-8",
    )
    with pytest.raises(SettingsError, match=r"'\.\.'"):
        Settings.from_env({"SP_SYNC_SITES_FILE": str(sites)})
    record("settings-refused", tries=13, failures=0, rows_lost=0)
