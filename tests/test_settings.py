"""Settings from the environment: defaults, every validation error names its setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sp_sync.errors import SettingsError
from sp_sync.redact import redact
from sp_sync.settings import (
    SETTINGS,
    Settings,
    example_local_settings,
    settings_markdown_table,
    trigger_settings,
)

SITE = "https://contoso.sharepoint.com/sites/uppfoljning"


def env(**values: str) -> dict[str, str]:
    base = {"SP_SYNC_SITE_URL": SITE}
    base.update(values)
    return base


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    path = tmp_path / "app.pem"
    path.write_text(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n"
    )
    return path


def test_defaults() -> None:
    s = Settings.from_env(env())
    assert s.site_url == SITE
    assert s.auth == "managed_identity"
    assert s.state == "local" and s.state_dir == Path(".sp-sync/state")
    assert s.rollup_folder == "Sammanställningar"
    assert s.upload_chunk_mb == 4 and s.upload_chunk_bytes == 4 * 1024 * 1024
    assert s.language == "sv"
    assert s.time_budget_seconds == 1500
    assert s.schedule == "0 0 2 * * *"
    assert s.queue == "sp-sync-jobs" and s.state_container == "sp-sync-state"
    assert [site.url for site in s.sites] == [SITE]
    assert s.resource_for(s.sites[0]) == "https://contoso.sharepoint.com"
    assert s.lists == ()


def test_lists_are_split_and_trimmed() -> None:
    s = Settings.from_env(env(SP_SYNC_LISTS=" Dialoger, Länskunskap ,,Dialoger"))
    assert s.lists == ("Dialoger", "Länskunskap")
    assert s.sites[0].lists == ("Dialoger", "Länskunskap")


@pytest.mark.parametrize(
    ("values", "setting", "fragment"),
    [
        ({"SP_SYNC_SITE_URL": "ftp://x/sites/a"}, "SP_SYNC_SITE_URL", "not an http(s) URL"),
        ({"SP_SYNC_SITE_URL": "contoso.sharepoint.com"}, "SP_SYNC_SITE_URL", "not an http(s) URL"),
        ({"SP_SYNC_AUTH": "password"}, "SP_SYNC_AUTH", "unknown mode"),
        ({"SP_SYNC_AUTH": "certificate"}, "SP_SYNC_CLIENT_ID", "required"),
        (
            {"SP_SYNC_AUTH": "certificate", "SP_SYNC_CLIENT_ID": "c"},
            "SP_SYNC_TENANT_ID",
            "required",
        ),
        (
            {"SP_SYNC_AUTH": "certificate", "SP_SYNC_CLIENT_ID": "c", "SP_SYNC_TENANT_ID": "t"},
            "SP_SYNC_CERT_PATH",
            "required",
        ),
        (
            {
                "SP_SYNC_AUTH": "certificate",
                "SP_SYNC_CLIENT_ID": "c",
                "SP_SYNC_TENANT_ID": "t",
                "SP_SYNC_CERT_PATH": "/nonexistent/x.pem",
            },
            "SP_SYNC_CERT_PATH",
            "does not exist",
        ),
        ({"SP_SYNC_AUTHORITY_URL": "http://login.example/t"}, "SP_SYNC_AUTHORITY_URL", "https"),
        ({"SP_SYNC_CERT_THUMBPRINT": "xyz"}, "SP_SYNC_CERT_THUMBPRINT", "40 hexadecimal"),
        ({"SP_SYNC_CA_BUNDLE": "/nonexistent/ca.pem"}, "SP_SYNC_CA_BUNDLE", "does not exist"),
        ({"SP_SYNC_LANGUAGE": "de"}, "SP_SYNC_LANGUAGE", "unknown language"),
        ({"SP_SYNC_UPLOAD_CHUNK_MB": "0"}, "SP_SYNC_UPLOAD_CHUNK_MB", "positive"),
        ({"SP_SYNC_UPLOAD_CHUNK_MB": "four"}, "SP_SYNC_UPLOAD_CHUNK_MB", "whole number"),
        ({"SP_SYNC_TIME_BUDGET_SECONDS": "-5"}, "SP_SYNC_TIME_BUDGET_SECONDS", "positive"),
        ({"SP_SYNC_SCHEDULE": "0 2 * * *"}, "SP_SYNC_SCHEDULE", "6 fields"),
        ({"SP_SYNC_SCHEDULE": "0 0 2 * * * *"}, "SP_SYNC_SCHEDULE", "6 fields"),
        ({"SP_SYNC_STATE": "s3"}, "SP_SYNC_STATE", "unknown store"),
        ({"SP_SYNC_STATE": "azure"}, "SP_SYNC_STATE_CONNECTION", "AzureWebJobsStorage"),
        ({"SP_SYNC_QUEUE": "Bad_Queue"}, "SP_SYNC_QUEUE", "valid queue name"),
        ({"SP_SYNC_STATE_CONTAINER": "x"}, "SP_SYNC_STATE_CONTAINER", "valid container name"),
        ({"SP_SYNC_ORGANISATION": "a|b"}, "SP_SYNC_ORGANISATION", "'|'"),
        ({"SP_SYNC_SCHEMA_DIR": "/nonexistent/schemas"}, "SP_SYNC_SCHEMA_DIR", "does not exist"),
        ({"SP_SYNC_ROLLUP_FOLDER": "a:b"}, "SP_SYNC_ROLLUP_FOLDER", "characters"),
        ({"SP_SYNC_SITES_FILE": "/nonexistent/sites.json"}, "SP_SYNC_SITES_FILE", "does not exist"),
    ],
)
def test_each_error_names_the_setting(values: dict[str, str], setting: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env(**values))
    assert info.value.setting == setting
    assert setting in str(info.value)
    assert fragment in str(info.value)


def test_site_url_required_without_sites_file() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({})
    assert info.value.setting == "SP_SYNC_SITE_URL"


def test_certificate_settings_ok(pem: Path) -> None:
    s = Settings.from_env(
        env(
            SP_SYNC_AUTH="certificate",
            SP_SYNC_CLIENT_ID="11111111-2222-3333-4444-555555555555",
            SP_SYNC_TENANT_ID="contoso.onmicrosoft.com",
            SP_SYNC_CERT_PATH=str(pem),
            SP_SYNC_CERT_THUMBPRINT="ab:" * 19 + "ab",
        )
    )
    assert s.auth == "certificate" and s.cert_path == pem
    assert s.cert_thumbprint == "AB" * 20


def test_certificate_without_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cert-only.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n")
    with pytest.raises(SettingsError, match="no private key") as info:
        Settings.from_env(
            env(
                SP_SYNC_AUTH="certificate",
                SP_SYNC_CLIENT_ID="c",
                SP_SYNC_TENANT_ID="t",
                SP_SYNC_CERT_PATH=str(path),
            )
        )
    assert info.value.setting == "SP_SYNC_CERT_PATH"


def test_azure_state_reads_named_connection_setting_and_hides_it() -> None:
    secret = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=c2VjcmV0a2V5MTIz"
    )
    s = Settings.from_env(
        env(SP_SYNC_STATE="azure", SP_SYNC_STATE_CONNECTION="MyStorage", MyStorage=secret)
    )
    assert s.state_connection_string == secret
    assert secret not in repr(s)
    assert "c2VjcmV0a2V5MTIz" not in redact(f"connect failed: {secret}")


def test_sites_file_json_and_yaml(tmp_path: Path) -> None:
    jf = tmp_path / "sites.json"
    jf.write_text(
        json.dumps(
            [
                {"url": "https://c.sharepoint.com/sites/a", "lists": ["Dialoger"]},
                {"url": "https://c.sharepoint.com/sites/b", "rollup_folder": "Rapporter"},
            ]
        )
    )
    s = Settings.from_env({"SP_SYNC_SITES_FILE": str(jf), "SP_SYNC_LISTS": "Länskunskap"})
    assert [(x.name, x.lists, x.rollup_folder) for x in s.sites] == [
        ("a", ("Dialoger",), "Sammanställningar"),
        ("b", ("Länskunskap",), "Rapporter"),
    ]
    yf = tmp_path / "sites.yaml"
    yf.write_text(
        "sites:\n  - url: https://c.sharepoint.com/sites/c\n    lists: Dialoger, Länskunskap\n"
    )
    s = Settings.from_env({"SP_SYNC_SITES_FILE": str(yf)})
    assert s.sites[0].lists == ("Dialoger", "Länskunskap")
    assert s.site_url == "https://c.sharepoint.com/sites/c"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[", "not valid JSON"),
        ("[]", "non-empty list"),
        ('[{"lists": []}]', "has no url"),
        ('[{"url": "https://a/sites/x"}, {"url": "https://a/sites/x"}]', "same site twice"),
    ],
)
def test_sites_file_errors(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "sites.json"
    path.write_text(content)
    with pytest.raises(SettingsError, match=fragment) as info:
        Settings.from_env({"SP_SYNC_SITES_FILE": str(path)})
    assert info.value.setting == "SP_SYNC_SITES_FILE"


def test_settings_table_covers_every_field_read() -> None:
    import inspect

    import sp_sync.settings as module

    source = inspect.getsource(module.Settings.from_env)
    read = set(__import__("re").findall(r'get\("(SP_SYNC_[A-Z_]+)"\)', source))
    names = {s.name for s in SETTINGS}
    assert read == names
    table = settings_markdown_table()
    assert all(f"`{n}`" in table for n in names)
    example = example_local_settings()["Values"]
    assert example["SP_SYNC_SCHEDULE"] == "0 0 2 * * *" and set(names) <= set(example)


def test_connection_string_given_directly_is_accepted_and_never_echoed() -> None:

    secret = "AccountKey=Q2FuYXJ5U2VjcmV0S2V5;"
    conn = f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;{secret}BlobEndpoint=http://127.0.0.1:1/x;"
    settings = Settings.from_env(
        {
            "SP_SYNC_SITE_URL": "https://contoso.sharepoint.com/sites/x",
            "SP_SYNC_STATE": "azure",
            "SP_SYNC_STATE_CONNECTION": conn,
        }
    )
    assert settings.state_connection_string == conn
    assert "Q2FuYXJ5U2VjcmV0S2V5" not in repr(settings)
    assert "Q2FuYXJ5U2VjcmV0S2V5" not in redact(f"failed with {conn}")


@pytest.mark.parametrize("folder", ["Bad:Name?", "a*b", "/root", "~home", "x#y"])
def test_sites_file_rollup_folder_passes_the_environment_check(tmp_path: Path, folder: str) -> None:
    """A value refused from SP_SYNC_ROLLUP_FOLDER is refused from a sites file too."""
    with pytest.raises(SettingsError) as from_env:
        Settings.from_env(env(SP_SYNC_ROLLUP_FOLDER=folder))
    assert from_env.value.setting == "SP_SYNC_ROLLUP_FOLDER"
    path = tmp_path / "sites.json"
    path.write_text(
        json.dumps(
            [
                {"url": "https://c.sharepoint.com/sites/a"},
                {"url": "https://c.sharepoint.com/sites/b", "rollup_folder": folder},
            ]
        ),
        encoding="utf-8",
    )
    with pytest.raises(SettingsError) as from_file:
        Settings.from_env({"SP_SYNC_SITES_FILE": str(path)})
    assert from_file.value.setting == "SP_SYNC_SITES_FILE"
    # The same sentence as from the environment, placed at the entry that holds the value.
    assert "site #2 (https://c.sharepoint.com/sites/b)" in from_file.value.problem
    assert from_env.value.problem in from_file.value.problem


def test_sites_file_list_titles_are_trimmed_and_deduplicated_like_the_setting(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sites.yaml"
    path.write_text(
        "- url: https://c.sharepoint.com/sites/a\n"
        "  lists: [' Dialoger ', '', 'Dialoger', 'Länskunskap']\n"
        "  rollup_folder: '  Rapporter  '\n",
        encoding="utf-8",
    )
    site = Settings.from_env({"SP_SYNC_SITES_FILE": str(path)}).sites[0]
    assert (
        site.lists == Settings.from_env(env(SP_SYNC_LISTS=" Dialoger,,Dialoger,Länskunskap")).lists
    )
    assert site.lists == ("Dialoger", "Länskunskap")
    assert site.rollup_folder == "Rapporter"


@pytest.mark.parametrize("value", ["0 0 2 * *", "0 0 2 * * * *", "every night", "0 0 2 * * ;rm"])
def test_trigger_settings_refuse_an_invalid_schedule_exactly_as_a_run_does(value: str) -> None:
    """One validation for the schedule: indexing fails with the same error as every run."""
    with pytest.raises(SettingsError) as at_index:
        trigger_settings({"SP_SYNC_SCHEDULE": value})
    with pytest.raises(SettingsError) as in_run:
        Settings.from_env(env(SP_SYNC_SCHEDULE=value))
    assert at_index.value.setting == in_run.value.setting == "SP_SYNC_SCHEDULE"
    assert str(at_index.value) == str(in_run.value)


def test_trigger_settings_defaults_and_queue_validation() -> None:
    triggers = trigger_settings({})
    settings = Settings.from_env(env())
    assert (triggers.schedule, triggers.queue) == (settings.schedule, settings.queue)
    assert (triggers.schedule, triggers.queue) == ("0 0 2 * * *", "sp-sync-jobs")
    assert triggers.poison_queue == "sp-sync-jobs-poison"
    assert trigger_settings({"SP_SYNC_SCHEDULE": " 0  30 1 * * 1-5 "}).schedule == "0 30 1 * * 1-5"
    for bad in ("Jobs", "a", "two--hyphens"):
        with pytest.raises(SettingsError) as at_index:
            trigger_settings({"SP_SYNC_QUEUE": bad})
        with pytest.raises(SettingsError) as in_run:
            Settings.from_env(env(SP_SYNC_QUEUE=bad))
        assert str(at_index.value) == str(in_run.value)


def test_schema_dir_defaults_to_the_shipped_schemas_and_is_always_resolved(
    tmp_path: Path,
) -> None:
    settings = Settings.from_env(env())
    assert (settings.schema_dir / "reference.yaml").is_file()
    assert Settings(site_url=SITE).schema_dir == settings.schema_dir
    assert Settings.from_env(env(SP_SYNC_SCHEMA_DIR=str(tmp_path))).schema_dir == tmp_path


def test_every_default_is_written_once_in_the_table() -> None:
    """The dataclass defaults are the table's: `Settings(site_url=...)` equals from_env."""
    built = Settings(site_url=SITE, site_configs=Settings.from_env(env()).site_configs)
    assert built == Settings.from_env(env())


