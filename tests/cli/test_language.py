"""One language on the command line (issue 13 item 4) and lines that fit a terminal (item 6):
errors from the token provider and the SharePoint client, and the retry warnings before them,
are entirely in SP_SYNC_LANGUAGE, with the documented exit code and no traceback; every line of
`run`'s summary and progress fits 100 columns, even with a long site URL and folder."""

from __future__ import annotations

import io
import logging
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sp_emulator import SharePointEmulator
from sp_sync.errors import ExitCode
from sp_sync.i18n import label
from sp_sync.run.progress import TerminalProgress
from sp_sync.run.summary import WIDTH, ListSyncResult, RunSummary, UploadedWorkbook
from tests.cli.conftest import Cli, base_env, seed_site
from tests.cli.helpers import english_in, swedish_in
from tests.helpers import forkserver

LONG_SITE = "strategiskt-regionarbete-for-hallbar-regional-utveckling-och-samverkan-i-hela-landet"
LONG_FOLDER = "Sammanställningar/Regional utveckling och samverkan/Underlag inför dialogerna 2026"


def _in_language(text: str, language: str, *, data: str = "") -> None:
    """`text` (a program's output) holds no word of the other language, apart from the words
    of `data` (names people gave, such as a folder, shown as they are)."""
    names = set(data.lower().split())
    if language == "sv":
        assert not english_in(text) - names, (english_in(text), text)
    else:
        assert not swedish_in(text) - names, (swedish_in(text), text)


def _wide(text: str) -> list[str]:
    return [line for line in text.splitlines() if len(line) > WIDTH]


# ---------------------------------------------------------------------------------- item 4


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("sv", "Kunde inte hämta en token för den hanterade identiteten (systemtilldelad) mot "),
        ("en", "Could not get a token for the managed identity (system-assigned identity) for "),
    ],
)
def test_a_refused_token_is_reported_in_the_language_with_exit_3(
    cli_factory: Any, language: str, expected: str
) -> None:
    cli: Cli = cli_factory("main")
    done = cli.run("run", env=cli.env(IDENTITY_HEADER="wrong", SP_SYNC_LANGUAGE=language))
    assert done.returncode == ExitCode.PERMISSION, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("sp-sync: " + expected), done.stderr
    # The identity provider's own words are quoted as it sent them (in Swedish within ”…”).
    said = "The X-IDENTITY-HEADER value is not valid."
    assert (f"{said}”" if language == "sv" else said) in done.stderr
    _in_language(done.stderr, language)
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("sv", "Identitetstjänsten för den hanterade identiteten"),
        ("en", "The identity endpoint for the managed identity"),
    ],
)
def test_an_unreachable_identity_endpoint_is_reported_in_the_language_with_exit_6(
    cli_factory: Any, language: str, expected: str
) -> None:
    """`--timeout 2`: the token call's retries end at the check's own limit instead of after
    the whole schedule (the same error, about 30 s sooner)."""
    cli: Cli = cli_factory("main")
    env = cli.env(IDENTITY_ENDPOINT="http://127.0.0.1:9/token", SP_SYNC_LANGUAGE=language)
    done = cli.run("check", "--timeout", "2", env=env)
    assert done.returncode == ExitCode.RETRY_LATER, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert expected in done.stderr
    _in_language(done.stderr, language)


