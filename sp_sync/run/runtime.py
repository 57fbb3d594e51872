"""The runtime: every dependency a run or a job needs, built once from `Settings` and passed in.

    runtime = Runtime.from_env()                      # the CLI and the Functions triggers
    runtime = Runtime(settings=s, store_factory=...)  # tests and the demo: fakes in the constructor
    pipeline.run_pipeline(runtime, site)
    jobs.handle_job_message(body, load_runtime=lambda: runtime)

Nothing is set globally (as httpx takes `transport=` and the Azure SDK `credential=`): the
client per site, the state store, the schemas, the clock, the deadline, the queue sender and the
token providers all come from here. The store, the schemas and the queue sender are built on
first use, so a command that needs none of them (e.g. `check`) neither creates a state directory
nor connects to a queue.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sp_sync.errors import SettingsError
from sp_sync.i18n import Text
from sp_sync.settings import Settings, SiteConfig

if TYPE_CHECKING:
    # Deferred at run time: `import function_app` (the host's indexing, i.e. every cold start)
    # pulls this module in. Measured with `python -X importtime -c "import function_app; import
    # <module>"` on the shared 2-core dev box, on top of function_app itself (0.15-0.4 s):
    # sp_sync.state 1.2 s (pandas, pyarrow), sp_sync.auth 0.17 s (msal), sp_sync.sharepoint
    # 0.16 s (office365), sp_sync.schema.model 0.08 s (yaml). A status request pays for none of
    # them, a job only for what it uses.
    from sp_sync.auth import TokenProvider
    from sp_sync.schema.model import SchemaSet
    from sp_sync.sharepoint import SharePointClient
    from sp_sync.state import StateStore

__all__ = [
    "ClientFactory",
    "QueueSender",
    "Runtime",
    "TokenProviderFactory",
    "azure_poison_sender",
    "azure_queue_sender",
    "poison_queue_name",
    "utc_now",
]

#: How a token provider is made for one site (the demo and tests inject the emulator's).
TokenProviderFactory = Callable[[Settings, SiteConfig], "TokenProvider"]
#: How a client is made for one site and deadline (tests inject an in-memory SharePoint).
ClientFactory = Callable[[SiteConfig, "float | None"], "SharePointClient"]


class QueueSender(Protocol):
    """Where job messages go (an Azure Storage queue in the Functions app)."""

    def send(self, text: str) -> None: ...


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _open_store(settings: Settings) -> StateStore:
    from sp_sync.state import open_state_store

    return open_state_store(settings)


def _load_schemas(directory: Path) -> SchemaSet:
    from sp_sync.schema import load_schemas

    return load_schemas(directory)


_NO_QUEUE_CONNECTION = Text(
    sv="är inte satt; jobbkön behöver den", en="is not set; the job queue needs it"
)


def azure_queue_sender(settings: Settings) -> QueueSender:
    """The job queue SP_SYNC_QUEUE, through the connection the queue trigger reads
    (AzureWebJobsStorage, the platform's own setting), else the state store's connection."""
    from sp_sync.run.jobs import AzureQueueSender

    connection = settings.jobs_connection_string or settings.state_connection_string
    if not connection:
        raise SettingsError("AzureWebJobsStorage", _NO_QUEUE_CONNECTION)
    return AzureQueueSender(connection, settings.queue)


def poison_queue_name(settings: Settings) -> str:
    """The queue the Functions host moves failed job messages to (its own naming rule)."""
    return f"{settings.queue}-poison"


def azure_poison_sender(settings: Settings) -> QueueSender:
    """The job queue's poison queue, where a message no retry can fix goes at once."""
    from sp_sync.run.jobs import AzureQueueSender

    connection = settings.jobs_connection_string or settings.state_connection_string
    if not connection:
        raise SettingsError("AzureWebJobsStorage", _NO_QUEUE_CONNECTION)
    return AzureQueueSender(connection, poison_queue_name(settings))


class _LatestDeadline:
    """The deadline of the latest run started from a runtime (mutable inside a frozen one)."""

    def __init__(self) -> None:
        self.value: float | None = None

    def __call__(self) -> float | None:
        return self.value


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """The dependencies of one process's runs and jobs. Build it with `Runtime.from_env()` or
    pass fakes to the constructor; every field but `settings` has a real default."""

    settings: Settings
    #: None: tokens as SP_SYNC_AUTH says (managed identity or certificate).
    token_provider_factory: TokenProviderFactory | None = None
    #: None: a `SharePointClient` for the site, authenticated as above.
    client_factory: ClientFactory | None = None
    store_factory: Callable[[Settings], StateStore] = _open_store
    schemas_loader: Callable[[Path], SchemaSet] = _load_schemas
    queue_sender_factory: Callable[[Settings], QueueSender] = azure_queue_sender
    #: Where a malformed job message goes at once (`<queue>-poison`, as the host would).
    poison_sender_factory: Callable[[Settings], QueueSender] = azure_poison_sender
    clock: Callable[[], dt.datetime] = utc_now
    #: What `deadline()` last returned: the store bounds its calls by it (issue 11 item 4).
    _latest_deadline: _LatestDeadline = field(
        default_factory=_LatestDeadline, init=False, repr=False, compare=False
    )

    @classmethod
    def from_env(cls) -> Runtime:
        """The runtime of a deployment: settings from the environment, real dependencies."""
        return cls(settings=Settings.from_env())

    @property
    def language(self) -> str:
        return self.settings.language

    @cached_property
    def store(self) -> StateStore:
        """The state store (opened on first use, then shared by every run of this runtime).
        A store that can (the blob store) bounds its calls by the latest run's deadline."""
        store = self.store_factory(self.settings)
        bind = getattr(store, "bind_deadline", None)
        if callable(bind):
            bind(self._latest_deadline)
        return store

    @cached_property
    def schemas(self) -> SchemaSet:
        """The list schemas from the settings' schema directory (loaded on first use)."""
        return self.schemas_loader(self.settings.schema_dir)

    @cached_property
    def queue(self) -> QueueSender:
        """The job queue (connected on first use)."""
        return self.queue_sender_factory(self.settings)

    @cached_property
    def poison_queue(self) -> QueueSender:
        """The job queue's poison queue (connected on first use)."""
        return self.poison_sender_factory(self.settings)

    def now(self) -> dt.datetime:
        return self.clock()

    def deadline(self, *, not_after: float | None = None) -> float:
        """When a run that starts now must stop at a page boundary, in `time.monotonic()`
        seconds: the sync engine and the client's retry policy compare against that clock, so
        it is not injectable (a test shortens SP_SYNC_TIME_BUDGET_SECONDS instead). `not_after`
        caps it, e.g. by the deadline of the invocation the run is part of."""
        deadline = time.monotonic() + self.settings.time_budget_seconds
        if not_after is not None:
            deadline = min(deadline, not_after)
        self._latest_deadline.value = deadline
        return deadline

    def client(self, site: SiteConfig, *, deadline: float | None = None) -> SharePointClient:
        """A new client for one site, authenticated by the injected or configured provider."""
        if self.client_factory is not None:
            return self.client_factory(site, deadline)
        from sp_sync.sharepoint import SharePointClient

        provider = (
            self.token_provider_factory(self.settings, site)
            if self.token_provider_factory is not None
            else None
        )
        return SharePointClient.from_settings(
            self.settings, site, deadline=deadline, token_provider=provider
        )
