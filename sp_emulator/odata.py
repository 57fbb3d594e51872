"""OData v3 payload shapes: the verbose envelope the office365 client reads, and JSON light.

Handlers build every payload in the *verbose* shape (`__metadata`, `__deferred`, `{"results":
[...]}` collections) and hand it to one of the response helpers here; for `odata=minimalmetadata`
and `odata=nometadata` (and plain `application/json`) the verbose shape is converted once, at the
edge. Verbose stays the fast path: one `json.dumps` per response and no rewriting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from sp_emulator import atom
from sp_emulator.errors import SPError, invalid_query
from sp_emulator.expand import expand_deferred
from sp_emulator.http import Request, Response

CONTENT_TYPES = {
    "atom": atom.ENTRY_TYPE,
    "verbose": "application/json;odata=verbose;charset=utf-8",
    "minimalmetadata": "application/json;odata=minimalmetadata;streaming=true;IEEE754Compatible=false;charset=utf-8",
    "nometadata": "application/json;odata=nometadata;streaming=true;IEEE754Compatible=false;charset=utf-8",
}


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps_text(payload: Any) -> str:
    return _ENCODER.encode(payload)


def dumps(payload: Any) -> bytes:
    return _ENCODER.encode(payload).encode("utf-8")


def _json(
    request: Request, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    h = {"Content-Type": CONTENT_TYPES[request.odata_format]}
    if headers:
        h.update(headers)
    return Response(status, h, dumps(payload))


def _light(value: Any, fmt: str, memo: dict[int, Any] | None = None) -> Any:
    """Convert a verbose value to JSON light (minimal or no metadata).

    `memo` (id of a nested dict → its conversion) lets a collection convert an object it
    holds many times once: pages of items repeat the same expanded person or lookup. It is
    only valid while every input object is alive, i.e. within one call over one collection."""
    if isinstance(value, dict):
        if "__deferred" in value:
            return _DROP
        if (
            "results" in value
            and isinstance(value["results"], list)
            and set(value) <= {"results", "__metadata", "__next"}
        ):
            return [_light(v, fmt) for v in value["results"]]
        out: dict[str, Any] = {}
        md = value.get("__metadata")
        if md and fmt == "minimalmetadata":
            if "type" in md and not str(md["type"]).startswith("Collection("):
                out["odata.type"] = md["type"]
            if "id" in md:
                out["odata.id"] = md.get("uri") or md["id"]
            if "etag" in md:
                out["odata.etag"] = md["etag"]
            if "uri" in md:
                out["odata.editLink"] = md.get("id")
        for k, v in value.items():
            if k == "__metadata":
                continue
            if not isinstance(v, (dict, list)):
                out[k] = v  # scalars, the most common by far, need no call (pages of items)
                continue
            if memo is not None and type(v) is dict:
                conv = memo.get(id(v), _DROP)
                if conv is _DROP:
                    conv = memo[id(v)] = _light(v, fmt, memo)
            else:
                conv = _light(v, fmt, memo)
            if conv is not _DROP:
                out[k] = conv
        return out
    if isinstance(value, list):
        return [_light(v, fmt, memo) for v in value]
    return value


_DROP = object()
DROP = _DROP  # what `to_light` answers for a value JSON light leaves out


def to_light(value: Any, fmt: str, memo: dict[int, Any] | None = None) -> Any:
    """A verbose value in JSON light (`minimalmetadata` or `nometadata`); `DROP` when the
    value has no light form (a `__deferred` link). `memo`: see `_light`."""
    return _light(value, fmt, memo)


def entity(
    request: Request,
    obj: Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A single entity (or complex value) in the requested format."""
    if "$expand" in request.query:
        obj = expand_deferred(request, dict(obj))
    fmt = request.odata_format
    if fmt == "atom":
        body = atom.entry_document(dict(obj))
        ctype = atom.ENTRY_TYPE if body.find(b"<entry") >= 0 else atom.XML_TYPE
        return Response(status, {"Content-Type": ctype, **(headers or {})}, body)
    if fmt == "verbose":
        return _json(request, {"d": obj}, status, headers)
    light = _light(dict(obj), fmt)
    if fmt == "minimalmetadata":
        md = obj.get("__metadata") or {}
        light = {
            "odata.metadata": f"{request.site_url}/_api/$metadata#{md.get('type', 'Edm.Object')}/@Element",
            **light,
        }
    return _json(request, light, status, headers)


def collection(
    request: Request,
    rows: list[Any],
    next_url: str | None = None,
    *,
    type_name: str = "",
    expanded: bool = False,
) -> Response:
    """A collection: `d.results` + `__next` (verbose) or `value` + `odata.nextLink` (light).

    `expanded`: the handler has already inlined everything `$expand` names (pages of items)."""
    if "$expand" in request.query and not expanded:
        rows = [expand_deferred(request, r) if isinstance(r, dict) else r for r in rows]
    fmt = request.odata_format
    if fmt == "atom":
        self_url = f"{request.site_url}{request.path}"
        body = atom.feed_document(rows, self_url, next_url)
        return Response(200, {"Content-Type": atom.FEED_TYPE}, body)
    if fmt == "verbose":
        d: dict[str, Any] = {"results": rows}
        if next_url:
            d["__next"] = next_url
        return _json(request, {"d": d})
    payload: dict[str, Any] = {}
    if fmt == "minimalmetadata":
        payload["odata.metadata"] = f"{request.site_url}/_api/$metadata#{type_name or 'Collection'}"
    memo: dict[int, Any] = {}  # `rows` keeps every object alive, so ids stay unique
    payload["value"] = [_light(r, fmt, memo) for r in rows]
    if next_url:
        payload["odata.nextLink"] = next_url
    return _json(request, payload)


