"""`$batch` envelope parsing and the flat multipart response (sp_emulator.batch).

The response side is checked with office365's own parser, and end to end with the real
ClientContext against a small stand-in server whose `$batch` route calls `handle_batch`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from office365.runtime.odata.v3.batch_request import ODataBatchV3Request
from office365.sharepoint.client_context import ClientContext

from sp_emulator.batch import handle_batch, parse_batch
from sp_emulator.http import Request, Response, lower_headers

BASE = "http://127.0.0.1:4711"
VERBOSE = "application/json;odata=verbose;charset=utf-8"

# Captured from office365-rest-python-client 3.3.0 (`item.update()`, `delete_object()`,
# `web.get()`, then `execute_batch()`), byte for byte apart from the port: LF line endings,
# a MIME header block as preamble, `Name:value` headers, JSON after two blank lines.
CLIENT_BOUNDARY = "batch_d4b00b58-3f39-41ed-83e0-dcdec85de26c"
CLIENT_BODY = (
    b'Content-Type: multipart/mixed;\n boundary="batch_d4b00b58-3f39-41ed-83e0-dcdec85de26c"\n\n'
    b"--batch_d4b00b58-3f39-41ed-83e0-dcdec85de26c\n"
    b'Content-Type: multipart/mixed; boundary="changeset_30fbf4a8"\n\n'
    b"--changeset_30fbf4a8\nContent-Type: application/http\nContent-Transfer-Encoding: binary\n\n"
    b"MERGE http://127.0.0.1:4711/sites/x/_api/Web/lists/GetByTitle('Tasks')/items/GetById(1) HTTP/1.1\n"
    b"X-HTTP-Method:MERGE\nIF-MATCH:*\nContent-Type:application/json;odata=verbose\n"
    b"Accept:application/json;odata=verbose\nAuthorization:Bearer tok\n"
    b"X-RequestDigest:0xAB,01 May 2024\nclient-request-id:c8baca91-fe13-48d8-a64a-a6da6c70d262\n\n\n"
    b'{"Title": "\\u00c5sa\'s", "__metadata": {"type": "SP.Data.TasksListItem"}}\n\n'
    b"--changeset_30fbf4a8\nContent-Type: application/http\nContent-Transfer-Encoding: binary\n\n"
    b"DELETE http://127.0.0.1:4711/sites/x/_api/Web/lists/GetByTitle('Tasks')/items/GetById(2) HTTP/1.1\n"
    b"X-HTTP-Method:DELETE\nIF-MATCH:*\nContent-Type:application/json;odata=verbose\n"
    b"Accept:application/json;odata=verbose\nAuthorization:Bearer tok\n"
    b"X-RequestDigest:0xAB,01 May 2024\nclient-request-id:10930401-f81e-481f-9cef-78cb77f6aa75\n\n"
    b"--changeset_30fbf4a8--\n\n"
    b"--batch_d4b00b58-3f39-41ed-83e0-dcdec85de26c\n"
    b"Content-Type: application/http\nContent-Transfer-Encoding: binary\n\n"
    b"GET http://127.0.0.1:4711/sites/x/_api/Web/lists/GetByTitle('Tasks')/items?$select=Id,Title&$filter=Title%20eq%20'%C3%85sa' HTTP/1.1\n"
    b"Content-Type:application/json;odata=verbose\nAccept:application/json;odata=verbose\n"
    b"Authorization:Bearer tok\nX-RequestDigest:0xAB,01 May 2024\n"
    b"client-request-id:2b0535ef-1c83-459b-b10e-208de60ca304\n\n"
    b"--batch_d4b00b58-3f39-41ed-83e0-dcdec85de26c--\n"
)

# The form Microsoft documents: CRLF everywhere, PATCH, relative URLs, a space after colons.
DOC_BODY = (
    "--batch_45993739\r\n"
    'Content-Type: multipart/mixed; boundary="changeset_77162fcd"\r\n'
    "Content-Transfer-Encoding: binary\r\n"
    "\r\n"
    "--changeset_77162fcd\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "\r\n"
    "PATCH /sites/x/_api/Web/lists/getbytitle('Composers')/items(1) HTTP/1.1\r\n"
    "Content-Type: application/json;odata=verbose\r\n"
    "If-Match: *\r\n"
    "\r\n"
    '{"__metadata": {"type": "SP.Data.ComposersListItem"}, "Title": "Bach"}\r\n'
    "\r\n"
    "--changeset_77162fcd\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "\r\n"
    "POST web/lists/getbytitle('Composers')/items HTTP/1.1\r\n"
    "Content-Type: application/json;odata=verbose\r\n"
    "\r\n"
    '{"Title": "Händel"}\r\n'
    "--changeset_77162fcd--\r\n"
    "\r\n"
    "--batch_45993739\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "\r\n"
    "GET web/lists/getbytitle('Composers')/items?$select=Title&$top=2 HTTP/1.1\r\n"
    "Accept: application/json;odata=nometadata\r\n"
    "Authorization: Bearer inner\r\n"
    "\r\n"
    "--batch_45993739--\r\n"
).encode()


def envelope(body: bytes, content_type: str | None, auth: str = "Bearer outer") -> Request:
    headers = {"Accept": "application/json;odata=verbose", "Authorization": auth}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return Request(
        method="POST",
        raw_path="/sites/x/_api/$batch",
        path="/_api/$batch",
        site="x",
        query={},
        headers=lower_headers(headers),
        body=body,
        base_url=BASE,
    )


def json_response(payload: Any, status: int = 200, **headers: str) -> Response:
    return Response(status, {"Content-Type": VERBOSE, **headers}, json.dumps(payload).encode())


class Recorder:
    """A fake dispatch: records sub requests and answers from a per-call function."""

    def __init__(self, answer: Callable[[Request], Response] | None = None) -> None:
        self.seen: list[Request] = []
        self.answer = answer or (lambda r: json_response({"d": {"Path": r.path}}))

    def __call__(self, sub: Request) -> Response:
        self.seen.append(sub)
        return self.answer(sub)


def client_parse(resp: Response, count: int) -> list[requests.Response]:
    """Run office365's own batch-response parser over our response."""
    raw = requests.Response()
    raw.status_code = resp.status
    raw.headers = requests.structures.CaseInsensitiveDict(resp.headers)
    raw._content = resp.body
    parser = object.__new__(ODataBatchV3Request)  # the parsing methods need no state
    query = SimpleNamespace(ordered_queries=list(range(count)))
    return [sub for _, sub in parser._extract_response(raw, query)]  # type: ignore[arg-type]


