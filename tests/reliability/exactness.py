"""Row-for-row exactness over EVERY schema column: what the emulator holds vs. the snapshot.

The expected side is computed from the emulator's backend (what SharePoint stores), without any
sp_sync code, so a defect in normalising cannot hide by being on both sides:

- text, choice, note: the stored string (the raw HTML for rich-text notes);
- number: the stored float;
- date: the stored UTC instant converted to the *site's* time zone, as a calendar date (the
  classic off-by-one-day bug is a UTC conversion here);
- person: (user id, display name, e-mail) from the site's users;
- lookup: (target item id, target item's Title); multi_lookup: the lists of both;
- plus ID, version, Created, Modified (to the second), Author and Editor names.

Empty text and missing values compare equal (SharePoint returns null for both).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from sp_sync.schema import load_schemas

SCHEMAS = load_schemas()
#: Every schema column type this module knows how to compare; a new type fails loudly.
COMPARED_TYPES = frozenset(
    {"text", "choice", "note", "number", "date", "person", "lookup", "multi_lookup"}
)


def plain(value: Any) -> Any:
    """None for null, empty text, NaN, NaT and pd.NA; the value otherwise."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str):
        return value or None
    try:
        if value != value:  # NaN
            return None
    except (TypeError, ValueError):
        return None
    return value


def _int_or_none(value: Any) -> int | None:
    value = plain(value)
    return None if value is None else int(value)


def _id_list(value: Any) -> list[int]:
    if value is None or (not isinstance(value, Iterable) and plain(value) is None):
        return []
    return [int(v) for v in value]


def _text_list(value: Any) -> list[str | None]:
    if value is None or (not isinstance(value, Iterable) and plain(value) is None):
        return []
    return [plain(v) for v in value]


def _second(ts: Any) -> str | None:
    """An instant as ISO text to the second in UTC (SharePoint's resolution)."""
    if plain(ts) is None:
        return None
    if isinstance(ts, (int, float)):
        ts = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return pd.Timestamp(ts).tz_convert("UTC").floor("s").isoformat()


def compared_columns(title: str) -> list[str]:
    """The schema columns of list `title` the exact check covers (all of them)."""
    columns = SCHEMAS.lists[title].columns
    unknown = sorted({c.type for c in columns} - COMPARED_TYPES)
    assert not unknown, f"{title}: no exact comparison for column types {unknown}"
    return [c.name for c in columns]


def backend_rows(emu: Any, site_name: str, title: str) -> dict[int, dict[str, Any]]:
    """ID → every compared value, straight from the emulator's backend."""
    schema = SCHEMAS.lists[title]
    backend = emu.backend
    with backend.lock:
        site = backend.get_site(site_name)
        lst = backend.get_list(site, title=title)
        users = dict(site.users)
        targets: dict[str, dict[int, Any]] = {}
        for col in schema.columns:
            # The schema loader guarantees a lookup column names its list.
            if col.type in ("lookup", "multi_lookup") and col.lookup_list is not None:
                if col.lookup_list in targets:
                    continue
                target = backend.get_list(site, title=col.lookup_list)
                targets[col.lookup_list] = {
                    int(i): plain(it.values.get(col.lookup_column or "Title"))
                    for i, it in target.items.items()
                }
        out: dict[int, dict[str, Any]] = {}
        for item_id, item in lst.items.items():
            author, editor = users.get(item.author_id), users.get(item.editor_id)
            row: dict[str, Any] = {
                "_version": int(item.version),
                "Created": _second(item.created),
                "Modified": _second(item.modified),
                "Author": author.title if author else None,
                "Editor": editor.title if editor else None,
            }
            for col in schema.columns:
                value = item.values.get(col.name)
                if col.type == "number":
                    row[col.name] = _number(plain(value))
                elif col.type == "date":
                    row[col.name] = (
                        None if plain(value) is None else value.astimezone(site.tz).date()
                    )
                elif col.type == "person":
                    user = users.get(int(value)) if plain(value) is not None else None
                    row[col.name] = (
                        (int(value), user.title if user else None, user.email if user else None)
                        if plain(value) is not None
                        else (None, None, None)
                    )
                elif col.type == "lookup":
                    lookup = targets[col.lookup_list or ""]
                    row[col.name] = (
                        (int(value), lookup.get(int(value)))
                        if plain(value) is not None
                        else (None, None)
                    )
                elif col.type == "multi_lookup":
                    ids = [int(v) for v in value or []]
                    lookup = targets[col.lookup_list or ""]
                    row[col.name] = (ids, [lookup.get(i) for i in ids])
                else:
                    row[col.name] = plain(value)
            out[int(item_id)] = row
        return out


def snapshot_rows(rows: pd.DataFrame, title: str) -> dict[int, dict[str, Any]]:
    """ID → every compared value, from a committed snapshot frame."""
    schema = SCHEMAS.lists[title]
    out: dict[int, dict[str, Any]] = {}
    for rec in rows.to_dict("records"):
        row: dict[str, Any] = {
            "_version": int(rec["_version"]),
            "Created": _second(rec.get("Created")),
            "Modified": _second(rec.get("Modified")),
            "Author": plain(rec.get("Author")),
            "Editor": plain(rec.get("Editor")),
        }
        for col in schema.columns:
            name = col.name
            if col.type == "number":
                value = plain(rec.get(name))
                row[name] = None if value is None else float(value)
            elif col.type == "date":
                value = plain(rec.get(name))
                if isinstance(value, (pd.Timestamp, dt.datetime)):
                    value = value.date()
                row[name] = value
            elif col.type == "person":
                row[name] = (
                    _int_or_none(rec.get(f"{name}Id")),
                    plain(rec.get(name)),
                    plain(rec.get(f"{name}_email")),
                )
            elif col.type == "lookup":
                row[name] = (_int_or_none(rec.get(f"{name}Id")), plain(rec.get(name)))
            elif col.type == "multi_lookup":
                row[name] = (_id_list(rec.get(f"{name}Id")), _text_list(rec.get(name)))
            else:
                row[name] = plain(rec.get(name))
        out[int(rec["ID"])] = row
    assert len(out) == len(rows), f"{title}: duplicate IDs in the snapshot"
    return out


def assert_list_exact(emu: Any, site_name: str, title: str, rows: pd.DataFrame | None) -> int:
    """The snapshot `rows` of `title` equal the list in every column; returns the row count."""
    assert rows is not None, f"{title}: no committed snapshot"
    columns = compared_columns(title)
    want = backend_rows(emu, site_name, title)
    assert all(set(columns) <= set(row) for row in want.values())
    got = snapshot_rows(rows, title)
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    assert not missing and not extra, (title, "missing", missing[:20], "extra", extra[:20])
    wrong = [
        (i, column, want[i][column], got[i].get(column))
        for i in sorted(want)
        for column in want[i]
        if want[i][column] != got[i].get(column)
    ]
    assert not wrong, (title, f"{len(wrong)} differing values", wrong[:8])
    return len(want)


def _number(value: Any) -> float | None:
    """What a number column holds after the sync: a finite float, else nothing (a value that
    is not a number, or cannot be represented, is kept as a data-quality record instead)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None