def value(request: Request, name: str, val: Any, status: int = 200) -> Response:
    """The result of a service operation: `{"d": {Name: value}}` / `{"value": value}`."""
    fmt = request.odata_format
    if fmt == "atom":
        return Response(status, {"Content-Type": atom.XML_TYPE}, atom.value_document(name, val))
    if fmt == "verbose":
        return _json(request, {"d": {name: val}}, status)
    payload: dict[str, Any] = {"value": _light(val, fmt)}
    if fmt == "minimalmetadata":
        payload = {"odata.metadata": f"{request.site_url}/_api/$metadata#Edm.Object", **payload}
    return _json(request, payload, status)


def no_content(headers: Mapping[str, str] | None = None) -> Response:
    return Response(204, dict(headers or {}), b"")


def empty_ok(request: Request) -> Response:
    """200 with an empty body, what SharePoint answers to an item DELETE."""
    return Response(200, {"Content-Type": CONTENT_TYPES[request.odata_format]}, b"")


def error(request: Request | None, err: SPError) -> Response:
    """SharePoint's error body: `error` for verbose, `odata.error` for JSON light."""
    fmt = request.odata_format if request is not None else "verbose"
    if fmt == "atom":
        headers = {"Content-Type": atom.XML_TYPE, **err.headers}
        return Response(err.status, headers, atom.error_document(err.code, err.message))
    body = {"code": err.code, "message": {"lang": "en-US", "value": err.message}}
    key = "error" if fmt == "verbose" else "odata.error"
    headers = {"Content-Type": CONTENT_TYPES[fmt], **err.headers}
    return Response(err.status, headers, dumps({key: body}))


def parse_json_body(request: Request) -> dict[str, Any]:
    """The JSON body of a write; an empty body is `{}`; malformed JSON is SharePoint's 400."""
    if not request.body or not request.body.strip():
        return {}
    try:
        data = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid_query(
            "Invalid JSON. A token was not recognized in the JSON content."
        ) from exc
    if not isinstance(data, dict):
        raise invalid_query("Invalid JSON. An object was expected.")
    return data


def unquote_literal(text: str) -> str:
    """`'O''Brien'` style literals in URLs: doubled quotes stand for one."""
    return text.replace("''", "'")


def select_props(obj: dict[str, Any], select: str | None) -> dict[str, Any]:
    """Apply a simple `$select` to a non-item entity (lists, web, fields, users)."""
    if not select:
        return obj
    wanted = [s.strip() for s in select.split(",") if s.strip()]
    if "*" in wanted:
        return obj
    out = {"__metadata": obj["__metadata"]} if "__metadata" in obj else {}
    lower = {k.lower(): k for k in obj}
    for name in wanted:
        name = name.split("/")[0]
        key = lower.get(name.lower())
        if key is None:
            # SharePoint names the property as the request spelled it.
            type_name = obj.get("__metadata", {}).get("type", "")
            raise invalid_query(f"The property '{name}' does not exist on type '{type_name}'.")
        out[key] = obj[key]
    return out


GUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
QUOTED = r"(?:[^']|'')*"

# Every way the client (and SharePoint's own links) address one list, below the site.
LIST_ADDR = (
    r"/_api/(?:web/)?(?:"
    rf"lists/getbytitle\('(?P<ltitle>{QUOTED})'\)"
    rf"|lists/getbyid\('\{{?(?P<lid>{GUID_RE})\}}?'\)"
    rf"|lists/getbyid\(guid'(?P<lid2>{GUID_RE})'\)"
    rf"|lists\(guid'(?P<lguid>{GUID_RE})'\)"
    rf"|lists\('(?P<lid3>{GUID_RE})'\)"
    rf"|getlist\('(?P<lurl>{QUOTED})'\)"
    rf"|getlistusingpath\(decodedurl='(?P<lpath>{QUOTED})'\)"
    r"|getlistusingpath\((?:decodedurl=)?@(?P<lalias>\w+)\)"
    rf"|getlistbytitle\('(?P<ltitle2>{QUOTED})'\)"
    r"|(?P<ldefault>defaultdocumentlibrary)"
    r")"
)


def alias_path(request: Request, alias: str) -> str:
    """The path a `@v` parameter alias carries: `'…'` or `{"DecodedUrl": "…"}` (SP.ResPath)."""
    raw = (request.query.get("@" + alias) or "").strip()
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise invalid_query(f"Invalid value for the parameter alias @{alias}.") from exc
        if isinstance(data, dict):
            found = next((v for k, v in data.items() if k.lower() == "decodedurl"), None)
            if found is not None:
                return str(found)
        raise invalid_query(f"Invalid value for the parameter alias @{alias}.")
    return unquote_literal(raw[1:-1]) if raw.startswith("'") and raw.endswith("'") else raw


def list_ref(
    m: re.Match[str], request: Request | None = None
) -> tuple[str | None, str | None, str | None, bool]:
    """(title, id, url, default_library) from a LIST_ADDR match."""
    g = m.groupdict()
    if g.get("lalias") and request is not None:
        return None, None, alias_path(request, g["lalias"]), False
    raw_title = g["ltitle"] if g.get("ltitle") is not None else g.get("ltitle2")
    title = unquote_literal(raw_title) if raw_title is not None else None
    list_id = g.get("lid") or g.get("lid2") or g.get("lguid") or g.get("lid3")
    raw_url = g["lurl"] if g.get("lurl") is not None else g.get("lpath")
    url = unquote_literal(raw_url) if raw_url is not None else None
    return title, list_id, url, bool(g.get("ldefault"))
