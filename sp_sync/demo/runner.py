"""`sp-sync demo` / `make demo`: the whole product on a laptop, without a tenant.

Starts the SharePoint emulator in-process on a free port, provisions the three lists from
list_schemas/, seeds deterministic demo data for all 21 counties, runs the full pipeline through
the managed-identity path (the emulator's identity endpoint, as in Azure), uploads the workbooks
to the emulator and saves copies under ./rollups/, then edits, deletes and adds items and runs
again to show an incremental run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sp_sync.errors import ExitCode
from sp_sync.i18n import Text, format_number, format_seconds
from sp_sync.run.progress import Progress
from sp_sync.run.summary import fit_line, fit_text

if TYPE_CHECKING:
    from sp_sync.schema.model import SchemaSet

DEMO_SITE = "strategiskt-regionarbete"
_IDENTITY_VARS = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IMDS_ENDPOINT",
)


@contextmanager
def managed_identity_env(endpoint: str, header: str) -> Iterator[None]:
    """Point msal's managed-identity detection at the emulator (App Service protocol)."""
    saved = {k: os.environ.get(k) for k in _IDENTITY_VARS}
    for k in _IDENTITY_VARS:
        os.environ.pop(k, None)
    os.environ["IDENTITY_ENDPOINT"] = endpoint
    os.environ["IDENTITY_HEADER"] = header
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def demo_env(emulator: Any, state_dir: Path, *, language: str = "sv") -> dict[str, str]:
    """The app settings a Functions deployment would have, pointing at the emulator."""
    return {
        "SP_SYNC_SITE_URL": emulator.site_url(DEMO_SITE),
        "SP_SYNC_AUTH": "managed_identity",
        "SP_SYNC_RESOURCE": emulator.url,
        "SP_SYNC_ORGANISATION": "Demo",
        "SP_SYNC_STATE": "local",
        "SP_SYNC_STATE_DIR": str(state_dir),
        "SP_SYNC_LANGUAGE": language,
    }


def seed(
    emulator: Any,
    *,
    base_date: dt.date,
    schemas: SchemaSet | None = None,
    site: str = DEMO_SITE,
    knowledge_per_county: int = 60,
    feedback_per_county: int = 40,
    user_count: int = 8,
) -> dict[str, int]:
    """Fill the provisioned lists of `site` with demo rows; returns rows per list.

    `schemas`: the run's schemas (the demo passes its runtime's); default: the shipped ones."""
    from sp_sync.demo.data import generate_demo_data
    from sp_sync.schema import load_schemas

    schemas = schemas or load_schemas()
    backend = emulator.backend
    user_ids = _people(backend.get_site(site).users)[:user_count]
    data = generate_demo_data(
        schemas.reference,
        user_ids=user_ids,
        base_date=base_date,
        knowledge_per_county=knowledge_per_county,
        feedback_per_county=feedback_per_county,
    )
    counts = {}
    for title, rows in (
        ("Dialoger", data.dialogues),
        ("Länskunskap", data.knowledge),
        ("Dialogåterkoppling", data.feedback),
    ):
        backend.bulk_add_items(site, title, rows)
        counts[title] = len(rows)
    return counts


def _people(users: Any) -> list[int]:
    """Site users who are people: the demo never names the app principal as responsible."""
    from sp_sync.demo.data import person_ids

    return person_ids(users)


def make_changes(emulator: Any, *, seed_value: int = 7) -> dict[str, int]:
    """Edits, deletions and new feedback between the two runs, as staff would make them."""
    rng = random.Random(seed_value)
    backend = emulator.backend
    site = backend.get_site(DEMO_SITE)
    feedback = backend.get_list(site, title="Dialogåterkoppling")
    knowledge = backend.get_list(site, title="Länskunskap")
    fb_ids = sorted(feedback.items)
    kn_ids = sorted(knowledge.items)
    edited = 0
    for item_id in rng.sample(fb_ids, 25):
        item = backend.get_item(feedback, item_id)
        backend.update_item(site, feedback, item, {"Status": "Klar"}, if_match=None)
        edited += 1
    deleted = 0
    for item_id in rng.sample(kn_ids, 10):
        backend.delete_item(site, knowledge, backend.get_item(knowledge, item_id))
        deleted += 1
    added = 0
    for i in range(12):
        backend.add_item(
            site,
            feedback,
            {
                "Title": f"Ny återkoppling från dialog {i + 1}",
                "County": "Gotlands län",
                "DialogueDate": dt.date.today().isoformat(),
                "ReceivingDepartment": rng.choice(["Företag", "Regioner", "Analys"]),
                "Status": "Ny",
                "DueDate": (dt.date.today() + dt.timedelta(days=30)).isoformat(),
            },
        )
        added += 1
    return {"edited": edited, "deleted": deleted, "added": added}


