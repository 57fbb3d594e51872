"""Digest and failure notice as mail: subject line, HTML and plain text (pure).

The HTML is written for Outlook desktop, which renders mail with Word's engine: layout by
tables, every style inline (no <style> block, no classes, no external CSS), no scripts, no
images or other remote content, system fonts only. Every value that came from a list item is
escaped with `html.escape(quote=True)`, so user text can never become markup, and links are
only the item and workbook URLs that passed the http(s) check in `content`. The plain-text part
carries the same information for clients that show text only.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sp_sync.notify.content import DepartmentDigest, DigestItem, FailureNotice

__all__ = [
    "MAX_ROWS_PER_SECTION",
    "RenderedMail",
    "digest_subject",
    "failure_subject",
    "render_digest",
    "render_failure_notice",
]

_FONT = "font-family:Segoe UI,Calibri,Arial,sans-serif;"
_CELL = _FONT + "font-size:14px;padding:6px 8px;border-bottom:1px solid #d0d7de;vertical-align:top;"
_HEAD = _FONT + "font-size:13px;padding:6px 8px;background:#f3f4f6;text-align:left;color:#333333;"
_H2 = _FONT + "font-size:17px;color:#1f2937;margin:22px 0 6px 0;"
_P = _FONT + "font-size:14px;color:#1f2937;margin:6px 0;"
_RED = "color:#b42318;font-weight:bold;"
_SMALL = _FONT + "font-size:12px;color:#6b7280;margin-top:22px;"

# key -> (Swedish, English)
_TEXT: dict[str, tuple[str, str]] = {
    "heading": ("Återkoppling till {dept}", "Feedback to {dept}"),
    "intro": (
        "Läget den {date}. Ny återkoppling räknas sedan förra sammanfattningen ({since}).",
        "As of {date}. New feedback is counted since the previous digest ({since}).",
    ),
    "new": ("Ny återkoppling", "New feedback"),
    "overdue": ("Försenad – äldst först", "Overdue – oldest first"),
    "due_soon": ("Förfaller inom {days} dagar", "Due within {days} days"),
    "none": ("Inga.", "None."),
    "county": ("Län", "County"),
    "title": ("Rubrik", "Title"),
    "received": ("Inkom", "Received"),
    "due": ("Sista datum", "Due date"),
    "days_overdue": ("Dagar försenad", "Days overdue"),
    "days_left": ("Dagar kvar", "Days left"),
    "status": ("Status", "Status"),
    "owner": ("Ansvarig", "Owner"),
    "open": ("Öppna", "Open"),
    "workbook": (
        "Hela sammanställningen: {link}",
        "The full workbook: {link}",
    ),
    "workbook_link": ("Återkoppling – {dept} (Excel)", "Feedback – {dept} (Excel)"),
    "footer": (
        "Skickat automatiskt av sp-sync från listan Dialogåterkoppling. Svara inte på detta "
        "meddelande; ändra posterna i SharePoint.",
        "Sent automatically by sp-sync from the Dialogue feedback list. Do not reply to this "
        "message; change the items in SharePoint.",
    ),
    "today": ("i dag", "today"),
    "more": (
        "… och {count} till i avdelningens arbetsbok.",
        "… and {count} more in the department's workbook.",
    ),
}

_STATUS_EN = {"Ny": "New", "Pågående": "In progress", "Klar": "Done", "Ingen åtgärd": "No action"}


def _t(key: str, lang: str, **values: object) -> str:
    sv, en = _TEXT[key]
    return (en if lang == "en" else sv).format(**values)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _status(value: str, lang: str) -> str:
    return _STATUS_EN.get(value, value) if lang == "en" else value


def _count(n: int, sv_one: str, sv_many: str, en: str, lang: str) -> str:
    if lang == "en":
        return f"{n} {en}"
    return f"{n} {sv_one if n == 1 else sv_many}"


@dataclass(frozen=True)
class RenderedMail:
    """A mail's subject and its two bodies."""

    subject: str
    html: str
    text: str


