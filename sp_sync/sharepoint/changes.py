"""The list change log: `GetChanges` with a `ChangeToken`, and the list's current token.

Uses office365's `List.get_changes(ChangeQuery(...))` with a real `ChangeToken` value (B6: a
plain string produces an invalid body). SharePoint returns changes in batches of at most 1,000;
we continue from the last change's token while batches come back full.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sp_sync.errors import FatalError, SpSyncError
from sp_sync.i18n import Text
from sp_sync.sharepoint.client import quote_path_literal

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
        from office365.sharepoint.changes.query import ChangeQuery
        from office365.sharepoint.changes.token import ChangeToken

        changes: list[Change] = []
        token = start_token
        while True:

            def build(token: str = token) -> Any:
                query = ChangeQuery(
                    Item=True,
                    Add=True,
                    Update=True,
                    SystemUpdate=True,
                    DeleteObject=True,
                    Restore=True,
                    RoleAssignmentAdd=False,
                    RoleAssignmentDelete=False,
                    ChangeTokenStart=ChangeToken(token),  # type: ignore[arg-type]
                )
                return self._ctx.web.lists.get_by_title(list_title).get_changes(query)

            try:
                batch = self._execute(build, description=_OP_CHANGE_LOG.fill(title=list_title))
            except SpSyncError as err:
                if _is_expired_token_error(err):
                    raise ChangeTokenExpiredError(
                        _TOKEN_EXPIRED.fill(title=list_title),
                        status=err.status,
                        code=err.code,
                        request_id=err.request_id,
                    ) from err
                raise
            raw = list(batch)
            for change in raw:
                props = change.properties
                kind = _KINDS.get(
                    int(getattr(change.change_type, "value", change.change_type) or 0)
                )
                item_id = props.get("ItemId")
                value = _token_value(props.get("ChangeToken"))
                if kind is None or item_id is None or value is None:
                    continue
                changes.append(Change(kind, int(item_id), value, _as_utc(props.get("Time"))))
            if len(raw) < CHANGE_BATCH_SIZE:
                return changes
            last = _token_value(raw[-1].properties.get("ChangeToken"))
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