#: Where the demo keeps its state unless told otherwise (relative to the working directory), so
#: that `sp-sync status` and friends can look at it after the demo, and the README can say where.
DEFAULT_DEMO_DIR = Path(".sp-sync") / "demo"
#: A file the demo leaves in its state directory: only a directory holding it is ever cleared.
_MARKER = ".sp-sync-demo"

_T = {
    "emulator": Text(
        sv="SharePoint-emulatorn kör på {url} (webbplats {site})",
        en="The SharePoint emulator runs at {url} (site {site})",
    ),
    "provisioning": Text(sv="\n== Provisionering ==", en="\n== Provisioning =="),
    "data": Text(sv="Demodata: {counts}", en="Demo data: {counts}"),
    "run1": Text(
        sv="\n== Körning 1: full synkronisering ==", en="\n== Run 1: full synchronisation =="
    ),
    "changes": Text(
        sv="\nÄndringar i listorna: {edited} redigerade, {deleted} borttagna, {added} nya",
        en="\nChanges in the lists: {edited} edited, {deleted} deleted, {added} added",
    ),
    "run2": Text(
        sv="\n== Körning 2: inkrementell synkronisering ==",
        en="\n== Run 2: incremental synchronisation ==",
    ),
    "digest": Text(
        sv="\n== Veckosammanfattning per avdelning (e-post via emulatorns Microsoft Graph) ==",
        en="\n== Weekly digest per department (mail through the emulator's Microsoft Graph) ==",
    ),
    "done": Text(
        sv="\nKlart på {seconds}. Arbetsböckerna finns lokalt i {out}/",
        en="\nDone in {seconds}. The workbooks are saved locally in {out}/",
    ),
    "state": Text(
        sv="Tillståndet (ögonblicksbilder, kontrollpunkter) finns i {state}/",
        en="The state (snapshots, checkpoints) is in {state}/",
    ),
    "uploaded": Text(
        sv="De är också uppladdade till emulatorns dokumentbibliotek, t.ex.:",
        en="They are also uploaded to the emulator's document library, e.g.:",
    ),
    "curl": Text(sv="Hämta utan webbläsare:", en="Download without a browser:"),
    "settings": Text(
        sv="\nKör andra kommandon mot demon: klistra in i ett annat skal, sedan t.ex. "
        "`sp-sync status` eller `sp-sync run`:",
        en="\nRun other commands against the demo: paste this into another shell, then e.g. "
        "`sp-sync status` or `sp-sync run`:",
    ),
    "closes": Text(
        sv="(Emulatorn stängs när demon är klar; `sp-sync demo --keep-running` låter den vara "
        "kvar och skriver ut inställningarna för andra kommandon.)",
        en="(The emulator stops when the demo ends; `sp-sync demo --keep-running` keeps it "
        "running and prints the settings for other commands.)",
    ),
    "running": Text(
        sv="\nEmulatorn fortsätter köra; avsluta med Ctrl+C.",
        en="\nThe emulator keeps running; stop it with Ctrl+C.",
    ),
    "rows": Text(sv="{title} {rows} rader", en="{title} {rows} rows"),
    "not_demo_dir": Text(
        sv="{path} finns och är inte en demokatalog; ange en tom eller ny katalog med --state-dir",
        en="{path} exists and is not a demo directory; pass an empty or new one with --state-dir",
    ),
}


