"""GraphMailSender against the emulator's Graph stand-in, over HTTP with msal tokens."""

from __future__ import annotations

import base64
import uuid

import pytest
import requests

from sp_emulator import SharePointEmulator
from sp_emulator.graph import GraphService
from sp_emulator.identity import generate_client_certificate
from sp_sync.auth import CertificateTokenProvider, ManagedIdentityTokenProvider, StaticTokenProvider
from sp_sync.errors import AuthenticationError, NotFoundError, PermissionDeniedError, ThrottledError
from sp_sync.notify import (
    GRAPH_RESOURCE,
    DeliveryUnknownError,
    GraphMailSender,
    OutgoingMail,
    UnconfiguredRecipientError,
    preview_digests,
)
from tests.notify.helpers import ADMIN, SENDER, Sleeps, digest_request, mi_sender


def a_mail(to: str = "foretag@myndighet.example") -> OutgoingMail:
    preview = preview_digests(digest_request(only="Företag"))[0]
    assert preview.mail is not None
    mail = preview.mail
    if to == mail.recipients[0]:
        return mail
    return OutgoingMail(mail.sender, (to,), mail.subject, mail.message_id, mail.mime)


def test_managed_identity_sends_mime_and_graph_answers_202(
    emu: SharePointEmulator, graph: GraphService, mi_env: None
) -> None:
    sender = mi_sender(emu)
    mail = a_mail()
    receipt = sender.send(mail)
    assert receipt.attempts == 1 and receipt.request_id
    [message] = graph.messages()
    assert message["mailbox"] == SENDER.lower() and message["format"] == "mime"
    assert message["to"] == ["foretag@myndighet.example"]
    assert message["subject"] == mail.subject
    assert message["internet_message_id"] == mail.message_id
    assert "Återkoppling 4" in message["html"] and "Återkoppling 4" in message["text"]
    # The admin API shows the same recorded message.
    admin = requests.get(f"{emu.url}/_emulator/graph/messages", timeout=10).json()["messages"]
    assert [m["internet_message_id"] for m in admin] == [mail.message_id]
    assert sender.was_sent(mail.message_id) is True
    assert sender.was_sent("<other@sp-sync.invalid>") is False


