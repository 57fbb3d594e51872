"""The `sp-sync` command line (also `python -m sp_sync`).

Every command runs the same pipeline functions as the Functions app (`sp_sync.run.pipeline`); the
CLI only reads settings from the environment, checks what the administrator named (lists, the
site) before anything runs, shows progress and prints summaries — all in the language of
SP_SYNC_LANGUAGE, help included.

Exit codes: `sp_sync.errors.ExitCode` (documented in the README and in each command's --help).
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import json
import logging
import os
import sys
import textwrap
import time
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from sp_sync import __version__
from sp_sync.errors import ConfigurationError, ExitCode, NotFoundError, SettingsError, SpSyncError
from sp_sync.i18n import LOG_TEXT, Text, normalise_language

if TYPE_CHECKING:
    from sp_sync.auth import TokenProvider
    from sp_sync.run.progress import Progress
    from sp_sync.run.runtime import Runtime, TokenProviderFactory
    from sp_sync.settings import Settings, SiteConfig
    from sp_sync.sharepoint.lists import WebInfo

log = logging.getLogger("sp_sync")

# ---------------------------------------------------------------------------------- help texts

_PROG_DESCRIPTION = Text(
    sv="Synkroniserar SharePoint-listor, bygger Excel-sammanställningar och laddar upp dem till "
    "webbplatsen. Inställningarna läses från SP_SYNC_*-miljövariabler (se README). "
    "`sp-sync KOMMANDO --help` beskriver varje kommando.",
    en="Synchronise SharePoint lists, build Excel rollups and upload them to the site. "
    "Settings come from SP_SYNC_* environment variables (see the README). "
    "`sp-sync COMMAND --help` describes each command.",
)

#: (help line, description) per command.
_COMMANDS: dict[str, tuple[Text, Text]] = {
    "demo": (
        Text(
            sv="kör allt mot den inbyggda SharePoint-emulatorn (ingen klientorganisation behövs)",
            en="run everything against the built-in SharePoint emulator (no tenant needed)",
        ),
        Text(
            sv="Startar SharePoint-emulatorn, skapar listorna, fyller dem med demodata, kör hela "
            "flödet två gånger (fullständigt, sedan inkrementellt efter ändringar) och sparar "
            "arbetsböckerna. Tillståndet sparas i --state-dir så att demon kan fortsättas; med "
            "--keep-running skrivs inställningarna ut som låter alla andra kommandon köra mot "
            "emulatorn.",
            en="Starts the SharePoint emulator, provisions the lists, seeds demo data, runs the "
            "whole pipeline twice (full, then incremental after edits) and saves the workbooks. "
            "State is kept in --state-dir so the demo can be continued; with --keep-running it "
            "prints the settings that let every other command run against the emulator.",
        ),
    ),
    "provision": (
        Text(
            sv="jämför webbplatsen med list_schemas/ och visa (eller genomför med --apply) planen",
            en="compare the site with list_schemas/ and print (or --apply) the plan",
        ),
        Text(
            sv="Skapar de listor och kolumner som schemana beskriver och ändrar det som skiljer. "
            "Utan --apply visas bara planen (kort; hela planen med -v). Ändringar som tar bort "
            "något kräver --allow-destructive.",
            en="Creates the lists and columns the schemas describe and changes what differs. "
            "Without --apply only the plan is shown (compact; the full plan with -v). Changes "
            "that remove something need --allow-destructive.",
        ),
    ),
    "check": (
        Text(
            sv="rapportera avvikelser mellan webbplatsen och listschemana",
            en="report drift between the site and the list schemas",
        ),
        Text(
            sv="Jämför listorna på webbplatsen med list_schemas/ och visar varje avvikelse. "
            "Ändrar ingenting. En webbplats som inte svarar försöks igen enligt det vanliga "
            "schemat (ungefär en minut); med --timeout SEKUNDER ger kontrollen upp tidigare "
            "(slutkod 6).",
            en="Compares the lists on the site with list_schemas/ and shows every difference. "
            "Changes nothing. A site that does not answer is retried on the usual schedule "
            "(about a minute); with --timeout SECONDS the check gives up sooner (exit 6).",
        ),
    ),
    "sync": (
        Text(
            sv="synkronisera listorna till tillståndslagret",
            en="synchronise the lists into the state store",
        ),
        Text(
            sv="Läser listorna (första gången allt, sedan bara ändringar) och sparar dem i "
            "tillståndslagret. Bygger inga arbetsböcker.",
            en="Reads the lists (everything the first time, then only changes) and saves them "
            "in the state store. Builds no workbooks.",
        ),
    ),
    "rollup": (
        Text(
            sv="bygg arbetsböckerna från de senaste ögonblicksbilderna och ladda upp dem",
            en="build the workbooks from the current snapshots and upload them",
        ),
        Text(
            sv="Bygger arbetsböckerna från det som senast synkroniserades och laddar upp dem "
            "(eller sparar dem lokalt med --out och --no-upload). Läser inga listor.",
            en="Builds the workbooks from what was last synchronised and uploads them (or saves "
            "them locally with --out and --no-upload). Reads no lists.",
        ),
    ),
    "run": (
        Text(
            sv="hela flödet: kontroll, synk, validering, sammanställning, uppladdning, sammanfattning",
            en="the whole pipeline: check, sync, validate, rollup, upload, summary",
        ),
        Text(
            sv="Det nattliga jobbet: kontrollerar webbplatsen mot schemana, synkroniserar "
            "listorna, bygger och laddar upp arbetsböckerna och sparar körningens sammanfattning. "
            "En körning som inte synkroniserade något laddar inte upp några arbetsböcker.",
            en="The nightly job: checks the site against the schemas, synchronises the lists, "
            "builds and uploads the workbooks and stores the run summary. A run that synchronised "
            "nothing uploads no workbooks.",
        ),
    ),
    "status": (
        Text(
            sv="kontrollera inställningar, inloggning, webbplats och listor; visa senaste körning",
            en="check settings, sign-in, site and lists; show the last run",
        ),
        Text(
            sv="Kontrollerar att inställningarna är giltiga, att en token kan hämtas, att "
            "webbplatsen nås och att listorna finns, och visar varje listas tillstånd och den "
            "senaste körningen (tider i webbplatsens tidszon).",
            en="Checks that the settings are valid, that a token can be obtained, that the site "
            "is reachable and that the lists exist, and shows each list's state and the last run "
            "(times in the site's time zone).",
        ),
    ),
}

_SITE_SETTINGS = (
    "SP_SYNC_SITE_URL / SP_SYNC_SITES_FILE",
    "SP_SYNC_AUTH, SP_SYNC_CLIENT_ID, SP_SYNC_TENANT_ID, SP_SYNC_CERT_PATH, SP_SYNC_RESOURCE",
    "SP_SYNC_SCHEMA_DIR, SP_SYNC_LANGUAGE",
)
_STATE_SETTINGS = ("SP_SYNC_STATE, SP_SYNC_STATE_DIR, SP_SYNC_STATE_CONNECTION",)
_SETTINGS_READ: dict[str, tuple[str, ...]] = {
    "demo": ("SP_SYNC_LANGUAGE",),
    "provision": _SITE_SETTINGS,
    "check": _SITE_SETTINGS,
    "sync": (
        *_SITE_SETTINGS,
        *_STATE_SETTINGS,
        "SP_SYNC_LISTS, SP_SYNC_TIME_BUDGET_SECONDS",
    ),
    "rollup": (
        *_SITE_SETTINGS,
        *_STATE_SETTINGS,
        "SP_SYNC_ROLLUP_FOLDER, SP_SYNC_UPLOAD_CHUNK_MB",
    ),
    "run": (
        *_SITE_SETTINGS,
        *_STATE_SETTINGS,
        "SP_SYNC_LISTS, SP_SYNC_TIME_BUDGET_SECONDS",
        "SP_SYNC_ROLLUP_FOLDER, SP_SYNC_UPLOAD_CHUNK_MB",
    ),
    "status": (*_SITE_SETTINGS, *_STATE_SETTINGS),
}

_EXIT_TEXT: dict[ExitCode, Text] = {
    ExitCode.OK: Text(sv="klart", en="done"),
    ExitCode.UNEXPECTED: Text(
        sv="oväntat fel (kör med -v för detaljer)", en="unexpected failure (run with -v)"
    ),
    ExitCode.CONFIGURATION: Text(
        sv="fel inställning, schemafil, webbplats eller lista som inte finns",
        en="wrong setting, schema file, or a site or list that does not exist",
    ),
    ExitCode.PERMISSION: Text(
        sv="token nekad eller behörighet saknas", en="token refused or permission missing"
    ),
    ExitCode.DRIFT: Text(
        sv="avvikelser mot schemana (listor eller kolumner saknas)",
        en="drift from the schemas (lists or columns missing)",
    ),
    ExitCode.UPLOAD: Text(sv="uppladdningen misslyckades", en="upload failed"),
    ExitCode.RETRY_LATER: Text(
        sv="försök senare (strypt, onåbar, eller fortsätter nästa körning)",
        en="retry later (throttled, unreachable, or continues next run)",
    ),
    ExitCode.LOCKED: Text(sv="en annan körning håller låset", en="another run holds the lock"),
    ExitCode.PARTIAL: Text(sv="några listor misslyckades", en="some lists failed"),
    ExitCode.LOCAL_DISK: Text(
        sv="den lokala tillståndskatalogen går inte att skriva (full disk, skrivskyddad)",
        en="the local state directory cannot be written (disk full, read-only)",
    ),
}
_EXIT_CODES: dict[str, tuple[ExitCode, ...]] = {
    "demo": (ExitCode.OK, ExitCode.UNEXPECTED, ExitCode.CONFIGURATION, ExitCode.PARTIAL),
    "provision": (
        ExitCode.OK,
        ExitCode.UNEXPECTED,
        ExitCode.CONFIGURATION,
        ExitCode.PERMISSION,
        ExitCode.RETRY_LATER,
    ),
    "check": (
        ExitCode.OK,
        ExitCode.UNEXPECTED,
        ExitCode.CONFIGURATION,
        ExitCode.PERMISSION,
        ExitCode.DRIFT,
        ExitCode.RETRY_LATER,
    ),
    "sync": tuple(c for c in ExitCode if c not in (ExitCode.UPLOAD, ExitCode.INTERRUPTED)),
    "rollup": (
        ExitCode.OK,
        ExitCode.UNEXPECTED,
        ExitCode.CONFIGURATION,
        ExitCode.PERMISSION,
        ExitCode.UPLOAD,
        ExitCode.RETRY_LATER,
    ),
    "run": tuple(c for c in ExitCode if c is not ExitCode.INTERRUPTED),
    "status": (
        ExitCode.OK,
        ExitCode.CONFIGURATION,
        ExitCode.PERMISSION,
        ExitCode.DRIFT,
        ExitCode.RETRY_LATER,
    ),
}
_SETTINGS_HEADING = Text(sv="Inställningar som läses:", en="Settings read:")
_EXIT_HEADING = Text(sv="Slutkoder:", en="Exit codes:")

_OPT = {
    "verbose": Text(
        sv="mer utskrift (loggrader, hela planen)", en="log more (INFO lines, full plan)"
    ),
    "site": Text(
        sv="webbplatsens adress eller namn i SP_SYNC_SITES_FILE (standard: alla webbplatser)",
        en="site URL or name from SP_SYNC_SITES_FILE (default: every configured site)",
    ),
    "json": Text(sv="skriv resultatet som JSON", en="print the result as JSON"),
    "quiet": Text(sv="ingen förloppsvisning", en="no progress output"),
    "out": Text(sv="spara arbetsböckerna här också", en="also save local copies here"),
    "demo_out": Text(sv="där arbetsböckerna sparas", en="where to save the workbooks"),
    "state_dir": Text(
        sv="katalog för demons tillstånd (standard: .sp-sync/demo)",
        en="the demo's state directory (default: .sp-sync/demo)",
    ),
    "keep_running": Text(
        sv="låt emulatorn köra kvar och skriv ut inställningarna för andra kommandon",
        en="keep the emulator running and print the settings for other commands",
    ),
    "demo_json": Text(
        sv="skriv båda körningarnas sammanfattningar som JSON",
        en="print both run summaries as JSON",
    ),
    "timeout": Text(
        sv="ge upp efter så här många sekunder per webbplats (standard: hela försöksschemat)",
        en="give up after this many seconds per site (default: the whole retry schedule)",
    ),
    "apply": Text(sv="genomför planen", en="carry the plan out"),
    "destructive": Text(
        sv="ta också bort kolumner/val och byt kolumntyper",
        en="also remove columns/choices and change column types",
    ),
    "full": Text(sv="läs om varje lista helt", en="re-read every list completely"),
    "list": Text(
        sv="bara den här listan (visningsnamn, kan upprepas)",
        en="only this list (display name, repeatable)",
    ),
    "no_upload": Text(sv="ladda inte upp till SharePoint", en="do not upload to SharePoint"),
    "seconds_metavar": Text(sv="SEKUNDER", en="SECONDS"),
    "help": Text(sv="visa den här hjälpen och avsluta", en="show this help message and exit"),
    "version": Text(sv="visa versionen och avsluta", en="show the version and exit"),
}

_NOT_SECONDS = Text(
    sv="{value!r} är inte ett positivt antal sekunder",
    en="{value!r} is not a positive number of seconds",
)

#: argparse's own messages (it asks gettext for them) in Swedish.
_ARGPARSE_SV = {
    "usage: ": "användning: ",
    "options": "flaggor",
    "positional arguments": "argument",
    "invalid choice: %(value)r (choose from %(choices)s)": "ogiltigt val: %(value)r (välj bland %(choices)s)",
    "unrecognized arguments: %s": "okända argument: %s",
    "the following arguments are required: %s": "följande argument krävs: %s",
    "expected one argument": "ett argument väntas",
    "%(prog)s: error: %(message)s\n": "%(prog)s: fel: %(message)s\n",
    "argument %(argument_name)s: %(message)s": "argument %(argument_name)s: %(message)s",
    "invalid %(type)s value: %(value)r": "ogiltigt värde (%(type)s): %(value)r",
    "ambiguous option: %(option)s could match %(matches)s": "tvetydig flagga: %(option)s kan vara %(matches)s",
}


#: argparse's own gettext, put back for English: a process that parses in Swedish and then in
#: English (tests calling `main` in-process) must not keep the Swedish words.
_ARGPARSE_GETTEXT = argparse._  # type: ignore[attr-defined]


def _argparse_language(language: str) -> None:
    """Make argparse's own words (usage, options, its errors) follow SP_SYNC_LANGUAGE."""
    if language == "sv":
        argparse._ = lambda text: _ARGPARSE_SV.get(text, text)  # type: ignore[attr-defined]
    else:
        argparse._ = _ARGPARSE_GETTEXT  # type: ignore[attr-defined]


