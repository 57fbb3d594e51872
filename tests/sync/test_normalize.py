"""normalize.py: raw item JSON → snapshot rows (pure, no SharePoint needed)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from sp_sync.sync.normalize import (
    LOOKUP_COLUMN_LIMIT,
    apply_lookup_titles,
    html_to_text,
    normalize_page,
    plan_select,
    select_and_expand,
)
from sp_sync.sync.quality import DataQualityIssue

STHLM = ZoneInfo("Europe/Stockholm")


def col(name: str, type_: str, **kw: object) -> SimpleNamespace:
    base: dict[str, object] = {
        "name": name,
        "type": type_,
        "choices": [],
        "lookup_list": None,
        "lookup_column": None,
        "rich_text": False,
    }
    base.update(kw)
    return SimpleNamespace(**base)


SCHEMA = SimpleNamespace(
    title="Testlista",
    url="Testlista",
    columns=[
        col("Title", "text"),
        col("County", "choice", choices=["Skåne län", "Uppsala län"]),
        col("Tags", "multi_choice", choices=["a", "b"]),
        col("Body", "note", rich_text=True),
        col("Amount", "number"),
        col("Done", "boolean"),
        col("Due", "date"),
        col("When", "datetime"),
        col("Owner", "person"),
        col("Dialogue", "lookup", lookup_list="Dialoger", lookup_column="Title"),
        col("Linked", "multi_lookup", lookup_list="Kunskap", lookup_column="Title"),
        col("Link", "url"),
    ],
)

USERS = {7: SimpleNamespace(id=7, title="Anna Andersson", email="anna@example.se")}


def local_midnight_utc(d: date) -> str:
    """How SharePoint stores a date-only value: midnight in the site zone, expressed in UTC."""
    local = datetime(d.year, d.month, d.day, tzinfo=STHLM)
    return local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def item(i: int, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "ID": i,
        "Id": i,
        "Created": "2026-01-01T08:00:00Z",
        "Modified": "2026-01-02T09:30:00Z",
        "AuthorId": 7,
        "EditorId": 7,
        "OData__UIVersionString": "3.0",
        "Title": f"rad {i}",
    }
    base.update(kw)
    return base


def norm(items: list[dict[str, object]], **kw: Any) -> tuple[pd.DataFrame, list[DataQualityIssue]]:
    return normalize_page(
        items,
        SCHEMA,
        tz=STHLM,
        site_url="http://h/sites/x",
        list_url="Testlista",
        users=USERS,
        **kw,
    )


def test_every_type_follows_the_contract() -> None:
    raw = item(
        5,
        County="Skåne län",
        Tags={"results": ["a", "b"]},
        Body="<div><p>Hej&nbsp;<b>världen</b></p><p>rad två &amp; mer</p><script>x()</script></div>",
        Amount=12.5,
        Done=True,
        Due=local_midnight_utc(date(2026, 3, 29)),
        When="2026-06-01T10:00:00Z",
        OwnerId=7,
        Owner={"Title": "Anna Andersson", "EMail": "anna@example.se"},
        DialogueId=3,
        Dialogue={"Title": "Dialog Skåne 2026"},
        LinkedId={"results": [1, 2]},
        Linked={"results": [{"Title": "K1"}, {"Title": "K2"}]},
        Link={"Url": "https://example.se", "Description": "Ex"},
    )
    frame, issues = norm([raw])
    assert issues == []
    row = frame.iloc[0]
    assert row["ID"] == 5 and frame["ID"].dtype == "int64"
    assert row["Created"] == pd.Timestamp("2026-01-01T08:00:00Z")
    assert str(frame["Modified"].dtype) == "datetime64[us, UTC]"
    assert row["Author"] == "Anna Andersson" and row["Editor"] == "Anna Andersson"
    assert row["_item_url"] == "http://h/sites/x/Lists/Testlista/DispForm.aspx?ID=5"
    assert row["_version"] == 3
    assert row["County"] == "Skåne län"
    assert row["Tags"] == ["a", "b"]
    assert row["Body"].startswith("<div>")
    assert row["Body_text"] == "Hej världen\n\nrad två & mer"
    assert row["Amount"] == 12.5
    assert row["Done"] is True
    assert row["Due"] == date(2026, 3, 29)
    assert row["When"] == pd.Timestamp("2026-06-01T10:00:00Z")
    assert row["When_local"].hour == 12 and str(row["When_local"].tz) == "Europe/Stockholm"
    assert (row["OwnerId"], row["Owner"], row["Owner_email"]) == (
        7,
        "Anna Andersson",
        "anna@example.se",
    )
    assert frame["OwnerId"].dtype == "Int64"
    assert (row["DialogueId"], row["Dialogue"]) == (3, "Dialog Skåne 2026")
    assert row["LinkedId"] == [1, 2] and row["Linked"] == ["K1", "K2"]
    assert (row["Link"], row["Link_description"]) == ("https://example.se", "Ex")


def test_empty_values() -> None:
    frame, issues = norm([item(1, Title=None)])
    assert issues == []
    row = frame.iloc[0]
    assert row["Title"] is None and row["County"] is None
    assert row["Tags"] == [] and row["Linked"] == [] and row["LinkedId"] == []
    assert math.isnan(row["Amount"])
    assert row["Done"] is None and row["Due"] is None
    assert pd.isna(row["When"]) and pd.isna(row["OwnerId"]) and row["Owner"] is None
    assert pd.isna(row["DialogueId"]) and row["Dialogue"] is None
    assert row["Link"] is None and row["Body_text"] is None


def test_empty_page_has_typed_columns() -> None:
    frame, issues = norm([])
    assert len(frame) == 0 and issues == []
    assert frame["ID"].dtype == "int64"
    assert str(frame["Created"].dtype) == "datetime64[us, UTC]"
    assert frame["OwnerId"].dtype == "Int64"
    for name in ("Body_text", "When_local", "Owner_email", "Link_description", "_item_url"):
        assert name in frame.columns


@pytest.mark.parametrize(
    "day",
    [
        # Around the March change (2026-03-29, CET → CEST) and the October one (2026-10-25).
        date(2026, 3, 28),
        date(2026, 3, 29),
        date(2026, 3, 30),
        date(2026, 10, 24),
        date(2026, 10, 25),
        date(2026, 10, 26),
        date(2026, 1, 1),
        date(2026, 12, 31),
        date(2026, 7, 1),
    ],
)
def test_date_only_is_the_site_calendar_date_across_dst(day: date) -> None:
    stored = local_midnight_utc(day)
    # Winter: 23:00Z the day before; summer: 22:00Z the day before — naive UTC would be wrong.
    assert stored.startswith((day - timedelta(days=1)).isoformat())
    frame, issues = norm([item(1, Due=stored)])
    assert issues == []
    assert frame.iloc[0]["Due"] == day


@pytest.mark.parametrize(
    ("utc_text", "expected"),
    [
        ("2026-03-28T22:59:00Z", date(2026, 3, 28)),  # 23:59 local (CET)
        ("2026-03-28T23:00:00Z", date(2026, 3, 29)),  # 00:00 local
        ("2026-03-29T21:59:00Z", date(2026, 3, 29)),  # 23:59 local (CEST)
        ("2026-03-29T22:00:00Z", date(2026, 3, 30)),  # 00:00 local (CEST)
        ("2026-10-24T21:30:00Z", date(2026, 10, 24)),  # 23:30 CEST
        ("2026-10-24T22:00:00Z", date(2026, 10, 25)),  # 00:00 CEST
        ("2026-10-25T22:59:00Z", date(2026, 10, 25)),  # 23:59 CET
        ("2026-10-25T23:00:00Z", date(2026, 10, 26)),  # 00:00 CET
    ],
)
def test_date_only_at_23_and_00_local(utc_text: str, expected: date) -> None:
    frame, _ = norm([item(1, Due=utc_text)])
    assert frame.iloc[0]["Due"] == expected


def test_malformed_values_are_kept_and_flagged() -> None:
    raws = [
        item(1, Amount="abc", Due="not a date", Done="maybe", Tags=5, Link=3, Title=42),
        item(2, Amount="7", When="2026-13-45T00:00:00Z", DialogueId="x"),
        item(3),
    ]
    frame, issues = norm(raws)
    assert list(frame["ID"]) == [1, 2, 3]  # never dropped
    by = {(i.item_id, i.column) for i in issues}
    assert by == {
        (1, "Amount"),
        (1, "Due"),
        (1, "Done"),
        (1, "Tags"),
        (1, "Link"),
        (1, "Title"),
        (2, "Amount"),
        (2, "When"),
        (2, "Dialogue"),
    }
    assert frame.iloc[0]["Title"] == "42"  # raw value kept as text
    assert math.isnan(frame.iloc[0]["Amount"]) and frame.iloc[1]["Amount"] == 7.0
    assert frame.iloc[0]["Due"] is None
    one = next(i for i in issues if i.item_id == 1 and i.column == "Due")
    assert one.problem_sv and one.problem_en and one.value == "not a date"
    assert one.item_url.endswith("DispForm.aspx?ID=1") and one.list_title == "Testlista"


def test_unknown_choice_only_when_asked() -> None:
    _, issues = norm([item(1, County="Atlantis")])
    assert issues == []
    _, issues = norm([item(1, County="Atlantis")], check_choices=True)
    assert [(i.column, i.value) for i in issues] == [("County", "Atlantis")]


def test_persons_and_lookups_without_expand_use_maps() -> None:
    frame, _ = norm(
        [item(1, OwnerId=7, DialogueId=3, LinkedId=[4, 9])],
        lookup_titles={"Dialogue": {3: "D3"}, "Linked": {4: "K4", 9: "K9"}},
    )
    row = frame.iloc[0]
    assert (row["Owner"], row["Owner_email"]) == ("Anna Andersson", "anna@example.se")
    assert row["Dialogue"] == "D3" and row["Linked"] == ["K4", "K9"]


def test_apply_lookup_titles_rewrites_stale_titles() -> None:
    frame, _ = norm([item(1, DialogueId=3, Dialogue={"Title": "old"}, LinkedId=[4])])
    fresh = apply_lookup_titles(frame, SCHEMA, {"Dialogue": {3: "new"}, "Linked": {4: "K4"}})
    assert fresh.iloc[0]["Dialogue"] == "new" and fresh.iloc[0]["Linked"] == ["K4"]
    assert frame.iloc[0]["Dialogue"] == "old"  # input untouched


def test_select_and_expand_is_exactly_the_schema() -> None:
    select, expand = select_and_expand(SCHEMA)
    for name in (
        "ID",
        "Created",
        "Modified",
        "OData__UIVersionString",
        "Author/Title",
        "Editor/Title",
        "Title",
        "County",
        "Tags",
        "Body",
        "Amount",
        "Done",
        "Due",
        "When",
        "OwnerId",
        "Owner/Title",
        "Owner/EMail",
        "DialogueId",
        "Dialogue/Title",
        "LinkedId",
        "Linked/Title",
        "Link",
    ):
        assert name in select
    assert "*" not in select and len(select) == len(set(select))
    assert set(expand) == {"Author", "Editor", "Owner", "Dialogue", "Linked"}


def test_lookup_limit_falls_back_to_ids() -> None:
    many = SimpleNamespace(
        title="Stor",
        url="Stor",
        columns=[col(f"L{i}", "lookup", lookup_list="T") for i in range(8)]
        + [col(f"P{i}", "person") for i in range(6)],
    )
    plan = plan_select(many)
    assert len(plan.expand) == LOOKUP_COLUMN_LIMIT
    assert all(f"L{i}" in plan.expanded for i in range(8))  # lookups expanded first
    assert "Author" not in plan.expanded and "AuthorId" in plan.select
    assert "P5Id" in plan.select and "P5/Title" not in plan.select


def test_html_to_text() -> None:
    assert html_to_text(None) is None
    assert html_to_text("plain") == "plain"
    assert html_to_text("a &lt; b") == "a < b"
    assert html_to_text("<ul><li>ett</li><li>två</li></ul>") == "ett\ntvå"
    assert html_to_text("x<br>y<style>p{}</style>") == "x\ny"


@pytest.mark.slow
def test_hundred_thousand_items_normalize_exactly() -> None:
    # Speed is measured by benchmarks/bench_sync.py, not asserted here (shared CI cores).
    raws = [
        item(
            i,
            County="Skåne län",
            Tags=["a"],
            Body=f"<p>hej <b>{i}</b></p>",
            Amount=float(i),
            Due="2026-03-28T23:00:00Z",
            When="2026-06-01T10:00:00Z",
            OwnerId=7,
            Owner={"Title": "A", "EMail": "a@x"},
            DialogueId=1,
            Dialogue={"Title": "D"},
            LinkedId=[1],
            Linked=[{"Title": "K"}],
            Link={"Url": "u", "Description": "d"},
        )
        for i in range(1, 100_001)
    ]
    frame, issues = norm(raws)
    assert len(frame) == 100_000 and issues == []
    assert frame.iloc[-1]["Due"] == date(2026, 3, 29)
    assert frame.iloc[-1]["Body_text"] == "hej 100000"