# --- parsing -----------------------------------------------------------------------------------


def test_parses_the_client_body_with_header_boundary_and_without() -> None:
    for content_type in (f"multipart/mixed; boundary={CLIENT_BOUNDARY}", None):
        ops = parse_batch(CLIENT_BODY, content_type)
        assert [(o.method, o.in_changeset) for o in ops] == [
            ("MERGE", True),
            ("DELETE", True),
            ("GET", False),
        ]
        assert ops[0].headers["if-match"] == "*"
        assert ops[0].headers["x-requestdigest"] == "0xAB,01 May 2024"
        assert json.loads(ops[0].body) == {
            "Title": "Åsa's",
            "__metadata": {"type": "SP.Data.TasksListItem"},
        }
        assert ops[1].body == b""
        assert ops[2].body == b""


def test_sub_requests_are_built_like_top_level_ones() -> None:
    rec = Recorder()
    resp = handle_batch(envelope(CLIENT_BODY, f"multipart/mixed; boundary={CLIENT_BOUNDARY}"), rec)
    assert resp.status == 200
    merge, delete, get = rec.seen
    assert merge.method == "MERGE"
    assert merge.site == "x"
    assert merge.path == "/_api/Web/lists/GetByTitle('Tasks')/items/GetById(1)"
    assert merge.raw_path == "/sites/x/_api/Web/lists/GetByTitle('Tasks')/items/GetById(1)"
    assert merge.headers["authorization"] == "Bearer tok"
    assert merge.header("Content-Type") == "application/json;odata=verbose"
    assert merge.base_url == BASE
    assert merge.context["batch_sub"] is True
    assert json.loads(merge.body)["Title"] == "Åsa's"
    assert delete.method == "DELETE"
    assert delete.path.endswith("GetById(2)")
    assert get.method == "GET"
    assert get.query == {"$select": "Id,Title", "$filter": "Title eq 'Åsa'"}
    assert get.odata_format == "verbose"


