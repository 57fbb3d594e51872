"""`POST /_api/$batch`: OData v3 multipart batches, answered the way the office365 client reads them.

Input: what office365-rest-python-client 3.3.0 sends (a MIME header block as preamble, LF-only
line endings, one changeset holding the writes, then GET parts, absolute URLs, `Name:value`
headers, JSON bodies after extra blank lines) and also the form Microsoft documents (CRLF
everywhere, `PATCH`, server-relative or service-relative URLs).

Output: one FLAT `application/http` part per operation, in request order. The OData v3 spec
nests changeset responses, but the client's parser only walks top-level parts
(office365 3.3.0 `runtime/odata/v3/batch_request.py`), and PnPjs's SharePoint parser splits on `--batchresponse_` alone, which
suggests SharePoint Online answers flat too. Changesets are not transactional in SharePoint
Online (Microsoft's batch documentation), so every operation is dispatched on its own.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urljoin, urlsplit

from sp_emulator.errors import INVALID_CLIENT_QUERY, INVALID_OPERATION
from sp_emulator.http import Request, Response, decode_path, parse_query

__all__ = ["BatchError", "BatchOperation", "handle_batch", "parse_batch"]

logger = logging.getLogger(__name__)

_SITE_RE = re.compile(r"^/sites/([^/]+)(/.*)?$", re.IGNORECASE)
_BOUNDARY_RE = re.compile(r"""boundary\s*=\s*(?:"([^"]+)"|([^\s;]+))""", re.IGNORECASE)
_REQUEST_LINE_RE = re.compile(r"^([A-Za-z]+)\s+(\S+)(?:\s+HTTP/\d(?:\.\d)?)?\s*$")
# The blank line ending a header block, with either line ending.
_BLANK_LINE_RE = re.compile(rb"\r?\n\r?\n")
_LINE_SPLIT_RE = re.compile(rb"\r?\n")
#: More operations than this in one envelope is refused (the client sends at most 100).
MAX_OPERATIONS = 1000


class BatchError(ValueError):
    """A malformed batch envelope; answered as a whole with 400 InvalidClientQueryException."""


@dataclass(frozen=True)
class BatchOperation:
    """One request found in the envelope, before it becomes a sub Request."""

    method: str  # effective method (X-HTTP-Method applied, PATCH → MERGE)
    url: str  # as written in the request line
    headers: dict[str, str]  # lower-case names
    body: bytes
    in_changeset: bool


# ---------------------------------------------------------------------------------------------
# Parsing


def _boundary_from(content_type: str | None) -> str | None:
    if not content_type:
        return None
    m = _BOUNDARY_RE.search(content_type)
    if m is None:
        return None
    return m.group(1) or m.group(2)


