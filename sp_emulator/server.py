"""The HTTP server: sockets, threads, dispatch (faults → auth → digest → route), statistics.

`EmulatorApp` is the transport-free core (a Request in, a Response out — `$batch` sub-requests
go through the same `dispatch`); `SharePointEmulator` runs it on a `ThreadingHTTPServer` with
HTTP/1.1 keep-alive in a background thread, or in the foreground from `python -m sp_emulator`.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from sp_emulator import filestore, odata
from sp_emulator.admin.observation import SIGN_IN_PAGE, Digests, Faults, Stats, throttle_response
from sp_emulator.admin.routes import AdminResponses
from sp_emulator.clock import Clock
from sp_emulator.errors import (
    SPError,
    internal_error,
    method_not_allowed,
    not_found,
    resource_not_found,
    security_validation,
)
from sp_emulator.graph import GraphService
from sp_emulator.http import (
    Request,
    Response,
    decode_path,
    lower_headers,
    parse_query,
    sub_request,
)
from sp_emulator.identity import AuthService
from sp_emulator.model import Backend
from sp_emulator.persistence import Persistence
from sp_emulator.responses.files import FileResponses
from sp_emulator.responses.items import ItemResponses
from sp_emulator.responses.security import SecurityResponses
from sp_emulator.responses.service import ServiceResponses
from sp_emulator.responses.views import ViewResponses
from sp_emulator.responses.web import WebResponses
from sp_emulator.urls import ADMIN_ROUTES, READ_ONLY_POSTS, SHAREPOINT_ROUTES, build_router

logger = logging.getLogger(__name__)


class EmulatorApp:
    """Backend + route table + cross-cutting concerns; independent of sockets."""

    def __init__(
        self, sites: Iterable[str] = (), data_dir: str | None = None, *, fault_seed: int = 0
    ) -> None:
        self.clock = Clock()
        self.backend = Backend(self.clock)
        self.faults = Faults(seed=fault_seed)
        self.stats_ = Stats()
        self.digests = Digests(self.clock)
        self.auth = AuthService(self.clock.now, self.backend.site_exists)
        self.faults.on_expire_digests = self.digests.expire_all
        self.faults.on_expire_tokens = self.auth.expire_tokens
        self.auth.count_request = self.stats_.count_route
        filestore.install(self.backend)
        self.web = WebResponses(self.backend)
        self.items = ItemResponses(self.backend, self.web)
        self.router = build_router(
            SHAREPOINT_ROUTES,
            {
                "service": ServiceResponses(self.backend, self.digests, self.dispatch_sub),
                "web": self.web,
                "items": self.items,
                "files": FileResponses(self.backend, self.items),
                "security": SecurityResponses(self.backend, self.web),
                "views": ViewResponses(self.backend, self.web),
            },
        )
        self.admin_router = build_router(
            ADMIN_ROUTES, {"admin": AdminResponses(self), "identity": self.auth}
        )
        self.graph = GraphService.install(self)  # Microsoft Graph sendMail (sp_emulator/graph.py)
        self.persistence = Persistence(self.backend, data_dir, auth=self.auth) if data_dir else None
        loaded = self.persistence.load() if self.persistence else False
        self.initial_sites = list(sites)
        if not loaded:
            for name in self.initial_sites:
                self.backend.create_site(name)
        else:
            for name in self.initial_sites:
                if not self.backend.site_exists(name):
                    self.backend.create_site(name)
        if self.persistence:
            self.persistence.start()

    # ---- public helpers ------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return self.stats_.snapshot(self.faults.injected)

    def reset_stats(self) -> None:
        self.stats_.reset()
        self.faults.injected = 0

    def journal(self) -> list[dict[str, Any]]:
        return self.stats_.entries()

    def reset(self, sites: Iterable[str] | None = None) -> None:
        """Forget all data, faults and statistics; recreate `sites` (default: the initial ones)."""
        self.faults.clear()
        self.reset_stats()
        self.backend.reset(list(sites) if sites is not None else self.initial_sites)

    def issue_token(self, app_id: str | None = None, lifetime: int = 3600) -> str:
        return str(self.auth.issue_token(app_id=app_id, lifetime=lifetime))

    def grant(self, app_id: str, site: str, right: str | None) -> None:
        self.auth.grant(app_id, site, right)

    # ---- dispatch ------------------------------------------------------------------------

    def dispatch_sub(self, request: Request) -> Response:
        return self.dispatch(request, is_batch_sub=True)

    def dispatch(self, request: Request, *, is_batch_sub: bool = False) -> Response:
        """Answer one request (never raises). Admin paths skip faults, auth and statistics."""
        started = time.perf_counter()
        if request.path.lower().startswith("/_emulator") and not request.site:
            return self._admin(request)
        route_name = "unknown"
        drop = False
        full_path = f"{request.site_path}{request.path}"
        try:
            delay, rule, drop = self.faults.take(request.method, full_path, is_batch_sub)
            if delay:
                time.sleep(delay)
            match = self.router.match(request.method, request.path)
            if isinstance(match, tuple):
                route_name = match[0].name
            if rule is not None and rule.kind == "html":
                response = Response(200, {"Content-Type": "text/html; charset=utf-8"}, SIGN_IN_PAGE)
            elif rule is not None:
                status, headers, payload = throttle_response(rule, request.odata_format)
                err = next(iter(payload.values()))
                response = odata.error(
                    request, SPError(status, err["code"], err["message"]["value"], headers)
                )
            else:
                response = self._route(request, match, route_name)
        except SPError as exc:
            response = odata.error(request, exc)
        except Exception:
            logger.exception("emulator failure on %s %s", request.method, request.path)
            response = odata.error(request, internal_error())
        self._decorate(response)
        self.faults.note_answer(request.method, full_path, response.status)
        if drop:
            response.headers["X-Emulator-Drop"] = "1"
        duration = time.perf_counter() - started
        received = len(request.body) + sum(len(k) + len(v) + 4 for k, v in request.headers.items())
        self.stats_.record(
            {
                "method": request.method,
                "path": f"{request.site_path}{request.path}",
                "query": dict(request.query),
                "status": response.status,
                "route": route_name,
                "duration": round(duration, 6),
                "is_batch_sub": is_batch_sub,
                "site": request.site,
                "time": self.clock.now(),
                # Microsoft asks callers to decorate traffic (NONISV|org|app/version); tests check it.
                "user_agent": request.header("user-agent"),
            },
            len(response.body),
            received,
        )
        return response

    def _route(self, request: Request, match: Any, route_name: str) -> Response:
        if request.path.lower().startswith("/_api") or request.path.lower().startswith("/_vti_bin"):
            denied = self.auth.authenticate(request)
            if denied is not None:
                return denied
            write = request.method != "GET" and route_name not in READ_ONLY_POSTS
            denied = self.auth.authorize(request, write=write)
            if denied is not None:
                return denied
            digest = request.header("x-requestdigest")
            if digest and route_name != "contextinfo" and not self.digests.valid(digest):
                raise security_validation()
            request.context["fetch"] = self._fetch
        if request.site and not self.backend.site_exists(request.site):
            raise not_found()
        if match is None:
            raise resource_not_found(request.path.rsplit("/", 1)[-1])
        if match is False:
            raise method_not_allowed(request.method)
        route, m = match
        return route.handler(request, m)

    def _fetch(self, parent: Request, url: str, query: dict[str, str]) -> Response:
        """GET `url` internally for `$expand` (no faults, no statistics; auth checked again)."""
        sub = sub_request(parent, url, query)
        match = self.router.match("GET", sub.path)
        try:
            return self._route(sub, match, match[0].name if isinstance(match, tuple) else "")
        except SPError as exc:
            return odata.error(sub, exc)

    def _admin(self, request: Request) -> Response:
        match = self.admin_router.match(request.method, request.path)
        try:
            if not isinstance(match, tuple):
                return Response(
                    404 if match is None else 405,
                    {"Content-Type": "application/json"},
                    json.dumps({"error": "unknown admin route"}).encode(),
                )
            route, m = match
            if route.name.startswith("identity."):
                # Token requests are part of a client's traffic: counted per route (not in
                # `requests` or the journal, which hold SharePoint requests only), so a test can
                # read how many token calls a run made instead of assuming one.
                self.stats_.count_route(route.name)
            return route.handler(request, m)
        except Exception as exc:
            logger.exception("admin route failed")
            return Response(
                500, {"Content-Type": "application/json"}, json.dumps({"error": str(exc)}).encode()
            )

    @staticmethod
    def _decorate(response: Response) -> None:
        rid = str(uuid.uuid4())
        h = response.headers
        h.setdefault("SPRequestGuid", rid)
        h.setdefault("request-id", rid)
        h.setdefault("X-SharePointHealthScore", "0")
        h.setdefault("SPRequestDuration", "1")
        h.setdefault("X-MS-InvokeApp", "1; RequireReadOnly")
        h.setdefault("MicrosoftSharePointTeamServices", "16.0.0.25012")
        h.setdefault("Cache-Control", "private, max-age=0")

    def close(self) -> None:
        if self.persistence:
            self.persistence.stop()


# ---------------------------------------------------------------------------------------------
# Sockets


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        raw = self.path
        raw_path, _, raw_query = raw.partition("?")
        if raw_path.startswith("http://") or raw_path.startswith("https://"):
            raw_path = "/" + raw_path.split("/", 3)[-1]
        headers = lower_headers({k: v for k, v in self.headers.items()})
        method = self.command.upper()
        override = headers.get("x-http-method")
        if method == "POST" and override:
            method = override.upper()
        path = decode_path(raw_path)
        site = ""
        rest = path
        low = path.lower()
        if low.startswith("/sites/") or low.startswith("/teams/"):
            parts = path.split("/", 3)
            site = parts[2]
            rest = "/" + parts[3] if len(parts) > 3 else "/"
        app = self.server.app
        request = Request(
            method=method,
            raw_path=raw_path,
            path=rest,
            site=site,
            query=parse_query(raw_query),
            headers=headers,
            body=body,
            base_url=self.server.base_url,
        )
        response = app.dispatch(request)
        self._write(response, head_only=self.command == "HEAD")

    def _write(self, response: Response, *, head_only: bool = False) -> None:
        drop = response.headers.pop("X-Emulator-Drop", None) is not None
        body = response.body
        lines = [f"HTTP/1.1 {response.status} {self.responses.get(response.status, ('',))[0]}"]
        headers = dict(response.headers)
        headers["Content-Length"] = str(len(body))
        headers.setdefault("Date", self.date_time_string())
        headers.setdefault("Server", "Microsoft-IIS/10.0")
        for k, v in headers.items():
            lines.append(f"{k}: {v}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        if drop:
            # Half a body, then a hard close: what a reset connection looks like to a client.
            self.wfile.write(head + body[: max(1, len(body) // 2)])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(head if head_only else head + body)
        if (self.headers.get("Connection") or "").lower() == "close":
            self.close_connection = True

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_DELETE = _handle
    do_PATCH = _handle
    do_MERGE = _handle
    do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: EmulatorApp) -> None:
        super().__init__(address, _Handler)
        self.app = app
        host, port = self.server_address[0], self.server_address[1]
        self.base_url = f"http://{host!s}:{port}"


class SharePointEmulator:
    """SharePoint Online on loopback. Use as a context manager (runs in a thread).

    >>> with SharePointEmulator(sites=["x"]) as emu:
    ...     emu.site_url("x")
    """

    def __init__(
        self,
        sites: Iterable[str] = ("x",),
        data_dir: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        fault_seed: int = 0,
    ) -> None:
        self.app = EmulatorApp(sites, data_dir, fault_seed=fault_seed)
        self._host, self._port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        self._server = _Server((self._host, self._port), self.app)
        bind = getattr(self.app.auth, "bind", None)
        if bind is not None:
            bind(self._server.base_url)
        self.app.auth.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sp-emulator",
            daemon=True,
        )
        self._thread.start()
        logger.info("SharePoint emulator listening at %s", self.url)
        return self

    def serve_forever(self) -> None:
        """Run in the calling thread (used by `python -m sp_emulator`)."""
        assert self._server is not None
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        if self._server is not None:
            if self._thread is not None:
                self._server.shutdown()
                self._thread.join(timeout=5)
            self._server.server_close()
            self._server = None
        self.app.auth.stop()
        self.app.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- addresses ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "emulator not started"
        return self._server.base_url

    def site_url(self, name: str) -> str:
        return f"{self.url}/sites/{name}"

    # ---- auth (delegated to the AuthService) -----------------------------------------------

    @property
    def identity_endpoint(self) -> str:
        return str(self.app.auth.identity_endpoint)

    @property
    def identity_header(self) -> str:
        return str(self.app.auth.identity_header)

    @property
    def managed_identity_app_id(self) -> str:
        return str(self.app.auth.managed_identity_app_id)

    @property
    def authority_url(self) -> str:
        return str(self.app.auth.authority_url)

    @property
    def ca_cert_path(self) -> str:
        return str(self.app.auth.ca_cert_path)

    def register_app(
        self, client_id: str, certificate_pem: bytes, grants: dict[str, str] | None = None
    ) -> None:
        self.app.auth.register_app(client_id, certificate_pem, grants)

    def grant(self, app_id: str, site: str, right: str | None) -> None:
        self.app.auth.grant(app_id, site, right)

    def issue_token(self, app_id: str | None = None, lifetime: int = 3600) -> str:
        return self.app.issue_token(app_id=app_id, lifetime=lifetime)

    # ---- observation and control ---------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self.app.faults

    @property
    def clock(self) -> Clock:
        return self.app.clock

    @property
    def backend(self) -> Backend:
        return self.app.backend

    def stats(self) -> dict[str, Any]:
        return self.app.stats()

    def reset_stats(self) -> None:
        self.app.reset_stats()

    def journal(self) -> list[dict[str, Any]]:
        return self.app.journal()

    def reset(self, sites: Iterable[str] | None = None) -> None:
        self.app.reset(sites)

    def create_site(self, name: str, title: str | None = None) -> str:
        self.app.backend.create_site(name, title)
        return self.site_url(name)