def test_the_raw_answer_is_202_with_an_empty_body(
    emu: SharePointEmulator, graph: GraphService, mi_env: None
) -> None:
    token = ManagedIdentityTokenProvider(GRAPH_RESOURCE).get_token().token
    mail = a_mail()
    response = requests.post(
        f"{emu.url}/v1.0/users/{SENDER}/sendMail",
        data=mail.mime_base64(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
        timeout=10,
    )
    assert response.status_code == 202 and response.content == b""
    bad = requests.post(
        f"{emu.url}/v1.0/users/{SENDER}/sendMail",
        data="not base64 !!",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
        timeout=10,
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == "Invalid base64 string for MIME content."
    json_mail = requests.post(
        f"{emu.url}/v1.0/users/{SENDER}/sendMail",
        json={
            "message": {
                "subject": "Hej",
                "body": {"contentType": "Text", "content": "Text"},
                "toRecipients": [{"emailAddress": {"address": "a@b.example"}}],
            },
            "saveToSentItems": False,
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert json_mail.status_code == 202
    assert [m["format"] for m in graph.messages()] == ["mime", "json"]


def test_a_sharepoint_token_is_refused_by_graph(
    emu: SharePointEmulator, graph: GraphService, mi_env: None
) -> None:
    sharepoint_token = ManagedIdentityTokenProvider(emu.url)
    sender = GraphMailSender(
        SENDER,
        sharepoint_token,
        allowed=["foretag@myndighet.example"],
        graph_url=emu.url,
        policy=Sleeps().policy(),
    )
    with pytest.raises(AuthenticationError, match="InvalidAuthenticationToken"):
        sender.send(a_mail())
    assert graph.messages() == []
    assert sender.requests == 2  # renewed the token once, then gave up


def test_certificate_app_needs_mail_send_on_the_mailbox(
    emu: SharePointEmulator, graph: GraphService
) -> None:
    key_pem, cert_pem, _thumb = generate_client_certificate("sp-sync-mail")
    client_id = str(uuid.uuid4())
    emu.register_app(client_id, cert_pem)
    provider = CertificateTokenProvider(
        client_id=client_id,
        private_key_pem=key_pem.decode(),
        certificate_pem=cert_pem.decode(),
        authority_url=emu.authority_url,
        resource=GRAPH_RESOURCE,
        ca_bundle=emu.ca_cert_path,
    )
    sender = GraphMailSender(
        SENDER, provider, allowed=["foretag@myndighet.example"], graph_url=emu.url
    )
    with pytest.raises(PermissionDeniedError, match="RBAC for Applications"):
        sender.send(a_mail())
    graph.grant(client_id, "someone-else@myndighet.example")
    with pytest.raises(PermissionDeniedError):
        sender.send(a_mail())
    graph.grant(client_id, SENDER)
    sender.send(a_mail())
    assert [m["app_id"] for m in graph.messages()] == [client_id]
    graph.revoke(client_id)


def test_throttling_waits_retry_after_then_sends(
    emu: SharePointEmulator, graph: GraphService, mi_env: None
) -> None:
    sleeps = Sleeps()
    graph.throttle(count=2, retry_after=7)
    sender = mi_sender(emu, sleeps)
    receipt = sender.send(a_mail())
    assert sleeps.waits == [7.0, 7.0]
    assert receipt.attempts == 3 and receipt.waited_seconds == 14.0
    assert len(graph.messages()) == 1


def test_throttling_beyond_the_budget_is_a_throttled_error_and_nothing_is_sent(
    emu: SharePointEmulator, graph: GraphService, mi_env: None
) -> None:
    sleeps = Sleeps()
    graph.throttle(count=50, retry_after=100)
    sender = GraphMailSender(
        SENDER,
        ManagedIdentityTokenProvider(GRAPH_RESOURCE),
        allowed=["foretag@myndighet.example"],
        graph_url=emu.url,
        policy=sleeps.policy(max_attempts=8, max_total_wait=250),
    )
    with pytest.raises(ThrottledError, match="not sent"):
        sender.send(a_mail())
    assert sleeps.waits == [100.0, 100.0]
    assert graph.messages() == []


def test_a_5xx_after_acceptance_is_delivery_unknown_not_a_blind_retry(
    emu: SharePointEmulator, graph: GraphService, mi_env: None
) -> None:
    graph.fail(count=1, status=500, accept=True)
    sender = mi_sender(emu)
    mail = a_mail()
    with pytest.raises(DeliveryUnknownError):
        sender.send(mail)
    assert len(graph.messages()) == 1  # accepted once, never resent
    assert sender.requests == 1
    assert sender.was_sent(mail.message_id) is True


def test_unconfigured_recipient_is_refused_before_any_request(
    emu: SharePointEmulator, graph: GraphService, mi_env: None
) -> None:
    sender = mi_sender(emu)
    with pytest.raises(UnconfiguredRecipientError, match=r"stranger@evil\.example"):
        sender.send(a_mail(to="stranger@evil.example"))
    assert sender.requests == 0 and graph.messages() == []
    sender.send(a_mail(to=ADMIN.upper()))  # addresses compare case-blind
    assert len(graph.messages()) == 1


def test_unknown_mailbox_is_not_found(emu: SharePointEmulator, graph: GraphService) -> None:
    graph.add_mailbox("another@myndighet.example")
    try:
        sender = GraphMailSender(
            SENDER,
            StaticTokenProvider(emu.app.auth.issue_token(audience=GRAPH_RESOURCE)),
            allowed=["foretag@myndighet.example"],
            graph_url=emu.url,
        )
        with pytest.raises(NotFoundError, match="does not exist"):
            sender.send(a_mail())
    finally:
        graph.backend.mailboxes.clear()


def test_sent_items_lookup_without_read_permission_is_unknown(
    emu: SharePointEmulator, graph: GraphService, mi_env: None
) -> None:
    sender = mi_sender(emu)
    mail = a_mail()
    sender.send(mail)
    mi_app = emu.managed_identity_app_id
    graph.revoke(mi_app, send=False, read=True)
    try:
        assert sender.was_sent(mail.message_id) is None
    finally:
        graph.grant(mi_app, "*")


def test_admin_api_injects_throttling_and_resets(
    emu: SharePointEmulator, graph: GraphService, mi_env: None
) -> None:
    r = requests.post(
        f"{emu.url}/_emulator/graph/faults", json={"status": 429, "count": 1, "retry_after": 2}
    )
    assert r.status_code == 200
    sleeps = Sleeps()
    mi_sender(emu, sleeps).send(a_mail())
    assert sleeps.waits == [2.0]
    assert requests.delete(f"{emu.url}/_emulator/graph/messages").status_code == 200
    assert graph.messages() == []
    # The MIME bytes are what the sender built: base64 round trip is exact.
    assert base64.b64decode(a_mail().mime_base64()) == a_mail().mime
