"""Reading list items: keyset paging by ID, items by id via `$batch`, modified-since.

Never office365's `get_all()`/`paged()`: it loops forever when a list holds exactly a page of
items (B1 in the reference) and silently stops at 100 when misused. We page by key instead:
`$filter=ID gt {last}`, `$orderby=ID`, `$top=5000` — ID is always indexed, so this stays under
the list view threshold on any list size, and a page boundary is a resumable checkpoint.

Item reads ask for JSON light without metadata (`Accept: application/json;odata=nometadata`):
about half the bytes of `odata=verbose` for the same `$select`, because the per-item
`__metadata` block (uri, id, type, etag) and the `__deferred` stubs are never sent, and multi-values
arrive as plain arrays instead of `{"results": [...]}`. The rows are used as the server sent them
(no per-item reshaping through office365's entity layer); verbose payloads are still accepted and
shaped the same way (`__metadata` and deferred members dropped, `{"results": [...]}` turned into
lists), so a server or a test double that answers verbose reads identically. When the server
sends an etag (`__metadata.etag` in verbose, `odata.etag` in minimal metadata) it is kept as
`_etag`; the item version otherwise comes from `OData__UIVersionString`, which the sync selects.
See https://learn.microsoft.com/en-us/sharepoint/dev/sp-add-ins/working-with-lists-and-list-items-with-rest
and the OData v3 JSON light format (`value`, `odata.nextLink`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sp_sync.i18n import Plural, Text
from sp_sync.sharepoint.client import (
    HttpFailure,
    clean_entity,
    encode_query,
    quote_path_literal,
    unwrap_verbose,
)
from sp_sync.sharepoint.odata import id_in, literal
from sp_sync.sharepoint.retry import UnreadableAnswer, json_of

if TYPE_CHECKING:
    from sp_sync.sharepoint.client import ClientCore

    _Base = ClientCore
else:
    _Base = object

log = logging.getLogger(__name__)

# What each request does, named in error messages and retry warnings (both languages).
_OP_READ_ITEMS = Text(
    sv="läsning av objekt i listan '{title}' efter ID {last}",
    en="reading items of list '{title}' after ID {last}",
)
_GROUPS = Plural("objektgrupp", "objektgrupper", "item group", "item groups")
_OP_READ_BY_ID = Text(
    sv="läsning av {groups} i listan '{title}' efter id",
    en="reading {groups} of list '{title}' by id",
)

#: SharePoint's list view threshold: the largest page it serves on a big list.
MAX_PAGE_SIZE = 5000
#: Ids per `$filter=ID eq … or …` sub-request (keeps URLs far below the 2,048-char limit).
IDS_PER_FILTER = 50
#: GET sub-requests per `$batch` POST (100 × 50 = 5,000 ids per HTTP request).
PARTS_PER_BATCH = 100
#: JSON light without metadata: what item reads ask for (the server's default is minimal).
NOMETADATA = "application/json;odata=nometadata"


@dataclass(frozen=True)
class ItemPage:
    """One page of items (ascending ID). `last_id` is the resume point for the next page."""

    items: list[dict[str, Any]]
    last_id: int
    has_more: bool


def item_version(item: dict[str, Any]) -> int | None:
    """The item's version number: from `_etag` ("3"), else from `OData__UIVersionString` ("3.0")."""
    etag = item.get("_etag")
    if isinstance(etag, str):
        digits = etag.strip('"W/ ')
        if digits.isdigit():
            return int(digits)
    ui = item.get("OData__UIVersionString")
    if isinstance(ui, str) and ui:
        try:
            return int(float(ui))
        except ValueError:
            return None
    return None


def _shape_item(raw: dict[str, Any]) -> dict[str, Any]:
    metadata = raw.get("__metadata")
    if metadata is None and "odata.etag" not in raw and "odata.type" not in raw:
        # JSON light without metadata: already the shape normalize reads; no copy per item.
        item = raw
    elif metadata is None:
        # Minimal metadata: drop the `odata.*` annotations, keep the etag.
        item = {k: v for k, v in raw.items() if not k.startswith("odata.")}
        if "odata.etag" in raw:
            item["_etag"] = raw["odata.etag"]
    else:
        item = clean_entity(raw)
        etag = metadata.get("etag") if isinstance(metadata, dict) else None
        if etag is not None:
            item["_etag"] = etag
    if "ID" not in item and "Id" in item:
        item["ID"] = item["Id"]
    return item


