"""State stores: snapshots, checkpoints, run documents and run locks.

`open_state_store(settings)` picks the implementation from `Settings`: a local directory (the embedded default,
`.sp-sync/state`) or an Azure Blob Storage container (the Functions app). Both implement
`StateStore`; see `sp_sync.state.base` for the commit protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sp_sync.errors import SettingsError
from sp_sync.i18n import Text
from sp_sync.settings import Settings, default_of
from sp_sync.state.base import (
    ListState,
    RunLock,
    RunLockLostError,
    StateConflictError,
    StateStore,
    SyncCheckpoint,
    list_key_segment,
    redact,
    site_key,
)
from sp_sync.state.local import LocalStateStore

if TYPE_CHECKING:
    from sp_sync.state.blob import BlobStateStore

__all__ = [
    "DEFAULT_CONTAINER",
    "DEFAULT_STATE_DIR",
    "BlobStateStore",
    "ListState",
    "LocalStateStore",
    "RunLock",
    "RunLockLostError",
    "StateConflictError",
    "StateStore",
    "SyncCheckpoint",
    "list_key_segment",
    "open_state_store",
    "site_key",
]

# The defaults live once, in the settings table.
DEFAULT_STATE_DIR = default_of("SP_SYNC_STATE_DIR")
DEFAULT_CONTAINER = default_of("SP_SYNC_STATE_CONTAINER")

_NO_CONNECTION = Text(
    sv="appinställningen {setting} med anslutningssträngen till lagringskontot är inte satt",
    en="the app setting {setting} with the storage connection string is not set",
)
_BAD_KIND = Text(
    sv="måste vara 'local' eller 'azure', inte {kind}", en="must be 'local' or 'azure', not {kind}"
)


def __getattr__(name: str) -> Any:
    # The Azure SDK costs ~1 s to import; local runs (CLI, demo) never need it.
    if name == "BlobStateStore":
        from sp_sync.state.blob import BlobStateStore

        return BlobStateStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_state_store(settings: Settings) -> StateStore:
    """Build the state store the settings ask for: a local directory (SP_SYNC_STATE_DIR) or a
    Blob Storage container (SP_SYNC_STATE_CONTAINER, with the connection string `Settings`
    resolved from SP_SYNC_STATE_CONNECTION)."""
    if settings.state == "local":
        return LocalStateStore(settings.state_dir, language=settings.language)
    if settings.state == "azure":
        if not settings.state_connection_string:
            raise SettingsError(
                "SP_SYNC_STATE_CONNECTION",
                _NO_CONNECTION.fill(setting=settings.state_connection_setting),
            )
        from sp_sync.state.blob import BlobStateStore

        return BlobStateStore(
            settings.state_connection_string, settings.state_container, language=settings.language
        )
    raise SettingsError("SP_SYNC_STATE", _BAD_KIND.fill(kind=repr(redact(str(settings.state)))))
