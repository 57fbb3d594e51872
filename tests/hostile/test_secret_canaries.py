"""End-to-end canaries: a secret that really reaches an output path is masked there.

The other canary tests check that secrets never *reach* a log; these make one reach it. A server
answer echoes the request's bearer token (as a misconfigured proxy or a debugging gateway does),
and the CLI and the demo run on. The token must then appear nowhere: not on stdout, not on
stderr, not in the log records, not in stored run summaries.

Each scenario runs twice: with redaction as shipped (the token must not show) and with every
redaction function replaced by the identity (the token MUST show). The second run proves the
first one can fail: if it ever stopped showing the token, the echo stopped reaching the output
and the canary test would be testing nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sp_emulator import SharePointEmulator, odata
from sp_emulator.http import Request, Response
from sp_emulator.server import EmulatorApp
from sp_sync import cli, redact

SITE = "canaries"


@dataclass
class Echo:
    """Wraps EmulatorApp.dispatch: list-item reads are refused with the caller's token echoed."""

    tokens: list[str] = field(default_factory=list)
    echoed: int = 0

    def wrap(self, original: Callable[..., Response]) -> Callable[..., Response]:
        def dispatch(app: EmulatorApp, request: Request, *, is_batch_sub: bool = False) -> Response:
            auth = request.header("authorization") or ""
            token = auth.partition(" ")[2]
            if token and token not in self.tokens:
                self.tokens.append(token)
            if token and request.method == "GET" and "/items" in request.path.lower():
                self.echoed += 1
                message = (
                    f"Bad request from a gateway. Request headers: Authorization: {auth}; "
                    f"token {token}"
                )
                # Shaped as SharePoint's own errors, in the format the client asked for.
                key = "error" if request.odata_format == "verbose" else "odata.error"
                payload = {
                    key: {
                        "code": "-1, Microsoft.SharePoint.Client.InvalidClientQueryException",
                        "message": {"lang": "en-US", "value": message},
                    }
                }
                return Response(
                    400,
                    {"Content-Type": odata.CONTENT_TYPES[request.odata_format]},
                    json.dumps(payload).encode(),
                )
            return original(app, request, is_batch_sub=is_batch_sub)

        return dispatch


