"""Masks secrets and tokens in text, URLs and headers before they reach a log or a message.

`redact(text)` masks, in any string:
- query values of secret-looking URL parameters (sig, code, token, access_token, client_secret,
  client_assertion, assertion, password, …) — dlt-style: the URL stays readable;
- `Authorization: <scheme> <credentials>` and `Bearer <token>`;
- JWT-looking strings (three base64url segments starting with `eyJ`);
- AccountKey= / SharedAccessSignature= / SharedAccessKey= in connection strings;
- every value registered with `register_secret()` (a canary, a certificate password, …).

`RedactingFilter` applies it to every log record (message and args); `install()` puts it on the
`sp_sync` logger and its handlers so nothing under sp_sync can log a secret by accident.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

MASK = "***"

_SECRET_PARAMS = (
    "sig",
    "signature",
    "code",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "client_assertion",
    "assertion",
    "password",
    "pwd",
    "secret",
    "key",
    "api_key",
    "apikey",
    "sv_sig",
    "x-identity-header",
)
_SECRET_HEADERS = frozenset(
    {
        "authorization",
        "x-identity-header",
        "x-requestdigest",
        "cookie",
        "set-cookie",
        "proxy-authorization",
    }
)

_QUERY_RE = re.compile(
    r"(?P<prefix>[?&;]|^|\s)(?P<name>"
    + "|".join(re.escape(p) for p in _SECRET_PARAMS)
    + r")=(?P<value>[^&\s#\"']+)",
    re.IGNORECASE,
)
_AUTH_HEADER_RE = re.compile(
    r"(?P<name>(?:proxy-)?authorization|x-identity-header)(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?:(?P<scheme>bearer|basic|negotiate|ntlm)\s+)?(?P<value>[^\s\"',}]+)",
    re.IGNORECASE,
)
# A bare bearer token anywhere in text ("Bearer abc", "Bearer: abc", URL-encoded "Bearer%20abc"):
# error bodies and library messages quote tokens without the Authorization header around them.
_BEARER_RE = re.compile(
    r"\b(?P<scheme>Bearer)(?P<sep>\s*[:=]\s*|\s+|%20|\+)(?P<value>[A-Za-z0-9\-._~+/]+=*)",
    re.IGNORECASE,
)
# JSON or Python-dict style `"access_token": "value"` (token responses, serialised settings).
_JSON_SECRET_RE = re.compile(
    r"(?P<key>[\"'](?:access_token|refresh_token|id_token|client_secret|client_assertion|"
    r"password|secret|sig|signature|api_key|apikey|assertion)[\"']\s*:\s*)"
    r"(?P<quote>[\"'])(?P<value>[^\"']+)(?P=quote)",
    re.IGNORECASE,
)
_JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_CONN_RE = re.compile(
    r"(?P<name>AccountKey|SharedAccessSignature|SharedAccessKey|ClientSecret|Password)=(?P<value>[^;\s\"']+)",
    re.IGNORECASE,
)
_PEM_RE = re.compile(
    r"-----BEGIN (?P<kind>[A-Z ]*PRIVATE KEY)-----.*?-----END (?P=kind)-----", re.DOTALL
)

#: user:password@ in any URL (a password in SP_SYNC_SITE_URL must not reach a status line).
_USERINFO_RE = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s:\"']+:[^/@\s\"']+@", re.I)

_registered: set[str] = set()
_lock = threading.Lock()

#: Registered values shorter than this are ignored: masking "a" would wreck every message.
MIN_SECRET_LENGTH = 6


def register_secret(value: str | None) -> None:
    """Mask this exact value wherever it appears from now on (process-wide)."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _registered.add(value)


def unregister_secret(value: str) -> None:
    with _lock:
        _registered.discard(value)