def _prepare_state_dir(state_dir: Path) -> None:
    """Start every demo from an empty state (its first run is a full read), clearing only a
    directory the demo made itself."""
    import shutil

    from sp_sync.errors import ConfigurationError

    if state_dir.exists() and any(state_dir.iterdir()):
        if not (state_dir / _MARKER).is_file():
            text = Text(
                sv=_T["not_demo_dir"].render("sv", path=state_dir),
                en=_T["not_demo_dir"].render("en", path=state_dir),
            )
            raise ConfigurationError(text.en, text=text)
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / _MARKER).write_text("sp-sync demo state; cleared by the next `sp-sync demo`\n")


def settings_to_paste(emulator: Any, state_dir: Path, language: str) -> list[str]:
    """The exact lines that point every other `sp-sync` command at a running demo emulator."""
    env = demo_env(emulator, state_dir.resolve(), language=language)
    env["IDENTITY_ENDPOINT"] = emulator.identity_endpoint
    env["IDENTITY_HEADER"] = emulator.identity_header
    keys = (
        "SP_SYNC_SITE_URL",
        "SP_SYNC_RESOURCE",
        "SP_SYNC_STATE_DIR",
        "SP_SYNC_LANGUAGE",
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
    )
    return [f"export {key}={shlex.quote(env[key])}" for key in keys]


def provision_and_seed(emulator: Any, state_dir: Path, *, language: str = "sv") -> dict[str, int]:
    """Provision the demo site's lists and fill them with demo data (what `make emulator` and
    the demo do before any run); returns rows per list."""
    from sp_sync.run import pipeline
    from sp_sync.run.runtime import Runtime
    from sp_sync.settings import Settings

    with managed_identity_env(emulator.identity_endpoint, emulator.identity_header):
        settings = Settings.from_env(demo_env(emulator, state_dir, language=language))
        runtime = Runtime(settings=settings)
        pipeline.run_provision(runtime, settings.sites[0], apply=True, allow_destructive=False)
        return seed(emulator, schemas=runtime.schemas, base_date=dt.date.today())


def run_demo(
    *,
    out_dir: Path = Path("rollups"),
    state_dir: Path | None = None,
    keep_running: bool = False,
    as_json: bool = False,
    progress: Progress | None = None,
    language: str = "sv",
) -> int:
    """Run the demo; returns the process exit code (`ExitCode.PARTIAL` when a run failed)."""
    from sp_emulator import SharePointEmulator
    from sp_sync.run import pipeline
    from sp_sync.run.runtime import Runtime
    from sp_sync.settings import Settings

    progress = progress or Progress()
    lang = language

    def say(key: str, **fmt: Any) -> None:
        if not as_json:
            _show(_T[key].render(lang, **fmt))

    started = time.monotonic()
    state_dir = state_dir or DEFAULT_DEMO_DIR / "state"
    _prepare_state_dir(state_dir)
    summaries: list[dict[str, Any]] = []
    with (
        SharePointEmulator(sites=[DEMO_SITE]) as emu,
        managed_identity_env(emu.identity_endpoint, emu.identity_header),
    ):
        say("emulator", url=emu.url, site=emu.site_url(DEMO_SITE))
        settings = Settings.from_env(demo_env(emu, state_dir, language=language))
        runtime = Runtime(settings=settings)
        site = settings.sites[0]

        plan, _applied = pipeline.run_provision(runtime, site, apply=True, allow_destructive=False)
        if not as_json:
            say("provisioning")
            _show(plan.format_text(lang, verbose=False, schemas=runtime.schemas))
        counts = seed(emu, schemas=runtime.schemas, base_date=dt.date.today())
        say(
            "data",
            counts=", ".join(
                _T["rows"].render(lang, title=k, rows=format_number(v, lang))
                for k, v in counts.items()
            ),
        )

        say("run1")
        first = pipeline.run_pipeline(runtime, site, out_dir=out_dir, progress=progress)
        summaries.append(first.to_dict())
        if not as_json:
            _show(first.format_text(lang))

        changes = make_changes(emu)
        say("changes", **changes)
        say("run2")
        second = pipeline.run_pipeline(runtime, site, out_dir=out_dir, progress=progress)
        summaries.append(second.to_dict())
        if not as_json:
            _show(second.format_text(lang))

        say("digest")
        mail = _demo_digests(emu, runtime, site, out_dir, lang)
        if not as_json:
            _show(mail.format_text(lang))

        if as_json:
            print(json.dumps(summaries, ensure_ascii=False, indent=2, default=str), flush=True)
        else:
            _print_where(
                emu,
                second,
                out_dir,
                state_dir,
                time.monotonic() - started,
                keep_running=keep_running,
                language=lang,
            )
        if keep_running:
            say("running")
            wait_for_stop()
        failed = [s for s in (first, second) if s.status != "ok"]
        return ExitCode.PARTIAL if failed else ExitCode.OK