def _epilog(command: str, language: str) -> str:
    settings = "\n".join(f"  {line}" for line in _SETTINGS_READ[command])
    codes = "\n".join(
        f"  {int(code)}  {_EXIT_TEXT[code].render(language)}" for code in _EXIT_CODES[command]
    )
    return (
        f"{_SETTINGS_HEADING.render(language)}\n{settings}\n\n"
        f"{_EXIT_HEADING.render(language)}\n{codes}"
    )


def build_parser(language: str = "sv") -> argparse.ArgumentParser:
    lang = normalise_language(language)
    _argparse_language(lang)

    def t(key: str) -> str:
        return _OPT[key].render(lang)

    def seconds(value: str) -> float:
        try:
            number = float(value.replace(",", "."))
        except ValueError:
            number = float("nan")
        if not 0 < number < float("inf"):
            raise argparse.ArgumentTypeError(_NOT_SECONDS.render(lang, value=value))
        return number

    def parser_for(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("-h", "--help", action="help", help=t("help"))
        return p

    parser = parser_for(
        argparse.ArgumentParser(
            prog="sp-sync", description=_PROG_DESCRIPTION.render(lang), add_help=False
        )
    )
    parser.add_argument(
        "--version", action="version", version=f"sp-sync {__version__}", help=t("version")
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=t("verbose"))
    sub = parser.add_subparsers(dest="command", metavar="KOMMANDO" if lang == "sv" else "COMMAND")

    def command(name: str) -> argparse.ArgumentParser:
        help_text, description = _COMMANDS[name]
        p = sub.add_parser(
            name,
            help=help_text.render(lang),
            description=textwrap.fill(description.render(lang), 79),
            epilog=_epilog(name, lang),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            add_help=False,
        )
        parser_for(p)
        # Also accepted after the command (`sp-sync sync -v`), where people type it; SUPPRESS
        # keeps the top-level value when it is not repeated here.
        p.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=t("verbose")
        )
        return p

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--site", help=t("site"))
        p.add_argument("--json", action="store_true", help=t("json"))
        p.add_argument("-q", "--quiet", action="store_true", help=t("quiet"))

    p = command("demo")
    p.add_argument("--out", type=Path, default=Path("rollups"), help=t("demo_out"))
    p.add_argument("--state-dir", type=Path, default=None, help=t("state_dir"))
    p.add_argument("--keep-running", action="store_true", help=t("keep_running"))
    p.add_argument("--json", action="store_true", help=t("demo_json"))
    p.add_argument("-q", "--quiet", action="store_true", help=t("quiet"))

    p = command("provision")
    common(p)
    p.add_argument("--apply", action="store_true", help=t("apply"))
    p.add_argument("--allow-destructive", action="store_true", help=t("destructive"))

    p = command("check")
    common(p)
    p.add_argument(
        "--timeout", type=seconds, default=None, metavar=t("seconds_metavar"), help=t("timeout")
    )

    p = command("sync")
    common(p)
    p.add_argument("--full", action="store_true", help=t("full"))
    p.add_argument("--list", action="append", dest="lists", metavar="NAME", help=t("list"))

    p = command("rollup")
    common(p)
    p.add_argument("--out", type=Path, default=None, help=t("out"))
    p.add_argument("--no-upload", action="store_true", help=t("no_upload"))

    p = command("run")
    common(p)
    p.add_argument("--full", action="store_true", help=t("full"))
    p.add_argument("--out", type=Path, default=None, help=t("out"))
    p.add_argument("--no-upload", action="store_true", help=t("no_upload"))

    common(command("status"))

    from sp_sync.notify.commands import add_digest_parser

    add_digest_parser(sub, common)
    return parser