def disable_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace `sp_sync.redact.redact` by the identity everywhere it was imported.

    Modules that did `from sp_sync.redact import redact` hold their own reference, so every loaded
    module attribute that *is* the real function is patched too; `redact_url`, `redact_headers`
    and the log filter call the module global and follow.
    """
    real = redact.redact

    def identity(text: str) -> str:
        return text

    for module in list(sys.modules.values()):
        if module is None or not getattr(module, "__name__", "").startswith("sp_sync"):
            continue
        for name, value in list(vars(module).items()):
            if value is real:
                monkeypatch.setattr(module, name, identity)


@pytest.fixture
def echo(monkeypatch: pytest.MonkeyPatch) -> Echo:
    hook = Echo()
    monkeypatch.setattr(EmulatorApp, "dispatch", hook.wrap(EmulatorApp.dispatch))
    return hook


@pytest.fixture(scope="module")
def provisioned() -> Iterator[SharePointEmulator]:
    from sp_sync.demo.runner import managed_identity_env, seed
    from sp_sync.run import pipeline
    from sp_sync.run.runtime import Runtime
    from sp_sync.settings import Settings

    with SharePointEmulator(sites=[SITE]) as emulator, tempfile.TemporaryDirectory() as tmp:
        with managed_identity_env(emulator.identity_endpoint, emulator.identity_header):
            settings = Settings.from_env(
                {
                    "SP_SYNC_SITE_URL": emulator.site_url(SITE),
                    "SP_SYNC_RESOURCE": emulator.url,
                    "SP_SYNC_STATE_DIR": tmp,
                }
            )
            pipeline.run_provision(
                Runtime(settings=settings), settings.sites[0], apply=True, allow_destructive=False
            )
        seed(
            emulator,
            site=SITE,
            base_date=dt.date(2026, 6, 1),
            knowledge_per_county=2,
            feedback_per_county=2,
            user_count=4,
        )
        yield emulator


def _outputs(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, state_dir: Path
) -> dict[str, str]:
    captured = capsys.readouterr()
    stored = {
        f"stored {p.relative_to(state_dir)}": p.read_text(encoding="utf-8", errors="replace")
        for p in state_dir.rglob("*.json")
    }
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    return {"stdout": captured.out, "stderr": captured.err, "logs": logs, **stored}


def _leaks(tokens: list[str], outputs: dict[str, str]) -> list[str]:
    return [where for where, text in outputs.items() for t in tokens if t in text]


def _run_cli(
    emu: SharePointEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> tuple[int, dict[str, str]]:
    state_dir = tmp_path / "state"
    for key, value in {
        "SP_SYNC_SITE_URL": emu.site_url(SITE),
        "SP_SYNC_AUTH": "managed_identity",
        "SP_SYNC_RESOURCE": emu.url,
        "SP_SYNC_ORGANISATION": "Test",
        "SP_SYNC_STATE": "local",
        "SP_SYNC_STATE_DIR": str(state_dir),
        "SP_SYNC_LANGUAGE": "en",
        "IDENTITY_ENDPOINT": emu.identity_endpoint,
        "IDENTITY_HEADER": emu.identity_header,
    }.items():
        monkeypatch.setenv(key, value)
    caplog.set_level(logging.DEBUG)
    code = cli.main(["-v", "run", "--full", "--no-upload", "--json"])
    return code, _outputs(capsys, caplog, state_dir)


def test_cli_masks_a_token_echoed_by_the_server(
    provisioned: SharePointEmulator,
    echo: Echo,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    code, outputs = _run_cli(provisioned, monkeypatch, tmp_path, capsys, caplog)
    assert echo.tokens and echo.echoed, "the server never saw a token: the canary is empty"
    assert code != 0, outputs["stderr"][-2000:]
    assert "Traceback" not in outputs["stderr"]
    assert _leaks(echo.tokens, outputs) == []
    # The echo did reach the log (stderr in a real CLI run), masked: this is what makes the
    # check above meaningful.
    assert "Request headers: Authorization: Bearer ***" in outputs["logs"]


def test_cli_canary_fails_without_redaction(
    provisioned: SharePointEmulator,
    echo: Echo,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    disable_redaction(monkeypatch)
    _code, outputs = _run_cli(provisioned, monkeypatch, tmp_path, capsys, caplog)
    assert echo.tokens
    assert _leaks(echo.tokens, outputs), "with redaction off the token must show somewhere"


def _run_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> tuple[int, dict[str, str]]:
    state_dir = tmp_path / "demo-state"
    caplog.set_level(logging.DEBUG)
    code = cli.main(
        ["-v", "demo", "--out", str(tmp_path / "rollups"), "--state-dir", str(state_dir)]
    )
    return code, _outputs(capsys, caplog, state_dir)


@pytest.mark.slow
def test_demo_masks_a_token_echoed_by_the_server(
    echo: Echo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    code, outputs = _run_demo(tmp_path, capsys, caplog)
    assert echo.tokens and echo.echoed
    assert code != 0
    assert "Traceback" not in outputs["stderr"]
    assert _leaks(echo.tokens, outputs) == []
    assert "Request headers: Authorization: Bearer ***" in outputs["logs"]


@pytest.mark.slow
def test_demo_canary_fails_without_redaction(
    echo: Echo,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    disable_redaction(monkeypatch)
    _code, outputs = _run_demo(tmp_path, capsys, caplog)
    assert echo.tokens
    assert _leaks(echo.tokens, outputs)


def test_disable_redaction_reaches_every_imported_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    import sp_sync.auth
    import sp_sync.sharepoint.client

    redact.register_secret("identity-helper-secret")
    disable_redaction(monkeypatch)
    assert sp_sync.auth.redact("identity-helper-secret") == "identity-helper-secret"
    assert sp_sync.sharepoint.client.redact("x?sig=abcdef") == "x?sig=abcdef"
    assert redact.redact_url("https://h/x?sig=abcdef") == "https://h/x?sig=abcdef"
