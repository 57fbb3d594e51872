"""The mail settings: one reader (Settings), one validation, the digest's default schedule."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from sp_sync.errors import SettingsError
from sp_sync.settings import Settings, trigger_settings

BASE = {"SP_SYNC_SITE_URL": "https://contoso.sharepoint.com/sites/x"}


def settings(**values: str) -> Settings:
    return Settings.from_env({**BASE, **values})


def test_defaults_mail_off_digest_monday_morning() -> None:
    s = settings()
    assert s.mail_sender is None and s.admin_mail is None
    assert s.digest_schedule == "0 0 5,6,7 * * 1"
    assert s.stale_days == 3 and s.graph_url == "https://graph.microsoft.com"
    # The digest's functions exist only when mail is configured.
    assert not trigger_settings(BASE).digest_enabled
    on = trigger_settings({**BASE, "SP_SYNC_MAIL_SENDER": "sp-sync@contoso.se"})
    assert on.digest_enabled and on.digest_queue == "sp-sync-jobs-digest"


@pytest.mark.parametrize("value", ["", "   ", "off", "OFF"])
def test_empty_or_off_turns_the_digest_off(value: str) -> None:
    assert settings(SP_SYNC_DIGEST_SCHEDULE=value).digest_schedule == ""
    env = {**BASE, "SP_SYNC_MAIL_SENDER": "a@b.se", "SP_SYNC_DIGEST_SCHEDULE": value}
    assert not trigger_settings(env).digest_enabled


def test_an_invalid_digest_schedule_fails_the_same_way_everywhere() -> None:
    env = {**BASE, "SP_SYNC_DIGEST_SCHEDULE": "0 5 * * 1"}  # 5 fields: a classic cron line
    with pytest.raises(SettingsError, match="SP_SYNC_DIGEST_SCHEDULE") as run:
        Settings.from_env(env)
    with pytest.raises(SettingsError, match="SP_SYNC_DIGEST_SCHEDULE") as index:
        trigger_settings(env)
    assert str(run.value) == str(index.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SP_SYNC_MAIL_SENDER", "sp-sync"),
        ("SP_SYNC_MAIL_SENDER", "Sp Sync <sp-sync@contoso.se>"),
        ("SP_SYNC_ADMIN_MAIL", "a@contoso.se, b@contoso.se"),
        ("SP_SYNC_ADMIN_MAIL", "it@contoso.se\r\nBcc: x@evil.example"),
        ("SP_SYNC_STALE_DAYS", "0"),
        ("SP_SYNC_STALE_DAYS", "tre"),
        ("SP_SYNC_GRAPH_URL", "graph.microsoft.com"),
    ],
)
def test_wrong_mail_settings_name_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        settings(**{name: value})
    assert info.value.setting == name


def test_the_default_schedule_is_six_stockholm_time_all_year() -> None:
    """05:00 UTC on Mondays is 06:00 in winter (CET) and 07:00 in summer (CEST); the clocks
    change on Sunday nights at 01:00 UTC, so a Monday firing is never ambiguous."""
    tz = ZoneInfo("Europe/Stockholm")
    winter = dt.datetime(2026, 11, 30, 5, tzinfo=dt.UTC).astimezone(tz)
    summer = dt.datetime(2026, 6, 1, 5, tzinfo=dt.UTC).astimezone(tz)
    assert (winter.hour, winter.weekday()) == (6, 0)
    assert (summer.hour, summer.weekday()) == (7, 0)
    hours = settings().digest_schedule.split()[2]
    assert hours.split(",")[0] == "5"
