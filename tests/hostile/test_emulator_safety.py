"""Issue 11 item 11: the emulator is safe to run. `--data` loads a JSON snapshot that cannot
run code (a pickle in the data directory used to run at start-up), and `--host` other than
loopback needs `--allow-remote` and prints a warning (the admin API mints tokens)."""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sp_emulator import SharePointEmulator
from sp_emulator.__main__ import main as emulator_main
from sp_emulator.persistence import (
    LEGACY_SNAPSHOT_NAME,
    SNAPSHOT_NAME,
    SnapshotError,
    decode,
    encode,
)
from sp_sync.demo.runner import DEMO_SITE, managed_identity_env, seed
from sp_sync.run import pipeline
from sp_sync.run.runtime import Runtime
from sp_sync.settings import Settings
from tests.reliability.scenarios import record

ROOT = Path(__file__).resolve().parents[2]


class _Payload:
    """Unpickling this runs `touch <marker>`: what a crafted snapshot would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _backend_state(emu: SharePointEmulator) -> str:
    persistence = emu.app.persistence
    assert persistence is not None
    persistence.save()
    return (Path(persistence.dir) / SNAPSHOT_NAME).read_text(encoding="utf-8")


def test_a_full_site_survives_a_restart_through_the_json_snapshot(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with (
        SharePointEmulator(sites=[DEMO_SITE], data_dir=str(data)) as emu,
        managed_identity_env(emu.identity_endpoint, emu.identity_header),
    ):
        settings = Settings.from_env(
            {
                "SP_SYNC_SITE_URL": emu.site_url(DEMO_SITE),
                "SP_SYNC_AUTH": "managed_identity",
                "SP_SYNC_RESOURCE": emu.url,
                "SP_SYNC_STATE_DIR": str(tmp_path / "state"),
            }
        )
        runtime = Runtime(settings=settings)
        pipeline.run_provision(runtime, settings.sites[0], apply=True, allow_destructive=False)
        seed(emu, base_date=dt.date(2026, 6, 1), knowledge_per_county=2, feedback_per_county=2)
        assert pipeline.run_pipeline(runtime, settings.sites[0]).workbooks  # files too
        before = _backend_state(emu)
    assert not (data / LEGACY_SNAPSHOT_NAME).exists()
    json.loads(before)  # plain JSON
    with SharePointEmulator(sites=[DEMO_SITE], data_dir=str(data)) as emu:
        after = _backend_state(emu)
    assert after == before


def test_a_crafted_pickle_in_the_data_directory_is_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = tmp_path / "data"
    data.mkdir()
    (data / LEGACY_SNAPSHOT_NAME).write_bytes(pickle.dumps(_Payload(marker)))
    with SharePointEmulator(sites=["x"], data_dir=str(data)):
        pass
    assert not marker.exists()
    record("emulator-payload", tries=5, failures=0, rows_lost=0)


@pytest.mark.parametrize(
    "doc",
    [
        {"version": 2, "sites": {"__obj__": "os.system", "fields": {}}},
        {"version": 2, "sites": {"__obj__": "sp_emulator.model.Backend", "fields": {}}},
        {"version": 2, "sites": {"__enum__": "subprocess.Popen", "value": ["touch", "x"]}},
        {"version": 2, "sites": {"__reduce__": ["os.system", "touch x"]}},
    ],
)
def test_a_crafted_json_snapshot_names_no_code(tmp_path: Path, doc: dict[str, object]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / SNAPSHOT_NAME).write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(SnapshotError), SharePointEmulator(sites=["x"], data_dir=str(data)):
        pass


def test_encode_round_trips_the_tagged_values() -> None:
    value = {
        "t": (1, "a"),
        "s": {3, 4},
        "b": b"\x00\xff",
        "d": dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC),
        1: [dt.date(2026, 1, 1)],
    }
    assert decode(json.loads(json.dumps(encode(value)))) == value


def test_a_non_loopback_host_needs_an_explicit_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        emulator_main(["--host", "0.0.0.0"])
    assert caught.value.code == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_allow_remote_starts_with_a_warning() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sp_emulator", "--host", "0.0.0.0", "--allow-remote"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stderr is not None
        ready = proc.stdout.readline()
        assert "ready" in ready, ready
        warning = proc.stderr.readline()
        assert "WARNING" in warning and "0.0.0.0" in warning and "mints tokens" in warning
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
