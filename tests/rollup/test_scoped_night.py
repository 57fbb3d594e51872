"""A night builds only the workbooks its changes can show (issue 14 goal 4), end to end: the
sync hands its changed rows to the rollup, which aggregates and fingerprints the overview and
the workbooks those rows route to, and keeps every other workbook's record. After each night,
every workbook's recorded input fingerprint must equal what the full path computes from the
state now: otherwise a workbook on the site would be stale."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from sp_sync.report import publish
from sp_sync.report.fingerprint import workbook_input_fingerprints
from sp_sync.report.tables import DIALOGUES, FEEDBACK, KNOWLEDGE, Scope

pytest.importorskip("sp_emulator")


def _uploads(entries: list[dict[str, Any]]) -> list[str]:
    return [
        e["path"]
        for e in entries
        if e["method"] == "POST"
        and any(op in e["path"].lower() for op in ("/files/add", "finishupload", "/$value"))
    ]


class _Scopes:
    """The scope of every aggregation publish_workbooks runs (None: every table)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[Scope | None] = []
        real = publish.aggregate

        def spy(*args: Any, **kwargs: Any) -> Any:
            self.seen.append(kwargs.get("scope"))
            return real(*args, **kwargs)

        monkeypatch.setattr(publish, "aggregate", spy)


def _record(runtime: Any, site: Any) -> dict[str, Any]:
    doc, _ = runtime.store.read_json(f"rollups/{site.name}/fingerprints.json")
    return dict(doc)


def _full_fingerprints(runtime: Any, site: Any, record: dict[str, Any]) -> dict[str, str]:
    """Every workbook's input fingerprint by the full path, from the state the store holds, at
    the time the record counted its 30-day figures to."""
    import datetime as dt

    snapshots, quality, info = {}, [], {}
    time_zone = None
    for title in runtime.schemas.lists:
        state = runtime.store.read_list_state(site.url, title)
        snapshots[title] = state.rows
        if len(state.quality):
            quality.append(state.quality)
        info[title] = {"item_count": len(state.rows)}
        time_zone = time_zone or state.checkpoint.extra.get("time_zone")
    tables = publish.build_tables(
        snapshots,
        pd.concat(quality, ignore_index=True) if quality else None,
        runtime.schemas,
        info,
        site_url=site.url,
        generated_at=dt.datetime.fromisoformat(record["generated_at"]),
        time_zone=time_zone,
    )
    fps = workbook_input_fingerprints(
        tables, language=runtime.settings.language, max_rows=publish.MAX_ROWS
    )
    return {f"{kind}:{name}": fp for (kind, name), fp in fps.items()}


def _assert_records_current(runtime: Any, site: Any) -> None:
    record = _record(runtime, site)
    full = _full_fingerprints(runtime, site, record)
    recorded = {key: rec["input"] for key, rec in record["workbooks"].items()}
    assert recorded == full


def _item(emu: Any, title: str, pick: Any) -> tuple[Any, Any, Any]:
    backend = emu.backend
    bsite = backend.get_site("main")
    lst = backend.get_list(bsite, title=title)
    item_id = pick(lst)
    return backend, bsite, (lst, backend.get_item(lst, item_id))


