"""The public entry points, pinned (httpx style): changing them must be a deliberate edit here.

`sp_sync` re-exports what the CLI, the demo and the Functions triggers use, lazily, so importing
the package stays cheap; `sp_emulator` exports the emulator the tests and the demo start.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import sp_emulator
import sp_sync

SP_SYNC_PUBLIC = [
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

SP_EMULATOR_PUBLIC = ["Backend", "Clock", "EmulatorApp", "SPError", "SharePointEmulator"]


def test_sp_sync_all_is_pinned() -> None:
    assert sp_sync.__all__ == SP_SYNC_PUBLIC


def test_sp_sync_all_matches_the_lazy_export_table() -> None:
    assert set(sp_sync.__all__) == {"__version__", *sp_sync._EXPORTS}


@pytest.mark.parametrize("name", sorted(set(SP_SYNC_PUBLIC) - {"__version__"}))
def test_every_public_name_is_the_object_of_its_home_module(name: str) -> None:
    home = importlib.import_module(sp_sync._EXPORTS[name])
    assert getattr(sp_sync, name) is getattr(home, name)
    assert name in dir(sp_sync)


def test_star_import_gives_exactly_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from sp_sync import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(SP_SYNC_PUBLIC)


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'run_everything'"):
        _ = sp_sync.run_everything
    with pytest.raises(ImportError):
        exec("from sp_sync import run_everything", {})


def test_importing_the_package_stays_cheap() -> None:
    """The CLI's first line and a Functions cold start import sp_sync: no pandas, no office365."""
    code = (
        "import sys, sp_sync; "
        "heavy = sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('pandas', 'office365', 'pyarrow', 'openpyxl', 'msal') "
        "or m.startswith('sp_sync.')); "
        "print(','.join(heavy)); "
        "sp_sync.SpSyncError; print('sp_sync.errors' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["", "True"]


def test_sp_emulator_all_is_pinned() -> None:
    assert sp_emulator.__all__ == SP_EMULATOR_PUBLIC
    for name in SP_EMULATOR_PUBLIC:
        assert getattr(sp_emulator, name) is not None
    from sp_emulator.server import SharePointEmulator

    assert sp_emulator.SharePointEmulator is SharePointEmulator
