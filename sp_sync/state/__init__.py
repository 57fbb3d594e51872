"""State stores: snapshots, checkpoints, run documents and run locks.

`open_state_store(settings)` picks the implementation: a local directory (the embedded default,
`.sp-sync/state`) or an Azure Blob Storage container (the Functions app). Both implement
`StateStore`; see `sp_sync.state.base` for the commit protocol.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sp_sync.errors import SettingsError
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

DEFAULT_STATE_DIR = ".sp-sync/state"
DEFAULT_CONTAINER = "sp-sync-state"

# Attribute names looked up on a settings object, first match wins; the same names work as keys
# of a mapping, and a mapping of environment variables (SP_SYNC_STATE…) works too.
_KIND = ("state", "state_store", "state_kind", "state_backend", "SP_SYNC_STATE")
_DIR = ("state_dir", "SP_SYNC_STATE_DIR")
_CONNECTION = (
    "state_connection",
    "state_connection_string",
    "SP_SYNC_STATE_CONNECTION",
)
_CONTAINER = ("state_container", "SP_SYNC_STATE_CONTAINER")
_PREFIX = ("state_prefix", "SP_SYNC_STATE_PREFIX")


def __getattr__(name: str) -> Any:
    # The Azure SDK costs ~1 s to import; local runs (CLI, demo) never need it.
    if name == "BlobStateStore":
        from sp_sync.state.blob import BlobStateStore

        return BlobStateStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _get(settings: Any, names: tuple[str, ...]) -> Any:
    for name in names:
        if isinstance(settings, Mapping):
            value = settings.get(name)
        else:
            value = getattr(settings, name, None)
        if value not in (None, ""):
            return value
    return None


def open_state_store(settings: Any) -> StateStore:
    """Build the state store the settings ask for.

    `settings` is a Settings object or a mapping with `state` ("local" | "azure"), `state_dir`,
    `state_connection` (a connection string, or the name of an environment variable holding one,
    default `AzureWebJobsStorage`), `state_container` and optionally `state_prefix`.
    """
    kind = str(_get(settings, _KIND) or "local").strip().lower()
    if kind == "local":
        return LocalStateStore(Path(_get(settings, _DIR) or DEFAULT_STATE_DIR))
    if kind in ("azure", "blob"):
        connection = str(_get(settings, _CONNECTION) or "AzureWebJobsStorage")
        if "=" not in connection:
            # The name of an app setting holding the connection string (as Functions bindings do).
            env_name = connection
            connection = os.environ.get(env_name, "")
            if not connection:
                raise SettingsError(
                    "SP_SYNC_STATE_CONNECTION",
                    f"the environment variable {env_name} with the storage connection string is not set",
                )
        container = str(_get(settings, _CONTAINER) or DEFAULT_CONTAINER)
        from sp_sync.state.blob import BlobStateStore

        return BlobStateStore(connection, container, str(_get(settings, _PREFIX) or ""))
    raise SettingsError("SP_SYNC_STATE", f"must be 'local' or 'azure', not {redact(kind)!r}")
