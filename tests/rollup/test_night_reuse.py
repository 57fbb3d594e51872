"""A night costs what changed (issue 14 goal 4): `sp-sync run` builds its workbooks from the
frames its own sync has in hand instead of reading every snapshot back, and what it builds, in
full or only the changed workbooks, is byte for byte what a rollup from the store builds."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from sp_sync.report.tables import KNOWLEDGE

emulator = pytest.importorskip("sp_emulator")


def _at(runtime: Any, moment: dt.datetime) -> Any:
    return dataclasses.replace(runtime, clock=lambda: moment)


class _CountingStore:
    """The runtime's store, counting the snapshots read back (list states with rows)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.snapshots_read: list[str] = []

    def read_list_state(self, site: str, list_key: str) -> Any:
        state = self._store.read_list_state(site, list_key)
        if state is not None:
            self.snapshots_read.append(list_key)
        return state

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _edit_one_county(emu: Any, count: int) -> str:
    backend = emu.backend
    bsite = backend.get_site("main")
    lst = backend.get_list(bsite, title=KNOWLEDGE)
    ids = sorted(lst.items)
    county = str(lst.items[ids[0]].values["County"])
    chosen = [i for i in ids if lst.items[i].values.get("County") == county][:count]
    for n, item_id in enumerate(chosen):
        values = {"Title": f"Reviderad kunskap {n}", "Priority": "Hög"}
        backend.update_item(bsite, lst, backend.get_item(lst, item_id), values, if_match=None)
    return county