def test_documented_crlf_form_with_relative_urls_and_patch() -> None:
    rec = Recorder()
    resp = handle_batch(envelope(DOC_BODY, "multipart/mixed; boundary=batch_45993739"), rec)
    assert resp.status == 200
    patch, post, get = rec.seen
    assert (patch.method, patch.site, patch.path) == (
        "MERGE",
        "x",
        "/_api/Web/lists/getbytitle('Composers')/items(1)",
    )
    assert patch.headers["if-match"] == "*"
    assert json.loads(patch.body)["Title"] == "Bach"
    # Service-relative URLs resolve against the envelope's /_api/.
    assert (post.method, post.path) == ("POST", "/_api/web/lists/getbytitle('Composers')/items")
    assert json.loads(post.body) == {"Title": "Händel"}
    # Authorization is inherited only when the part has none.
    assert post.headers["authorization"] == "Bearer outer"
    assert get.headers["authorization"] == "Bearer inner"
    assert get.query == {"$select": "Title", "$top": "2"}
    assert get.odata_format == "nometadata"


def test_other_site_and_root_site_urls() -> None:
    body = (
        "--b\r\nContent-Type: application/http\r\n\r\n"
        f"GET {BASE}/sites/other%20site/_api/web HTTP/1.1\r\n\r\n"
        "--b\r\nContent-Type: application/http\r\n\r\n"
        f"GET {BASE}/_api/web?$select=Title HTTP/1.1\r\n\r\n"
        "--b--\r\n"
    ).encode()
    rec = Recorder()
    handle_batch(envelope(body, "multipart/mixed; boundary=b"), rec)
    assert [(r.site, r.path, r.query) for r in rec.seen] == [
        ("other site", "/_api/web", {}),
        ("", "/_api/web", {"$select": "Title"}),
    ]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "multipart/mixed; boundary=b"),
        (b"no multipart here at all", None),
        (
            b"--other\r\nContent-Type: application/http\r\n\r\nGET /x HTTP/1.1\r\n\r\n--other--",
            "multipart/mixed; boundary=b",
        ),
        (
            b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n",
            "multipart/mixed; boundary=b",
        ),
        (
            b"--b\r\nContent-Type: application/http\r\n\r\nthis is not a request line\r\n--b--\r\n",
            "multipart/mixed; boundary=b",
        ),
        (
            b"--b\r\nContent-Type: application/http\r\n\r\n\r\n--b--\r\n",
            "multipart/mixed; boundary=b",
        ),
        (
            b"--b\r\nContent-Type: multipart/mixed\r\n\r\n--c\r\n--b--\r\n",
            "multipart/mixed; boundary=b",
        ),
        (
            b"--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\nContent-Type: application/http\r\n\r\nGET /sites/x/_api/web HTTP/1.1\r\n\r\n--c--\r\n--b--\r\n",
            "multipart/mixed; boundary=b",
        ),
        (
            b"--b\r\nbroken header line\r\n\r\nGET /x HTTP/1.1\r\n--b--\r\n",
            "multipart/mixed; boundary=b",
        ),
        (b"--b--\r\n", "multipart/mixed; boundary=b"),
    ],
)
def test_malformed_envelope_is_a_400_with_sharepoints_error(
    body: bytes, content_type: str | None
) -> None:
    rec = Recorder()
    resp = handle_batch(envelope(body, content_type), rec)
    assert resp.status == 400
    assert rec.seen == []
    error = json.loads(resp.body)["error"]
    assert error["code"] == "-1, Microsoft.SharePoint.Client.InvalidClientQueryException"
    assert error["message"]["lang"] == "en-US"
    assert error["message"]["value"]
    assert resp.headers["Content-Type"].startswith("application/json;odata=verbose")


