"""THE SharePoint client: the only part of sp_sync that imports office365.

    client = SharePointClient(site_url, token_provider, organisation="Region X")
    for page in client.iter_item_pages("Dialoger", select=["ID", "Title"]):
        ...
    client.stats  # RequestStats(requests, retries, wait_seconds, bytes_received, throttled_responses)

`SharePointClient` is assembled from mixins by area, on top of `ClientCore` (client.py):

| mixin              | module           | what                                        |
|--------------------|------------------|---------------------------------------------|
| ItemsMixin         | items.py         | keyset paging, items by id ($batch)         |
| ChangesMixin       | changes.py       | GetChanges, current change token            |
| ListsMixin         | lists.py         | web + time zone, lists, fields, site users  |
| ProvisioningMixin  | provisioning.py  | create lists/fields (writes)                |
| FilesMixin         | files.py         | upload/verify workbooks                     |

Contract for a mixin author (provisioning.py, files.py):
- `self._execute(build, *, description, write=False, retry=True)` runs `build()` — which queues
  office365 queries on `self._ctx` and/or sends requests with `self._raw(...)` — and then
  `self._ctx.execute_query()` if anything is queued. Throttling (429/503 + Retry-After),
  transient 5xx and dropped connections retry the *whole* `build` (pending queries of a failed
  attempt are discarded first), so a build must be repeatable; pass `retry=False` for a write
  that must not be repeated. A 401 renews the token once. `write=True` makes a 403 say that
  write access is missing.
- `self._raw(method, path, *, params=None, json=None, data=None, headers=None,
  description=None)` sends one request (path `/_api/...` relative to the site, or absolute)
  through the same auth, form digest, stats and retry policy, returning `requests.Response`.
  MERGE/DELETE/PUT are sent as POST with `X-HTTP-Method`.
- `self._raw_json(...)` takes `_raw`'s arguments and returns the decoded JSON body, decoded
  inside the retry loop: an answer that is not JSON (a proxy's sign-in page, a body cut short)
  is retried and then reported as a TransientError naming it (`retry.UnreadableAnswer`).
- `self._get_json(path, params, *, description)` is `_raw_json("GET")` returning the verbose `d`.
- `self._ctx` is the office365 `ClientContext`, imported and built on first use (0.25 CPU-s of
  imports: prefer `_raw` where the request is simple); `self.site_url` the site URL.
- Every failure leaves as an sp_sync.errors exception (mapped in `client.map_error`); never
  catch office365 exceptions outside this package.
- `odata.literal(value)` is the one way to put a value into a `$filter`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sp_sync.sharepoint.changes import Change, ChangesMixin, ChangeTokenExpiredError
from sp_sync.sharepoint.client import ClientCore, RequestStats, map_error
from sp_sync.sharepoint.files import FilesMixin
from sp_sync.sharepoint.items import ItemPage, ItemsMixin, item_version
from sp_sync.sharepoint.lists import (
    FieldInfo,
    ListInfo,
    ListsMixin,
    SiteUser,
    WebInfo,
    resolve_time_zone,
)
from sp_sync.sharepoint.odata import literal
from sp_sync.sharepoint.provisioning import ProvisioningMixin
from sp_sync.sharepoint.retry import RetryPolicy

if TYPE_CHECKING:
    from sp_sync.auth import TokenProvider
    from sp_sync.settings import Settings, SiteConfig


class SharePointClient(
    ItemsMixin, ChangesMixin, ListsMixin, ProvisioningMixin, FilesMixin, ClientCore
):
    """One SharePoint site: reads, change log, provisioning and files, with one retry policy.

    `SharePointClient(site_url, token_provider, *, organisation, retry=RetryPolicy(),
    deadline=None, session=None)`; see `ClientCore`.
    """

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        site: SiteConfig | None = None,
        *,
        deadline: float | None = None,
        token_provider: TokenProvider | None = None,
        retry: RetryPolicy | None = None,
    ) -> SharePointClient:
        """A client for one configured site (default: the first), authenticated per SP_SYNC_AUTH."""
        from sp_sync.auth import token_provider_from_settings

        target = site or settings.sites[0]
        provider = token_provider or token_provider_from_settings(
            settings, settings.resource_for(target)
        )
        return cls(
            target.url, provider, organisation=settings.organisation, retry=retry, deadline=deadline
        )


__all__ = [
    "Change",
    "ChangeTokenExpiredError",
    "ClientCore",
    "FieldInfo",
    "ItemPage",
    "ListInfo",
    "RequestStats",
    "RetryPolicy",
    "SharePointClient",
    "SiteUser",
    "WebInfo",
    "item_version",
    "literal",
    "map_error",
    "resolve_time_zone",
]