def digest_subject(digest: DepartmentDigest) -> str:
    """E.g. "Återkoppling till Företag: 5 nya, 3 försenade" (", 2 förfaller snart" when any)."""
    lang = digest.language
    parts = [
        _count(len(digest.new), "ny", "nya", "new", lang),
        _count(len(digest.overdue), "försenad", "försenade", "overdue", lang),
    ]
    if digest.due_soon:
        parts.append(
            _count(len(digest.due_soon), "förfaller snart", "förfaller snart", "due soon", lang)
        )
    head = _t("heading", lang, dept=digest.department_label)
    return _one_line(f"{head}: {', '.join(parts)}")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _date(value: dt.date | None) -> str:
    return value.isoformat() if value else ""


def _item_link_html(item: DigestItem, lang: str) -> str:
    if not item.url:
        return ""
    return f'<a href="{_e(item.url)}" style="color:#0b57d0;">{_e(_t("open", lang))}</a>'


def _table_html(
    items: tuple[DigestItem, ...],
    columns: list[tuple[str, str]],
    lang: str,
    *,
    highlight: str | None = None,
) -> str:
    """One section as a table (presentation role, fixed cell padding: Outlook keeps both)."""
    if not items:
        return f'<p style="{_P}">{_e(_t("none", lang))}</p>'
    head = "".join(
        f'<th align="left" style="{_HEAD}">{_e(_t(key, lang))}</th>' for key, _ in columns
    )
    head += f'<th align="left" style="{_HEAD}">&nbsp;</th>'
    rows = []
    for item in items:
        cells = []
        for key, attr in columns:
            style = _CELL + (_RED if key == highlight else "")
            if attr in _NOWRAP:
                style += "white-space:nowrap;"
            cells.append(f'<td style="{style}">{_cell_value(item, attr, lang)}</td>')
        cells.append(f'<td style="{_CELL}">{_item_link_html(item, lang)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        'style="border-collapse:collapse;width:100%;max-width:760px;">'
        f"<tr>{head}</tr>{''.join(rows)}</table>"
    )


def _cell_value(item: DigestItem, attr: str, lang: str) -> str:
    if attr == "county":
        code = f" ({_e(item.county_code)})" if item.county_code else ""
        return _e(item.county) + code
    if attr == "title":
        title = f"<b>{_e(item.title)}</b>"
        if item.excerpt:
            title += f'<br><span style="color:#4b5563;font-size:13px;">{_e(item.excerpt)}</span>'
        return title
    if attr == "status":
        return _e(_status(item.status, lang))
    if attr in ("received", "due_date"):
        return _e(_date(getattr(item, attr)))
    if attr == "days_left" and item.days_left == 0:
        return _e(_t("today", lang))
    value = getattr(item, attr)
    return "" if value is None else _e(value)


#: Dates and day counts never break over two lines (Outlook's narrow reading pane would).
_NOWRAP = frozenset({"received", "due_date", "days_overdue", "days_left"})
_NEW_COLS = [
    ("county", "county"),
    ("title", "title"),
    ("received", "received"),
    ("status", "status"),
]
_OVERDUE_COLS = [
    ("days_overdue", "days_overdue"),
    ("county", "county"),
    ("title", "title"),
    ("due", "due_date"),
    ("owner", "owner"),
]
_SOON_COLS = [
    ("due", "due_date"),
    ("days_left", "days_left"),
    ("county", "county"),
    ("title", "title"),
    ("owner", "owner"),
]


#: Rows shown per section: a digest is read in a minute; the rest is one click away in the
#: department's workbook (the heading and the subject still count every item). It also keeps a
#: mail far below Graph's 4 MB request limit.
MAX_ROWS_PER_SECTION = 15