# ---------------------------------------------------------------------------------- messages

_INTERRUPTED = Text(
    sv="avbrutet; det senast sparade tillståndet är intakt",
    en="interrupted; the last committed state is intact",
)
_UNEXPECTED = Text(
    sv="oväntat fel ({kind}: {detail}). Kör igen med -v för detaljer; det senast sparade "
    "tillståndet är intakt.",
    en="unexpected error ({kind}: {detail}). Run again with -v for details; the last committed "
    "state is intact.",
)
_UNKNOWN_LIST = Text(
    sv="listan {name!r} finns inte i listschemana{hint}. Kända listor: {known}.",
    en="there is no list {name!r} in the list schemas{hint}. Known lists: {known}.",
)
_DID_YOU_MEAN = Text(sv=" (menade du {name}?)", en=" (did you mean {name}?)")
_LIST_NOT_ON_SITE = Text(
    sv="Listan {name!r} finns inte på webbplatsen {url}{hint}. Skapa den med `sp-sync "
    "provision --apply` eller kontrollera webbplatsen i {setting}.",
    en="The list {name!r} does not exist on the site {url}{hint}. Create it with `sp-sync "
    "provision --apply` or check the site in {setting}.",
)
_SITE_MISSING = Text(
    sv="Webbplatsen {url} finns inte (SharePoint svarar 404). Kontrollera adressen i "
    "{setting} (kopiera den från webbläsarens adressfält, utan /SitePages/… på slutet), att "
    "webbplatsen inte har tagits bort eller bytt adress, och att klientorganisationen stämmer.",
    en="The site {url} does not exist (SharePoint answers 404). Check the address in {setting} "
    "(copy it from the browser's address bar, without /SitePages/… at the end), that the site "
    "has not been deleted or moved, and that the tenant is the right one.",
)


