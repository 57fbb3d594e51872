"""Property: no list text can add markup, attributes, links or header lines to a digest."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from email.message import EmailMessage
from html.parser import HTMLParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sp_sync.notify import preview_digests
from tests.notify.helpers import NOW, SITE, digest_request, frame, row

#: The markup the renderer itself writes; anything else must have come from user text.
ALLOWED_TAGS = {"html", "head", "meta", "title", "body", "table", "tr", "td", "th", "h1", "h2"}
ALLOWED_TAGS |= {"p", "b", "br", "span", "a"}
ALLOWED_ATTRS = {
    "lang",
    "charset",
    "name",
    "content",
    "style",
    "role",
    "width",
    "cellpadding",
    "cellspacing",
    "border",
    "align",
    "href",
}

TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=120
) | st.sampled_from(
    [
        '<img src="https://evil.example/x.gif">',
        "<script>alert(1)</script>",
        '"><a href="javascript:alert(1)">x</a>',
        "&lt;b&gt;",
        '=HYPERLINK("https://evil.example")',
        "a\r\nBcc: spy@evil.example",
        "<!--[if mso]><v:rect><![endif]-->",
        "<style>*{background:url(https://evil.example)}</style>",
    ]
)


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


@settings(
    derandomize=True,
    deadline=None,
    max_examples=40,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(title=TEXT, feedback=TEXT, owner=TEXT, county=TEXT, label=TEXT)
def test_user_text_never_becomes_markup(
    title: str, feedback: str, owner: str, county: str, label: str
) -> None:
    df = frame(
        [
            row(
                1,
                created=NOW - dt.timedelta(days=1),
                title=title,
                feedback=feedback,
                owner=owner,
                county=county,
                due=NOW.date() - dt.timedelta(days=3),
            )
        ]
    )
    request = digest_request(df, only="Företag")
    request = type(request)(
        **{
            **request.__dict__,
            "departments": [type(request.departments[0])("Företag", label or "Företag")],
        }
    )
    [preview] = preview_digests(request)
    parser = Collect()
    parser.feed(preview.rendered.html)
    assert parser.comments == []
    for tag, attrs in parser.tags:
        assert tag in ALLOWED_TAGS, tag
        for name, value in attrs:
            assert name in ALLOWED_ATTRS, name
            if name == "href":
                assert value is not None and value.startswith(SITE), value
    assert preview.mail is not None
    parsed = email.message_from_bytes(preview.mail.mime, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Bcc"] is None and parsed["Cc"] is None
    assert parsed["To"] == "foretag@myndighet.example"
    assert "\n" not in str(parsed["Subject"]) and "\r" not in str(parsed["Subject"])
