"""A small in-memory stand-in for SharePointClient (the sync engine's view of it).

It follows the client's documented API (sp_sync/sharepoint) and SharePoint's rules that matter to
the engine: keyset pages, a change log with tokens and retention, deletes as ChangeType 3 with
the id only, restores. Request counting: one per call/page/batch, plus a contextinfo on the first
request. The real client fetches its digest only before its first POST (a change-log read, a
batch), so for a run made of reads only the fake counts one more than the real client would; the
request budgets are asserted through the real client in the emulator tests. Used for fast engine-logic tests; the emulator tests check the same scenarios
through the real client.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from sp_sync.errors import ThresholdError
from sp_sync.sharepoint.changes import Change, ChangeTokenExpiredError

STHLM = ZoneInfo("Europe/Stockholm")


@dataclass
class FakeStats:
    requests: int = 0
    retries: int = 0
    wait_seconds: float = 0.0
    bytes_received: int = 0


@dataclass
class FakeList:
    title: str
    id: str
    items: dict[int, dict[str, Any]] = field(default_factory=dict)
    log: list[tuple[int, str, int, datetime]] = field(default_factory=list)  # (n, kind, id, time)
    next_id: int = 1
    recycle: dict[int, dict[str, Any]] = field(default_factory=dict)


class FakeSharePoint:
    """Lists keyed by title; items are raw JSON dicts the way the client returns them."""

    def __init__(self, site_url: str = "http://127.0.0.1:1/sites/x") -> None:
        self.site_url = site_url
        self.lists: dict[str, FakeList] = {}
        self.change_number = 0
        self.retention_floor = 0  # tokens with a number below this are "expired"
        self.users = {7: SimpleNamespace(id=7, title="Anna Andersson", email="anna@example.se")}
        self._stats = FakeStats()
        self._digest = False
        self.clock = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)

    # -- seeding (not counted) --------------------------------------------------------------

    def add_list(self, title: str) -> FakeList:
        lst = FakeList(title, f"guid-{len(self.lists) + 1}")
        self.lists[title] = lst
        return lst

    def _log(self, lst: FakeList, kind: str, item_id: int) -> None:
        self.change_number += 1
        lst.log.append((self.change_number, kind, item_id, self.clock))

    def add(self, title: str, **values: Any) -> int:
        lst = self.lists[title]
        i = lst.next_id
        lst.next_id += 1
        self.clock += timedelta(seconds=1)
        stamp = self.clock.strftime("%Y-%m-%dT%H:%M:%SZ")
        lst.items[i] = {
            "ID": i,
            "Id": i,
            "Created": stamp,
            "Modified": stamp,
            "AuthorId": 7,
            "EditorId": 7,
            "OData__UIVersionString": "1.0",
            **values,
        }
        self._log(lst, "add", i)
        return i

    def update(self, title: str, item_id: int, **values: Any) -> None:
        lst = self.lists[title]
        item = lst.items[item_id]
        self.clock += timedelta(seconds=1)
        version = int(item["OData__UIVersionString"].split(".")[0]) + 1
        item.update(
            values,
            Modified=self.clock.strftime("%Y-%m-%dT%H:%M:%SZ"),
            OData__UIVersionString=f"{version}.0",
        )
        self._log(lst, "update", item_id)

    def delete(self, title: str, item_id: int) -> None:
        lst = self.lists[title]
        lst.recycle[item_id] = lst.items.pop(item_id)
        self._log(lst, "delete", item_id)

    def restore(self, title: str, item_id: int) -> None:
        lst = self.lists[title]
        lst.items[item_id] = lst.recycle.pop(item_id)
        self._log(lst, "restore", item_id)

    def expire_change_log(self) -> None:
        self.retention_floor = self.change_number + 1

    # -- client API ---------------------------------------------------------------------------

    def _count(self, n: int = 1) -> None:
        if not self._digest:
            self._digest = True
            self._stats.requests += 1
        self._stats.requests += n

    @property
    def stats(self) -> FakeStats:
        return FakeStats(**vars(self._stats))

    def get_web(self) -> Any:
        self._count()
        return SimpleNamespace(title="x", url=self.site_url, time_zone=STHLM)

    def get_site_users(self) -> dict[int, Any]:
        self._count()
        return dict(self.users)

    def get_list(self, title: str) -> Any:
        self._count()
        lst = self.lists[title]
        return SimpleNamespace(id=lst.id, title=title, item_count=len(lst.items), url=title)

    def _token(self, lst: FakeList, number: int) -> str:
        return f"1;3;{lst.id};0;{number}"

    def get_current_change_token(self, title: str) -> str:
        self._count()
        return self._token(self.lists[title], self.change_number)

    def get_changes(self, title: str, start_token: str) -> list[Change]:
        lst = self.lists[title]
        parts = start_token.split(";")
        start = int(parts[4])
        self._count()
        if parts[2] != lst.id or start < self.retention_floor - 1:
            raise ChangeTokenExpiredError("The change token is no longer valid.")
        out = [
            Change(kind, item_id, self._token(lst, n), when)  # type: ignore[arg-type]
            for n, kind, item_id, when in lst.log
            if n > start
        ]
        # SharePoint answers in batches of 1,000: one request per batch.
        extra = max(0, math.ceil(len(out) / 1000) - 1)
        if extra:
            self._count(extra)
        return out

    def iter_item_pages(
        self, title: str, *, select: Any, expand: Any = (), after_id: int = 0, page_size: int = 5000
    ) -> Any:
        lst = self.lists[title]
        last = after_id
        while True:
            self._count()
            ids = sorted(i for i in lst.items if i > last)[:page_size]
            items = [dict(lst.items[i]) for i in ids]
            more = len(ids) == page_size and any(i > ids[-1] for i in lst.items)
            if ids:
                last = ids[-1]
            yield SimpleNamespace(items=items, last_id=last, has_more=more)
            if not more:
                return

    def iter_items_modified_since(
        self, title: str, since: datetime, *, select: Any, expand: Any = (), page_size: int = 5000
    ) -> Any:
        lst = self.lists[title]
        cut = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        ids = sorted(i for i, it in lst.items.items() if it["Modified"] >= cut)
        for start in range(0, max(len(ids), 1), page_size):
            self._count()
            chunk = ids[start : start + page_size]
            yield SimpleNamespace(
                items=[dict(lst.items[i]) for i in chunk],
                last_id=chunk[-1] if chunk else 0,
                has_more=start + page_size < len(ids),
            )

    def iter_items_modified_between(
        self,
        title: str,
        since: datetime,
        until: datetime,
        *,
        select: Any,
        expand: Any = (),
        page_size: int = 5000,
    ) -> Any:
        lst = self.lists[title]
        low, high = (t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in (since, until))
        ids = sorted(i for i, it in lst.items.items() if low <= it["Modified"] < high)
        if len(lst.items) > 5000 and len(ids) > 5000:  # the list view threshold
            self._count()
            raise ThresholdError("The attempted operation exceeds the list view threshold.")
        for start in range(0, max(len(ids), 1), page_size):
            self._count()
            chunk = ids[start : start + page_size]
            yield SimpleNamespace(
                items=[dict(lst.items[i]) for i in chunk],
                last_id=chunk[-1] if chunk else 0,
                has_more=start + page_size < len(ids),
            )

    def get_items_by_ids(self, title: str, ids: Any, *, select: Any, expand: Any = ()) -> list:
        unique = sorted(set(ids))
        if not unique:
            return []
        self._count(math.ceil(len(unique) / 5000))
        lst = self.lists[title]
        return [dict(lst.items[i]) for i in unique if i in lst.items]