def _page_rows(data: Any) -> tuple[list[dict[str, Any]], bool]:
    """(rows, the server announced a next page) of a collection in either JSON format."""
    if not isinstance(data, dict):
        return [], False
    if "value" in data and isinstance(data["value"], list):  # JSON light
        return data["value"], bool(data.get("odata.nextLink"))
    inner = unwrap_verbose(data)
    if not isinstance(inner, dict):
        return [], False
    return list(inner.get("results", [])), bool(inner.get("__next"))


def _select_with_id(select: Sequence[str]) -> list[str]:
    fields = list(dict.fromkeys(select))
    if "ID" not in fields and "Id" not in fields:
        fields.insert(0, "ID")
    return fields


class ItemsMixin(_Base):
    """Item reads. Mixed into `SharePointClient`; uses `ClientCore._raw`."""

    def _get_light(self, path: str, params: Mapping[str, str], *, description: str | Text) -> Any:
        """GET in JSON light without metadata, through the client's retry policy.

        office365 reads error codes only from verbose bodies (`error`); JSON light errors come
        as `odata.error`, so a failure it could not read is re-raised with the code parsed here
        — otherwise a list-view-threshold refusal would look like a retriable 500.
        """
        from office365.runtime.client_request_exception import ClientRequestException

        url = self._url(path, params)

        def build() -> Any:
            try:
                response = self._send("GET", url, headers={"Accept": NOMETADATA})
            except ClientRequestException as exc:
                if exc.code or exc.response is None:
                    raise
                raise HttpFailure.from_response(exc.response) from exc
            return json_of(response)

        return self._execute(build, description=description)

    def _items_path(self, list_title: str) -> str:
        return f"/_api/web/lists/GetByTitle({quote_path_literal(list_title)})/items"

    def _page_params(
        self, select: Sequence[str], expand: Sequence[str], flt: str, top: int
    ) -> dict[str, str]:
        params = {"$select": ",".join(_select_with_id(select))}
        if expand:
            params["$expand"] = ",".join(expand)
        params["$filter"] = flt
        params["$orderby"] = "ID"
        params["$top"] = str(top)
        return params

    def iter_item_pages(
        self,
        list_title: str,
        *,
        select: Sequence[str],
        expand: Sequence[str] = (),
        after_id: int = 0,
        page_size: int = MAX_PAGE_SIZE,
        extra_filter: str | None = None,
    ) -> Iterator[ItemPage]:
        """Pages of items with ID > `after_id`, ascending, one request per page.

        Stops after a short page, or a full page the server sent without `__next` (it omits it
        on the last page), so a list of exactly k×5,000 items costs no extra request.
        `extra_filter` is AND-ed to the key filter (build it with `odata.literal`).
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}")
        path = self._items_path(list_title)
        last = int(after_id)
        while True:
            flt = f"ID gt {last}"
            if extra_filter:
                flt = f"({extra_filter}) and {flt}"
            data = self._get_light(
                path,
                self._page_params(select, expand, flt, page_size),
                description=_OP_READ_ITEMS.fill(title=list_title, last=last),
            )
            rows, has_next = _page_rows(data)
            del data
            items = [_shape_item(r) for r in rows]
            if items:
                last = max(int(i["ID"]) for i in items)
            has_more = bool(items) and len(items) >= page_size and has_next
            yield ItemPage(items, last, has_more)
            if not has_more:
                return

    def iter_items_modified_since(
        self,
        list_title: str,
        since: datetime,
        *,
        select: Sequence[str],
        expand: Sequence[str] = (),
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[ItemPage]:
        """Pages of items with `Modified >= since` (Modified is indexed by provisioning)."""
        yield from self.iter_item_pages(
            list_title,
            select=select,
            expand=expand,
            page_size=page_size,
            extra_filter=f"Modified ge {literal(since)}",
        )

    def iter_items_modified_between(
        self,
        list_title: str,
        since: datetime,
        until: datetime,
        *,
        select: Sequence[str],
        expand: Sequence[str] = (),
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[ItemPage]:
        """Pages of items with `since <= Modified < until`: on a list above the threshold the
        indexed filter is allowed while it matches at most 5,000 items."""
        yield from self.iter_item_pages(
            list_title,
            select=select,
            expand=expand,
            page_size=page_size,
            extra_filter=f"Modified ge {literal(since)} and Modified lt {literal(until)}",
        )

    def get_items_by_ids(
        self,
        list_title: str,
        ids: Sequence[int],
        *,
        select: Sequence[str],
        expand: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """The items with these ids (missing ones are simply absent), ascending by ID.

        One `$batch` POST per 5,000 ids: GET sub-requests of 50 ids each
        (`$filter=ID eq a or ID eq b …`), up to 100 per batch. A throttled or failed part makes
        the whole batch go through the retry policy again (GETs are idempotent).
        """
        unique = sorted({int(i) for i in ids})
        if not unique:
            return []
        path = self._items_path(list_title)
        chunks = [unique[i : i + IDS_PER_FILTER] for i in range(0, len(unique), IDS_PER_FILTER)]
        urls = []
        for chunk in chunks:
            params = self._page_params(select, expand, id_in(chunk), len(chunk))
            urls.append(f"{self.site_url}{path}?{encode_query(params)}")
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(urls), PARTS_PER_BATCH):
            group = urls[start : start + PARTS_PER_BATCH]
            for payload in self._execute(
                lambda group=group: self._batch_get(group),  # type: ignore[misc]
                description=_OP_READ_BY_ID.fill(groups=_GROUPS.text(len(group)), title=list_title),
            ):
                rows, _ = _page_rows(payload)
                for raw in rows:
                    item = _shape_item(raw)
                    found[int(item["ID"])] = item
        return [found[i] for i in sorted(found)]

    # -- $batch -------------------------------------------------------------------------------

    def _batch_get(self, urls: Sequence[str]) -> list[Any]:
        """POST one `$batch` of GETs; returns each part's JSON, raises HttpFailure for a bad part."""
        boundary = f"batch_{uuid.uuid4()}"
        lines: list[str] = []
        for url in urls:
            lines += [
                f"--{boundary}",
                "Content-Type: application/http",
                "Content-Transfer-Encoding: binary",
                "",
                f"GET {url} HTTP/1.1",
                f"Accept: {NOMETADATA}",
                "",
                "",
            ]
        lines.append(f"--{boundary}--")
        body = "\r\n".join(lines).encode("utf-8")
        response = self._send(
            "POST",
            f"{self.site_url}/_api/$batch",
            data=body,
            headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
        )
        parts = parse_batch_response(response.content, response.headers.get("Content-Type", ""))
        if len(parts) != len(urls):
            raise HttpFailure(
                502, {}, None, f"$batch returned {len(parts)} parts for {len(urls)} requests"
            )
        out = []
        for status, headers, part_body in parts:
            if status >= 400:
                from sp_sync.sharepoint.client import parse_error_body

                code, message = parse_error_body(part_body)
                raise HttpFailure(status, headers, code, message)
            import json

            try:
                out.append(json.loads(part_body.decode("utf-8")) if part_body.strip() else {})
            except ValueError as exc:  # the whole batch is asked again, then reported
                raise UnreadableAnswer(status, headers) from exc
        return out