def render_digest(
    digest: DepartmentDigest,
    *,
    time_zone: ZoneInfo | None = None,
    max_rows: int = MAX_ROWS_PER_SECTION,
) -> RenderedMail:
    """The digest as subject + HTML + text. Dates are shown in `time_zone` (default Stockholm);
    each section lists at most `max_rows` items (the oldest overdue first) and says how many more."""
    lang = digest.language
    tz = time_zone or ZoneInfo("Europe/Stockholm")
    subject = digest_subject(digest)
    since = digest.since.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    intro = _t("intro", lang, date=digest.reference_date.isoformat(), since=since)
    heading = _t("heading", lang, dept=digest.department_label)
    soon = _t("due_soon", lang, days=digest.due_soon_days)
    sections: list[tuple[str, tuple[DigestItem, ...], list[tuple[str, str]], str | None]] = [
        (f"{_t('new', lang)} ({len(digest.new)})", digest.new, _NEW_COLS, None),
        (
            f"{_t('overdue', lang)} ({len(digest.overdue)})",
            digest.overdue,
            _OVERDUE_COLS,
            "days_overdue",
        ),
        (f"{soon} ({len(digest.due_soon)})", digest.due_soon, _SOON_COLS, None),
    ]
    body = [
        f'<h1 style="{_FONT}font-size:21px;color:#111827;margin:0 0 6px 0;">{_e(heading)}</h1>',
        f'<p style="{_P}">{_e(intro)}</p>',
    ]
    workbook_name = _t("workbook_link", lang, dept=digest.department_label)
    for title, items, cols, highlight in sections:
        body.append(f'<h2 style="{_H2}">{_e(title)}</h2>')
        body.append(_table_html(items[:max_rows], cols, lang, highlight=highlight))
        if len(items) > max_rows:
            more = _t("more", lang, count=len(items) - max_rows)
            body.append(f'<p style="{_P}color:#4b5563;">{_e(more)}</p>')
    if digest.workbook_url:
        link = f'<a href="{_e(digest.workbook_url)}" style="color:#0b57d0;">{_e(workbook_name)}</a>'
        body.append(
            f'<p style="{_P}margin-top:22px;">{_e(_t("workbook", lang, link="{link}")).replace("{link}", link)}</p>'
        )
    body.append(f'<p style="{_SMALL}">{_e(_t("footer", lang))}</p>')
    html_doc = _document(subject, lang, "".join(body))

    lines = [heading, "=" * len(heading), "", intro]
    for title, items, cols, _highlight in sections:
        lines += ["", title, "-" * len(title)]
        if not items:
            lines.append(_t("none", lang))
        lines += [_item_text(item, cols, lang) for item in items[:max_rows]]
        if len(items) > max_rows:
            lines.append(_t("more", lang, count=len(items) - max_rows))
    if digest.workbook_url:
        lines += ["", _t("workbook", lang, link=f"{workbook_name} <{digest.workbook_url}>")]
    lines += ["", "-- ", _t("footer", lang)]
    return RenderedMail(subject, html_doc, "\n".join(lines) + "\n")


def _item_text(item: DigestItem, columns: list[tuple[str, str]], lang: str) -> str:
    parts: list[str] = []
    for key, attr in columns:
        if attr == "title":
            continue
        value = _text_value(item, attr, lang)
        if value:
            parts.append(f"{_t(key, lang)}: {value}")
    line = f"* {item.title}"
    if parts:
        line += " — " + "; ".join(parts)
    if item.excerpt:
        line += f"\n  {item.excerpt}"
    if item.url:
        line += f"\n  {item.url}"
    return line


def _text_value(item: DigestItem, attr: str, lang: str) -> str:
    if attr == "county":
        return f"{item.county} ({item.county_code})" if item.county_code else item.county
    if attr == "status":
        return _status(item.status, lang)
    if attr in ("received", "due_date"):
        return _date(getattr(item, attr))
    if attr == "days_left" and item.days_left == 0:
        return _t("today", lang)
    value = getattr(item, attr)
    return "" if value is None else str(value)


def _document(title: str, lang: str, body: str) -> str:
    # A complete document with a charset meta: some clients guess the encoding otherwise.
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title></head>"
        f'<body style="margin:0;padding:16px;background:#ffffff;">'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">'
        f'<tr><td style="{_FONT}max-width:760px;">{body}</td></tr></table>'
        "</body></html>\n"
    )


# --------------------------------------------------------------------------------------------
# Failure notice

