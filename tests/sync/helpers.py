"""Helpers for the sync tests against the emulator: lists from list_schemas/ created straight in
the emulator's backend (fast and independent of provisioning), rows to seed, expected frames."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

from sp_emulator.model import field_from_schema_xml
from sp_sync.auth import StaticTokenProvider
from sp_sync.sharepoint import RetryPolicy, SharePointClient

STHLM = ZoneInfo("Europe/Stockholm")

_TYPES = {
    "text": "Text",
    "choice": "Choice",
    "multi_choice": "MultiChoice",
    "note": "Note",
    "number": "Number",
    "boolean": "Boolean",
    "date": "DateTime",
    "datetime": "DateTime",
    "person": "User",
    "lookup": "Lookup",
    "multi_lookup": "LookupMulti",
    "url": "URL",
}


def field_xml(col: Any, list_ids: dict[str, str]) -> str:
    attrs = {
        "Type": _TYPES[col.type],
        "Name": col.name,
        "StaticName": col.name,
        "DisplayName": col.title,
    }
    if col.required:
        attrs["Required"] = "TRUE"
    if col.indexed:
        attrs["Indexed"] = "TRUE"
    if col.type == "date":
        attrs["Format"] = "DateOnly"
    if col.type == "note" and col.rich_text:
        attrs["RichText"] = "TRUE"
    if col.type in ("lookup", "multi_lookup"):
        attrs["List"] = "{" + list_ids[col.lookup_list] + "}"
        attrs["ShowField"] = col.lookup_column or "Title"
        if col.type == "multi_lookup":
            attrs["Mult"] = "TRUE"
    head = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
    if col.type in ("choice", "multi_choice"):
        choices = "".join(f"<CHOICE>{escape(c)}</CHOICE>" for c in col.choices)
        return f"<Field {head}><CHOICES>{choices}</CHOICES></Field>"
    return f"<Field {head}/>"


def create_lists(emu: Any, schemas: Any, site: str = "x") -> dict[str, str]:
    """Create every schema list (dependency order) with its columns; returns title → list id."""
    backend = emu.backend
    s = backend.get_site(site)
    ids: dict[str, str] = {}
    for schema in schemas.lists.values():
        lst = backend.create_list(s, schema.title, url_name=schema.url)
        ids[schema.title] = lst.id
        # Provisioning indexes Modified so change queries stay under the threshold.
        modified = lst.field_by_name("Modified")
        if modified is not None:
            modified.indexed = True
        for col in schema.columns:
            if col.name == "Title":
                continue
            backend.add_field(s, lst, field_from_schema_xml(field_xml(col, ids)), unique_name=False)
    return ids


def client_for(emu: Any, token: str | None = None, **kw: Any) -> SharePointClient:
    kw.setdefault("retry", RetryPolicy(max_attempts=10, backoff_base=0.01))
    return SharePointClient(
        emu.site_url("x"),
        StaticTokenProvider(token or emu.issue_token()),
        organisation="Test",
        **kw,
    )


def dialog_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    counties = ["Skåne län", "Uppsala län", "Stockholms län", "Gotlands län"]
    days = [
        date(2026, 3, 28),
        date(2026, 3, 29),
        date(2026, 3, 30),
        date(2026, 10, 24),
        date(2026, 10, 25),
        date(2026, 10, 26),
    ]
    return [
        {
            "Title": f"Dialog {i}",
            "County": counties[i % len(counties)],
            "Year": 2020 + i % 7,
            "Phase": "Dialog",
            "PlannedDate": days[i % len(days)].isoformat(),
        }
        for i in range(start, start + n)
    ]


def expected_titles(emu: Any, title: str, site: str = "x") -> dict[int, Any]:
    """ID → Title straight from the emulator's backend (what the list really holds)."""
    backend = emu.backend
    lst = backend.get_list(backend.get_site(site), title=title)
    return {int(i): it.values.get("Title") for i, it in lst.items.items()}


def backend_list(emu: Any, title: str, site: str = "x") -> tuple[Any, Any]:
    backend = emu.backend
    s = backend.get_site(site)
    return s, backend.get_list(s, title=title)


def now() -> datetime:
    return datetime.now(UTC)