def _fold(name: str) -> str:
    """A list name compared as people mistype it: case-insensitive, å/ä/ö as a/a/o."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).strip()


def closest_list(name: str, known: Iterable[str]) -> str | None:
    """The known list `name` most likely means ("Lanskunskap" → "Länskunskap"), or None."""
    by_fold = {_fold(k): k for k in known}
    folded = _fold(name)
    if folded in by_fold:
        return by_fold[folded]
    match = difflib.get_close_matches(folded, list(by_fold), n=1, cutoff=0.6)
    return by_fold[match[0]] if match else None


def check_list_names(names: Iterable[str], known: Sequence[str], *, setting: str) -> None:
    """Raise a SettingsError naming every name that is not a list of the schemas (exact match:
    the sync engine compares titles exactly, so "dialoger" would sync nothing)."""
    problems: list[SettingsError] = []
    for name in dict.fromkeys(names):
        if name in known:
            continue
        suggestion = closest_list(name, known)
        fmt: dict[str, Any] = {"name": name, "known": ", ".join(known)}
        text = Text(
            sv=_UNKNOWN_LIST.render(
                "sv", hint=_DID_YOU_MEAN.render("sv", name=suggestion) if suggestion else "", **fmt
            ),
            en=_UNKNOWN_LIST.render(
                "en", hint=_DID_YOU_MEAN.render("en", name=suggestion) if suggestion else "", **fmt
            ),
        )
        problems.append(SettingsError(setting, text))
    if problems:
        raise SettingsError.combine(problems)


def _check_names(args: argparse.Namespace, runtime: Runtime, sites: Sequence[SiteConfig]) -> None:
    known = list(runtime.schemas.lists)
    if getattr(args, "lists", None):
        check_list_names(args.lists, known, setting="--list")
    settings = runtime.settings
    if settings.lists:
        check_list_names(settings.lists, known, setting="SP_SYNC_LISTS")
    for site in sites:
        if site.lists and site.lists != settings.lists:
            check_list_names(site.lists, known, setting="SP_SYNC_SITES_FILE")


def _one_token_provider() -> TokenProviderFactory:
    """The CLI's clients share one token provider per token resource: a night's site check and
    its run (and every site of one tenant) ask the identity endpoint for a token once, not once
    per client. The CLI runs one command at a time; the Functions app, whose invocations may
    overlap, keeps a provider per client (each binds it to its own run's deadline)."""
    from sp_sync.auth import token_provider_from_settings

    providers: dict[str, TokenProvider] = {}

    def make(settings: Settings, site: SiteConfig) -> TokenProvider:
        resource = settings.resource_for(site)
        if resource not in providers:
            providers[resource] = token_provider_from_settings(settings, resource)
        return providers[resource]

    return make


def require_site(runtime: Runtime, site: SiteConfig, *, deadline: float | None = None) -> WebInfo:
    """The site's web, or a ConfigurationError (exit 2) saying the site does not exist and what
    to verify. Without this a mistyped URL looked like a site whose lists were all missing.
    `deadline` (a run's): the check's retries stop there instead of after their own schedule."""
    client = runtime.client(site, deadline=deadline)
    try:
        return client.get_web()
    except NotFoundError as exc:
        if exc.status != 404:
            raise
        raise _site_missing(runtime, site, exc) from exc
    finally:
        client.close()


def _site_missing(runtime: Runtime, site: SiteConfig, exc: NotFoundError) -> ConfigurationError:
    setting = "SP_SYNC_SITES_FILE" if runtime.settings.sites_file else "SP_SYNC_SITE_URL"
    text = Text(
        sv=_SITE_MISSING.render("sv", url=site.url, setting=setting),
        en=_SITE_MISSING.render("en", url=site.url, setting=setting),
    )
    return ConfigurationError(text.en, status=404, code=exc.code, text=text)


def require_lists(runtime: Runtime, site: SiteConfig, errors: Sequence[Mapping[str, Any]]) -> None:
    """After a sync: a list whose requests answered 404 means the site or the list is missing.

    The sync's own first requests are the check (a separate one up front cost 3 requests a
    night; a missing site is raised by the engine as SiteNotFoundError): only on this error
    path are the site's lists read, to name the closest to each missing one (exit 2)."""
    missing = [
        str(e["list"])
        for e in errors
        if e.get("http_status") == 404 and e.get("error") == "NotFoundError" and e.get("list")
    ]
    if not missing:
        return
    client = runtime.client(site)
    try:
        present = [info.title for info in client.list_lists()]
    finally:
        client.close()
    absent = [name for name in dict.fromkeys(missing) if name not in present]
    if not absent:
        return  # something else answered 404: the run summary reports it
    setting = "SP_SYNC_SITES_FILE" if runtime.settings.sites_file else "SP_SYNC_SITE_URL"
    problems: list[Text] = []
    for name in absent:
        suggestion = closest_list(name, present)
        fmt: dict[str, Any] = {"name": name, "url": site.url, "setting": setting}
        problems.append(
            Text(
                sv=_LIST_NOT_ON_SITE.render(
                    "sv",
                    hint=_DID_YOU_MEAN.render("sv", name=suggestion) if suggestion else "",
                    **fmt,
                ),
                en=_LIST_NOT_ON_SITE.render(
                    "en",
                    hint=_DID_YOU_MEAN.render("en", name=suggestion) if suggestion else "",
                    **fmt,
                ),
            )
        )
    text = Text(
        sv=" ".join(t.render("sv") for t in problems), en=" ".join(t.render("en") for t in problems)
    )
    raise ConfigurationError(text.en, status=404, text=text)


# ---------------------------------------------------------------------------------- main

_LEVELS = {
    "WARNING": Text(sv="VARNING", en="WARNING"),
    "ERROR": Text(sv="FEL", en="ERROR"),
    "CRITICAL": Text(sv="KRITISKT", en="CRITICAL"),
}


class LanguageFormatter(logging.Formatter):
    """Log lines on the command line in the language of SP_SYNC_LANGUAGE: a record that carries
    a `Text` (`i18n.log_text`) shows it instead of its English message, and the level name is
    translated. The Functions app keeps the English records (its logs are for IT staff)."""

    def __init__(self, language: str) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.language = normalise_language(language)

    def format(self, record: logging.LogRecord) -> str:
        from sp_sync.redact import redact

        text = getattr(record, LOG_TEXT, None)
        level = _LEVELS.get(record.levelname)
        if not isinstance(text, Text) and level is None:
            return super().format(record)
        shown = logging.makeLogRecord(record.__dict__)  # other handlers keep the record as is
        if isinstance(text, Text):
            shown.msg, shown.args = redact(text.render(self.language)), ()
        if level is not None:
            shown.levelname = level.render(self.language)
        return super().format(shown)


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def _language() -> str:
    from sp_sync.settings import language_or_default

    return language_or_default()


def main(argv: Sequence[str] | None = None, *, own_process: bool = False) -> int:
    """The command line. `own_process`: this process runs one command and ends (`run()`), so
    it may tune the process's collector for it (`_settle_heap`)."""
    language = _language()
    parser = build_parser(language)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return ExitCode.OK
    if own_process and args.command in _BATCH_COMMANDS:
        _settle_heap(args.command)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LanguageFormatter(language))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    from sp_sync.redact import install as install_log_redaction

    install_log_redaction()
    try:
        return _dispatch(args, language)
    except SpSyncError as exc:
        if getattr(args, "json", False):
            _print_json({"status": "failed", **exc.details()})
        print(_fit(f"sp-sync: {exc.render(language)}"), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"sp-sync: {_INTERRUPTED.render(language)}", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as exc:  # a bug: say so plainly, keep the traceback for -v
        if args.verbose:
            raise
        from sp_sync.redact import redact as redact_text

        print(
            "sp-sync: "
            + _UNEXPECTED.render(language, kind=type(exc).__name__, detail=redact_text(str(exc))),
            file=sys.stderr,
        )
        return ExitCode.UNEXPECTED


def _fit(message: str) -> str:
    """On a terminal, a message wrapped at 100 columns between words (URLs and paths stay
    whole, to be copied); piped into a log or a script, one line per line as written."""
    if not sys.stderr.isatty():
        return message
    from sp_sync.run.summary import fit_text

    return fit_text(message, keep_paths=True)


def _progress(args: argparse.Namespace, language: str) -> Progress:
    from sp_sync.run.progress import Progress, TerminalProgress

    if getattr(args, "quiet", False) or getattr(args, "json", False):
        return Progress()
    return TerminalProgress(language=language)


def _dispatch(args: argparse.Namespace, language: str) -> int:
    from sp_sync.run import pipeline
    from sp_sync.run.runtime import Runtime
    from sp_sync.settings import Settings

    if args.command == "demo":
        from sp_sync.demo.runner import run_demo
        from sp_sync.settings import language_from_env

        return run_demo(
            language=language_from_env(),
            out_dir=args.out,
            state_dir=args.state_dir,
            keep_running=args.keep_running,
            as_json=args.json,
            progress=_progress(args, language),
        )

    runtime = Runtime(settings=Settings.from_env(), token_provider_factory=_one_token_provider())
    settings = runtime.settings
    sites = pipeline.select_sites(settings, args.site)
    if args.command in ("sync", "run"):
        _check_names(args, runtime, sites)
    progress = _progress(args, language)
    results: list[dict[str, Any]] = []
    code: int = ExitCode.OK

    for site in sites:
        if args.command == "status":
            status, status_code = _status(runtime, site)
            code = max(code, status_code)
            if args.json:
                results.append(status)
            else:
                print(format_status(status, language))
            continue
        deadline: float | None = None
        # Commands that read or write the site check first that it exists; `rollup
        # --no-upload` works offline and `digest` talks to Microsoft Graph, not the site.
        # `sync` checks after the fact, from its own first requests (its request budget has
        # no room for a separate check): see `require_lists`.
        if args.command not in ("digest", "sync") and not (
            args.command == "rollup" and args.no_upload
        ):
            # A run's budget starts here: the site check is part of the run (an unreachable
            # host's retries took about 50 s whatever the budget).
            if args.command == "run":
                deadline = runtime.deadline()
            elif args.command == "check" and args.timeout is not None:
                # The administrator's limit for this site's check: its retries (token and
                # site) stop there instead of after the whole schedule (exit 6).
                deadline = time.monotonic() + args.timeout
            require_site(runtime, site, deadline=deadline)
        if args.command == "provision":
            plan, applied = pipeline.run_provision(
                runtime, site, apply=args.apply, allow_destructive=args.allow_destructive
            )
            if args.json:
                results.append(
                    {
                        "site": site.url,
                        "plan": plan.to_dict(),
                        "applied": applied.to_dict() if applied else None,
                    }
                )
            else:
                print(_plan_text(plan, language, verbose=args.verbose, schemas=runtime.schemas))
                if applied is not None:
                    print(applied.format_text(language))
        elif args.command == "check":
            client = runtime.client(site, deadline=deadline)
            try:
                report = pipeline.run_check(runtime, site, client=client)
            finally:
                client.close()
            if args.json:
                results.append({"site": site.url, **report.to_dict()})
            else:
                print(report.format_text(language))
            if report.has_drift:
                code = max(code, ExitCode.DRIFT)
        elif args.command == "sync":
            from sp_sync.sync.engine import SiteNotFoundError

            try:
                summary = pipeline.run_sync(
                    runtime, site, full=args.full, lists=args.lists, progress=progress
                )
            except SiteNotFoundError as exc:
                raise _site_missing(runtime, site, exc) from exc
            require_lists(runtime, site, summary.errors)
            code = max(code, _summary_code(summary))
            _emit(args, summary, results, language)
        elif args.command == "rollup":
            summary = pipeline.run_rollup(
                runtime, site, out_dir=args.out, upload=not args.no_upload, progress=progress
            )
            _emit(args, summary, results, language)
        elif args.command == "run":
            summary = pipeline.run_pipeline(
                runtime,
                site,
                not_after=deadline,
                full=args.full,
                out_dir=args.out,
                upload=not args.no_upload,
                progress=progress,
            )
            code = max(code, _summary_code(summary))
            _emit(args, summary, results, language)
        elif args.command == "digest":
            from sp_sync.notify.commands import run_digest_command

            digest_code, result, text = run_digest_command(args, runtime, settings, site)
            code = max(code, digest_code)
            if args.json:
                results.append(result)
            else:
                print(text)
    if args.json:
        _print_json(results[0] if len(results) == 1 else results)
    return code


def _plan_text(plan: Any, language: str, *, verbose: bool, schemas: Any) -> str:
    return str(plan.format_text(language, verbose=verbose, schemas=schemas))


# ---------------------------------------------------------------------------------- status

_CHECK_OK = Text(sv="  ✓ {what}", en="  ✓ {what}")
_CHECK_FAILED = Text(sv="  ✗ {what}: {problem}", en="  ✗ {what}: {problem}")
_CHECK_NAMES = {
    "settings": Text(sv="Inställningarna är giltiga", en="Settings are valid"),
    "token": Text(sv="Token hämtad", en="Token obtained"),
    "site": Text(sv="Webbplatsen nås ({title})", en="Site reachable ({title})"),
    "lists": Text(sv="Listorna finns på webbplatsen", en="The lists exist on the site"),
}
_CHECK_SKIPPED = Text(sv="  – {what}: inte kontrollerat", en="  – {what}: not checked")
_LISTS_MISSING = Text(sv="saknas: {names}", en="missing: {names}")
_STATUS_SITE = Text(sv="Webbplats: {site}", en="Site: {site}")
_STATUS_STATE = Text(sv="Synkroniserat (tider i {zone}):", en="Synchronised (times in {zone}):")
_STATUS_NEVER = Text(sv="  {title}: aldrig synkad", en="  {title}: never synchronised")
_STATUS_LIST = Text(
    sv="  {title}: {rows}, senast synkad {last_sync}",
    en="  {title}: {rows}, last sync {last_sync}",
)
_STATUS_CONTINUES = Text(sv=" (fortsätter nästa körning)", en=" (continues next run)")
_STATUS_LAST_RUN = Text(
    sv="Senaste körning: {finished} — {status} ({run_id})",
    en="Last run: {finished} — {status} ({run_id})",
)
_STATUS_NO_RUN = Text(sv="Senaste körning: ingen ännu", en="Last run: none yet")
_ROWS = ("rad", "rader", "row", "rows")


def _status(runtime: Runtime, site: SiteConfig) -> tuple[dict[str, Any], ExitCode]:
    """The local state plus live checks (token, site, lists) and the exit code they give:
    status is a configuration check, so a refused token or a missing site is not "ok"."""
    from sp_sync.errors import AuthenticationError

    status: dict[str, Any] = dict(_site_status(runtime, site))
    checks: dict[str, Any] = {"settings": {"ok": True}}
    code = ExitCode.OK
    time_zone: str | None = None
    try:
        web = require_site(runtime, site)
        checks["token"] = {"ok": True}
        checks["site"] = {"ok": True, "title": web.title}
        time_zone = getattr(web.time_zone, "key", None)
        client = runtime.client(site)
        try:
            present = {info.title for info in client.list_lists()}
        finally:
            client.close()
        missing = [t for t in runtime.schemas.lists if t not in present]
        checks["lists"] = {"ok": not missing, "missing": missing}
        if missing:
            code = ExitCode.DRIFT
    except SpSyncError as exc:
        code = exc.exit_code
        # The message in the reader's language, not details()'s English one.
        failed = {**exc.details(), "ok": False, "message": exc.render(runtime.language)}
        if isinstance(exc, AuthenticationError | SettingsError):
            # No token (refused, or no identity to ask): the site was never reached.
            checks["token"] = failed
        else:
            checks.setdefault("token", {"ok": True})
            checks["site"] = failed
    status["checks"] = checks
    status["time_zone"] = time_zone or _state_time_zone(runtime, site) or "Europe/Stockholm"
    return status, code


def _site_status(runtime: Runtime, site: SiteConfig) -> dict[str, Any]:
    from sp_sync.run import pipeline

    return pipeline.site_status(runtime, site)


def _state_time_zone(runtime: Runtime, site: SiteConfig) -> str | None:
    for title in runtime.schemas.lists:
        state = runtime.store.read_list_state(site.url, title)
        if state is not None and state.checkpoint.extra.get("time_zone"):
            return str(state.checkpoint.extra["time_zone"])
    return None


def local_time(value: Any, zone: str) -> str:
    """A stored UTC time (datetime or ISO text) in the site's time zone, to the second."""
    from zoneinfo import ZoneInfo

    if value is None or value == "":
        return "–"
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


def format_status(status: dict[str, Any], language: str = "sv") -> str:
    from sp_sync.i18n import Plural
    from sp_sync.run.summary import status_text

    rows = Plural(*_ROWS)
    zone = status.get("time_zone") or "Europe/Stockholm"
    lines = [_STATUS_SITE.render(language, site=status["site"])]
    for key, name in _CHECK_NAMES.items():
        check = status.get("checks", {}).get(key)
        title = (check or {}).get("title", "")
        what = name.render(language, title=title) if "{title}" in name.en else name.render(language)
        if check is None:
            lines.append(_CHECK_SKIPPED.render(language, what=what))
        elif check.get("ok"):
            lines.append(_CHECK_OK.render(language, what=what))
        else:
            problem = check.get("message") or _LISTS_MISSING.render(
                language, names=", ".join(check.get("missing", ()))
            )
            lines.append(_CHECK_FAILED.render(language, what=what, problem=problem))
    lines.append(_STATUS_STATE.render(language, zone=zone))
    for title, info in status["lists"].items():
        if info is None:
            lines.append(_STATUS_NEVER.render(language, title=title))
            continue
        line = _STATUS_LIST.render(
            language,
            title=title,
            rows=rows.render(language, int(info["rows"])),
            last_sync=local_time(info["last_sync"], zone),
        )
        if info.get("continues"):
            line += _STATUS_CONTINUES.render(language)
        lines.append(line)
    last = status.get("last_run")
    if last:
        lines.append(
            _STATUS_LAST_RUN.render(
                language,
                finished=local_time(last.get("finished"), zone),
                status=status_text(str(last.get("status")), language),
                run_id=last.get("run_id"),
            )
        )
    else:
        lines.append(_STATUS_NO_RUN.render(language))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- results


def _summary_code(summary: Any) -> ExitCode:
    """Exit code of a finished run: 6 when it only ran out of time (the next run continues),
    8 when some list failed, and for a run where nothing synced the code of its first error."""
    status = summary.status
    if status == "ok":
        return ExitCode.OK
    from sp_sync import errors

    if status == "partial":
        continues = summary.continues or any(r.continues_next_run for r in summary.lists)
        # Out of time, and what failed only asks to be retried (a state-store call cut at the
        # budget, issue 11 item 4; the lists not started after it): the next run continues.
        if continues and all(_retry_later(e, errors) for e in summary.errors):
            return ExitCode.RETRY_LATER
        return ExitCode.PARTIAL

    for err in summary.errors:
        kind = getattr(errors, str(err.get("error", "")), None)
        if isinstance(kind, type) and issubclass(kind, errors.SpSyncError):
            return kind.exit_code
    return ExitCode.UNEXPECTED


def _retry_later(err: Any, errors: Any) -> bool:
    """Whether a list error of a run summary only asks to be retried (exit 6)."""
    if err.get("error") == "NotStarted":
        return True
    kind = getattr(errors, str(err.get("error", "")), None)
    if not (isinstance(kind, type) and issubclass(kind, errors.SpSyncError)):
        return False
    return bool(getattr(kind, "exit_code", None) == ExitCode.RETRY_LATER)


def _emit(
    args: argparse.Namespace, summary: Any, results: list[dict[str, Any]], language: str
) -> None:
    if args.json:
        results.append(summary.to_dict())
    else:
        print(summary.format_text(language))


#: Commands that read snapshots into pandas: a process running one of them tunes its collector.
_BATCH_COMMANDS = frozenset({"sync", "rollup", "run"})

#: The youngest generation's threshold while a batch command runs (Python's default is 700).
_YOUNG_THRESHOLD = 100_000


def _settle_heap(command: str) -> None:
    """Import what `command` needs anyway, then keep the cyclic collector off those objects.

    A night after 50 edits spent 0.28–0.38 s of its 1.4 s in the collector (measured with
    `gc.callbacks`): three full passes over every object that importing pandas and pyarrow
    made, which live until the process ends. Those are frozen (`gc.freeze`: kept out of
    every later pass) and the youngest generation is collected after 100,000 new objects
    instead of 700, so the night's JSON pages and object columns are not walked again and
    again while they are being built: 0.03 s in the collector. Reference counting frees all
    the pipeline makes (a 100,000-item full sync's peak RSS and a first full night's were
    the same with the collector off entirely); the collector still runs, for cycles.

    Only a process of its own does this (`run()`): frozen objects are never collected, which
    is right for one command and its exit, not for the Functions host's long-lived worker or
    a test process."""
    import gc
    import importlib

    gc.disable()  # the imports below make objects that live as long as the process
    try:
        importlib.import_module("sp_sync.state")  # pandas, pyarrow
        if command != "rollup":
            importlib.import_module("sp_sync.sync.engine")
        gc.freeze()
        gc.set_threshold(_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    finally:
        gc.enable()


def run(argv: Sequence[str] | None = None) -> NoReturn:
    """The process entry point (`sp-sync`, `python -m sp_sync`): `main()`, then exit without
    interpreter finalisation. Arrow's native threads can abort a finishing interpreter with
    SIGABRT ("terminate called without an active exception", apache/arrow#34314) after the
    command has succeeded and printed its answer; measured with `sp-sync status` on demo state:
    3 aborts in 80 runs with a normal exit, 0 in 60 with this one. Every file the commands
    write is closed before `main()` returns; the output streams and logging are flushed here."""
    code = main(argv, own_process=True)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said anyway
            pass
    logging.shutdown()
    os._exit(int(code))


if __name__ == "__main__":  # pragma: no cover
    run()