# --- the response, read by office365's parser -------------------------------------------------


def test_response_is_flat_and_readable_by_the_client_parser() -> None:
    answers = iter(
        [
            Response(204, {"ETag": '"2"'}, b""),
            Response(
                412,
                {"Content-Type": VERBOSE},
                json.dumps(
                    {
                        "error": {
                            "code": "-2147024809, System.ArgumentException",
                            "message": {"lang": "en-US", "value": "Stale"},
                        }
                    }
                ).encode(),
            ),
            json_response({"d": {"results": [{"Id": 1, "Title": "Åsa's räksmörgås"}]}}, ETag='"7"'),
        ]
    )
    resp = handle_batch(
        envelope(CLIENT_BODY, f"multipart/mixed; boundary={CLIENT_BOUNDARY}"),
        Recorder(lambda r: next(answers)),
    )
    boundary = resp.headers["Content-Type"].split("boundary=")[1]
    assert boundary.startswith("batchresponse_")
    assert resp.body.count(f"--{boundary}\r\n".encode()) == 3  # flat: no nested changeset
    assert b"changeset" not in resp.body
    assert resp.body.endswith(f"--{boundary}--\r\n".encode())
    subs = client_parse(resp, 3)
    assert [s.status_code for s in subs] == [204, 412, 200]
    assert subs[0].content == b""
    assert subs[0].headers["ETag"] == '"2"'
    assert subs[1].json()["error"]["message"]["value"] == "Stale"
    assert subs[2].json() == {"d": {"results": [{"Id": 1, "Title": "Åsa's räksmörgås"}]}}
    assert subs[2].headers["Content-Type"] == VERBOSE


def test_binary_body_survives_the_round_trip() -> None:
    payload = bytes(range(256)) + b"\r\n\r\n--not-a-boundary\r\n" + "å".encode()
    body = (
        b"--b\r\nContent-Type: application/http\r\n\r\n"
        b"GET /sites/x/_api/web/GetFileByServerRelativeUrl('/sites/x/f.bin')/$value HTTP/1.1\r\n"
        b"\r\n--b--\r\n"
    )
    resp = handle_batch(
        envelope(body, "multipart/mixed; boundary=b"),
        Recorder(lambda r: Response(200, {"Content-Type": "application/octet-stream"}, payload)),
    )
    (sub,) = client_parse(resp, 1)
    assert sub.status_code == 200
    assert sub.content == payload


def test_a_failing_operation_answers_its_own_part_only() -> None:
    def answer(sub: Request) -> Response:
        if sub.method == "DELETE":
            raise RuntimeError("boom")
        return json_response({"d": {"ok": True}})

    resp = handle_batch(
        envelope(CLIENT_BODY, f"multipart/mixed; boundary={CLIENT_BOUNDARY}"), Recorder(answer)
    )
    assert resp.status == 200
    subs = client_parse(resp, 3)
    assert [s.status_code for s in subs] == [200, 500, 200]
    assert "error" in subs[1].json()


# --- end to end: the real client against a stand-in server -------------------------------------


