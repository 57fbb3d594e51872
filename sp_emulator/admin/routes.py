"""The admin HTTP API under `/_emulator/`: seed, reset, faults, statistics, clock, tokens.

No token is needed, and admin requests are never counted or journaled. Each route is O(1) apart
from reading the journal, so tests can poll them freely. The route table is `ADMIN_ROUTES` in `sp_emulator/urls.py`.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from sp_emulator.errors import SPError
from sp_emulator.http import Request, Response
from sp_emulator.model import field_from_properties, field_from_schema_xml

if TYPE_CHECKING:
    from sp_emulator.server import EmulatorApp


def _json_response(payload: Any, status: int = 200) -> Response:
    return Response(
        status,
        {"Content-Type": "application/json; charset=utf-8"},
        json.dumps(payload, ensure_ascii=False).encode("utf-8"),
    )


def _body(request: Request) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    data = json.loads(request.body)
    return data if isinstance(data, dict) else {}


class AdminResponses:
    """Handlers of the `/_emulator/` routes (table: `sp_emulator.urls.ADMIN_ROUTES`)."""

    def __init__(self, app: EmulatorApp) -> None:
        self.app = app

    def stats(self, request: Request, m: re.Match[str]) -> Response:
        return _json_response(self.app.stats())

    def stats_reset(self, request: Request, m: re.Match[str]) -> Response:
        self.app.reset_stats()
        return _json_response({"ok": True})

    def journal(self, request: Request, m: re.Match[str]) -> Response:
        return _json_response(self.app.journal())

    def faults_get(self, request: Request, m: re.Match[str]) -> Response:
        return _json_response(self.app.faults.describe())

    def faults_add(self, request: Request, m: re.Match[str]) -> Response:
        b = _body(request)
        kind = b.get("kind", "status")
        if kind == "latency":
            self.app.faults.latency(
                float(b.get("seconds", 0)),
                path=b.get("path"),
                count=b.get("count"),
                method=b.get("method"),
            )
        elif kind == "html":
            count = b.get("count", 1)
            self.app.faults.sign_in_page(
                None if count is None else int(count),
                path=b.get("path"),
                method=b.get("method"),
                batch=b.get("batch", False),  # as the Python API: top-level answers only
            )
        elif kind == "drop":
            self.app.faults.drop_connection(
                int(b.get("count", 1)), path=b.get("path"), method=b.get("method")
            )
        else:
            self.app.faults.inject(
                status=int(b.get("status", 429)),
                count=b.get("count", 1),
                method=b.get("method"),
                path=b.get("path"),
                retry_after=b.get("retry_after", 1),
                ratelimit=bool(b.get("ratelimit")),
                probability=b.get("probability"),
                batch=b.get("batch"),
                max_streak=b.get("max_streak"),
            )
        return _json_response({"ok": True, "faults": self.app.faults.describe()}, 201)

    def faults_clear(self, request: Request, m: re.Match[str]) -> Response:
        self.app.faults.clear()
        return _json_response({"ok": True})

    def expire_digests(self, request: Request, m: re.Match[str]) -> Response:
        self.app.faults.expire_digests()
        return _json_response({"ok": True})

    def expire_tokens(self, request: Request, m: re.Match[str]) -> Response:
        self.app.faults.expire_tokens()
        return _json_response({"ok": True})

    def reset(self, request: Request, m: re.Match[str]) -> Response:
        b = _body(request)
        self.app.reset(sites=b.get("sites"))
        return _json_response(
            {"ok": True, "sites": sorted(s.name for s in self.app.backend.sites.values())}
        )

    def sites_get(self, request: Request, m: re.Match[str]) -> Response:
        return _json_response(
            [
                {"name": s.name, "url": f"{request.base_url}{s.path}", "id": s.id}
                for s in self.app.backend.sites.values()
            ]
        )

    def sites_add(self, request: Request, m: re.Match[str]) -> Response:
        b = _body(request)
        if not b.get("name"):
            return _json_response({"error": "name required"}, 400)
        site = self.app.backend.create_site(str(b["name"]), b.get("title"))
        return _json_response(
            {"name": site.name, "url": f"{request.base_url}{site.path}", "id": site.id}, 201
        )

    def seed(self, request: Request, m: re.Match[str]) -> Response:
        b = _body(request)
        try:
            result = seed_list(self.app, b)
        except SPError as exc:
            return _json_response({"error": exc.message, "code": exc.code}, exc.status)
        return _json_response(result, 201)

    def clock_get(self, request: Request, m: re.Match[str]) -> Response:
        return _json_response(
            {"now": self.app.backend.clock.now(), "offset": self.app.backend.clock.offset}
        )

    def clock_post(self, request: Request, m: re.Match[str]) -> Response:
        b = _body(request)
        self.app.backend.clock.advance(float(b.get("advance", 0)))
        return _json_response(
            {"now": self.app.backend.clock.now(), "offset": self.app.backend.clock.offset}
        )

    def token(self, request: Request, m: re.Match[str]) -> Response:
        b = _body(request)
        tok = self.app.issue_token(app_id=b.get("app_id"), lifetime=int(b.get("lifetime", 3600)))
        return _json_response(
            {
                "access_token": tok,
                "token_type": "Bearer",
                "expires_in": int(b.get("lifetime", 3600)),
            }
        )

    def grant(self, request: Request, m: re.Match[str]) -> Response:
        b = _body(request)
        self.app.grant(str(b["app_id"]), str(b["site"]), b.get("right"))
        return _json_response({"ok": True})


def seed_list(app: EmulatorApp, spec: dict[str, Any]) -> dict[str, Any]:
    """Create (or reuse) a list with fields and bulk items from a JSON spec.

    `{"site": "x", "list": "Uppgifter", "template": 100, "description": "",
      "fields": [{"SchemaXml": "<Field …/>"} | {"Title": "Status", "FieldTypeKind": 6, …}],
      "items": [{"Title": "…", "Status": "Ny"}, …]}`
    """
    backend = app.backend
    site = (
        backend.get_site(str(spec.get("site", "")))
        if backend.site_exists(str(spec.get("site", "")))
        else backend.create_site(str(spec.get("site", "")))
    )
    title = str(spec["list"])
    lst = site.list_by_title(title) or backend.create_list(
        site, title, str(spec.get("description", "")), int(spec.get("template", 100))
    )
    for fspec in spec.get("fields", []):
        f = (
            field_from_schema_xml(fspec["SchemaXml"])
            if "SchemaXml" in fspec
            else field_from_properties(fspec)
        )
        if lst.field_by_name(f.internal_name) is None:
            backend.add_field(site, lst, f, unique_name="SchemaXml" not in fspec)
    ids = backend.bulk_add_items(site, title, spec.get("items", []))
    return {
        "list_id": lst.id,
        "item_ids": ids[:1000],
        "added": len(ids),
        "entity_type": lst.entity_type_full_name,
        "fields": [f.internal_name for f in lst.fields],
    }


__all__ = ["AdminResponses", "seed_list"]