def redact(text: str) -> str:
    """Return `text` with every recognised secret replaced by `***`."""
    if not text:
        return text
    text = _mask_registered(text)
    text = _PEM_RE.sub(
        lambda m: f"-----BEGIN {m['kind']}-----{MASK}-----END {m['kind']}-----", text
    )
    text = _AUTH_HEADER_RE.sub(
        lambda m: f"{m['name']}{m['sep']}{m['scheme'] + ' ' if m['scheme'] else ''}{MASK}", text
    )
    text = _BEARER_RE.sub(lambda m: f"{m['scheme']}{m['sep']}{MASK}", text)
    text = _JWT_RE.sub(MASK, text)
    text = _CONN_RE.sub(lambda m: f"{m['name']}={MASK}", text)
    text = _JSON_SECRET_RE.sub(lambda m: f"{m['key']}{m['quote']}{MASK}{m['quote']}", text)
    text = _QUERY_RE.sub(lambda m: f"{m['prefix']}{m['name']}={MASK}", text)
    text = _USERINFO_RE.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return text


def _mask_registered(text: str) -> str:
    """Mask every occurrence of every registered secret, found in the *original* text.

    Replacing one secret after the other would let overlapping secrets ("abcdef123" and
    "123xyz789" in "abcdef123xyz789") leave a visible tail once the first replacement destroyed
    the second's match; so all spans are found first, merged, then masked once each.
    """
    with _lock:
        secrets = list(_registered)
    spans: list[tuple[int, int]] = []
    for secret in secrets:
        start = text.find(secret)
        while start != -1:
            spans.append((start, start + len(secret)))
            start = text.find(secret, start + 1)
    if not spans:
        return text
    spans.sort()
    merged = [spans[0]]
    for start, end in spans[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    parts: list[str] = []
    position = 0
    for start, end in merged:
        parts.append(text[position:start])
        parts.append(MASK)
        position = end
    parts.append(text[position:])
    return "".join(parts)


def redact_deep(value: Any) -> Any:
    """`redact` applied to every string in a JSON-like value (status answers, summaries)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_deep(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_deep(v) for v in value]
    return value


def redact_url(url: str) -> str:
    """Mask secret query values (and any user:password) in a URL."""
    url = re.sub(
        r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s:]+:[^/@\s]+@", r"\g<scheme>***@", url, flags=re.I
    )
    return redact(url)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of `headers` with credential headers masked and the rest redacted."""
    return {
        k: (MASK if k.lower() in _SECRET_HEADERS else redact(str(v))) for k, v in headers.items()
    }


def _redact_arg(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    # Anything else is formatted by %-style logging via str(); redact that text.
    return redact(str(value))


class RedactingFilter(logging.Filter):
    """Applies `redact` to every record's message, args and exception text.

    The message is formatted with its arguments *before* redaction, whatever their types: an
    exception, a dict or bytes formatted with `%r` shows its own repr, which redacting each
    argument's `str()` would not cover, and a secret split between the format string and an
    argument would slip through. The record then carries the finished text and no arguments.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            try:
                message = record.getMessage()
            except Exception:
                # A broken format string: keep logging's own error path, with every argument
                # masked one by one.
                message = None
            if message is not None:
                record.msg = redact(message)
                record.args = ()
            else:
                if isinstance(record.msg, str):
                    record.msg = redact(record.msg)
                if isinstance(record.args, Mapping):
                    record.args = {k: _redact_arg(v) for k, v in record.args.items()}
                else:
                    record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        elif record.msg is not None:
            record.msg = redact(str(record.msg))
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            # Format the traceback now so the redacted text is what handlers print.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = RedactingFilter()
_factory_installed = False


def install(logger_name: str = "sp_sync") -> RedactingFilter:
    """Install redaction for every log record (idempotent) and return the filter.

    A logger-level filter only runs for records created by that very logger, not for child
    loggers (`sp_sync.sync.engine`) nor for libraries (msal, urllib3) that may log URLs. So the filter
    is put on `logger_name` *and* wrapped into the log-record factory, which redacts every record
    at creation, before any handler (pytest's caplog included) sees it.
    """
    global _factory_installed
    logger = logging.getLogger(logger_name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    with _lock:
        if not _factory_installed:
            previous = logging.getLogRecordFactory()

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                _FILTER.filter(record)
                return record

            logging.setLogRecordFactory(factory)
            _factory_installed = True
    return _FILTER
