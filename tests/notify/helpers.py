"""Seeded feedback snapshots and an emulator with the Graph stand-in, for the notify tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from sp_emulator import SharePointEmulator
from sp_emulator.graph import GraphService
from sp_sync.notify import (
    DepartmentRef,
    DigestRequest,
    GraphMailSender,
    OutgoingMail,
    RecipientDirectory,
)
from sp_sync.sharepoint.retry import RetryPolicy

STOCKHOLM = ZoneInfo("Europe/Stockholm")
SITE = "https://contoso.sharepoint.com/sites/regionarbete"
SENDER = "sp-sync@myndighet.example"
ADMIN = "it-drift@myndighet.example"
#: Monday 30 November 2026, 06:00 in Stockholm (CET): the default digest time.
NOW = dt.datetime(2026, 11, 30, 6, 0, tzinfo=STOCKHOLM).astimezone(dt.UTC)
REF = dt.date(2026, 11, 30)
DEPARTMENTS = [
    DepartmentRef("Företag", "Företag"),
    DepartmentRef("Regioner", "Regioner"),
    DepartmentRef("Analys", "Analys"),
]
DEPARTMENTS_EN = [
    DepartmentRef("Företag", "Business"),
    DepartmentRef("Regioner", "Regions"),
    DepartmentRef("Analys", "Analysis"),
]
ADDRESSES = {"Företag": "foretag@myndighet.example", "Regioner": "regioner@myndighet.example"}
COUNTY_CODES = {"Skåne län": "M", "Norrbottens län": "BD", "Gotlands län": "I", "Uppsala län": "C"}


def row(
    item_id: int,
    *,
    department: str = "Företag",
    county: str = "Skåne län",
    title: str | None = None,
    status: str = "Ny",
    due: dt.date | None = None,
    created: dt.datetime | None = None,
    feedback: str = "",
    owner: str | None = "Anna Andersson",
) -> dict[str, Any]:
    """One normalized Dialogåterkoppling row (the snapshot contract in docs/design.md)."""
    return {
        "ID": item_id,
        "Title": title if title is not None else f"Återkoppling {item_id}",
        "County": county,
        "ReceivingDepartment": department,
        "SubjectArea": "Innovation",
        "Status": status,
        "DueDate": due,
        "Owner": owner,
        "Feedback": feedback,
        "Feedback_text": feedback,
        "Created": pd.Timestamp(created or (NOW - dt.timedelta(days=60))),
        "_item_url": f"{SITE}/Lists/Dialogaterkoppling/DispForm.aspx?ID={item_id}",
    }


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def days(n: int) -> dt.date:
    return REF + dt.timedelta(days=n)


def seeded_feedback() -> pd.DataFrame:
    """Företag: 2 new this week, 3 overdue (one closed, so 2 count), 2 due soon; Regioner: 1 new."""
    return frame(
        [
            row(1, created=NOW - dt.timedelta(days=2), due=days(30)),
            row(2, created=NOW - dt.timedelta(days=6, hours=23), county="Gotlands län"),
            row(3, status="Pågående", due=days(-3), county="Norrbottens län"),
            row(4, due=days(-40), county="Uppsala län"),
            row(5, status="Klar", due=days(-90)),
            row(6, due=days(0)),
            row(7, due=days(14), county="Gotlands län"),
            row(8, due=days(15)),
            row(9, created=NOW - dt.timedelta(days=8)),  # before the window
            row(10, department="Regioner", created=NOW - dt.timedelta(days=1)),
        ]
    )


def digest_request(
    feedback: pd.DataFrame | None = None,
    *,
    now: dt.datetime = NOW,
    language: str = "sv",
    addresses: dict[str, str] | None = None,
    only: str | None = None,
) -> DigestRequest:
    return DigestRequest(
        site_url=SITE,
        feedback=seeded_feedback() if feedback is None else feedback,
        departments=DEPARTMENTS_EN if language == "en" else DEPARTMENTS,
        recipients=RecipientDirectory(dict(ADDRESSES if addresses is None else addresses), ADMIN),
        sender=SENDER,
        now=now,
        time_zone=STOCKHOLM,
        language=language,
        county_codes=COUNTY_CODES,
        workbook_urls={
            "Företag": f"{SITE}/Shared%20Documents/Sammanst%C3%A4llningar/%C3%85terkoppling%20%E2%80%93%20F%C3%B6retag.xlsx"
        },
        only_department=only,
    )


@dataclass
class RecordingSender:
    """A MailSender double that records, and can fail in scripted ways (no HTTP)."""

    sent: list[OutgoingMail] = field(default_factory=list)
    sent_ids: set[str] = field(default_factory=set)
    fail_with: list[BaseException] = field(default_factory=list)
    can_look: bool = True
    lookups: int = 0

    def send(self, mail: OutgoingMail) -> object:
        if self.fail_with:
            raise self.fail_with.pop(0)
        self.sent.append(mail)
        self.sent_ids.add(mail.message_id)
        return None

    def was_sent(self, message_id: str) -> bool | None:
        self.lookups += 1
        if not self.can_look:
            return None
        return message_id in self.sent_ids


def graph_of(emu: SharePointEmulator) -> GraphService:
    """The emulator's Graph stand-in (installed by the server, or here for older servers)."""
    existing = getattr(emu.app, "graph", None)
    if isinstance(existing, GraphService):
        return existing
    service = GraphService.install(emu.app)
    emu.app.graph = service
    return service


@dataclass
class Sleeps:
    """An injectable sleep for RetryPolicy: records the waits instead of waiting."""

    waits: list[float] = field(default_factory=list)
    now: float = 0.0

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def policy(self, **kwargs: Any) -> RetryPolicy:
        return RetryPolicy(sleep=self.sleep, clock=self.clock, rng=lambda: 0.5, **kwargs)


def mi_sender(
    emu: SharePointEmulator, sleeps: Sleeps | None = None, **kwargs: Any
) -> GraphMailSender:
    from sp_sync.auth import ManagedIdentityTokenProvider
    from sp_sync.notify import GRAPH_RESOURCE

    allowed = kwargs.pop("allowed", [*ADDRESSES.values(), ADMIN])
    return GraphMailSender(
        SENDER,
        ManagedIdentityTokenProvider(GRAPH_RESOURCE),
        allowed=allowed,
        graph_url=emu.url,
        policy=(sleeps or Sleeps()).policy(),
        **kwargs,
    )
