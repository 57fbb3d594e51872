"""Atom/XML payloads: what SharePoint's REST service answers when the client asks for no JSON.

OData v3 maps an `Accept` of `*/*` (or none, or `application/atom+xml`) to Atom
(MS-ODATA 2.2.5.1, https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-odata/522511c0-a458-46e1-b520-21556d30494e),
and SharePoint's REST service answers Atom feeds and entries unless the request asks for JSON
(https://learn.microsoft.com/en-us/sharepoint/dev/sp-add-ins/get-to-know-the-sharepoint-rest-service).
Handlers build verbose JSON; this module turns that shape into Atom at the edge: entities into
`<entry>` with `<m:properties>`, collections into `<feed>`, deferred navigation properties into
`<link rel=".../related/Name">`, errors into `<m:error>`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from xml.sax.saxutils import escape, quoteattr

ATOM_NS = "http://www.w3.org/2005/Atom"
D_NS = "http://schemas.microsoft.com/ado/2007/08/dataservices"
M_NS = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"
SCHEME = "http://schemas.microsoft.com/ado/2007/08/dataservices/scheme"
RELATED = "http://schemas.microsoft.com/ado/2007/08/dataservices/related/"
NAMESPACES = f'xmlns="{ATOM_NS}" xmlns:d="{D_NS}" xmlns:m="{M_NS}"'
ENTRY_TYPE = "application/atom+xml;type=entry;charset=utf-8"
FEED_TYPE = "application/atom+xml;type=feed;charset=utf-8"
XML_TYPE = "application/xml;charset=utf-8"
DECLARATION = '<?xml version="1.0" encoding="utf-8"?>'


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _edm(value: Any) -> str | None:
    if isinstance(value, bool):
        return "Edm.Boolean"
    if isinstance(value, int):
        return "Edm.Int32" if -(2**31) <= value < 2**31 else "Edm.Int64"
    if isinstance(value, float):
        return "Edm.Double"
    return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def _property(name: str, value: Any) -> str:
    """One `<d:Name>` element: primitive, null, complex value or collection."""
    tag = f"d:{name}"
    if value is None:
        return f'<{tag} m:null="true" />'
    if isinstance(value, dict):
        md = value.get("__metadata") or {}
        type_name = md.get("type")
        if "results" in value and isinstance(value["results"], list):
            elems = "".join(_property("element", v) for v in value["results"])
            attr = f" m:type={quoteattr(type_name)}" if type_name else ""
            return f"<{tag}{attr}>{elems}</{tag}>"
        inner = "".join(_property(k, v) for k, v in value.items() if k != "__metadata")
        attr = f" m:type={quoteattr(type_name)}" if type_name else ""
        return f"<{tag}{attr}>{inner}</{tag}>"
    if isinstance(value, list):
        return f"<{tag}>{''.join(_property('element', v) for v in value)}</{tag}>"
    edm = _edm(value)
    attr = f' m:type="{edm}"' if edm else ""
    return f"<{tag}{attr}>{_text(value)}</{tag}>"


def _is_entity(value: Any) -> bool:
    md = value.get("__metadata") if isinstance(value, dict) else None
    return isinstance(md, dict) and ("uri" in md or "id" in md)


def _entry(obj: dict[str, Any], *, root: bool) -> str:
    md = obj.get("__metadata") or {}
    uri = str(md.get("uri") or md.get("id") or "")
    parts = [f"<id>{escape(uri)}</id>"]
    if md.get("type"):
        parts.append(f'<category term={quoteattr(str(md["type"]))} scheme="{SCHEME}" />')
    if uri:
        parts.append(f'<link rel="edit" href={quoteattr(uri)} />')
    props: list[str] = []
    for key, value in obj.items():
        if key == "__metadata":
            continue
        if isinstance(value, dict) and "__deferred" in value:
            href = quoteattr(str(value["__deferred"]["uri"]))
            parts.append(
                f'<link rel="{RELATED}{key}" type="application/atom+xml" '
                f"title={quoteattr(key)} href={href} />"
            )
        elif _is_entity(value):
            parts.append(
                f'<link rel="{RELATED}{key}" type="application/atom+xml;type=entry" '
                f"title={quoteattr(key)}><m:inline>{_entry(value, root=False)}</m:inline></link>"
            )
        elif (
            isinstance(value, dict)
            and isinstance(value.get("results"), list)
            and value["results"]
            and all(_is_entity(v) for v in value["results"])
        ):
            feed = "".join(_entry(v, root=False) for v in value["results"])
            parts.append(
                f'<link rel="{RELATED}{key}" type="application/atom+xml;type=feed" '
                f"title={quoteattr(key)}><m:inline><feed>{feed}</feed></m:inline></link>"
            )
        else:
            props.append(_property(key, value))
    parts.append(f"<title /><updated>{_now()}</updated><author><name /></author>")
    parts.append(
        f'<content type="application/xml"><m:properties>{"".join(props)}</m:properties></content>'
    )
    ns = f" {NAMESPACES}" if root else ""
    return f"<entry{ns}>{''.join(parts)}</entry>"


def entry_document(obj: dict[str, Any]) -> bytes:
    """An entity (verbose shape) as an Atom `<entry>` document."""
    if not _is_entity(obj):
        # A complex value (e.g. SP.ContextWebInformation) is a plain `<d:…>` element.
        type_name = str((obj.get("__metadata") or {}).get("type", "value")).rsplit(".", 1)[-1]
        body = _property(type_name, obj).replace(
            f"<d:{type_name}", f'<d:{type_name} xmlns:d="{D_NS}" xmlns:m="{M_NS}"', 1
        )
        return (DECLARATION + body).encode("utf-8")
    return (DECLARATION + _entry(obj, root=True)).encode("utf-8")


def feed_document(rows: list[Any], self_url: str, next_url: str | None) -> bytes:
    """A collection (verbose rows) as an Atom `<feed>`, with `rel="next"` when more follow."""
    entries = "".join(
        _entry(r, root=False)
        if _is_entity(r)
        else f'<entry><content type="application/xml"><m:properties>{"".join(_property(k, v) for k, v in r.items() if k != "__metadata")}</m:properties></content></entry>'
        for r in rows
        if isinstance(r, dict)
    )
    nxt = f'<link rel="next" href={quoteattr(next_url)} />' if next_url else ""
    return (
        f"{DECLARATION}<feed {NAMESPACES}><id>{escape(self_url)}</id><title />"
        f"<updated>{_now()}</updated>{entries}{nxt}</feed>"
    ).encode()


def value_document(name: str, value: Any) -> bytes:
    """The result of a service operation: `<d:Name>value</d:Name>`."""
    body = _property(name, value).replace(
        f"<d:{name}", f'<d:{name} xmlns:d="{D_NS}" xmlns:m="{M_NS}"', 1
    )
    return (DECLARATION + body).encode("utf-8")


def error_document(code: str, message: str) -> bytes:
    """SharePoint's XML error body (`m:error` with `m:code` and `m:message`)."""
    return (
        f'{DECLARATION}<m:error xmlns:m="{M_NS}"><m:code>{escape(code)}</m:code>'
        f'<m:message xml:lang="en-US">{escape(message)}</m:message></m:error>'
    ).encode()
