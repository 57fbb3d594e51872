"""Commands that read snapshots never start Arrow worker threads (apache/arrow#34314).

A pool thread still alive at interpreter exit aborted `sp-sync status` with SIGABRT after it had
printed its answer, in about one run in five; the subprocess test in tests/cli repeats the command
5 times and so misses the bug about once in three runs. This test is deterministic instead:
it runs the real `status` and `run` commands in-process and records every Parquet read, and each
one must be made without Arrow threads (`use_threads=False`) and without pre-buffering (which
reads through Arrow's I/O pool). On the code before the fix it fails every time.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from sp_sync import cli
from sp_sync.state import frames
from tests.reliability.helpers import IDENTITY_VARS, World, make_world

pytestmark = [pytest.mark.reliability]


@pytest.fixture
def small_world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path, knowledge_per_county=2, feedback_per_county=2)


class _Reads:
    """Spies on every way to read Parquet that the code base could use."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        for owner, name in (
            (pq, "read_table"),
            (pq, "ParquetFile"),
            (pq, "ParquetDataset"),
            (pd, "read_parquet"),
        ):
            monkeypatch.setattr(owner, name, self._spy(name, getattr(owner, name)))
        # Snapshots are read one row group at a time through a ParquetFile: its reads carry
        # use_threads, its constructor pre_buffer.
        for method in ("read", "read_row_group", "read_row_groups", "iter_batches"):
            real = getattr(pq.core.ParquetFile, method)
            monkeypatch.setattr(
                pq.core.ParquetFile, method, self._spy(f"ParquetFile.{method}", real)
            )

    def _spy(self, name: str, real: Any) -> Any:
        def spy(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return real(*args, **kwargs)

        return spy

    def threaded(self) -> list[tuple[str, dict[str, Any]]]:
        def threads(name: str, kwargs: dict[str, Any]) -> bool:
            if name == "ParquetFile":  # opening reads nothing; pre-buffering would use threads
                return kwargs.get("pre_buffer", True) is not False
            if name.startswith("ParquetFile."):
                return kwargs.get("use_threads", True) is not False
            return (
                kwargs.get("use_threads", True) is not False
                or kwargs.get("pre_buffer", True) is not False
            )

        return [(name, kwargs) for name, kwargs in self.calls if threads(name, kwargs)]


def _use_env(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in IDENTITY_VARS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", world.emu.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", world.emu.identity_header)
    for key, value in world.env().items():
        monkeypatch.setenv(key, value)


def test_status_and_run_read_snapshots_without_arrow_threads(
    small_world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    small_world.run()
    _use_env(small_world, monkeypatch)
    reads = _Reads(monkeypatch)
    assert cli.main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status  # the command answered from the snapshots it read
    assert cli.main(["run", "--no-upload", "-q"]) == 0
    assert len(reads.calls) >= 3, "no snapshot was read: the check would be empty"
    assert reads.threaded() == []


def test_the_spy_sees_a_threaded_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: a read with Arrow's defaults is reported."""
    reads = _Reads(monkeypatch)
    data = frames.frame_to_parquet(pd.DataFrame({"ID": [1, 2]}))
    pq.read_table(io.BytesIO(data))
    frames.frame_from_parquet(data)
    assert [name for name, _ in reads.threaded()] == ["read_table"]
    # read_table, then the snapshot reader: ParquetFile opened and read without threads.
    assert reads.calls[0][0] == "read_table"
    assert {name for name, _ in reads.calls[1:]} >= {"ParquetFile", "ParquetFile.read"}