def _parse_headers(block: bytes) -> dict[str, str]:
    """Header lines (folded continuation lines joined), lower-case names, no space needed."""
    headers: dict[str, str] = {}
    last: str | None = None
    for raw in _LINE_SPLIT_RE.split(block):
        line = raw.decode("utf-8", "replace")
        if not line.strip():
            continue
        if line[0] in " \t" and last is not None:
            headers[last] = (headers[last] + " " + line.strip()).strip()
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise BatchError(f"The header line '{line[:100]}' in a batch part is not valid.")
        last = name.strip().lower()
        headers[last] = value.strip()
    return headers


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Split at the first blank line: (head, rest). No blank line → all head."""
    m = _BLANK_LINE_RE.search(data)
    if m is None:
        return data, b""
    return data[: m.start()], data[m.end() :]


def _split_multipart(data: bytes, boundary: str) -> list[bytes]:
    """The parts between `--boundary` lines; preamble and epilogue dropped.

    The line break before a delimiter belongs to the delimiter (RFC 2046), so part bodies keep
    their own bytes exactly.
    """
    b = re.escape(boundary.encode("latin-1", "replace"))
    delim = re.compile(rb"(?:\A|\r?\n)--" + b + rb"(--)?[ \t]*(?=\r?\n|\Z)")
    matches = list(delim.finditer(data))
    if not matches:
        raise BatchError(f"The boundary delimiter '--{boundary}' was not found in the batch body.")
    parts: list[bytes] = []
    for i, m in enumerate(matches):
        if m.group(1):  # close delimiter
            break
        end = matches[i + 1].start() if i + 1 < len(matches) else len(data)
        part = data[m.end() : end]
        # Drop the line break that ends the delimiter line itself.
        if part.startswith(b"\r\n"):
            part = part[2:]
        elif part.startswith(b"\n"):
            part = part[1:]
        parts.append(part)
    if not parts:
        raise BatchError("The batch request does not contain any operation.")
    return parts


def _parse_http_part(content: bytes, in_changeset: bool) -> BatchOperation:
    content = content.lstrip(b"\r\n")
    head, body = _split_head(content)
    lines = _LINE_SPLIT_RE.split(head)
    request_line = lines[0].decode("utf-8", "replace").strip()
    m = _REQUEST_LINE_RE.match(request_line)
    if m is None:
        raise BatchError(f"The request line '{request_line[:200]}' in a batch part is not valid.")
    method, url = m.group(1).upper(), m.group(2)
    headers = _parse_headers(b"\n".join(lines[1:]))
    override = headers.get("x-http-method")
    if override and method == "POST":
        method = override.strip().upper()
    if method == "PATCH":
        method = "MERGE"  # SharePoint treats PATCH and MERGE alike
    if in_changeset and method == "GET":
        raise BatchError("A GET request is not allowed inside a changeset.")
    stripped = body.strip()
    # The client writes JSON after extra blank lines; whitespace around JSON is insignificant.
    # Anything else is kept byte for byte.
    if not stripped or stripped[:1] in (b"{", b"["):
        body = stripped
    return BatchOperation(method, url, headers, body, in_changeset)


def parse_batch(body: bytes, content_type: str | None) -> list[BatchOperation]:
    """Every operation in a `$batch` body, in request order.

    The boundary comes from the request's Content-Type, else from a MIME header block at the
    start of the body (the office365 client writes one), else from the first `--` line.
    Raises BatchError for an envelope that cannot be read.
    """
    boundary = _boundary_from(content_type)
    if boundary is None:
        head, _ = _split_head(body.lstrip())
        boundary = _boundary_from(_parse_headers_lenient(head).get("content-type"))
    if boundary is None:
        m = re.search(rb"^--([^\s]+?)\s*$", body, re.MULTILINE)
        if m is None:
            raise BatchError("The batch request must have a multipart/mixed boundary.")
        boundary = m.group(1).decode("latin-1")
    ops: list[BatchOperation] = []
    for part in _split_multipart(body, boundary):
        part_head, part_body = _split_head(part)
        part_headers = _parse_headers(part_head)
        ctype = part_headers.get("content-type", "").lower()
        if ctype.startswith("multipart/mixed"):
            cs_boundary = _boundary_from(part_headers.get("content-type"))
            if cs_boundary is None:
                raise BatchError("A changeset in the batch request has no boundary.")
            for cs_part in _split_multipart(part_body, cs_boundary):
                cs_head, cs_body = _split_head(cs_part)
                cs_headers = _parse_headers(cs_head)
                if not cs_headers.get("content-type", "").lower().startswith("application/http"):
                    raise BatchError("A changeset part must have Content-Type application/http.")
                ops.append(_parse_http_part(cs_body, in_changeset=True))
        elif ctype.startswith("application/http"):
            ops.append(_parse_http_part(part_body, in_changeset=False))
        else:
            raise BatchError(
                "A batch part must have Content-Type application/http or multipart/mixed."
            )
        if len(ops) > MAX_OPERATIONS:
            raise BatchError(f"The batch request has more than {MAX_OPERATIONS} operations.")
    return ops


def _parse_headers_lenient(block: bytes) -> dict[str, str]:
    try:
        return _parse_headers(block)
    except BatchError:
        return {}


# ---------------------------------------------------------------------------------------------
# Sub requests and the response


def _sub_request(envelope: Request, op: BatchOperation) -> Request:
    """Build the sub Request the way the server builds a top-level one."""
    service_root = f"{envelope.base_url}{envelope.site_path}/_api/"
    target = urlsplit(urljoin(service_root, op.url))
    raw_path = target.path or "/"
    m = _SITE_RE.match(raw_path)
    if m is not None:
        site = decode_path(m.group(1))
        site_raw_rest = m.group(2) or "/"
    else:
        site, site_raw_rest = "", raw_path
    headers = dict(op.headers)
    if "authorization" not in headers and envelope.header("authorization") is not None:
        headers["authorization"] = envelope.headers["authorization"]
    return Request(
        method=op.method,
        raw_path=raw_path,
        path=decode_path(site_raw_rest),
        site=site,
        query=parse_query(target.query),
        headers=headers,
        body=op.body,
        base_url=envelope.base_url,
        context={"batch_sub": True, "batch_url": op.url},
    )


def _error_body(message: str, odata_format: str) -> bytes:
    error = {"code": INVALID_CLIENT_QUERY, "message": {"lang": "en-US", "value": message}}
    key = "error" if odata_format == "verbose" else "odata.error"
    return json.dumps({key: error}).encode("utf-8")


def _error_response(request: Request, status: int, message: str) -> Response:
    fmt = request.odata_format
    subtype = {"verbose": "verbose", "nometadata": "nometadata"}.get(fmt, "minimalmetadata")
    return Response(
        status=status,
        headers={"Content-Type": f"application/json;odata={subtype};charset=utf-8"},
        body=_error_body(message, fmt),
    )


def _clean(value: str) -> str:
    # A header value must not break the part's head (CR/LF would end it early).
    return value.replace("\r", " ").replace("\n", " ")


def _render_part(boundary: str, resp: Response) -> bytes:
    try:
        reason = HTTPStatus(resp.status).phrase
    except ValueError:
        reason = "Unknown"
    head = [f"HTTP/1.1 {resp.status} {reason}"]
    head += [
        f"{_clean(k)}: {_clean(v)}"
        for k, v in resp.headers.items()
        if k.lower() not in ("content-length", "transfer-encoding", "connection")
    ]
    return (
        f"--{boundary}\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "\r\n".encode("ascii")
        + "\r\n".join(head).encode("utf-8")
        + b"\r\n\r\n"
        + resp.body
        + b"\r\n"
    )


def handle_batch(request: Request, dispatch: Callable[[Request], Response]) -> Response:
    """Answer a `$batch` request: dispatch each operation, return one flat multipart response.

    `dispatch` handles one sub Request (it sees `context["batch_sub"] = True`) exactly as the
    server would a top-level request, including auth and faults. A malformed envelope is
    answered 400 as a whole; an operation that fails answers its own part only.
    """
    try:
        ops = parse_batch(request.body, request.header("content-type"))
    except BatchError as exc:
        logger.info("rejecting malformed $batch: %s", exc)
        return _error_response(request, 400, str(exc))
    boundary = f"batchresponse_{uuid.uuid4()}"
    chunks: list[bytes] = []
    for index, op in enumerate(ops):
        sub = _sub_request(request, op)
        sub.context["batch_index"] = index
        try:
            resp = dispatch(sub)
        except Exception:
            # One broken operation must not take the envelope down; SharePoint answers it alone.
            logger.exception("batch operation %d (%s %s) failed", index, op.method, sub.path)
            resp = Response(
                status=500,
                headers={"Content-Type": "application/json;odata=verbose;charset=utf-8"},
                body=json.dumps(
                    {
                        "error": {
                            "code": INVALID_OPERATION,
                            "message": {
                                "lang": "en-US",
                                "value": "Internal error in the emulator.",
                            },
                        }
                    }
                ).encode("utf-8"),
            )
        chunks.append(_render_part(boundary, resp))
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    return Response(
        status=200,
        headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
        body=b"".join(chunks),
    )
