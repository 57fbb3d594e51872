"""Exactly once per period: redelivery, kills between send and commit, retries, superseded periods,
unconfigured recipients, and the failure notice once per incident."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import os
import textwrap
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from sp_emulator import SharePointEmulator
from sp_emulator.graph import GraphService
from sp_sync.errors import ThrottledError
from sp_sync.notify import (
    FAILURE_STREAM,
    Delivery,
    MailLedger,
    Outcome,
    OutgoingMail,
    RecipientDirectory,
    digest_stream,
    notify_failure,
    send_digests,
)
from sp_sync.notify.content import StaleList
from sp_sync.state import StateStore
from sp_sync.state.local import LocalStateStore
from tests.helpers import forkserver
from tests.notify.helpers import (
    ADMIN,
    NOW,
    SENDER,
    SITE,
    STOCKHOLM,
    RecordingSender,
    digest_request,
    frame,
    mi_sender,
    row,
)

REPO = Path(__file__).resolve().parents[2]


class SimulatedKill(BaseException):
    """Stands for the process dying: nothing after it runs (not an Exception, nothing catches it)."""


def outcomes(results: list[Delivery]) -> dict[str, Outcome]:
    return {r.stream: r.outcome for r in results}


def text_of(mail: OutgoingMail) -> str:
    parsed = email.message_from_bytes(mail.mime, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    part = parsed.get_body(preferencelist=("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


FORETAG, REGIONER, ANALYS = (digest_stream(d) for d in ("Företag", "Regioner", "Analys"))


def test_redelivery_sends_each_department_once(
    emu: SharePointEmulator, graph: GraphService, mi_env: None, tmp_path: Path
) -> None:
    store = LocalStateStore(tmp_path)
    ledger = MailLedger(store, SITE, mi_sender(emu))
    first = send_digests(digest_request(), ledger)
    assert outcomes(first) == {
        FORETAG: Outcome.SENT,
        REGIONER: Outcome.SENT,
        ANALYS: Outcome.NOTHING,  # no address configured
    }
    # The timer fires again (redelivery, a second instance, a manual run) later the same week.
    later = digest_request(now=NOW + dt.timedelta(hours=5))
    again = send_digests(later, MailLedger(store, SITE, mi_sender(emu)))
    assert outcomes(again)[FORETAG] is Outcome.ALREADY_DONE
    assert outcomes(again)[REGIONER] is Outcome.ALREADY_DONE
    assert sorted(m["to"][0] for m in graph.messages()) == [
        "foretag@myndighet.example",
        "regioner@myndighet.example",
    ]


def test_kill_between_send_and_ledger_commit_never_sends_twice(
    emu: SharePointEmulator, graph: GraphService, mi_env: None, tmp_path: Path
) -> None:
    store = LocalStateStore(tmp_path)

    def die(_mail: OutgoingMail) -> None:
        raise SimulatedKill

    with pytest.raises(SimulatedKill):
        send_digests(digest_request(), MailLedger(store, SITE, mi_sender(emu), after_send=die))
    assert len(graph.messages()) == 1  # Företag went out, then the process died

    # Redelivered at once: the claim is fresh, so it is left alone (it may still be in flight).
    soon = send_digests(digest_request(), MailLedger(store, SITE, mi_sender(emu)))
    assert outcomes(soon)[FORETAG] is Outcome.IN_PROGRESS
    assert outcomes(soon)[REGIONER] is Outcome.SENT  # other departments are not held up
    assert [m["to"][0] for m in graph.messages()].count("foretag@myndighet.example") == 1

    # After the settle time the ledger finds the Message-ID in Sent Items and does not resend.
    later = digest_request(now=NOW + dt.timedelta(minutes=20))
    result = send_digests(later, MailLedger(store, SITE, mi_sender(emu)))
    assert outcomes(result) == {
        FORETAG: Outcome.RECOVERED,
        REGIONER: Outcome.ALREADY_DONE,
        ANALYS: Outcome.NOTHING,
    }
    assert sorted(m["to"][0] for m in graph.messages()) == [
        "foretag@myndighet.example",
        "regioner@myndighet.example",
    ]


def test_sigkill_after_send_in_a_real_process(
    emu: SharePointEmulator, graph: GraphService, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from sp_sync.notify import MailLedger, send_digests
        from sp_sync.state.local import LocalStateStore
        from tests.notify.helpers import SITE, digest_request, mi_sender

        class Emu:
            url = {emu.url!r}

        def die(mail):
            os.kill(os.getpid(), signal.SIGKILL)

        ledger = MailLedger(LocalStateStore({str(tmp_path)!r}), SITE, mi_sender(Emu), after_send=die)
        send_digests(digest_request(), ledger)
        """
    )
    env = {
        **os.environ,
        "IDENTITY_ENDPOINT": emu.identity_endpoint,
        "IDENTITY_HEADER": emu.identity_header,
    }
    proc = forkserver.run(["-c", script], env=env, cwd=REPO, timeout=120, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert len(graph.messages()) == 1
    doc = json.loads(next(tmp_path.glob(f"notify/*/{FORETAG}.json")).read_text())
    assert doc["pending"]["message_id"] == graph.messages()[0]["internet_message_id"]

    os.environ["IDENTITY_ENDPOINT"], os.environ["IDENTITY_HEADER"] = (
        emu.identity_endpoint,
        emu.identity_header,
    )
    try:
        later = digest_request(now=NOW + dt.timedelta(minutes=20))
        result = send_digests(later, MailLedger(LocalStateStore(tmp_path), SITE, mi_sender(emu)))
    finally:
        del os.environ["IDENTITY_ENDPOINT"], os.environ["IDENTITY_HEADER"]
    assert outcomes(result)[FORETAG] is Outcome.RECOVERED
    assert outcomes(result)[REGIONER] is Outcome.SENT
    assert [m["to"][0] for m in graph.messages()].count("foretag@myndighet.example") == 1


def test_kill_after_claim_before_send_sends_once_later(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    sender = RecordingSender(fail_with=[SimulatedKill()])
    with pytest.raises(SimulatedKill):
        send_digests(digest_request(only="Företag"), MailLedger(store, SITE, sender))
    assert sender.sent == []
    later = digest_request(only="Företag", now=NOW + dt.timedelta(minutes=20))
    result = send_digests(later, MailLedger(store, SITE, sender))
    assert outcomes(result) == {FORETAG: Outcome.RESENT}
    assert len(sender.sent) == 1 and sender.lookups == 1
    # The resent mail is the claimed one, byte for byte (same Message-ID, same window).
    doc, _ = store.read_json(f"notify/{next(iter(os.listdir(tmp_path / 'notify')))}/{FORETAG}.json")
    assert doc is not None and doc["done"]["message_id"] == sender.sent[0].message_id
    assert doc["done"]["data"]["until"] == NOW.isoformat()


def test_a_run_that_cannot_send_says_so_and_the_next_run_sends(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    sender = RecordingSender(fail_with=[ThrottledError("throttled past the budget")])
    first = send_digests(digest_request(only="Företag"), MailLedger(store, SITE, sender))
    [result] = first
    assert result.outcome is Outcome.RETRY_LATER and result.needs_retry
    assert "throttled" in result.detail
    # Certainly not sent: the next run resends at once, without looking into Sent Items.
    second = send_digests(digest_request(only="Företag"), MailLedger(store, SITE, sender))
    assert outcomes(second) == {FORETAG: Outcome.RESENT}
    assert sender.lookups == 0 and len(sender.sent) == 1
    third = send_digests(digest_request(only="Företag"), MailLedger(store, SITE, sender))
    assert outcomes(third) == {FORETAG: Outcome.ALREADY_DONE} and len(sender.sent) == 1


def test_uncertain_send_without_sent_items_access_is_never_resent(tmp_path: Path) -> None:
    from sp_sync.notify import DeliveryUnknownError

    store = LocalStateStore(tmp_path)
    sender = RecordingSender(fail_with=[DeliveryUnknownError("502 from Graph")], can_look=False)
    [first] = send_digests(digest_request(only="Företag"), MailLedger(store, SITE, sender))
    assert first.outcome is Outcome.UNCERTAIN
    later = digest_request(only="Företag", now=NOW + dt.timedelta(hours=2))
    [second] = send_digests(later, MailLedger(store, SITE, sender))
    assert second.outcome is Outcome.UNCERTAIN and "cannot be checked" in second.detail
    assert sender.sent == []
    # An administrator looked in Sent Items and found it: recorded, never sent again.
    ledger = MailLedger(store, SITE, sender)
    assert ledger.resolve_pending(FORETAG, sent=True, now=later.now)
    [third] = send_digests(later, ledger)
    assert third.outcome is Outcome.ALREADY_DONE and sender.sent == []


def test_no_period_is_skipped_the_next_window_starts_where_the_last_sent_one_ended(
    tmp_path: Path,
) -> None:
    store = LocalStateStore(tmp_path)
    week = dt.timedelta(days=7)
    feedback = frame(
        [
            row(1, created=NOW - dt.timedelta(days=1)),  # week 1
            row(2, created=NOW + dt.timedelta(days=3)),  # week 2 (its digest never goes out)
            row(3, created=NOW + dt.timedelta(days=10)),  # week 3
        ]
    )
    sender = RecordingSender()
    send_digests(digest_request(feedback, only="Företag"), MailLedger(store, SITE, sender))
    assert len(sender.sent) == 1 and "* Återkoppling 1" in text_of(sender.sent[0])
    # Week 2: killed after the claim, before the send; nobody runs again that week.
    dying = RecordingSender(fail_with=[SimulatedKill()], sent_ids=sender.sent_ids)
    with pytest.raises(SimulatedKill):
        send_digests(
            digest_request(feedback, only="Företag", now=NOW + week),
            MailLedger(store, SITE, dying),
        )
    # Week 3: the unsent week-2 claim is superseded; the new window starts at week 1's cut-off.
    [result] = send_digests(
        digest_request(feedback, only="Företag", now=NOW + 2 * week),
        MailLedger(store, SITE, sender),
    )
    assert result.outcome is Outcome.SENT
    doc, _ = store.read_json(f"notify/{next(iter(os.listdir(tmp_path / 'notify')))}/{FORETAG}.json")
    assert doc is not None
    assert doc["done"]["data"]["since"] == NOW.isoformat()
    assert doc["done"]["data"]["new"] == 2  # items 2 and 3
    assert "* Återkoppling 2" in text_of(sender.sent[1]) and "* Återkoppling 3" in text_of(
        sender.sent[1]
    )
    assert [h["state"] for h in doc["history"]] == ["sent", "superseded", "sent"]


def test_nothing_is_sent_to_an_address_that_is_not_configured(tmp_path: Path) -> None:
    sender = RecordingSender()
    request = digest_request(addresses={"Regioner": "regioner@myndighet.example"})
    results = send_digests(request, MailLedger(LocalStateStore(tmp_path), SITE, sender))
    assert outcomes(results)[FORETAG] is Outcome.NOTHING
    assert [m.recipients for m in sender.sent] == [("regioner@myndighet.example",)]
    directory = RecipientDirectory({"Regioner": "regioner@myndighet.example"}, ADMIN)
    from sp_sync.notify import UnconfiguredRecipientError

    with pytest.raises(UnconfiguredRecipientError):
        directory.check(["foretag@myndighet.example"])


# --- failure notice ----------------------------------------------------------------------------


def notice(
    store: LocalStateStore,
    sender: RecordingSender,
    summary: dict[str, Any] | None,
    now: dt.datetime,
    stale: tuple[StaleList, ...] = (),
) -> Delivery | None:
    return notify_failure(
        site=SITE,
        summary=summary,
        stale=stale,
        stale_days=3,
        store=store,
        ledger=MailLedger(store, SITE, sender),
        recipients=RecipientDirectory({}, ADMIN),
        sender=SENDER,
        now=now,
        time_zone=STOCKHOLM,
    )


def outcome(delivery: Delivery | None) -> Outcome | None:
    return None if delivery is None else delivery.outcome


def test_failure_notice_once_per_incident(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    sender = RecordingSender()
    partial = {"status": "partial", "errors": [{"error": "TransientError", "message": "503"}]}
    hour = dt.timedelta(hours=1)
    first = notice(store, sender, partial, NOW)
    assert first is not None and first.outcome is Outcome.SENT and first.stream == FAILURE_STREAM
    # Retries of the same night, and the next failing night: the same incident, no new mail.
    assert outcome(notice(store, sender, partial, NOW + hour)) is Outcome.ALREADY_DONE
    failed = {"status": "failed", "errors": [{"error": "AuthenticationError", "message": "401"}]}
    assert outcome(notice(store, sender, failed, NOW + 24 * hour)) is Outcome.ALREADY_DONE
    assert len(sender.sent) == 1 and sender.sent[0].recipients == (ADMIN,)
    # A good night closes the incident; the next failure is a new incident and a new mail.
    assert notice(store, sender, {"status": "ok"}, NOW + 48 * hour) is None
    again = notice(store, sender, failed, NOW + 72 * hour)
    assert again is not None and again.outcome is Outcome.SENT
    assert len(sender.sent) == 2 and sender.sent[0].message_id != sender.sent[1].message_id


def test_stale_data_alone_opens_an_incident(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    sender = RecordingSender()
    stale = (StaleList("Dialoger", NOW - dt.timedelta(days=5), 5),)
    result = notice(store, sender, {"status": "ok"}, NOW, stale)
    assert result is not None and result.outcome is Outcome.SENT
    assert "5 dagar" in sender.sent[0].subject
    assert (
        outcome(notice(store, sender, {"status": "ok"}, NOW + dt.timedelta(days=1), stale))
        is Outcome.ALREADY_DONE
    )
    assert len(sender.sent) == 1


class SlowSender(RecordingSender):
    """Sends slowly, so concurrent invocations overlap between claim and commit."""

    def send(self, mail: OutgoingMail) -> object:
        time.sleep(0.05)
        with LOCK:
            return super().send(mail)


LOCK = threading.Lock()


@pytest.mark.parametrize("kind", ["local", "azure"])
def test_concurrent_invocations_send_each_digest_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "azure":
        from sp_sync.state.blob import BlobStateStore
        from tests.helpers.azurite import unique_container

        azurite = request.getfixturevalue("azurite")
        container = unique_container("notify")

        def make_store() -> StateStore:
            return BlobStateStore(azurite.connection_string, container)
    else:

        def make_store() -> StateStore:
            return LocalStateStore(tmp_path)

    sender = SlowSender()
    results: list[list[Delivery]] = []
    start = threading.Barrier(6)

    def invocation() -> None:
        store = make_store()
        start.wait()
        results.append(send_digests(digest_request(), MailLedger(store, SITE, sender)))

    threads = [threading.Thread(target=invocation) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 6
    assert sorted(m.recipients[0] for m in sender.sent) == [
        "foretag@myndighet.example",
        "regioner@myndighet.example",
    ]
    foretag = [outcomes(r)[FORETAG] for r in results]
    assert foretag.count(Outcome.SENT) == 1
    assert set(foretag) <= {Outcome.SENT, Outcome.IN_PROGRESS, Outcome.ALREADY_DONE}