def test_only_the_settings_module_reads_sp_sync_variables() -> None:
    """`Settings` is the one reader: no other module of sp_sync or functions/ looks up an
    SP_SYNC_* variable (names in help texts and messages are fine)."""
    import re

    root = Path(__file__).resolve().parents[1]
    reads = re.compile(r"(environ|getenv|env\.get|env\[)[^\n]*SP_SYNC_|\"SP_SYNC_[A-Z_]+\"\s*\]")
    offenders = []
    for folder in ("sp_sync", "functions"):
        for path in sorted((root / folder).rglob("*.py")):
            if path.name == "settings.py" and path.parent.name == "sp_sync":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if reads.search(line) or re.search(r"environ.*\b(ENV|_VARIABLE)\b", line):
                    offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    for path in [root / "function_app.py"]:
        assert "SP_SYNC_" not in path.read_text(encoding="utf-8")
    assert offenders == []


def test_every_wrong_setting_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(
            env(
                SP_SYNC_TIME_BUDGET_SECONDS="soon",
                SP_SYNC_QUEUE="Bad_Queue",
                SP_SYNC_AUTH="password",
            )
        )
    names = [name for name, _ in info.value.problems]
    assert names == ["SP_SYNC_AUTH", "SP_SYNC_TIME_BUDGET_SECONDS", "SP_SYNC_QUEUE"]
    english = info.value.render("en")
    assert english.startswith("3 settings are wrong")
    assert "not a whole number" in english and "valid queue name" in english
    swedish = info.value.render("sv")
    assert swedish.startswith("3 inställningar är fel")
    assert "Inställningen SP_SYNC_TIME_BUDGET_SECONDS: 'soon' är inget heltal" in swedish
    assert "unknown" not in swedish


