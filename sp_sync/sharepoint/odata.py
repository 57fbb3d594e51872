"""OData literals and filters. Every `$filter` value goes through `literal()` (one escaping rule)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime


def literal(value: object) -> str:
    """An OData v3 literal: strings quoted with `'` doubled, datetimes as UTC `datetime'…Z'`.

    A naive datetime is refused: guessing its zone is how off-by-an-hour bugs start.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(
                "a naive datetime cannot be used in a SharePoint filter; pass an aware one"
            )
        utc = value.astimezone(UTC).replace(microsecond=0)
        return f"datetime'{utc:%Y-%m-%dT%H:%M:%SZ}'"
    if isinstance(value, date):
        return f"datetime'{value:%Y-%m-%d}T00:00:00Z'"
    text = str(value)
    return "'" + text.replace("'", "''") + "'"


def id_in(ids: Iterable[int]) -> str:
    """`ID eq a or ID eq b …` (SharePoint's OData v3 has no `in`)."""
    parts = [f"ID eq {int(i)}" for i in ids]
    if not parts:
        raise ValueError("id_in needs at least one id")
    return " or ".join(parts)
