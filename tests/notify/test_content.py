"""The digest's content from seeded snapshots: counts, order, days, links, window, failure notice."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest

from sp_sync.notify import DepartmentDigest, build_digest, build_failure_notice, stale_lists
from tests.notify.helpers import (
    COUNTY_CODES,
    NOW,
    REF,
    SITE,
    STOCKHOLM,
    frame,
    row,
    seeded_feedback,
)


def digest(
    df: pd.DataFrame | None = None, department: str = "Företag", **kwargs: Any
) -> DepartmentDigest:
    return build_digest(
        seeded_feedback() if df is None else df,
        department,
        since=kwargs.pop("since", NOW - dt.timedelta(days=7)),
        until=kwargs.pop("until", NOW),
        time_zone=STOCKHOLM,
        county_codes=COUNTY_CODES,
        **kwargs,
    )


def test_counts_and_order_of_the_three_sections() -> None:
    d = digest()
    assert d.reference_date == REF
    # New: created in (since, until], oldest first; #9 is older than a week.
    assert [i.item_id for i in d.new] == [2, 1]
    # Overdue: open only (the closed #5 is left out), oldest due date first.
    assert [i.item_id for i in d.overdue] == [4, 3]
    assert [i.days_overdue for i in d.overdue] == [40, 3]
    assert [(i.county, i.county_code) for i in d.overdue] == [
        ("Uppsala län", "C"),
        ("Norrbottens län", "BD"),
    ]
    # Due soon: today through 14 days ahead, earliest first; #8 (15 days) is not soon.
    assert [(i.item_id, i.days_left) for i in d.due_soon] == [(6, 0), (7, 14)]
    assert d.has_content


def test_each_item_links_to_its_sharepoint_item() -> None:
    d = digest()
    for item in (*d.new, *d.overdue, *d.due_soon):
        assert item.url == f"{SITE}/Lists/Dialogaterkoppling/DispForm.aspx?ID={item.item_id}"


def test_other_departments_items_never_appear() -> None:
    d = digest(department="Regioner")
    assert [i.item_id for i in d.new] == [10]
    assert d.overdue == () and d.due_soon == ()
    assert not digest(department="Analys").has_content


def test_window_is_half_open_since_exclusive_until_inclusive() -> None:
    since = NOW - dt.timedelta(days=3)
    df = frame(
        [
            row(1, created=since),  # exactly at since: belongs to the previous digest
            row(2, created=since + dt.timedelta(seconds=1)),
            row(3, created=NOW),  # exactly at until: this digest
            row(4, created=NOW + dt.timedelta(seconds=1)),  # after the cut-off: next digest
        ]
    )
    assert [i.item_id for i in digest(df, since=since).new] == [2, 3]


def test_reference_date_is_stockholm_calendar_date_across_midnight_utc() -> None:
    # 23:30 UTC on 29 November is 00:30 on 30 November in Stockholm: due the 29th is overdue.
    late = dt.datetime(2026, 11, 29, 23, 30, tzinfo=dt.UTC)
    df = frame([row(1, due=dt.date(2026, 11, 29))])
    d = digest(df, until=late, since=late - dt.timedelta(days=7))
    assert d.reference_date == dt.date(2026, 11, 30)
    assert [i.days_overdue for i in d.overdue] == [1]


def test_received_date_is_shown_in_site_time() -> None:
    created = dt.datetime(2026, 11, 28, 23, 30, tzinfo=dt.UTC)  # 00:30 on the 29th in Stockholm
    d = digest(frame([row(1, created=created)]))
    assert d.new[0].received == dt.date(2026, 11, 29)


def test_hostile_link_and_control_characters_are_neutralised() -> None:
    bad = row(1, created=NOW - dt.timedelta(days=1), title="a\r\nBcc: x@evil.example\x00")
    bad["_item_url"] = "javascript:alert(1)"
    d = digest(frame([bad]), workbook_url="data:text/html,<script>")
    assert d.new[0].url == ""
    assert d.workbook_url is None
    assert "\r" not in d.new[0].title and "\x00" not in d.new[0].title


def test_long_feedback_is_cut_to_an_excerpt() -> None:
    d = digest(frame([row(1, created=NOW - dt.timedelta(days=1), feedback="ord " * 500)]))
    assert len(d.new[0].excerpt) <= 240 and d.new[0].excerpt.endswith("…")


def test_missing_columns_and_empty_frame_give_an_empty_digest() -> None:
    assert not digest(pd.DataFrame()).has_content
    only_ids = pd.DataFrame({"ID": [1], "ReceivingDepartment": ["Företag"]})
    assert not digest(only_ids).has_content


def test_naive_window_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_digest(
            seeded_feedback(),
            "Företag",
            since=dt.datetime(2026, 11, 1),
            until=NOW,
            time_zone=STOCKHOLM,
        )


# --- failure notice --------------------------------------------------------------------------


def test_stale_lists_are_the_ones_older_than_the_limit_or_never_synced() -> None:
    found = stale_lists(
        {
            "Länskunskap": NOW - dt.timedelta(days=1),
            "Dialoger": NOW - dt.timedelta(days=4, hours=1),
            "Dialogåterkoppling": None,
        },
        now=NOW,
        stale_days=3,
    )
    assert [(s.list_title, s.days) for s in found] == [
        ("Dialoger", 4),
        ("Dialogåterkoppling", None),
    ]


def test_failure_notice_names_errors_and_what_to_do() -> None:
    summary = {
        "run_id": "r-1",
        "status": "partial",
        "started": "2026-11-30T01:00:00+00:00",
        "finished": "2026-11-30T01:05:00+00:00",
        "lists": [{"list": "Dialoger", "mode": "incremental", "rows": 40}],
        "errors": [{"error": "PermissionDeniedError", "message": "403 on Länskunskap"}],
    }
    notice = build_failure_notice(summary, site=SITE)
    assert notice.needed and notice.status == "partial"
    assert notice.errors == ("403 on Länskunskap",)
    assert any("Sites.Selected" in a for a in notice.actions)
    ok = build_failure_notice({"status": "ok"}, site=SITE)
    assert not ok.needed
    never = build_failure_notice(None, site=SITE, language="en")
    assert never.status == "failed" and any("No run has finished" in a for a in never.actions)


def test_failure_notice_reads_the_functions_run_document_too() -> None:
    run_document = {
        "run_id": "20261130T020000Z-ab12",
        "status": "partial",
        "lists": {
            "Länskunskap": {"status": "done"},
            "Dialoger": {
                "status": "failed",
                "error": {"error": "PermissionDeniedError", "message": "403 på Dialoger"},
            },
        },
        "rollup": {"status": "ok", "errors": [], "lists": [], "workbooks": []},
    }
    notice = build_failure_notice(run_document, site=SITE)
    assert notice.status == "partial" and notice.needed
    assert notice.errors == ("Dialoger: 403 på Dialoger",)
    assert notice.lists == ("Länskunskap: done", "Dialoger: failed")
    assert any("Sites.Selected" in a for a in notice.actions)
    failed_rollup = {"status": "failed", "error": {"error": "UploadError", "message": "409"}}
    assert build_failure_notice(failed_rollup, site=SITE).errors == ("409",)
