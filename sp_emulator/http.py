"""The emulator's narrow HTTP seam: a parsed request in, a response out.

Every handler module (web, lists, fields, items, changes, files, auth, admin) works only with
these two types and registers its routes in a `Router`; the server (`server.py`) owns sockets,
threads, fault injection and statistics. Keeping handlers free of `http.server` lets them be
tested directly and keeps one obvious place for each concern (the moto shape).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote


@dataclass
class Request:
    """A request as the handlers see it.

    `path` is the percent-decoded path *below the site* (for example `/_api/web/lists`), `site`
    the site name (`x` for `/sites/x`, `""` for the root site), `query` the decoded query
    options (keys as sent, e.g. `$filter`), `headers` case-insensitive (lower-case keys).
    `method` is the effective method: `X-HTTP-Method` (MERGE, DELETE, PUT) overrides POST.
    """

    method: str
    raw_path: str
    path: str
    site: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    base_url: str  # scheme://host:port of the emulator, for absolute links
    identity: Any = None  # set by the auth layer: the authenticated app/principal
    context: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    @property
    def site_url(self) -> str:
        """Absolute URL of the site, e.g. http://127.0.0.1:PORT/sites/x."""
        return f"{self.base_url}/sites/{self.site}" if self.site else self.base_url

    @property
    def site_path(self) -> str:
        """Server-relative URL of the site, e.g. /sites/x."""
        return f"/sites/{self.site}" if self.site else ""

    @property
    def odata_format(self) -> str:
        """`verbose`, `minimalmetadata`, `nometadata` or `atom`, from the Accept header.

        JSON only when asked for (`application/json` alone is minimal metadata); no Accept,
        `*/*` or an XML type gets Atom, as OData v3 and SharePoint's REST service answer.
        """
        accept = (self.header("accept") or "").lower()
        if "odata=verbose" in accept:
            return "verbose"
        if "odata=nometadata" in accept:
            return "nometadata"
        if "json" in accept:
            return "minimalmetadata"
        return "atom"


@dataclass
class Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


Handler = Callable[[Request, "re.Match[str]"], Response]


@dataclass(frozen=True)
class Route:
    method: str  # GET, POST, MERGE, DELETE, PUT or * for any
    pattern: re.Pattern[str]
    handler: Handler
    name: str  # stable route name used in statistics, e.g. "items.list"


class Router:
    """Ordered route table; patterns match the site-relative path case-insensitively."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, name: str) -> None:
        self.routes.append(
            Route(method.upper(), re.compile(pattern + r"/?$", re.IGNORECASE), handler, name)
        )

    def match(self, method: str, path: str) -> tuple[Route, re.Match[str]] | bool | None:
        """Return (route, match); False when the path exists for another method; None if unknown."""
        path_known = False
        for route in self.routes:
            m = route.pattern.match(path)
            if m is None:
                continue
            if route.method in ("*", method.upper()):
                return route, m
            path_known = True
        return False if path_known else None


def sub_request(parent: Request, url: str, query: dict[str, str]) -> Request:
    """A GET for `url` (absolute or server-relative) on behalf of `parent`'s caller, verbose."""
    path = url
    if path.startswith(parent.base_url):
        path = path[len(parent.base_url) :]
    elif "://" in path:
        path = "/" + path.split("://", 1)[1].split("/", 1)[-1]
    raw_path, _, raw_query = path.partition("?")
    decoded = decode_path(raw_path)
    site, rest = "", decoded
    low = decoded.lower()
    if low.startswith("/sites/") or low.startswith("/teams/"):
        parts = decoded.split("/", 3)
        site = parts[2]
        rest = "/" + parts[3] if len(parts) > 3 else "/"
    headers = dict(parent.headers)
    headers["accept"] = "application/json;odata=verbose"
    return Request(
        method="GET",
        raw_path=raw_path,
        path=rest,
        site=site,
        query={**parse_query(raw_query), **query},
        headers=headers,
        body=b"",
        base_url=parent.base_url,
        identity=parent.identity,
        context=dict(parent.context),
    )


def parse_query(raw_query: str) -> dict[str, str]:
    """Decode a query string; `%24skiptoken` and `$skiptoken` end up as the same key."""
    return {k: v for k, v in parse_qsl(raw_query, keep_blank_values=True)}


def decode_path(raw_path: str) -> str:
    return unquote(raw_path)


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
