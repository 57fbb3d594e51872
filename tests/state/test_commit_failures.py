"""The local commit path when the disk fails, and its clean-up of old generations and temp files.

In-process on purpose: mutation testing (tests/MUTATION.md) maps tests to the code they run in
this process, and the crash tests in test_crash.py run in children it cannot see. The disk is made
to fail by replacing one `os` call for one file name, so the failure lands exactly where a full
disk or a read-only folder would make a real commit fail.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from sp_sync.errors import ExitCode, LocalDiskError, StateError, TransientError
from sp_sync.state import base, local
from sp_sync.state.base import MANIFEST_NAME, Manifest
from tests.state.helpers import quality, snapshot
from tests.state.test_contract import LIST, SITE, checkpoint

_real_replace = os.replace


def _folder(store: local.LocalStateStore) -> Path:
    return store.root / base.list_prefix(SITE, LIST)


def _commit(store: local.LocalStateStore, n: int, etag: str | None) -> str:
    return store.commit_list_state(
        SITE, LIST, snapshot(n), quality(n), checkpoint(n), expected_etag=etag
    )


def _everything(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _fail_replace_of(
    monkeypatch: pytest.MonkeyPatch, name: str, error: int
) -> Callable[[], list[str]]:
    """`os.replace` onto a file called `name` fails with `error` (the rename that commits it)."""
    seen: list[str] = []

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst).name == name:
            seen.append(str(dst))
            raise OSError(error, os.strerror(error), str(dst))
        _real_replace(src, dst)

    monkeypatch.setattr(local.os, "replace", replace)
    return lambda: seen


def _assert_state_is(store: local.LocalStateStore, n: int, etag: str) -> None:
    state = store.read_list_state(SITE, LIST)
    assert state is not None and state.etag == etag
    pd.testing.assert_frame_equal(state.rows, snapshot(n), check_exact=True)
    pd.testing.assert_frame_equal(state.quality, quality(n), check_exact=True)


# -- the disk fails in the middle of a commit ----------------------------------------------------


@pytest.mark.parametrize(
    ("error", "sv", "en"),
    [
        (errno.ENOSPC, "disken är full", "the disk is full"),
        (errno.EROFS, "filsystemet är skrivskyddat", "the file system is read-only"),
        (errno.EACCES, "behörighet saknas", "permission denied"),
    ],
)
@pytest.mark.parametrize("language", ["sv", "en"])
def test_a_full_or_read_only_disk_mid_commit_is_named_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int, sv: str, en: str, language: str
) -> None:
    store = local.LocalStateStore(tmp_path, language=language)
    etag = _commit(store, 1, None)
    folder = _folder(store)
    before = _everything(folder)
    seen = _fail_replace_of(monkeypatch, "quality.parquet", error)
    with pytest.raises(LocalDiskError) as info:
        _commit(store, 2, etag)
    assert len(seen()) == 1
    message = str(info.value)
    assert info.value.exit_code is ExitCode.LOCAL_DISK
    # The list's own folder is named (not None, not the root), with the cause in the language.
    assert str(folder) in message
    assert (sv if language == "sv" else en) in message
    assert ("Inget sparat tillstånd" if language == "sv" else "No committed state") in message
    # The half-built generation (its files and the temp file) is gone; the old state is intact.
    assert _everything(folder) == before
    monkeypatch.undo()
    _assert_state_is(store, 1, etag)
    again = _commit(store, 3, etag)
    _assert_state_is(store, 3, again)


def test_a_disk_error_writing_the_manifest_keeps_the_previous_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = local.LocalStateStore(tmp_path, language="en")
    etag = _commit(store, 1, None)
    generations = {p.name for p in _folder(store).iterdir() if p.is_dir()}
    _fail_replace_of(monkeypatch, MANIFEST_NAME, errno.ENOSPC)
    with pytest.raises(LocalDiskError, match="the disk is full"):
        _commit(store, 2, etag)
    monkeypatch.undo()
    assert {p.name for p in _folder(store).iterdir() if p.is_dir()} == generations
    _assert_state_is(store, 1, etag)


@pytest.mark.parametrize(
    ("error", "kind", "text"),
    [
        (errno.EAGAIN, TransientError, "is busy; try again"),
        (errno.EBUSY, TransientError, "is busy; try again"),
        (errno.EIO, StateError, f"cannot be used: {os.strerror(errno.EIO)}"),
    ],
)
def test_other_disk_errors_mid_commit_are_transient_or_state_errors(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: int,
    kind: type[Exception],
    text: str,
) -> None:
    store = local.LocalStateStore(tmp_path, language="en")
    etag = _commit(store, 1, None)
    _fail_replace_of(monkeypatch, "rows.parquet", error)
    with pytest.raises(kind) as info:
        _commit(store, 2, etag)
    assert not isinstance(info.value, LocalDiskError)
    assert f"The state folder {_folder(store)} " in str(info.value)
    assert text in str(info.value)
    monkeypatch.undo()
    _assert_state_is(store, 1, etag)
    assert len([p for p in _folder(store).iterdir() if p.is_dir()]) == 1


def test_an_unreadable_manifest_is_a_state_error_naming_it(tmp_path: Path) -> None:
    store = local.LocalStateStore(tmp_path, language="en")
    folder = _folder(store)
    (folder / MANIFEST_NAME).mkdir(parents=True)  # read_bytes: IsADirectoryError, not "missing"
    with pytest.raises(StateError, match="cannot be used") as info:
        store.read_list_state(SITE, LIST)
    assert str(folder / MANIFEST_NAME) in str(info.value)
    with pytest.raises(StateError, match="cannot be used"):
        _commit(store, 1, None)


def test_a_file_where_the_site_folder_belongs_reads_as_no_state(tmp_path: Path) -> None:
    store = local.LocalStateStore(tmp_path)
    site_folder = _folder(store).parent
    site_folder.parent.mkdir(parents=True, exist_ok=True)
    site_folder.write_bytes(b"not a folder")  # manifest path below it: NotADirectoryError
    assert store.read_list_state(SITE, LIST) is None


# -- what a commit writes ------------------------------------------------------------------------


def test_the_manifest_names_its_site_list_and_previous_generation(tmp_path: Path) -> None:
    store = local.LocalStateStore(tmp_path)
    first = _commit(store, 1, None)
    _commit(store, 2, first)
    raw = (_folder(store) / MANIFEST_NAME).read_bytes()
    manifest = Manifest.from_bytes(raw, "manifest")
    assert (manifest.site, manifest.list_key, manifest.generation) == (SITE, LIST, 2)
    doc = json.loads(raw)
    assert (doc["site"], doc["list_key"]) == (SITE, LIST)
    assert manifest.previous_directory is not None
    assert (_folder(store) / manifest.previous_directory / "rows.parquet").is_file()
    assert (_folder(store) / manifest.directory / "rows.parquet").is_file()


def test_committed_files_are_readable_by_others_and_leave_no_temp_files(tmp_path: Path) -> None:
    store = local.LocalStateStore(tmp_path)
    _commit(store, 1, None)
    folder = _folder(store)
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == [MANIFEST_NAME, "quality.parquet", "rows.parquet"]
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o644 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# -- clean-up after a commit ---------------------------------------------------------------------


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_old_stray_generations_and_temp_files_go_fresh_ones_stay(tmp_path: Path) -> None:
    store = local.LocalStateStore(tmp_path)
    etag = _commit(store, 1, None)
    folder = _folder(store)
    committed = Manifest.from_bytes((folder / MANIFEST_NAME).read_bytes(), "m").directory
    # Newer generations of a writer that died (old) or that is still writing (fresh).
    (folder / "g9-deadbeef").mkdir()
    (folder / "g9-deadbeef" / "rows.parquet").write_bytes(b"x")
    _age(folder / "g9-deadbeef", base.STRAY_GENERATION_AGE_SECONDS + 60)
    (folder / "g8-cafe0000").mkdir()
    # Temp files of killed writes: old ones go, fresh ones may belong to a running commit.
    old_tmp = folder / f"{local._TMP_PREFIX}0001-{MANIFEST_NAME}"
    fresh_tmp = folder / f"{local._TMP_PREFIX}0002-{MANIFEST_NAME}"
    old_in_gen = folder / committed / f"{local._TMP_PREFIX}0003-rows.parquet"
    for path in (old_tmp, fresh_tmp, old_in_gen):
        path.write_bytes(b"half")
    _age(old_tmp, base.STRAY_TEMP_AGE_SECONDS + 30)
    _age(old_in_gen, base.STRAY_TEMP_AGE_SECONDS + 30)
    _age(fresh_tmp, base.STRAY_TEMP_AGE_SECONDS - 120)

    second = _commit(store, 2, etag)
    names = {p.name for p in folder.iterdir()}
    assert "g9-deadbeef" not in names and "g8-cafe0000" in names
    assert not old_tmp.exists() and not old_in_gen.exists()
    assert fresh_tmp.exists()
    assert committed in names  # the previous generation stays for readers still reading it
    _assert_state_is(store, 2, second)


def test_a_crash_during_clean_up_keeps_the_new_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = local.LocalStateStore(tmp_path)
    etag = _commit(store, 1, None)
    etag = _commit(store, 2, etag)  # generation 1 is now the previous one, kept

    class Crash(Exception):
        pass

    points: list[str] = []

    def crash_point(name: str) -> None:
        points.append(name)
        if name == "mid-cleanup":
            raise Crash(name)

    monkeypatch.setattr(local, "crash_point", crash_point)
    with pytest.raises(Crash):
        _commit(store, 3, etag)  # generation 1 is due for removal: the crash hits there
    assert points[-1] == "mid-cleanup" and "after-manifest" in points
    monkeypatch.undo()
    state = store.read_list_state(SITE, LIST)
    assert state is not None and state.checkpoint.generation == 3
    pd.testing.assert_frame_equal(state.rows, snapshot(3), check_exact=True)
    # The next commit finishes the clean-up: only its own and the previous generation remain.
    _commit(store, 4, state.etag)
    assert len([p for p in _folder(store).iterdir() if p.is_dir()]) == 2


def test_removing_a_generation_skips_what_it_cannot_remove(tmp_path: Path) -> None:
    gen = tmp_path / "g1-00000000"
    (gen / "unexpected-subfolder").mkdir(parents=True)
    (gen / "rows.parquet").write_bytes(b"x")
    local._remove_tree(gen)  # unlink of a folder and rmdir of a non-empty one fail quietly
    assert sorted(p.name for p in gen.iterdir()) == ["unexpected-subfolder"]
    (gen / "unexpected-subfolder").rmdir()
    local._remove_tree(gen)
    assert not gen.exists()
    local._remove_tree(gen)  # already gone: nothing to do, no error


# -- messages in the store's language, the commit log line ---------------------------------------


def test_conflicts_are_reported_in_the_stores_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = local.LocalStateStore(tmp_path, language="en")
    first = _commit(store, 1, None)
    with pytest.raises(base.StateConflictError, match="was changed by another run meanwhile"):
        _commit(store, 2, "stale")
    # The same when the other run commits between our data files and our manifest.
    other = local.LocalStateStore(tmp_path, language="en")

    def crash_point(name: str) -> None:
        if name == "after-quality":
            monkeypatch.setattr(local, "crash_point", lambda _name: None)
            _commit(other, 5, first)

    monkeypatch.setattr(local, "crash_point", crash_point)
    with pytest.raises(base.StateConflictError) as info:
        _commit(store, 2, first)
    assert str(info.value) == (
        f"The state of {SITE} / {LIST} was changed by another run meanwhile; "
        "nothing was overwritten."
    )


@pytest.mark.parametrize("language", ["sv", "en"])
def test_committing_over_a_corrupt_manifest_names_it(tmp_path: Path, language: str) -> None:
    store = local.LocalStateStore(tmp_path, language=language)
    manifest = _folder(store) / MANIFEST_NAME
    manifest.parent.mkdir(parents=True)
    manifest.write_bytes(b'{"format": "something else"}')
    with pytest.raises(StateError) as info:
        _commit(store, 1, local._etag(manifest.read_bytes()))
    expected = "är skadad" if language == "sv" else "is corrupt"
    assert f"{manifest} {expected}" in str(info.value)
    assert manifest.read_bytes() == b'{"format": "something else"}'


def test_a_disk_error_re_reading_the_manifest_under_the_mutex_is_in_the_stores_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = local.LocalStateStore(tmp_path, language="en")
    etag = _commit(store, 1, None)
    real_read = Path.read_bytes
    reads: list[Path] = []

    def read_bytes(path: Path) -> bytes:
        if path.name == MANIFEST_NAME:
            reads.append(path)
            if len(reads) == 2:  # the second read is the one under the mutex
                raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(StateError) as info:
        _commit(store, 2, etag)
    assert len(reads) == 2
    assert str(info.value).startswith(
        f"The state folder {_folder(store) / MANIFEST_NAME} cannot be used: "
    )
    monkeypatch.undo()
    _assert_state_is(store, 1, etag)


def test_each_commit_is_logged_with_list_and_generation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = local.LocalStateStore(tmp_path)
    with caplog.at_level(logging.DEBUG, logger="sp_sync.state.local"):
        _commit(store, 2, _commit(store, 1, None))
    assert [r.getMessage() for r in caplog.records if r.name == "sp_sync.state.local"] == [
        f"Committed state of {SITE} / {LIST} generation 1",
        f"Committed state of {SITE} / {LIST} generation 2",
    ]


# -- writes the file system cuts short or refuses ------------------------------------------------


def test_short_writes_are_continued_until_the_file_is_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    sizes: list[int] = []

    def write(fd: int, data: bytes | memoryview) -> int:  # a file system that takes 700 bytes
        written = real_write(fd, bytes(data[:700]))
        sizes.append(written)
        return written

    monkeypatch.setattr(local.os, "write", write)
    store = local.LocalStateStore(tmp_path)
    etag = _commit(store, 1, None)
    assert len(sizes) > 6  # two parquet files and the manifest, each in several pieces
    monkeypatch.undo()
    _assert_state_is(store, 1, etag)


def test_a_failed_fsync_whose_temp_file_is_already_gone_still_reports_the_disk_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = local.LocalStateStore(tmp_path, language="en")
    etag = _commit(store, 1, None)
    folder = _folder(store)

    real_fsync = os.fsync
    removed: list[Path] = []

    def fsync(fd: int) -> None:
        temps = list(folder.rglob(f"{local._TMP_PREFIX}*"))
        if not temps:  # the folder's fsync, before any file is written
            real_fsync(fd)
            return
        for tmp in temps:
            tmp.unlink()  # removing the temp file after the failure then fails: ignored
            removed.append(tmp)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(local.os, "fsync", fsync)
    with pytest.raises(LocalDiskError, match="the disk is full"):
        _commit(store, 2, etag)
    assert [p.name.endswith("-rows.parquet") for p in removed] == [True]
    monkeypatch.undo()
    _assert_state_is(store, 1, etag)


def test_temp_files_exactly_at_the_age_limit_stay_and_odd_ones_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = local.LocalStateStore(tmp_path)
    etag = _commit(store, 1, None)
    folder = _folder(store)
    now = 2_000_000_000.0
    at_limit = folder / f"{local._TMP_PREFIX}0004-{MANIFEST_NAME}"
    at_limit.write_bytes(b"half")
    os.utime(at_limit, (now - base.STRAY_TEMP_AGE_SECONDS, now - base.STRAY_TEMP_AGE_SECONDS))
    # A folder with a temp-file name cannot be unlinked: the clean-up skips it, the commit stands.
    odd = folder / f"{local._TMP_PREFIX}0005-folder"
    odd.mkdir()
    os.utime(odd, (now - 7200, now - 7200))
    monkeypatch.setattr(local.time, "time", lambda: now)
    second = _commit(store, 2, etag)
    monkeypatch.undo()
    assert at_limit.exists() and odd.is_dir()
    _assert_state_is(store, 2, second)