def wait_for_stop(poll: float = 0.5) -> None:
    """Block until Ctrl+C (SIGINT) or SIGTERM, for `--keep-running`.

    The process may have inherited SIGINT as ignored or blocked (a launcher, a CI runner, a
    test worker: in the full suite the keep-running test's SIGINT went unanswered for 90 s,
    twice), and Python then never raises KeyboardInterrupt. So the handlers are installed and
    the signals unblocked here explicitly, and the wait wakes every `poll` seconds: a signal
    the kernel delivers to another thread (the emulator's, Arrow's) is handled by the main
    thread only when it wakes. Runs on the main thread (the CLI's), where handlers can be set."""
    import signal
    import threading

    stop = threading.Event()
    wanted = (signal.SIGINT, signal.SIGTERM)

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in wanted}
    signal.pthread_sigmask(signal.SIG_UNBLOCK, wanted)
    try:
        while not stop.wait(poll):
            pass
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: a handler set outside Python, not restorable
                signal.signal(sig, handler)


def _demo_digests(emu: Any, runtime: Any, site: Any, out_dir: Path, language: str) -> Any:
    """This week's digests through the emulator's Graph stand-in, saved next to the workbooks."""
    from sp_sync.auth import ManagedIdentityTokenProvider
    from sp_sync.notify import GRAPH_RESOURCE
    from sp_sync.notify.demo import demo_digests

    return demo_digests(
        runtime,
        site,
        graph_url=emu.url,
        token_provider=ManagedIdentityTokenProvider(GRAPH_RESOURCE),
        out_dir=out_dir,
        language=language,
    )


def _show(text: str) -> None:
    """Print the demo's own lines fitted to a 100-column terminal; a path or URL to copy is
    moved to a line of its own, never shortened."""
    print(fit_text(text, keep_paths=True), flush=True)


def _print_where(
    emu: Any,
    summary: Any,
    out_dir: Path,
    state_dir: Path,
    seconds: float,
    *,
    keep_running: bool,
    language: str,
) -> None:
    def say(key: str, **fmt: Any) -> None:
        _show(_T[key].render(language, **fmt))

    for key, fmt in (
        ("done", {"seconds": format_seconds(seconds, language), "out": out_dir.resolve()}),
        ("state", {"state": state_dir.resolve()}),
    ):
        # These lines end with a path people copy: it moves to a line of its own when long.
        for line in _T[key].render(language, **fmt).split("\n"):
            print("\n".join(fit_line(line, path_last=True, keep_paths=True)), flush=True)
    if summary.workbooks:
        first = summary.workbooks[0]
        # Percent-encoded: the library's name has a space and the file names å/ä/ö, which a
        # pasted curl command would otherwise send raw.
        url = (
            f"{emu.url}/sites/{DEMO_SITE}/_api/web/"
            f"GetFileByServerRelativeUrl('{quote(first.server_relative_url)}')/$value"
        )
        say("uploaded")
        # URLs and commands stay whole (longer than a terminal line, but they must paste).
        print(f"  {url}", flush=True)
        if keep_running:
            say("curl")
            # The bearer token is about 1,000 characters: it goes into a header file in the
            # demo's own directory (curl reads `-H @file`), not onto the screen.
            header = state_dir.resolve() / "authorization-header.txt"
            header.write_text(f"Authorization: Bearer {emu.issue_token()}\n", encoding="utf-8")
            # `\$value`: inside double quotes the shell would expand `$value` to nothing.
            shell_url = url.replace("$", "\\$")
            print(f'  curl -o Lansoversikt.xlsx -H @{header} "{shell_url}"', flush=True)
    if keep_running:
        say("settings")
        for line in settings_to_paste(emu, state_dir, language):
            print(f"  {line}", flush=True)
    else:
        say("closes")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_demo())