def _check_in_both_languages(cli: Cli, site: str, *options: str) -> dict[str, tuple[int, str, str]]:
    """`sp-sync check` against `site` in Swedish and English at once (their waits overlap):
    language → (exit code, stdout, stderr)."""
    procs = {
        language: forkserver.popen(
            ["-m", "sp_sync", "check", *options],
            cwd=cli.state_dir.parent,
            env=cli.env(SP_SYNC_SITE_URL=site, SP_SYNC_LANGUAGE=language),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
        )
        for language in ("sv", "en")
    }
    try:
        outputs = {language: p.communicate(timeout=300) for language, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    return {language: (procs[language].returncode, *outputs[language]) for language in procs}


def test_an_unreachable_sharepoint_host_is_reported_in_the_language_with_exit_6(
    cli_factory: Any,
) -> None:
    """The site's host refuses connections: the retry warnings and the final error are in the
    chosen language. Both languages run at once, each with `check --timeout 5` (the whole
    schedule of 8 attempts takes about 45 s; its ending is asserted in the next test)."""
    cli: Cli = cli_factory("main")
    site = "http://127.0.0.1:9/sites/x"  # the discard port: nothing listens on loopback
    outputs = _check_in_both_languages(cli, site, "--timeout", "5")
    expected = {
        "sv": (
            "VARNING sp_sync.sharepoint.retry: Läsning av webbplatsen: anslutningen misslyckades "
            "(försök 1); försöker igen om ",
            f"sp-sync: SharePoint-webbplatsen {site} går inte att nå: ”",
            "(gav upp efter ",
            " försök och ",
        ),
        "en": (
            "WARNING sp_sync.sharepoint.retry: Reading the site: connection failed (attempt 1); "
            "retrying in ",
            f"sp-sync: SharePoint site {site} is unreachable: ",
            "(gave up after ",
            " attempts and ",
        ),
    }
    for language, (code, stdout, stderr) in outputs.items():
        assert code == ExitCode.RETRY_LATER, (language, stderr)
        assert "Traceback" not in stderr and stdout == ""
        for part in expected[language]:
            assert part in stderr, (language, part, stderr)
        _in_language(stderr, language)


def test_check_timeout_ends_a_hung_site_at_its_limit(cli_factory: Any) -> None:
    """A host that accepts the connection and never answers: without a limit each of the 8
    attempts may wait 300 s for an answer. `check --timeout 2` cuts the first request to the
    least request timeout (5 s) and retries no further, naming its limit as the reason."""
    cli: Cli = cli_factory("main")
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)  # the kernel completes the handshake; nothing ever reads or answers
        site = f"http://127.0.0.1:{hung.getsockname()[1]}/sites/x"
        started = time.monotonic()
        outputs = _check_in_both_languages(cli, site, "--timeout", "2")
        elapsed = time.monotonic() - started
    reasons = {
        "sv": " till skulle passera körningens tidsgräns)",
        "en": " more would pass the run's deadline)",
    }
    for language, (code, stdout, stderr) in outputs.items():
        assert code == ExitCode.RETRY_LATER, (language, stdout, stderr)
        assert "Traceback" not in stderr and stdout == ""
        assert reasons[language] in stderr, stderr
        _in_language(stderr, language)
    # 2 s, then the one request's 5 s floor, plus the interpreters' start (slack for load);
    # without the limit one attempt alone waits 300 s.
    assert elapsed < 60, elapsed


def test_check_timeout_must_be_a_positive_number_of_seconds(cli_factory: Any) -> None:
    cli: Cli = cli_factory("main")
    for language, said in (
        ("sv", "'0' är inte ett positivt antal sekunder"),
        ("en", "'0' is not a positive number of seconds"),
    ):
        done = cli.run("check", "--timeout", "0", env=cli.env(SP_SYNC_LANGUAGE=language))
        assert done.returncode == 2, done.stderr
        assert said in done.stderr and "--timeout" in done.stderr


def test_the_whole_retry_schedule_ends_with_its_attempt_limit_in_both_languages() -> None:
    """Without a limit the site check retries 8 times; the error then names that limit in
    either language. The same client and policy as `check`, with the waits skipped."""
    from sp_sync.auth import StaticTokenProvider
    from sp_sync.errors import TransientError
    from sp_sync.sharepoint import RetryPolicy, SharePointClient

    waits: list[float] = []
    site = "http://127.0.0.1:9/sites/x"
    client = SharePointClient(
        site, StaticTokenProvider("t"), organisation="T", retry=RetryPolicy(sleep=waits.append)
    )
    try:
        with pytest.raises(TransientError) as info:
            client.get_web()
    finally:
        client.close()
    assert len(waits) == 7  # 8 attempts, a wait between each two
    assert info.value.render("sv").startswith(f"SharePoint-webbplatsen {site} går inte att nå: ”")
    assert "(gav upp efter 8 försök och " in info.value.render("sv")
    assert "gränsen för antal försök nåddes)" in info.value.render("sv")
    assert info.value.render("en").startswith(f"SharePoint site {site} is unreachable: ")
    assert "(gave up after 8 attempts and " in info.value.render("en")
    assert "the retry limit was reached)" in info.value.render("en")
    _in_language(info.value.render("sv"), "sv")
    _in_language(info.value.render("en"), "en")


