"""`$expand` of navigation properties: inline what the property's own URL answers.

Every entity the emulator renders lists its navigation properties as `__deferred` links. SharePoint
inlines them on `$expand=Name` (nested as `Name/Other`). The emulator does the same by answering
the deferred URL internally (same caller, verbose format) and inlining the result, so an expanded
property always holds exactly what a separate GET would return. When that GET fails (the
emulator does not serve the property) the whole request fails with that error: a 200 with a
missing or empty property would be wrong data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sp_emulator.errors import SPError, invalid_query, not_supported
from sp_emulator.http import Request, Response

# request, absolute URL, query options → the internal GET's response (set by the server).
Fetch = Callable[[Request, str, dict[str, str]], Response]


def expand_groups(spec: str) -> dict[str, tuple[str, list[str]]]:
    """`Files,Folders/Files` → {"files": ("Files", []), "folders": ("Folders", ["Files"])}."""
    groups: dict[str, tuple[str, list[str]]] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        first, _, rest = part.partition("/")
        _name, nested = groups.setdefault(first.lower(), (first, []))
        if rest:
            nested.append(rest)
    return groups


def _error_from(response: Response) -> SPError:
    try:
        payload = json.loads(response.body)
        err = payload.get("error") or payload.get("odata.error") or {}
        return SPError(response.status, err["code"], err["message"]["value"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return SPError(response.status, "-1, System.Exception", "Expanding failed.")


def expand_deferred(request: Request, obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` (verbose) with the `__deferred` properties named in `$expand` inlined."""
    spec = request.query.get("$expand")
    if not spec:
        return obj
    fetch: Fetch | None = request.context.get("fetch")
    keys = {k.lower(): k for k in obj}
    out = dict(obj)
    for low, (name, nested) in expand_groups(spec).items():
        key = keys.get(low)
        if key is None:
            if request.query.get("$select"):
                continue  # not selected: SharePoint leaves it out as well
            type_name = (obj.get("__metadata") or {}).get("type", "")
            raise invalid_query(f"The property '{name}' does not exist on type '{type_name}'.")
        value = obj[key]
        if not (isinstance(value, dict) and "__deferred" in value):
            continue  # already rendered by the handler (e.g. lookups of an item)
        if fetch is None:
            raise not_supported(f"$expand={name} here", status=400)
        query = {"$expand": ",".join(nested)} if nested else {}
        response = fetch(request, value["__deferred"]["uri"], query)
        if response.status >= 400:
            raise _error_from(response)
        d = json.loads(response.body)["d"]
        if isinstance(d, dict) and "__next" in d:
            raise not_supported(f"$expand={name} of a collection longer than one page", 400)
        out[key] = d
    return out