class StandIn:
    """A tiny loopback server: contextinfo, and `$batch` through handle_batch + a dispatch."""

    def __init__(self, dispatch: Callable[[Request], Response]) -> None:
        self.dispatch = dispatch
        self.batches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.lower().endswith("/_api/contextinfo"):
                    resp = json_response(
                        {
                            "d": {
                                "GetContextWebInformation": {
                                    "FormDigestTimeoutSeconds": 1800,
                                    "FormDigestValue": "0xD,1",
                                    "WebFullUrl": outer.url,
                                }
                            }
                        }
                    )
                else:
                    outer.batches += 1
                    request = Request(
                        method="POST",
                        raw_path=self.path,
                        path="/_api/$batch",
                        site="x",
                        query={},
                        headers=lower_headers(dict(self.headers)),
                        body=body,
                        base_url=f"http://127.0.0.1:{outer.server.server_port}",
                    )
                    resp = handle_batch(request, outer.dispatch)
                self.send_response(resp.status)
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(resp.body)))
                self.end_headers()
                self.wfile.write(resp.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/sites/x"

    def __enter__(self) -> StandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def token() -> Callable[[], dict[str, Any]]:
    return lambda: {"access_token": "tok", "token_type": "Bearer", "expires_in": 3600}


def test_real_client_batch_round_trip(token: Callable[[], dict[str, Any]]) -> None:
    def answer(sub: Request) -> Response:
        assert sub.headers["authorization"] == "Bearer tok"
        if sub.method == "GET":
            return json_response(
                {
                    "d": {
                        "__metadata": {"type": "SP.Web"},
                        "Title": "Webb å",
                        "ServerRelativeUrl": "/sites/x",
                    }
                }
            )
        return Response(204, {}, b"")

    rec = Recorder(answer)
    with StandIn(rec) as server:
        ctx = ClientContext(server.url).with_access_token(token)
        tasks = ctx.web.lists.get_by_title("Tasks")
        item = tasks.items.get_by_id(1)
        item._entity_type_name = "SP.Data.TasksListItem"
        item.set_property("Title", "Ny titel").update()
        tasks.items.get_by_id(2).delete_object()
        web = ctx.web.get()
        ctx.execute_batch()
        assert server.batches == 1
    assert [(r.method, r.path) for r in rec.seen] == [
        ("MERGE", "/_api/Web/lists/GetByTitle('Tasks')/items/GetById(1)"),
        ("DELETE", "/_api/Web/lists/GetByTitle('Tasks')/items/GetById(2)"),
        ("GET", "/_api/Web"),
    ]
    assert json.loads(rec.seen[0].body)["Title"] == "Ny titel"
    assert web.properties["Title"] == "Webb å"


def test_real_client_retries_a_throttled_sub_request_alone(
    token: Callable[[], dict[str, Any]],
) -> None:
    throttled = {"left": 1}

    def answer(sub: Request) -> Response:
        if sub.method == "GET" and throttled["left"]:
            throttled["left"] -= 1
            return Response(
                429,
                {"Retry-After": "1", "Content-Type": VERBOSE},
                json.dumps(
                    {
                        "error": {
                            "code": "-2147024860, Microsoft.SharePoint.SPQueryThrottledException",
                            "message": {"lang": "en-US", "value": "Too many requests"},
                        }
                    }
                ).encode(),
            )
        if sub.method == "GET":
            return json_response({"d": {"Title": "Efter 429"}})
        return Response(204, {}, b"")

    rec = Recorder(answer)
    with StandIn(rec) as server:
        ctx = ClientContext(server.url).with_access_token(token)
        ctx.web.lists.get_by_title("Tasks").items.get_by_id(2).delete_object()
        web = ctx.web.get()
        ctx.execute_batch()
        assert server.batches == 2
    # The DELETE was applied once; only the throttled GET was sent again.
    assert [r.method for r in rec.seen] == ["DELETE", "GET", "GET"]
    assert web.properties["Title"] == "Efter 429"


def _iter_parts(body: bytes, boundary: str) -> Iterator[bytes]:
    yield from body.split(f"--{boundary}".encode())[1:-1]


def test_part_heads_use_crlf_and_carry_status_lines() -> None:
    resp = handle_batch(envelope(DOC_BODY, "multipart/mixed; boundary=batch_45993739"), Recorder())
    boundary = resp.headers["Content-Type"].split("boundary=")[1]
    parts = list(_iter_parts(resp.body, boundary))
    assert len(parts) == 3
    for part in parts:
        assert part.startswith(
            b"\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            b"HTTP/1.1 200 OK\r\n"
        )
        assert b"\r\n\r\n{" in part