# ---------------------------------------------------------------------------------- 100 columns


def _summary(site: str, folder: str) -> RunSummary:
    start = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    many = tuple(
        UploadedWorkbook(f"Länsbild – {i}.xlsx", f"{folder}/Länsbild – {i}.xlsx", 40_000)
        for i in range(27)
    )
    few = tuple(
        UploadedWorkbook(f"Återkoppling – {n}.xlsx", f"{folder}/Återkoppling – {n}.xlsx", 9, s)
        for n, s in (("Företag", "uploaded"), ("Analys", "unchanged"))
    )
    result = ListSyncResult(
        "Dialogåterkoppling",
        "reread",
        added=12_345,
        updated=2_345,
        deleted=345,
        unchanged=123_456,
        rows=1_234_567,
        requests=1_234,
        retries=12,
        wait_seconds=123.4,
        bytes_received=123_456_789,
        duration_seconds=3_725,
        quality_issues=1_234,
        drift=("kolumnen 'Mottagande avdelning' (MottagandeAvdelning) saknas på webbplatsen",) * 3,
        item_count_mismatch=(1_234_600, 1_234_567),
        continues_next_run=True,
        notes=(f"the change token expired; the list was read again from {site}/Lists/X",),
        notes_sv=(f"ändringstoken hade gått ut; listan lästes om från {site}/Lists/X",),
    )
    message = f"The list 'Dialoger' does not exist on site {site} (run `sp-sync provision`)"
    return RunSummary(
        run_id="20261130T020000Z-0123abcd",
        site=site,
        started=start,
        finished=start + timedelta(seconds=4_000),
        lists=(result,),
        workbooks=many + few,
        errors=({"list": "Dialoger", "error": "NotFoundError", "message": message},),
        status="partial",
        continues=True,
    )


@pytest.mark.parametrize("language", ["sv", "en"])
def test_every_summary_line_fits_100_columns_with_a_long_site_and_folder(language: str) -> None:
    site = f"https://contoso.sharepoint.com/sites/{LONG_SITE}"
    folder = f"/sites/{LONG_SITE}/Delade dokument/{LONG_FOLDER}"
    text = _summary(site, folder).format_text(language)
    assert _wide(text) == [], text
    # Nothing lost but the middle of what was too long for any line: the folder's end is shown.
    assert "Underlag inför dialogerna 2026" in text
    assert "/Återkoppling – Analys.xlsx" in text  # the unchanged one, its name kept
    heads = {
        "sv": "28 arbetsböcker uppladdade (1,0 MB) till",
        "en": "28 workbooks uploaded (1.0 MB) to",
    }
    assert heads[language] in text.splitlines()
    # A short folder keeps the one-line form.
    short = _summary("http://x/sites/x", "/sites/x/Delade dokument/Rapporter").format_text(language)
    assert _wide(short) == []
    assert (
        "28 arbetsböcker uppladdade till /sites/x/Delade dokument/Rapporter (1,0 MB)"
        if language == "sv"
        else "28 workbooks uploaded to /sites/x/Delade dokument/Rapporter (1.0 MB)"
    ) in short


@pytest.mark.parametrize("language", ["sv", "en"])
def test_the_upload_progress_line_fits_100_columns(language: str) -> None:
    stream = io.StringIO()
    progress = TerminalProgress(stream, live=False, language=language)
    folder = f"/sites/{LONG_SITE}/Delade dokument/{LONG_FOLDER}"
    progress.start(label("progress_upload", language), unit="byte")
    progress.finish(label("progress_uploaded", language, count=27, folder=folder))
    lines = stream.getvalue().splitlines()
    assert _wide(stream.getvalue()) == [], lines
    assert lines[-2] == (
        "27 arbetsböcker uppladdade till" if language == "sv" else "27 workbooks uploaded to"
    )
    assert lines[-1].startswith("  /sites/") and lines[-1].endswith(" s)")


