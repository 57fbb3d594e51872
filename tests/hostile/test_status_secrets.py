"""Issue 11 item 12: a password in the site URL never reaches `sp-sync status` (text or JSON)
nor the Functions status endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sp_sync.redact import redact, redact_deep
from sp_sync.run import jobs, pipeline
from sp_sync.run.runtime import Runtime
from sp_sync.settings import Settings
from tests.reliability.scenarios import record

PASSWORD = "hemligt-Lösen-42"
URL = f"https://svc-user:{PASSWORD}@contoso.sharepoint.com/sites/strategi"


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings.from_env(
        {
            "SP_SYNC_SITE_URL": URL,
            "SP_SYNC_STATE_DIR": str(tmp_path / "state"),
            "SP_SYNC_RESOURCE": "https://contoso.sharepoint.com",
        }
    )
    yield Runtime(settings=settings)


def test_status_text_and_json_hide_the_password(runtime: Runtime) -> None:
    site = runtime.settings.sites[0]
    # A stored run summary names the site as well.
    runtime.store.write_json(
        f"summaries/{site.name}/last.json", {"run_id": "r1", "status": "ok", "site": site.url}
    )
    status = pipeline.site_status(runtime, site)
    text = pipeline.format_status(status, "sv")
    as_json = json.dumps(status, ensure_ascii=False)
    for shown in (text, as_json):
        assert PASSWORD not in shown
        assert "contoso.sharepoint.com/sites/strategi" in shown
    record("secret-in-url", tries=2, failures=0, rows_lost=0)


def test_the_functions_status_endpoint_hides_the_password(runtime: Runtime) -> None:
    answer = jobs.handle_status_request(None, load_runtime=lambda: runtime)
    assert answer.status == 200
    shown = json.dumps(answer.body, ensure_ascii=False)
    assert PASSWORD not in shown and "contoso.sharepoint.com" in shown


def test_redact_masks_userinfo_anywhere_in_text() -> None:
    assert redact(f"Webbplats: {URL}") == (
        "Webbplats: https://***@contoso.sharepoint.com/sites/strategi"
    )
    assert PASSWORD not in json.dumps(redact_deep({"a": [URL, {"b": (URL,)}], "n": 3}))
    # A URL without userinfo and an e-mail address stay as they are.
    assert redact("https://x.sharepoint.com/a mail anna@example.se") == (
        "https://x.sharepoint.com/a mail anna@example.se"
    )