def _parts(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.xlsx"))}


def test_the_rollup_of_a_run_reads_no_snapshot_back_and_builds_what_the_store_gives(
    night: tuple[Any, Any, Path],
) -> None:
    from sp_sync.run import pipeline

    emu, runtime, tmp = night
    site = runtime.settings.sites[0]
    first = _at(runtime, dt.datetime(2026, 6, 2, 1, 0, tzinfo=dt.UTC))
    assert pipeline.run_pipeline(first, site).to_dict()["workbooks_uploaded"] == 27

    _edit_one_county(emu, 3)
    moment = dt.datetime(2026, 6, 3, 1, 0, tzinfo=dt.UTC)
    counting = _CountingStore(runtime.store)
    second = dataclasses.replace(_at(runtime, moment), store_factory=lambda _s: counting)
    doc = pipeline.run_pipeline(second, site, out_dir=tmp / "run").to_dict()
    assert doc["totals"]["updated"] == 3, doc["lists"]
    # Each list's snapshot is read once, by its sync; the rollup takes the sync's frames
    # (it read each one a second time before).
    lists = sorted(runtime.schemas.lists)
    assert sorted(counting.snapshots_read) == lists

    # Every workbook rendered from the sync's frames equals the one rendered from the store.
    pipeline.run_rollup(_at(runtime, moment), site, out_dir=tmp / "store", upload=False)
    from_run, from_store = _files(tmp / "run"), _files(tmp / "store")
    assert len(from_run) == 27 and from_run.keys() == from_store.keys()
    for name, data in from_run.items():
        assert _parts(data) == _parts(from_store[name]), name


def test_a_partial_rebuild_after_edits_in_one_county_equals_a_full_rebuild(
    night: tuple[Any, Any, Path],
) -> None:
    from sp_sync.run import pipeline

    emu, runtime, tmp = night
    site = runtime.settings.sites[0]
    first = _at(runtime, dt.datetime(2026, 6, 2, 1, 0, tzinfo=dt.UTC))
    pipeline.run_pipeline(first, site)

    county = _edit_one_county(emu, 4)
    # The same day: a new reference date would rebuild every workbook (overdue moves).
    moment = dt.datetime(2026, 6, 2, 3, 0, tzinfo=dt.UTC)
    doc = pipeline.run_pipeline(_at(runtime, moment), site).to_dict()
    uploaded = [w for w in doc["workbooks"] if w["status"] == "uploaded"]
    names = {w["name"] for w in uploaded}
    assert f"Länsbild – {county}.xlsx" in names
    assert 1 <= len(uploaded) <= 3 and doc["workbooks_unchanged"] == 27 - len(uploaded)

    # A full rebuild of the same data at the same time, from the store.
    pipeline.run_rollup(_at(runtime, moment), site, out_dir=tmp / "full", upload=False)
    full = _files(tmp / "full")
    client = runtime.client(site)
    try:
        for w in uploaded:
            on_site = client.download_file(w["server_relative_url"])
            assert _parts(on_site) == _parts(full[w["name"]]), w["name"]
    finally:
        client.close()


def test_a_quiet_night_neither_hashes_nor_aggregates_the_snapshots(
    night: tuple[Any, Any, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sp_sync.report import fingerprint, publish
    from sp_sync.run import pipeline

    _emu, runtime, _tmp = night
    site = runtime.settings.sites[0]
    pipeline.run_pipeline(_at(runtime, dt.datetime(2026, 6, 2, 1, 0, tzinfo=dt.UTC)), site)

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a quiet night must not aggregate or hash the snapshots")

    monkeypatch.setattr(publish, "_tables", refuse)
    monkeypatch.setattr(fingerprint, "update_frame", refuse)  # what hashes a frame
    doc = pipeline.run_pipeline(
        _at(runtime, dt.datetime(2026, 6, 2, 3, 0, tzinfo=dt.UTC)), site
    ).to_dict()
    assert doc["status"] == "ok", doc["errors"]
    assert doc["workbooks_uploaded"] == 0 and doc["workbooks_unchanged"] == 27


def test_the_snapshot_fingerprint_from_state_names() -> None:
    import pandas as pd

    from sp_sync.report.fingerprint import snapshot_fingerprint, state_source

    frames = {"A": pd.DataFrame({"ID": [1]}), "B": pd.DataFrame({"ID": [2]})}

    def fp(sources: dict[str, str] | None, **kw: Any) -> str:
        args: dict[str, Any] = {
            "reference_date": dt.date(2026, 6, 2),
            "language": "sv",
            "site_url": "https://x",
        }
        args.update(kw)
        return snapshot_fingerprint(frames, None, sources=sources, **args)

    names = {"A": "1:aaa", "B": "4:bbb"}
    assert fp(names) == fp(dict(names))
    assert fp(names) != fp({**names, "B": "5:ccc"})  # a new commit of B
    assert fp(names) != fp(names, reference_date=dt.date(2026, 6, 3))
    assert fp(names) != fp(names, language="en")
    assert fp(names) != fp(None)  # by name and by content are never confused
    with pytest.raises(ValueError):
        fp({"A": "1:aaa"})
    assert state_source(3, "etag") == "3:etag" and state_source(3, None) is None


def _move_one_item(emu: Any) -> tuple[str, str]:
    """Move the first current knowledge item (so that both counties' workbooks show it) to
    another county; (from county, to county)."""
    backend = emu.backend
    bsite = backend.get_site("main")
    lst = backend.get_list(bsite, title=KNOWLEDGE)
    first = next(
        i
        for _, i in sorted(lst.items.items())
        if i.values.get("Status") == "Aktuell" and not i.values.get("ValidUntil")
    )
    old = str(first.values["County"])
    others = sorted({str(i.values["County"]) for i in lst.items.values()} - {old})
    new = others[0]
    backend.update_item(bsite, lst, first, {"County": new}, if_match=None)
    return old, new


def _close_one_feedback(emu: Any) -> tuple[str, str]:
    """Set an open feedback item to Klar; (its county, its receiving department)."""
    from sp_sync.report.tables import FEEDBACK, OPEN_STATUSES

    backend = emu.backend
    bsite = backend.get_site("main")
    lst = backend.get_list(bsite, title=FEEDBACK)
    item = next(
        i
        for _, i in sorted(lst.items.items())
        if i.values.get("Status") in OPEN_STATUSES and i.values.get("ReceivingDepartment")
    )
    backend.update_item(bsite, lst, item, {"Status": "Klar"}, if_match=None)
    return str(item.values["County"]), str(item.values["ReceivingDepartment"])


@pytest.mark.parametrize("edit", ["move", "feedback"])
def test_a_partial_rebuild_after_a_move_or_a_feedback_edit_equals_a_full_rebuild(
    night: tuple[Any, Any, Path], edit: str
) -> None:
    """The shortcuts of the rollup (per-group tables split in one pass, tables hashed
    together): an item moved between counties reaches both counties' workbooks, and a feedback
    edit its county's and its department's; what is uploaded is what a full rebuild gives."""
    from sp_sync.run import pipeline

    emu, runtime, tmp = night
    site = runtime.settings.sites[0]
    pipeline.run_pipeline(_at(runtime, dt.datetime(2026, 6, 2, 1, 0, tzinfo=dt.UTC)), site)

    if edit == "move":
        old, new = _move_one_item(emu)
        expected = {"Länsöversikt.xlsx", f"Länsbild – {old}.xlsx", f"Länsbild – {new}.xlsx"}
    else:
        county, department = _close_one_feedback(emu)
        expected = {
            "Länsöversikt.xlsx",
            f"Länsbild – {county}.xlsx",
            f"Återkoppling – {department}.xlsx",
        }
    moment = dt.datetime(2026, 6, 2, 3, 0, tzinfo=dt.UTC)  # the same day (see above)
    doc = pipeline.run_pipeline(_at(runtime, moment), site).to_dict()
    assert doc["status"] == "ok", doc["errors"]
    uploaded = [w for w in doc["workbooks"] if w["status"] == "uploaded"]
    assert {w["name"] for w in uploaded} == expected
    assert doc["workbooks_unchanged"] == 27 - len(expected)

    pipeline.run_rollup(_at(runtime, moment), site, out_dir=tmp / "full", upload=False)
    full = _files(tmp / "full")
    client = runtime.client(site)
    try:
        for w in uploaded:
            on_site = client.download_file(w["server_relative_url"])
            assert _parts(on_site) == _parts(full[w["name"]]), w["name"]
    finally:
        client.close()
