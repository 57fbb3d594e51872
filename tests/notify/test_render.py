"""Rendering: subject lines, language, escaping of hostile text, Outlook-safe HTML, MIME parts."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sp_sync.notify import (
    DigestPreview,
    build_digest,
    build_failure_notice,
    compose_mail,
    message_id_for,
    preview_digests,
    render_digest,
    render_failure_notice,
    write_previews,
)
from sp_sync.notify.content import StaleList
from tests.notify.helpers import (
    NOW,
    SENDER,
    SITE,
    STOCKHOLM,
    digest_request,
    frame,
    row,
    seeded_feedback,
)


def previews(**kwargs: Any) -> dict[str, DigestPreview]:
    return {p.department: p for p in preview_digests(digest_request(**kwargs))}


def test_subject_lines_say_what_is_inside_in_swedish_and_english() -> None:
    sv = previews()
    assert sv["Företag"].rendered.subject == (
        "Återkoppling till Företag: 2 nya, 2 försenade, 2 förfaller snart"
    )
    assert sv["Regioner"].rendered.subject == "Återkoppling till Regioner: 1 ny, 0 försenade"
    assert "Analys" not in sv  # nothing to say: no mail
    en = previews(language="en")
    assert en["Företag"].rendered.subject == "Feedback to Business: 2 new, 2 overdue, 2 due soon"
    assert en["Regioner"].rendered.subject == "Feedback to Regions: 1 new, 0 overdue"


def test_html_and_text_hold_the_items_in_order_with_links() -> None:
    p = previews()["Företag"]
    html_doc, text = p.rendered.html, p.rendered.text
    # Overdue oldest first: #4 (40 days, Uppsala) before #3 (3 days, Norrbotten).
    assert html_doc.index("Återkoppling 4") < html_doc.index("Återkoppling 3")
    assert text.index("Återkoppling 4") < text.index("Återkoppling 3")
    assert "Uppsala län (C)" in html_doc and "Dagar försenad: 40" in text
    for item_id in (1, 2, 3, 4, 6, 7):
        url = f"{SITE}/Lists/Dialogaterkoppling/DispForm.aspx?ID={item_id}"
        assert f'href="{url}"' in html_doc and url in text
    assert "Återkoppling 5" not in html_doc  # closed
    assert "Sammanst%C3%A4llningar" in html_doc and "(Excel)" in text
    assert "Ny återkoppling (2)" in html_doc and "Försenad – äldst först (2)" in text
    en = previews(language="en")["Företag"].rendered
    assert "Overdue – oldest first (2)" in en.html and "Days overdue: 40" in en.text
    assert "Status: New" in en.text  # choice values translated


HOSTILE = (
    '<script>alert("x")</script><img src="https://evil.example/p.gif">'
    '<a href="https://evil.example">klicka</a> & "citat" <style>body{}</style>'
)


def test_hostile_user_text_is_escaped_and_no_remote_content_remains() -> None:
    df = frame(
        [
            row(
                1,
                created=NOW - dt.timedelta(days=1),
                title=HOSTILE,
                feedback=HOSTILE,
                owner='<b onmouseover="x()">Eve</b>',
                county="Skåne län",
            ),
            row(2, due=NOW.date() - dt.timedelta(days=2), title='=HYPERLINK("http://x")'),
        ]
    )
    p = preview_digests(digest_request(df))[0]
    html_doc = p.rendered.html
    for needle in ("<script", "<img", "<style", "onmouseover=", 'evil.example/p.gif"'):
        assert needle not in html_doc.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html_doc
    # The only links are the item links and the workbook link (no link from user text).
    hrefs = re.findall(r'href="([^"]*)"', html_doc)
    assert hrefs and all(h.startswith(SITE) for h in hrefs)
    assert "<script>" in p.rendered.text  # plain text is not markup: shown as typed
    assert 'src="' not in html_doc and "url(" not in html_doc


def test_html_is_outlook_friendly() -> None:
    html_doc = previews()["Företag"].rendered.html
    assert '<meta charset="utf-8">' in html_doc
    assert "<style" not in html_doc and "class=" not in html_doc and "<div" not in html_doc
    assert html_doc.count('role="presentation"') >= 4  # layout and data tables
    # Every table cell carries its own inline style (Word's engine ignores inherited CSS).
    cells = re.findall(r"<t[dh]\b[^>]*>", html_doc)
    assert cells and all('style="' in c for c in cells)


def test_mime_is_multipart_alternative_with_a_stable_message_id() -> None:
    p = previews()["Företag"]
    mail = p.mail
    assert mail is not None
    parsed = email.message_from_bytes(mail.mime, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed["To"] == "foretag@myndighet.example"
    assert SENDER in parsed["From"] and parsed["Auto-Submitted"] == "auto-generated"
    assert str(parsed["Subject"]) == p.rendered.subject
    again = previews()["Företag"].mail
    assert again is not None and again.message_id == mail.message_id
    later = previews(now=NOW + dt.timedelta(days=7))["Företag"].mail
    assert later is not None and mail.message_id != later.message_id
    assert b"\r\n" in mail.mime


def test_header_injection_through_a_department_label_is_impossible() -> None:
    rendered = render_digest(
        build_digest(
            seeded_feedback(),
            "Företag",
            since=NOW - dt.timedelta(days=7),
            until=NOW,
            time_zone=STOCKHOLM,
            department_label="Företag\r\nBcc: spy@evil.example",
        )
    )
    assert "\r" not in rendered.subject and "\n" not in rendered.subject
    mail = compose_mail(
        rendered,
        sender=SENDER,
        recipients=["foretag@myndighet.example"],
        message_id=message_id_for("t"),
        date=NOW,
    )
    parsed = email.message_from_bytes(mail.mime, policy=email.policy.default)
    assert parsed["Bcc"] is None


def test_failure_notice_rendering() -> None:
    notice = build_failure_notice(
        {
            "run_id": "r-7",
            "status": "failed",
            "started": "2026-11-30T01:00:00+00:00",
            "finished": "2026-11-30T01:01:00+00:00",
            "errors": [{"error": "TransientError", "message": "<b>503</b> from SharePoint"}],
        },
        site=SITE,
        stale=(StaleList("Dialoger", NOW - dt.timedelta(days=5), 5),),
        stale_days=3,
    )
    out = render_failure_notice(notice)
    assert out.subject == f"sp-sync: nattkörningen mot {SITE} misslyckades"
    assert "&lt;b&gt;503&lt;/b&gt;" in out.html and "<b>503" not in out.html
    assert "Dialoger: senast kontrollerad" in out.text and "(5 dagar sedan)" in out.text
    assert "nästa körning fortsätter" in out.text
    stale_only = build_failure_notice(
        {"status": "ok"},
        site=SITE,
        stale=(StaleList("Dialoger", NOW - dt.timedelta(days=5), 5),),
        stale_days=3,
        language="en",
    )
    assert render_failure_notice(stale_only).subject == (
        f"sp-sync: data from {SITE} has not been checked for 5 days"
    )


def test_previews_are_written_as_html_and_eml(tmp_path: Path) -> None:
    written = write_previews(preview_digests(digest_request()), tmp_path)
    names = sorted(p.name for p in written)
    assert names == [
        "Veckosammanfattning – Företag.eml",
        "Veckosammanfattning – Företag.html",
        "Veckosammanfattning – Regioner.eml",
        "Veckosammanfattning – Regioner.html",
    ]
    eml = email.message_from_bytes(
        (tmp_path / "Veckosammanfattning – Företag.eml").read_bytes(), policy=email.policy.default
    )
    assert str(eml["Subject"]).startswith("Återkoppling till Företag: 2 nya")
    html_part = eml.get_body(preferencelist=("html",))
    assert isinstance(html_part, EmailMessage)
    assert html_part.get_content().replace("\r\n", "\n") == (
        tmp_path / "Veckosammanfattning – Företag.html"
    ).read_text(encoding="utf-8")


def test_long_sections_show_the_oldest_fifteen_and_point_to_the_workbook() -> None:
    df = frame([row(i, due=NOW.date() - dt.timedelta(days=i)) for i in range(1, 41)])
    [p] = preview_digests(digest_request(df, only="Företag"))
    assert p.rendered.subject == "Återkoppling till Företag: 0 nya, 40 försenade"
    html_doc, text = p.rendered.html, p.rendered.text
    assert "Försenad – äldst först (40)" in html_doc
    assert "Återkoppling 40<" in html_doc and "Återkoppling 26<" in html_doc  # the 15 oldest
    assert "Återkoppling 25<" not in html_doc
    assert "… och 25 till i avdelningens arbetsbok." in html_doc
    assert text.count("\n* ") == 15 and "… och 25 till" in text
