"""sp-sync: SharePoint Online lists → pandas → Excel rollups, as an Azure Functions add-on.

The public entry points are re-exported here (`__all__`, pinned by tests/test_public_api.py):
the pipeline the CLI runs, the handlers the Functions triggers call, the settings, the client
and the error tree. They are resolved on first use (PEP 562), so `import sp_sync` stays as cheap
as it was: the CLI's `--help` and a Functions cold start must not pay for pandas or office365.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: The one version source: pyproject reads it (setuptools dynamic version), the User-Agent,
#: `--version` and the workbooks' "Om rapporten" sheet show it.
__version__ = "0.1.0"

#: Public name → module that defines it.
_EXPORTS: dict[str, str] = {
    # settings
    "Settings": "sp_sync.settings",
    "SiteConfig": "sp_sync.settings",
    # the pipeline (CLI, demo) and the Functions handlers
    "run_pipeline": "sp_sync.run.pipeline",
    "run_sync": "sp_sync.run.pipeline",
    "run_rollup": "sp_sync.run.pipeline",
    "run_provision": "sp_sync.run.pipeline",
    "run_check": "sp_sync.run.pipeline",
    "site_status": "sp_sync.run.pipeline",
    "enqueue_scheduled_run": "sp_sync.run.jobs",
    "handle_run_request": "sp_sync.run.jobs",
    "handle_status_request": "sp_sync.run.jobs",
    "handle_job_message": "sp_sync.run.jobs",
    "handle_poison_message": "sp_sync.run.jobs",
    # SharePoint
    "SharePointClient": "sp_sync.sharepoint",
    "RetryPolicy": "sp_sync.sharepoint",
    # the error tree, split by what the caller can do
    "SpSyncError": "sp_sync.errors",
    "RetryableError": "sp_sync.errors",
    "ThrottledError": "sp_sync.errors",
    "TransientError": "sp_sync.errors",
    "RunLockedError": "sp_sync.errors",
    "ConfigurationError": "sp_sync.errors",
    "SettingsError": "sp_sync.errors",
    "SchemaError": "sp_sync.errors",
    "NotFoundError": "sp_sync.errors",
    "DriftError": "sp_sync.errors",
    "PermissionDeniedError": "sp_sync.errors",
    "AuthenticationError": "sp_sync.errors",
    "FatalError": "sp_sync.errors",
    "ThresholdError": "sp_sync.errors",
    "StateError": "sp_sync.errors",
    "UploadError": "sp_sync.errors",
}

# Literal (as httpx does) so linters and readers see it; the test checks it matches _EXPORTS.
__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "DriftError",
    "FatalError",
    "NotFoundError",
    "PermissionDeniedError",
    "RetryPolicy",
    "RetryableError",
    "RunLockedError",
    "SchemaError",
    "Settings",
    "SettingsError",
    "SharePointClient",
    "SiteConfig",
    "SpSyncError",
    "StateError",
    "ThresholdError",
    "ThrottledError",
    "TransientError",
    "UploadError",
    "__version__",
    "enqueue_scheduled_run",
    "handle_job_message",
    "handle_poison_message",
    "handle_run_request",
    "handle_status_request",
    "run_check",
    "run_pipeline",
    "run_provision",
    "run_rollup",
    "run_sync",
    "site_status",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time `__getattr__` loads lazily
    from sp_sync.errors import (
        AuthenticationError,
        ConfigurationError,
        DriftError,
        FatalError,
        NotFoundError,
        PermissionDeniedError,
        RetryableError,
        RunLockedError,
        SchemaError,
        SettingsError,
        SpSyncError,
        StateError,
        ThresholdError,
        ThrottledError,
        TransientError,
        UploadError,
    )
    from sp_sync.run.jobs import (
        enqueue_scheduled_run,
        handle_job_message,
        handle_poison_message,
        handle_run_request,
        handle_status_request,
    )
    from sp_sync.run.pipeline import (
        run_check,
        run_pipeline,
        run_provision,
        run_rollup,
        run_sync,
        site_status,
    )
    from sp_sync.settings import Settings, SiteConfig
    from sp_sync.sharepoint import RetryPolicy, SharePointClient


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sp_sync' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
