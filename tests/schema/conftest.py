"""Shared fixtures for the schema, validation and provisioning tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from sp_sync.schema import SchemaSet, load_schemas

REPO_SCHEMAS = Path(__file__).resolve().parents[2] / "list_schemas"


@pytest.fixture(scope="session")
def schemas() -> SchemaSet:
    return load_schemas(REPO_SCHEMAS)


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    """A private copy of list_schemas/ that a test may edit."""
    target = tmp_path / "list_schemas"
    shutil.copytree(REPO_SCHEMAS, target, ignore=shutil.ignore_patterns("*.md"))
    return target


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    """Replace `old` by `new` in a schema file (the test fails if `old` is not there)."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """1-based line number of the `occurrence`-th line containing `needle`."""
    seen = 0
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return no
    raise AssertionError(f"{needle!r} not in {path.name}")


# ----------------------------------------------------------------------------- emulator helpers


class RawRest:
    """Hand-made changes through plain REST, the way a site owner's browser would make them."""

    def __init__(self, emu: Any, site: str = "x") -> None:
        import requests

        self.base = emu.site_url(site)
        self.session = requests.Session()
        self.token = emu.issue_token()

    def _headers(self, method: str) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json;odata=verbose",
            "Content-Type": "application/json;odata=verbose",
        }
        if method != "GET":
            digest = self.session.post(f"{self.base}/_api/contextinfo", headers=headers)
            digest.raise_for_status()
            headers["X-RequestDigest"] = digest.json()["d"]["GetContextWebInformation"][
                "FormDigestValue"
            ]
        if method in ("MERGE", "DELETE"):
            headers["X-HTTP-Method"] = method
            headers["IF-MATCH"] = "*"
        return headers

    def call(self, method: str, path: str, body: Any = None) -> Any:
        http = "GET" if method == "GET" else "POST"
        response = self.session.request(
            http, f"{self.base}{path}", headers=self._headers(method), json=body
        )
        assert response.status_code < 300, (response.status_code, response.text[:300])
        return response.json()["d"] if response.content else None

    @staticmethod
    def field_path(list_title: str, name: str) -> str:
        return (
            f"/_api/web/lists/GetByTitle('{list_title}')/fields/getbyinternalnameortitle('{name}')"
        )

    def fields(self, list_title: str) -> dict[str, dict[str, Any]]:
        data = self.call("GET", f"/_api/web/lists/GetByTitle('{list_title}')/fields")
        return {f["InternalName"]: f for f in data["results"]}

    def set_field(self, list_title: str, name: str, **props: Any) -> None:
        body: dict[str, Any] = {"__metadata": {"type": "SP.Field"}}
        for key, value in props.items():
            body[key] = {"results": value} if key == "Choices" else value
        self.call("MERGE", self.field_path(list_title, name), body)

    def delete_field(self, list_title: str, name: str) -> None:
        self.call("DELETE", self.field_path(list_title, name))

    def add_field_xml(self, list_title: str, xml: str) -> None:
        self.call(
            "POST",
            f"/_api/web/lists/GetByTitle('{list_title}')/fields/CreateFieldAsXml",
            {
                "parameters": {
                    "__metadata": {"type": "SP.XmlSchemaFieldCreationInformation"},
                    "SchemaXml": xml,
                }
            },
        )


def make_client(emu: Any, token: str | None = None, site: str = "x") -> Any:
    from sp_sync.auth import StaticTokenProvider
    from sp_sync.sharepoint import SharePointClient

    return SharePointClient(
        emu.site_url(site), StaticTokenProvider(token or emu.issue_token()), organisation="Test"
    )