@pytest.fixture(scope="module")
def long_site() -> Iterator[Any]:
    """An emulator whose one site has a long name, provisioned and seeded."""
    from sp_sync.demo.runner import managed_identity_env
    from sp_sync.run import pipeline
    from sp_sync.run.runtime import Runtime
    from sp_sync.settings import Settings

    with SharePointEmulator(sites=[LONG_SITE]) as emulator, tempfile.TemporaryDirectory() as tmp:
        with managed_identity_env(emulator.identity_endpoint, emulator.identity_header):
            settings = Settings.from_env(
                {
                    "SP_SYNC_SITE_URL": emulator.site_url(LONG_SITE),
                    "SP_SYNC_RESOURCE": emulator.url,
                    "SP_SYNC_STATE_DIR": tmp,
                }
            )
            pipeline.run_provision(
                Runtime(settings=settings), settings.sites[0], apply=True, allow_destructive=False
            )
        seed_site(emulator, LONG_SITE)
        yield emulator


def test_run_prints_lines_of_at_most_100_columns_in_both_languages(
    long_site: Any, tmp_path: Any
) -> None:
    """`run` with a long site URL and a long rollup folder: the summary on stdout and the
    progress on stderr, in Swedish (uploads) and in English (the same content: unchanged)."""
    cli = Cli(long_site, LONG_SITE, tmp_path / "state")
    base = base_env()
    for language in ("sv", "en"):
        env = cli.env(SP_SYNC_ROLLUP_FOLDER=LONG_FOLDER, SP_SYNC_LANGUAGE=language)
        env["PYTHONPATH"] = base["PYTHONPATH"]
        done = cli.run("run", "--full", env=env)
        assert done.returncode == 0, (language, done.stdout[-2000:], done.stderr[-2000:])
        printed = done.stdout + done.stderr
        assert _wide(printed) == [], printed
        assert LONG_SITE[:30] in done.stdout and "Underlag inför dialogerna 2026" in printed
        _in_language(done.stdout, language, data=LONG_FOLDER)


# ---------------------------------------------------------------------------------- log lines


def _retry_record() -> logging.LogRecord:
    """The retry policy's warning for one dropped connection, as its logger makes it."""
    import requests

    from sp_sync.sharepoint.lists import _OP_READ_SITE
    from sp_sync.sharepoint.retry import RetryPolicy

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("sp_sync.sharepoint.retry")
    keep = Keep(level=logging.WARNING)
    logger.addHandler(keep)
    calls = iter([requests.ConnectionError("refused"), None])

    def operation() -> str:
        failure = next(calls)
        if failure is not None:
            raise failure
        return "ok"

    try:
        policy = RetryPolicy(sleep=lambda _s: None, rng=lambda: 0.5)
        assert policy.run(operation, description=_OP_READ_SITE) == "ok"
    finally:
        logger.removeHandler(keep)
    assert len(records) == 1
    return records[0]


def test_a_retry_warning_is_english_in_the_log_and_in_the_language_on_the_command_line() -> None:
    from sp_sync.cli import LanguageFormatter

    record = _retry_record()
    # The Functions app's log: the record as written, English.
    assert record.getMessage() == (
        "reading the site: connection failed (attempt 1); retrying in 0.25 s"
    )
    assert LanguageFormatter("sv").format(record) == (
        "VARNING sp_sync.sharepoint.retry: Läsning av webbplatsen: anslutningen misslyckades "
        "(försök 1); försöker igen om 0,2 s"
    )
    # On the command line both languages write durations the same way (`format_seconds`).
    assert LanguageFormatter("en").format(record) == (
        "WARNING sp_sync.sharepoint.retry: Reading the site: connection failed (attempt 1); "
        "retrying in 0.2 s"
    )
    # The formatter leaves the record itself alone for any other handler.
    assert record.levelname == "WARNING" and record.getMessage().startswith("reading the site")