_FAILURE_TEXT: dict[str, tuple[str, str]] = {
    "subject_failed": (
        "sp-sync: nattkörningen mot {site} misslyckades",
        "sp-sync: the nightly run on {site} failed",
    ),
    "subject_partial": (
        "sp-sync: nattkörningen mot {site} blev ofullständig",
        "sp-sync: the nightly run on {site} was incomplete",
    ),
    "subject_stale": (
        "sp-sync: data från {site} har inte kontrollerats på {days} dagar",
        "sp-sync: data from {site} has not been checked for {days} days",
    ),
    "summary": ("Körningen", "The run"),
    "status": ("Status", "Status"),
    "run": ("Körning", "Run"),
    "time": ("Tid", "Time"),
    "errors": ("Fel", "Errors"),
    "lists": ("Listor", "Lists"),
    "stale": ("Inaktuella data", "Stale data"),
    "stale_line": (
        "{list}: senast kontrollerad {when} ({days} dagar sedan)",
        "{list}: last checked {when} ({days} days ago)",
    ),
    "stale_never": ("{list}: aldrig synkroniserad", "{list}: never synchronised"),
    "actions": ("Vad du kan göra", "What to do"),
    "once": (
        "Du får ett meddelande per incident; nästa kommer först när en körning har lyckats och "
        "något går fel igen.",
        "You get one notice per incident; the next one comes only after a run succeeded and "
        "something fails again.",
    ),
    "failed": ("misslyckad", "failed"),
    "partial": ("ofullständig", "partial"),
    "ok": ("lyckad", "ok"),
}


def _ft(key: str, lang: str, **values: object) -> str:
    sv, en = _FAILURE_TEXT[key]
    return (en if lang == "en" else sv).format(**values)


def failure_subject(notice: FailureNotice) -> str:
    """What happened and where, in one line."""
    lang = notice.language
    if notice.status == "failed":
        return _one_line(_ft("subject_failed", lang, site=notice.site))
    if notice.status == "partial":
        return _one_line(_ft("subject_partial", lang, site=notice.site))
    days = max((s.days for s in notice.stale if s.days is not None), default=notice.stale_days)
    return _one_line(_ft("subject_stale", lang, site=notice.site, days=days))


def _stale_line(notice: FailureNotice, lang: str, tz: ZoneInfo) -> list[str]:
    out = []
    for s in notice.stale:
        if s.last_sync is None:
            out.append(_ft("stale_never", lang, list=s.list_title))
        else:
            when = s.last_sync.astimezone(tz).strftime("%Y-%m-%d %H:%M")
            out.append(_ft("stale_line", lang, list=s.list_title, when=when, days=s.days))
    return out


def render_failure_notice(
    notice: FailureNotice, *, time_zone: ZoneInfo | None = None
) -> RenderedMail:
    """The administrators' notice as subject + HTML + text."""
    lang = notice.language
    tz = time_zone or ZoneInfo("Europe/Stockholm")
    subject = failure_subject(notice)
    facts: list[tuple[str, str]] = [(_ft("status", lang), _ft(notice.status, lang))]
    if notice.run_id:
        facts.append((_ft("run", lang), notice.run_id))
    if notice.started:
        end = notice.finished.astimezone(tz).strftime("%H:%M") if notice.finished else ""
        facts.append(
            (
                _ft("time", lang),
                notice.started.astimezone(tz).strftime("%Y-%m-%d %H:%M") + f"–{end}",
            )
        )
    sections: list[tuple[str, list[str]]] = [
        (_ft("errors", lang), list(notice.errors)),
        (_ft("lists", lang), list(notice.lists)),
        (_ft("stale", lang), _stale_line(notice, lang, tz)),
        (_ft("actions", lang), list(notice.actions)),
    ]
    rows = "".join(
        f'<tr><th align="left" style="{_HEAD}">{_e(k)}</th><td style="{_CELL}">{_e(v)}</td></tr>'
        for k, v in facts
    )
    body = [
        f'<h1 style="{_FONT}font-size:20px;color:#111827;margin:0 0 8px 0;">{_e(subject)}</h1>',
        '<table role="presentation" cellpadding="0" cellspacing="0" border="0" '
        f'style="border-collapse:collapse;">{rows}</table>',
    ]
    for title, items in sections:
        if not items:
            continue
        body.append(f'<h2 style="{_H2}">{_e(title)}</h2>')
        body.append("".join(f'<p style="{_P}">• {_e(line)}</p>' for line in items))
    body.append(f'<p style="{_SMALL}">{_e(_ft("once", lang))}</p>')
    lines = [subject, "", *[f"{k}: {v}" for k, v in facts]]
    for title, items in sections:
        if items:
            lines += ["", title + ":", *[f"- {line}" for line in items]]
    lines += ["", "-- ", _ft("once", lang)]
    return RenderedMail(subject, _document(subject, lang, "".join(body)), "\n".join(lines) + "\n")