def parse_batch_response(body: bytes, content_type: str) -> list[tuple[int, dict[str, str], bytes]]:
    """(status, headers, body) for each `application/http` part of a `$batch` response.

    Tolerates LF or CRLF and nested changeset responses (flattened in order).
    """
    import re

    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise HttpFailure(502, {}, None, "the $batch response has no multipart boundary")
    return _parse_multipart(body, match.group(1))


def _parse_multipart(body: bytes, boundary: str) -> list[tuple[int, dict[str, str], bytes]]:
    import re

    results: list[tuple[int, dict[str, str], bytes]] = []
    delimiter = b"--" + boundary.encode()
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.lstrip(b"\r\n")
        head, _, rest = _split_head(chunk)
        part_headers = _parse_headers(head)
        ctype = part_headers.get("content-type", "")
        if ctype.startswith("multipart/mixed"):
            inner = re.search(r'boundary="?([^";]+)"?', ctype)
            if inner:
                results += _parse_multipart(rest, inner.group(1))
            continue
        status_head, _, payload = _split_head(rest)
        status_lines = status_head.decode("latin-1").splitlines()
        if not status_lines:
            continue
        status_match = re.match(r"HTTP/\d(?:\.\d)?\s+(\d{3})", status_lines[0].strip())
        if not status_match:
            continue
        headers = _parse_headers("\n".join(status_lines[1:]).encode("latin-1"))
        results.append((int(status_match.group(1)), headers, payload.rstrip(b"\r\n")))
    return results


def _split_head(data: bytes) -> tuple[bytes, bytes, bytes]:
    """Split at the first blank line, whichever line ending the sender used."""
    found = [(idx, sep) for sep in (b"\r\n\r\n", b"\n\n") if (idx := data.find(sep)) >= 0]
    if not found:
        return data, b"", b""
    idx, sep = min(found)
    return data[:idx], sep, data[idx + len(sep) :]


def _parse_headers(head: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        if ":" in line:
            name, _, value = line.partition(":")
            out[name.strip().lower()] = value.strip()
    return out
