"""CAML relative values: `<Today OffsetDays>`, `<Now/>`, `<Membership>`, `<DateRangesOverlap>`
(issue 15 item 12), through the office365 client's `CamlQuery` and raw requests.

Semantics and sources are in `sp_emulator/caml.py`. The emulator clock is moved to local noon
first, so "today" cannot change while a test runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from office365.sharepoint.client_context import ClientContext
from office365.sharepoint.listitems.caml.query import CamlQuery

from sp_emulator import SharePointEmulator

TZ = ZoneInfo("Europe/Stockholm")


@pytest.fixture
def emu() -> Iterator[SharePointEmulator]:
    with SharePointEmulator(sites=["x"]) as e:
        now = dt.datetime.fromtimestamp(e.clock.now(), TZ)
        noon = now.replace(hour=12, minute=0, second=0, microsecond=0)
        if noon <= now:
            noon += dt.timedelta(days=1)
        e.clock.advance((noon - now).total_seconds())
        yield e


@pytest.fixture
def raw(emu: SharePointEmulator) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.headers.update(
        {"Authorization": "Bearer " + emu.issue_token(), "Accept": "application/json;odata=verbose"}
    )
    return s


@pytest.fixture
def ctx(emu: SharePointEmulator) -> ClientContext:
    token = emu.issue_token()
    return ClientContext(emu.site_url("x")).with_access_token(
        lambda: {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
    )


def _today(emu: SharePointEmulator) -> dt.date:
    return dt.datetime.fromtimestamp(emu.clock.now(), TZ).date()


def _at(day: dt.date, hour: int) -> str:
    """Local `hour` on `day` as the UTC ISO text a client writes."""
    local = dt.datetime(day.year, day.month, day.day, hour, tzinfo=TZ)
    return local.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def events(emu: SharePointEmulator, raw: requests.Session) -> dict[str, dt.date]:
    """List `Händelser` (Start, Slut, Ansvarig) with one item per relative day."""
    api = emu.site_url("x") + "/_api/web/lists"
    assert raw.post(api, json={"Title": "Händelser", "BaseTemplate": 100}).status_code == 201
    fields = api + "/getbytitle('Händelser')/fields"
    for xml in (
        '<Field Type="DateTime" Name="Start" DisplayName="Start" Format="DateTime"/>',
        '<Field Type="DateTime" Name="Slut" DisplayName="Slut" Format="DateTime"/>',
        '<Field Type="User" Name="Ansvarig" DisplayName="Ansvarig" UserSelectionMode="PeopleAndGroups"/>',
    ):
        r = raw.post(fields + "/createfieldasxml", json={"parameters": {"SchemaXml": xml}})
        assert r.status_code in (200, 201), r.text
    today = _today(emu)
    days = {
        "igår": today - dt.timedelta(days=1),
        "idag": today,
        "om en vecka": today + dt.timedelta(days=7),
        "om 40 dagar": today + dt.timedelta(days=40),
    }
    for title, day in days.items():
        r = raw.post(
            api + "/getbytitle('Händelser')/items",
            json={"Title": title, "Start": _at(day, 10), "Slut": _at(day, 11)},
        )
        assert r.status_code == 201, r.text
    return days


def _titles(ctx: ClientContext, where: str) -> list[str]:
    query = CamlQuery()
    query.ViewXml = f"<View><Query><Where>{where}</Where><OrderBy><FieldRef Name='ID'/></OrderBy></Query></View>"
    items = ctx.web.lists.get_by_title("Händelser").get_items(query).execute_query()
    return [str(i.properties["Title"]) for i in items]


def test_today_compares_dates_and_offsets_days(
    ctx: ClientContext, events: dict[str, dt.date]
) -> None:
    today = "<Value Type='DateTime'><Today/></Value>"
    assert _titles(ctx, f"<Eq><FieldRef Name='Start'/>{today}</Eq>") == ["idag"]
    assert _titles(ctx, f"<Lt><FieldRef Name='Start'/>{today}</Lt>") == ["igår"]
    week = "<Value Type='DateTime'><Today OffsetDays='7'/></Value>"
    assert _titles(ctx, f"<Eq><FieldRef Name='Start'/>{week}</Eq>") == ["om en vecka"]
    back = "<Value Type='DateTime'><Today OffsetDays='-1'/></Value>"
    assert _titles(ctx, f"<Eq><FieldRef Name='Start'/>{back}</Eq>") == ["igår"]
    # With IncludeTimeValue the value is local midnight: 10:00 today is after it.
    timed = "<Value Type='DateTime' IncludeTimeValue='TRUE'><Today/></Value>"
    assert _titles(ctx, f"<Gt><FieldRef Name='Start'/>{timed}</Gt>") == [
        "idag",
        "om en vecka",
        "om 40 dagar",
    ]
    # Now is noon (the fixture moved the clock): 10:00 today is before it.
    now = "<Value Type='DateTime' IncludeTimeValue='TRUE'><Now/></Value>"
    assert _titles(ctx, f"<Lt><FieldRef Name='Start'/>{now}</Lt>") == ["igår", "idag"]


def test_date_ranges_overlap_today_week_month_now(
    ctx: ClientContext, events: dict[str, dt.date]
) -> None:
    def overlap(period: str) -> list[str]:
        return _titles(
            ctx,
            "<DateRangesOverlap><FieldRef Name='Start'/><FieldRef Name='Slut'/>"
            f"<FieldRef Name='RecurrenceID'/><Value Type='DateTime'><{period}/></Value>"
            "</DateRangesOverlap>",
        )

    today = events["idag"]
    assert overlap("Today") == ["idag"]
    monday = today - dt.timedelta(days=today.weekday())
    in_week = [t for t, d in events.items() if monday <= d < monday + dt.timedelta(days=7)]
    assert overlap("Week") == in_week and "idag" in in_week and "om en vecka" not in in_week
    first = today.replace(day=1)
    view_start = first - dt.timedelta(days=first.weekday())
    after = (first + dt.timedelta(days=32)).replace(day=1)
    view_end = after + dt.timedelta(days=(7 - after.weekday()) % 7)
    assert overlap("Month") == [t for t, d in events.items() if view_start <= d < view_end]
    # Now: from this moment on (two years ahead); 10-11 today ended before noon.
    assert overlap("Now") == ["om en vecka", "om 40 dagar"]


def test_membership_current_user_groups_spgroup_and_web(
    ctx: ClientContext, emu: SharePointEmulator, raw: requests.Session, events: Any
) -> None:
    site = emu.site_url("x") + "/_api/web"
    me = raw.get(site + "/currentuser").json()["d"]
    groups = {g["Title"]: g["Id"] for g in raw.get(site + "/sitegroups").json()["d"]["results"]}
    members, owners = groups["x Members"], groups["x Owners"]
    added = raw.post(
        site + f"/sitegroups/getbyid({members})/users",
        json={"__metadata": {"type": "SP.User"}, "LoginName": me["LoginName"]},
    )
    assert added.status_code in (200, 201), added.text
    items = site + "/lists/getbytitle('Händelser')/items"
    # A group the caller is in, a group the caller is not in, a person (user 2), nobody.
    for item_id, who in ((1, members), (2, owners), (3, 2), (4, None)):
        r = raw.post(
            f"{items}({item_id})",
            json={"AnsvarigId": who},
            headers={"X-HTTP-Method": "MERGE", "IF-MATCH": "*"},
        )
        assert r.status_code == 204, r.text

    def members_of(kind: str) -> list[str]:
        return _titles(ctx, f"<Membership Type='{kind}'><FieldRef Name='Ansvarig'/></Membership>")

    assert members_of("CurrentUserGroups") == ["igår"]
    assert members_of("SPWeb.Groups") == ["igår", "idag"]
    assert members_of("SPWeb.AllUsers") == ["om en vecka"]
    assert (
        _titles(
            ctx,
            f"<Membership Type='SPGroup' ID='{members}'><FieldRef Name='Ansvarig'/></Membership>",
        )
        == []
    )  # SPGroup matches users in the group, not the group itself
    # The documented combination: assigned to one of my groups or to me.
    raw.post(
        f"{items}(4)",
        json={"AnsvarigId": me["Id"]},
        headers={"X-HTTP-Method": "MERGE", "IF-MATCH": "*"},
    )
    assert _titles(
        ctx,
        "<Or><Membership Type='CurrentUserGroups'><FieldRef Name='Ansvarig'/></Membership>"
        f"<Eq><FieldRef Name='Ansvarig' LookupId='TRUE'/><Value Type='Integer'>{me['Id']}</Value></Eq></Or>",
    ) == ["igår", "om 40 dagar"]
    assert _titles(
        ctx,
        f"<Membership Type='SPGroup' ID='{members}'><FieldRef Name='Ansvarig'/></Membership>",
    ) == ["om 40 dagar"]


def test_relative_values_the_emulator_does_not_evaluate_are_refused(
    emu: SharePointEmulator, raw: requests.Session, events: Any
) -> None:
    url = emu.site_url("x") + "/_api/web/lists/getbytitle('Händelser')/GetItems"
    for where in (
        "<Membership Type='SPWeb.Users'><FieldRef Name='Ansvarig'/></Membership>",
        "<DateRangesOverlap><FieldRef Name='Start'/><FieldRef Name='Slut'/>"
        "<Value Type='DateTime'><Year/></Value></DateRangesOverlap>",
        "<Eq><FieldRef Name='Start'/><Value Type='DateTime'><UserID/></Value></Eq>",
    ):
        view = f"<View><Query><Where>{where}</Where></Query></View>"
        r = raw.post(url, json={"query": {"ViewXml": view}})
        assert r.status_code == 400, where
        assert "not supported by the emulator" in r.json()["error"]["message"]["value"]
    bad = "<View><Query><Where><Membership Type='CurrentUserGroups'><FieldRef Name='Start'/></Membership></Where></Query></View>"
    r = raw.post(url, json={"query": {"ViewXml": bad}})
    assert r.status_code == 400 and "person or group" in r.json()["error"]["message"]["value"]
