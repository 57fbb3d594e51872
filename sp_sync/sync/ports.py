"""What the sync engine needs from SharePoint, as a Protocol (a port, in the engine's terms).

`SharePointClient` implements it against a real site (and the emulator); the tests' in-memory
`FakeSharePoint` (tests/sync/fakes.py) implements it without HTTP. Parameters are
positional-only so that an implementation may name them as it likes (`title`, `list_title`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sp_sync.sharepoint import Change, ItemPage, ListInfo, SiteUser, WebInfo

__all__ = ["SharePointSource"]


class SharePointSource(Protocol):
    """The reads a sync makes: the site and its users, a list's facts and change token, pages
    of items by ID, items by ID, and the change log since a token."""

    def get_web(self) -> WebInfo: ...

    def get_site_users(self) -> Mapping[int, SiteUser]: ...

    def get_list(self, title: str, /) -> ListInfo: ...

    def get_current_change_token(self, title: str, /) -> str: ...

    def get_changes(self, title: str, start_token: str, /) -> Iterable[Change]: ...

    def iter_item_pages(
        self,
        title: str,
        /,
        *,
        select: Sequence[str],
        expand: Sequence[str] = (),
        after_id: int = 0,
        page_size: int = ...,
    ) -> Iterator[ItemPage]: ...

    def get_items_by_ids(
        self,
        title: str,
        ids: Sequence[int],
        /,
        *,
        select: Sequence[str],
        expand: Sequence[str] = (),
    ) -> Sequence[Mapping[str, Any]]: ...
