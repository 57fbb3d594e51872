"""The list change log: `GetChanges` with a `ChangeToken`, and the list's current token.

Sends the body office365's `List.get_changes(ChangeQuery(...))` sends, with a real
`SP.ChangeToken` value (B6: a plain string produces an invalid body), through the client's raw
request (same auth, digest, retries); office365's entity tree is not loaded for it. SharePoint
returns changes in batches of at most 1,000; we continue from the last change's token while
batches come back full.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sp_sync.errors import FatalError, SpSyncError
from sp_sync.i18n import Text
from sp_sync.sharepoint.client import quote_path_literal, unwrap_verbose

if TYPE_CHECKING:
    from sp_sync.sharepoint.client import ClientCore

    _Base = ClientCore
else:
    _Base = object

log = logging.getLogger(__name__)

# What each request does, named in error messages and retry warnings (both languages).
_OP_CHANGE_LOG = Text(
    sv="läsning av ändringsloggen för listan '{title}'",
    en="reading the change log of list '{title}'",
)
_TOKEN_EXPIRED = Text(
    sv="SharePoint godtar inte längre ändringstoken för listan '{title}' (ändringsloggen har "
    "gått vidare eller listan har skapats om); listan behöver läsas helt",
    en="SharePoint no longer accepts the change token of list '{title}' (the change log has "
    "moved on or the list was recreated); a full read is needed",
)
_NO_CHANGE_TOKEN = Text(
    sv="SharePoint returnerade ingen CurrentChangeToken för listan '{title}'",
    en="SharePoint returned no CurrentChangeToken for list '{title}'",
)
_OP_CHANGE_TOKEN = Text(
    sv="läsning av ändringstoken för listan '{title}'",
    en="reading the change token of list '{title}'",
)

#: SharePoint's change-log batch size: a full batch means "ask again from its last token".
CHANGE_BATCH_SIZE = 1000

ChangeKind = Literal["add", "update", "delete", "restore"]

# SP.ChangeType numbers → our kinds; SystemUpdate (15) changes the row too.
_KINDS: dict[int, ChangeKind] = {1: "add", 2: "update", 15: "update", 3: "delete", 7: "restore"}


class ChangeTokenExpiredError(FatalError):
    """SharePoint no longer knows the change token (log retention passed, list recreated).

    The sync engine catches it and does a full re-read reconciled against the snapshot.
    """


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    item_id: int
    token: str
    time: datetime


def _token_value(token: Any) -> str | None:
    if token is None:
        return None
    if isinstance(token, str):
        return token
    value = getattr(token, "StringValue", None)
    if value is None and isinstance(token, dict):
        value = token.get("StringValue")
    return str(value) if value else None


def _as_utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.min.replace(tzinfo=UTC)


def _change_query(token: str) -> dict[str, Any]:
    """The `SP.ChangeQuery` body of one `getChanges` call: item adds, updates (system updates
    too), deletes and restores after `token`. The same body office365's
    `List.get_changes(ChangeQuery(...))` sends (office365 3.3.0 `sharepoint/changes/query.py`;
    MS Learn: "Query SharePoint change log with ChangeQuery and ChangeToken"),
    sent raw: its entity tree costs a quarter of a CPU-second to import for this one call."""
    return {
        "query": {
            "Item": True,
            "Alert": False,
            "ContentType": False,
            "Web": False,
            "Site": False,
            "List": False,
            "Activity": False,
            "File": False,
            "Folder": False,
            "User": False,
            "Group": False,
            "View": False,
            "Add": True,
            "Update": True,
            "SystemUpdate": True,
            # An SP.ChangeToken value, never a plain string (B6: that is an invalid body).
            "ChangeTokenStart": {"StringValue": token, "__metadata": {"type": "SP.ChangeToken"}},
            "DeleteObject": True,
            "RoleAssignmentAdd": False,
            "RoleAssignmentDelete": False,
            "Restore": True,
            "__metadata": {"type": "SP.ChangeQuery"},
        }
    }


def _change_rows(payload: Any) -> list[dict[str, Any]]:
    """The change records of a `getChanges` answer (verbose `d.results`, or JSON light `value`)."""
    body = unwrap_verbose(payload)
    rows = body.get("results", body.get("value")) if isinstance(body, dict) else body
    return [r for r in rows or () if isinstance(r, dict)]


#: SP.ChangeType names, for an answer that spells the type out instead of numbering it.
_CHANGE_TYPE_NAMES = {"Add": 1, "Update": 2, "DeleteObject": 3, "Restore": 7, "SystemUpdate": 15}


def _change_type(value: Any) -> int:
    if isinstance(value, str) and not value.isdigit():
        return _CHANGE_TYPE_NAMES.get(value, 0)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _is_expired_token_error(err: SpSyncError) -> bool:
    code = err.code or ""
    return (
        (err.status == 500 and code.startswith("-2146233086"))
        or err.status == 400
        or ("ArgumentOutOfRangeException" in code)
    )


class ChangesMixin(_Base):
    """Change-log reads. Mixed into `SharePointClient`."""

    def get_changes(self, list_title: str, start_token: str) -> list[Change]:
        """Item adds, updates, deletes and restores after `start_token`, oldest first.

        Raises ChangeTokenExpiredError when SharePoint rejects the token.
        """
        changes: list[Change] = []
        token = start_token
        path = f"/_api/Web/lists/GetByTitle({quote_path_literal(list_title)})/getChanges"
        while True:
            try:
                payload = self._raw_json(
                    "POST",
                    path,
                    json=_change_query(token),
                    description=_OP_CHANGE_LOG.fill(title=list_title),
                    write=False,
                )
            except SpSyncError as err:
                if _is_expired_token_error(err):
                    raise ChangeTokenExpiredError(
                        _TOKEN_EXPIRED.fill(title=list_title),
                        status=err.status,
                        code=err.code,
                        request_id=err.request_id,
                    ) from err
                raise
            raw = _change_rows(payload)
            for props in raw:
                kind = _KINDS.get(_change_type(props.get("ChangeType")))
                item_id = props.get("ItemId")
                value = _token_value(props.get("ChangeToken"))
                if kind is None or item_id is None or value is None:
                    continue
                changes.append(Change(kind, int(item_id), value, _as_utc(props.get("Time"))))
            if len(raw) < CHANGE_BATCH_SIZE:
                return changes
            last = _token_value(raw[-1].get("ChangeToken"))
            if not last or last == token:
                return changes
            token = last

    def get_current_change_token(self, list_title: str) -> str:
        """The list's current change token: start incremental syncs from here after a full read."""
        data = self._get_json(
            f"/_api/web/lists/GetByTitle({quote_path_literal(list_title)})",
            {"$select": "CurrentChangeToken"},
            description=_OP_CHANGE_TOKEN.fill(title=list_title),
        )
        value = _token_value(data.get("CurrentChangeToken")) if isinstance(data, dict) else None
        if not value:
            raise SpSyncError(_NO_CHANGE_TOKEN.fill(title=list_title))
        return value