def test_a_night_builds_only_what_its_changes_route_to_and_every_record_stays_current(
    night: tuple[Any, Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sp_sync.run import pipeline

    emu, runtime, _tmp = night
    site = runtime.settings.sites[0]
    scopes = _Scopes(monkeypatch)
    first = pipeline.run_pipeline(runtime, site).to_dict()
    assert first["workbooks_uploaded"] == 27
    assert scopes.seen == [None]  # a first run: no record to start from
    _assert_records_current(runtime, site)

    # A feedback item moves county and department; a dialogue that feedback looks up is
    # retitled (the sync re-resolves the feedback rows showing its title).
    backend, bsite, (fb_list, fb_item) = _item(
        emu,
        FEEDBACK,
        lambda lst: min(i for i, item in lst.items.items() if item.values["ReceivingDepartment"]),
    )
    old_county = fb_item.values["County"]
    old_department = fb_item.values["ReceivingDepartment"]
    counties = [c.name for c in runtime.schemas.reference.counties]
    departments = [d.name for d in runtime.schemas.reference.departments]
    new_county = next(c for c in counties if c != old_county)
    new_department = next(d for d in departments if d != old_department)
    backend.update_item(
        bsite,
        fb_list,
        fb_item,
        {"County": new_county, "ReceivingDepartment": new_department},
        if_match=None,
    )
    linked = [
        i.values.get("Dialogue")
        for i in fb_list.items.values()
        if i.values.get("Dialogue") and i.values["County"] != new_county
    ]
    _b, _s, (dl_list, dl_item) = _item(emu, DIALOGUES, lambda lst: linked[0])
    dl_county = dl_item.values["County"]
    backend.update_item(bsite, dl_list, dl_item, {"Title": "Omdöpt dialog"}, if_match=None)
    shown_in = {
        ("county", i.values["County"])
        for i in fb_list.items.values()
        if i.values.get("Dialogue") == linked[0]
    } | {
        ("department", i.values["ReceivingDepartment"])
        for i in fb_list.items.values()
        if i.values.get("Dialogue") == linked[0] and i.values["ReceivingDepartment"]
    }

    journal_before = len(emu.journal())
    second = pipeline.run_pipeline(runtime, site).to_dict()
    scope = scopes.seen[-1]
    assert scope is not None, "an incremental night with a complete record is scoped"
    assert {old_county, new_county, dl_county} <= scope.counties
    assert {old_department, new_department} <= scope.departments
    assert {name for kind, name in shown_in if kind == "county"} <= scope.counties
    assert {name for kind, name in shown_in if kind == "department"} <= scope.departments
    assert len(scope.counties) < 21
    uploaded = {w["name"] for w in second["workbooks"] if w["status"] == "uploaded"}
    assert {f"Länsbild – {old_county}.xlsx", f"Länsbild – {new_county}.xlsx"} <= uploaded
    assert {f"Återkoppling – {old_department}.xlsx"} <= uploaded
    built = {f"Länsbild – {c}.xlsx" for c in scope.counties}
    built |= {f"Återkoppling – {d}.xlsx" for d in scope.departments}
    assert uploaded <= built | {"Länsöversikt.xlsx"}
    assert len(_uploads(emu.journal()[journal_before:])) == len(uploaded)
    assert second["workbooks_unchanged"] == 27 - len(uploaded)
    _assert_records_current(runtime, site)

    # A knowledge title edit: only its county is built; the overview (no knowledge titles
    # there) and every other workbook keep their records.
    _b, _s, (kn_list, kn_item) = _item(emu, KNOWLEDGE, lambda lst: max(lst.items))
    kn_county = kn_item.values["County"]
    backend.update_item(bsite, kn_list, kn_item, {"Title": "Ny kunskapsrubrik"}, if_match=None)
    journal_before = len(emu.journal())
    third = pipeline.run_pipeline(runtime, site).to_dict()
    scope = scopes.seen[-1]
    assert scope is not None and kn_county in scope.counties and len(scope.counties) <= 2
    uploaded = {w["name"] for w in third["workbooks"] if w["status"] == "uploaded"}
    assert uploaded <= {f"Länsbild – {kn_county}.xlsx", "Länsöversikt.xlsx"}
    assert len(_uploads(emu.journal()[journal_before:])) == len(uploaded)
    _assert_records_current(runtime, site)


def test_a_sync_between_two_rollups_builds_everything(
    night: tuple[Any, Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The changes a run's sync hands over are relative to the state that sync started from: a
    `sp-sync sync` in between changed the lists behind the last rollup's back, so the next run
    builds every workbook's inputs (and still uploads only what changed)."""
    from sp_sync.run import pipeline

    emu, runtime, _tmp = night
    site = runtime.settings.sites[0]
    scopes = _Scopes(monkeypatch)
    pipeline.run_pipeline(runtime, site)
    backend, bsite, (fb_list, fb_item) = _item(emu, FEEDBACK, lambda lst: max(lst.items))
    county = fb_item.values["County"]
    backend.update_item(bsite, fb_list, fb_item, {"Title": "Ändrad i mellan"}, if_match=None)
    pipeline.run_sync(runtime, site)
    backend.update_item(bsite, fb_list, fb_item, {"Title": "Ändrad igen"}, if_match=None)
    second = pipeline.run_pipeline(runtime, site).to_dict()
    assert scopes.seen[-1] is None
    uploaded = {w["name"] for w in second["workbooks"] if w["status"] == "uploaded"}
    assert f"Länsbild – {county}.xlsx" in uploaded
    _assert_records_current(runtime, site)
