"""The OpenID authority's HTTPS request handler (discovery, keys, token endpoint).

It only parses HTTP; `AuthService` decides every answer (`openid_configuration`, `jwks`,
`token_request`).
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from sp_emulator.identity.service import AuthService

logger = logging.getLogger(__name__)

__all__ = ["make_authority_handler"]


def make_authority_handler(service: AuthService) -> type[BaseHTTPRequestHandler]:
    class AuthorityHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "sp-emulator-authority"

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("authority: " + format, *args)

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store, no-cache")
            self.end_headers()
            self.wfile.write(body)

        def _tenant_path(self) -> str | None:
            path = urlsplit(self.path).path
            prefix = f"/{service.tenant_id}"
            if path.lower().startswith(prefix.lower() + "/"):
                return path[len(prefix) :]
            return None

        def _unknown_tenant(self) -> None:
            tenant = urlsplit(self.path).path.strip("/").split("/")[0]
            self._send(
                400,
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
                    "error_codes": [90002],
                },
            )

        def do_GET(self) -> None:
            rest = self._tenant_path()
            if rest is None:
                self._unknown_tenant()
                return
            rest = rest.rstrip("/").lower()
            service.count_request("identity.authority_discovery")
            if rest == "/v2.0/.well-known/openid-configuration":
                self._send(200, service.openid_configuration(v2=True))
            elif rest == "/.well-known/openid-configuration":
                self._send(200, service.openid_configuration(v2=False))
            elif rest == "/discovery/v2.0/keys":
                self._send(200, service.jwks())
            else:
                self._send(404, {"error": "not_found", "error_description": "Unknown endpoint."})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            rest = self._tenant_path()
            if rest is None:
                self._unknown_tenant()
                return
            if rest.rstrip("/").lower() not in ("/oauth2/v2.0/token", "/oauth2/token"):
                self._send(404, {"error": "not_found", "error_description": "Unknown endpoint."})
                return
            form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
            service.count_request("identity.authority_token")
            status, payload = service.token_request(form)
            self._send(status, payload)

    return AuthorityHandler