def test_certificate_auth_names_every_missing_setting() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env(SP_SYNC_AUTH="certificate"))
    names = [name for name, _ in info.value.problems]
    assert names == ["SP_SYNC_CLIENT_ID", "SP_SYNC_TENANT_ID", "SP_SYNC_CERT_PATH"]


@pytest.mark.parametrize(
    "url",
    [
        "https://contoso.sharepoint.com/sites/strategiskt regionarbete",
        "https://contoso.sharepoint.com/sites/x\t",
        'https://contoso.sharepoint.com/sites/"x"',
        "https://contoso.sharepoint.com/sites/<x>",
    ],
)
def test_site_url_with_invalid_characters_is_refused(url: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"SP_SYNC_SITE_URL": url + "/a b"})
    assert info.value.setting == "SP_SYNC_SITE_URL"
    assert "cannot hold" in info.value.render("en")
    assert "som inte får stå i en adress" in info.value.render("sv")


def test_site_url_with_a_space_shows_the_encoded_form() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"SP_SYNC_SITE_URL": "https://contoso.sharepoint.com/sites/a b"})
    assert "mellanslag" in info.value.render("sv")
    assert "https://contoso.sharepoint.com/sites/a%20b" in info.value.render("en")
    # An already encoded URL is accepted as it is.
    s = Settings.from_env({"SP_SYNC_SITE_URL": "https://contoso.sharepoint.com/sites/a%20b"})
    assert s.site_url == "https://contoso.sharepoint.com/sites/a%20b"


def test_sites_file_url_is_checked_like_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "sites.json"
    path.write_text('[{"url": "https://a/sites/x y"}]')
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"SP_SYNC_SITES_FILE": str(path), "SP_SYNC_QUEUE": "Q"})
    assert [n for n, _ in info.value.problems] == ["SP_SYNC_QUEUE", "SP_SYNC_SITES_FILE"]
