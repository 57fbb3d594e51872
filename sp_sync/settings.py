"""Settings from environment variables (the Function app's settings), validated up front.

`Settings.from_env(os.environ)` reads every `SP_SYNC_*` variable, checks all of them and raises
a `SettingsError` naming the first wrong setting and what is wrong with it. `SETTINGS` is the
machine-readable table (name, default, description) from which the README table and
`local.settings.example.json` are generated and checked (`settings_markdown_table()`,
`example_local_settings()`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast, overload
from urllib.parse import quote, urlsplit

from sp_sync.errors import SettingsError
from sp_sync.i18n import Text
from sp_sync.redact import register_secret

log = logging.getLogger(__name__)

AuthMode = Literal["managed_identity", "certificate"]
StateKind = Literal["local", "azure"]
Language = Literal["sv", "en"]
_T = TypeVar("_T")


@dataclass(frozen=True)
class SettingSpec:
    name: str
    default: str | None
    description: str
    description_sv: str = ""


#: Every setting: name, default (None = no default) and what it does. Order = README order.
SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "SP_SYNC_SITE_URL",
        None,
        "URL of the SharePoint site, e.g. https://contoso.sharepoint.com/sites/uppfoljning (required unless SP_SYNC_SITES_FILE is set).",
        "Webbplatsens adress.",
    ),
    SettingSpec(
        "SP_SYNC_AUTH",
        "managed_identity",
        "How to get tokens: managed_identity (the Function app's identity) or certificate (an app registration).",
        "Inloggningssätt.",
    ),
    SettingSpec(
        "SP_SYNC_CLIENT_ID",
        None,
        "Client id of a user-assigned managed identity, or of the app registration (certificate).",
        "Klient-id.",
    ),
    SettingSpec(
        "SP_SYNC_TENANT_ID",
        None,
        "Entra ID tenant id (certificate auth).",
        "Klientorganisationens id.",
    ),
    SettingSpec(
        "SP_SYNC_AUTHORITY_URL",
        None,
        "Token authority; default https://login.microsoftonline.com/<tenant> (certificate auth).",
        "Utfärdare av token.",
    ),
    SettingSpec(
        "SP_SYNC_CERT_PATH",
        None,
        "PEM file holding the private key and the certificate (certificate auth).",
        "PEM-fil med nyckel och certifikat.",
    ),
    SettingSpec(
        "SP_SYNC_CERT_THUMBPRINT",
        None,
        "SHA-1 thumbprint of the certificate (optional; computed from the PEM).",
        "Certifikatets tumavtryck.",
    ),
    SettingSpec(
        "SP_SYNC_CA_BUNDLE",
        None,
        "CA bundle to trust for the token authority (private or test authorities).",
        "CA-fil för utfärdaren.",
    ),
    SettingSpec(
        "SP_SYNC_RESOURCE",
        None,
        "Token resource; default: the site's origin, e.g. https://contoso.sharepoint.com.",
        "Resurs för token.",
    ),
    SettingSpec(
        "SP_SYNC_ORGANISATION",
        "sp-sync",
        "Organisation named in the User-Agent (NONISV|<organisation>|sp-sync/<version>), as Microsoft asks.",
        "Organisation i User-Agent.",
    ),
    SettingSpec(
        "SP_SYNC_STATE",
        "local",
        "Where snapshots and checkpoints live: local (a directory) or azure (Blob Storage).",
        "Var tillståndet sparas.",
    ),
    SettingSpec(
        "SP_SYNC_STATE_DIR",
        ".sp-sync/state",
        "Directory of the local state store.",
        "Katalog för lokalt tillstånd.",
    ),
    SettingSpec(
        "SP_SYNC_STATE_CONNECTION",
        "AzureWebJobsStorage",
        "Name of the app setting holding the storage connection string (azure state).",
        "Inställning med anslutningssträng.",
    ),
    SettingSpec(
        "SP_SYNC_STATE_CONTAINER",
        "sp-sync-state",
        "Blob container of the azure state store.",
        "Blobcontainer för tillstånd.",
    ),
    SettingSpec(
        "SP_SYNC_LISTS",
        "",
        "Comma-separated list titles to sync; empty = every list in the schemas.",
        "Listor att synkronisera.",
    ),
    SettingSpec(
        "SP_SYNC_SCHEMA_DIR",
        None,
        "Directory of the list schemas; default list_schemas/ next to the package.",
        "Katalog med listscheman.",
    ),
    SettingSpec(
        "SP_SYNC_ROLLUP_FOLDER",
        "Sammanställningar",
        "Document library folder the workbooks are uploaded to.",
        "Mapp för sammanställningar.",
    ),
    SettingSpec(
        "SP_SYNC_UPLOAD_CHUNK_MB",
        "4",
        "Chunk size in MiB for uploading workbooks.",
        "Storlek på uppladdningsdelar (MiB).",
    ),
    SettingSpec(
        "SP_SYNC_LANGUAGE",
        "sv",
        "Language of reports and messages: sv or en.",
        "Språk: sv eller en.",
    ),
    SettingSpec(
        "SP_SYNC_TIME_BUDGET_SECONDS",
        "1500",
        "Seconds a run may take before it stops at a page boundary (Functions timeout minus a margin).",
        "Tidsbudget per körning (s).",
    ),
    SettingSpec(
        "SP_SYNC_SCHEDULE",
        "0 0 2 * * *",
        "NCRONTAB schedule of the nightly run (6 fields: second minute hour day month weekday).",
        "Schema för nattkörningen.",
    ),
    SettingSpec(
        "SP_SYNC_SITES_FILE",
        None,
        "Optional JSON/YAML file naming several sites (each: url, lists, rollup_folder).",
        "Fil med flera webbplatser.",
    ),
    SettingSpec(
        "SP_SYNC_QUEUE",
        "sp-sync-jobs",
        "Storage queue used to fan out one job per site.",
        "Kö för jobb per webbplats.",
    ),
    SettingSpec(
        "SP_SYNC_MAIL_SENDER",
        None,
        "Mailbox the weekly digest and the failure notice are sent as, through Microsoft Graph (e.g. sp-sync@contoso.se); no mail is sent when unset.",
        "Brevlåda som e-posten skickas från.",
    ),
    SettingSpec(
        "SP_SYNC_ADMIN_MAIL",
        None,
        "Administrators' address for the failure notice (a failed or partial night, or stale data), sent once per incident.",
        "Administratörernas e-postadress.",
    ),
    SettingSpec(
        "SP_SYNC_DIGEST_SCHEDULE",
        "0 0 5,6,7 * * 1",
        "NCRONTAB schedule (UTC) of the weekly department digest; the default sends on Mondays at 06:00 Stockholm winter time (07:00 summer time), the later firings only send what an earlier one could not. Empty or off: no digest.",
        "Schema för veckosammanfattningen.",
    ),
    SettingSpec(
        "SP_SYNC_STALE_DAYS",
        "3",
        "A list whose data was last synchronised more than this many days ago is stale (failure notice).",
        "Dagar innan data räknas som inaktuella.",
    ),
    SettingSpec(
        "SP_SYNC_GRAPH_URL",
        "https://graph.microsoft.com",
        "Address of Microsoft Graph (the emulator's URL to try the mail without a tenant); tokens are always for https://graph.microsoft.com.",
        "Adress till Microsoft Graph.",
    ),
)
_SPECS = {s.name: s for s in SETTINGS}


def default_of(name: str) -> str:
    """The one default of a setting (from `SETTINGS`); "" when it has none."""
    return _SPECS[name].default or ""


_DEFAULT_AUTH = cast(AuthMode, default_of("SP_SYNC_AUTH"))
_DEFAULT_STATE = cast(StateKind, default_of("SP_SYNC_STATE"))
_DEFAULT_LANGUAGE = cast(Language, default_of("SP_SYNC_LANGUAGE"))


def _default_schema_dir() -> Path:
    """list_schemas/ next to the package in a checkout, else the copy shipped inside it."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "list_schemas", package / "list_schemas"):
        if candidate.is_dir():
            return candidate
    return package.parent / "list_schemas"


#: Test-only fault injection (never set in a deployment): kill the process at a commit point.
#: Not in `SETTINGS` because it is not a setting a user chooses; read here so that this module
#: stays the only reader of `SP_SYNC_*` variables.
CRASH_AT_VARIABLE = "SP_SYNC_STATE_CRASH_AT"


def crash_at(env: Mapping[str, str] | None = None) -> str | None:
    """The crash point the crash-safety tests ask for (`<point>[:<n>]`), or None."""
    env = os.environ if env is None else env
    return env.get(CRASH_AT_VARIABLE) or None


_QUEUE_OR_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")
#: A run longer than a day would overlap the next night's run.
MAX_TIME_BUDGET_SECONDS = 24 * 3600
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?]+$")


@dataclass(frozen=True)
class SiteConfig:
    """One site to sync: its URL, the lists (empty = all schema lists) and the rollup folder."""

    url: str
    lists: tuple[str, ...] = ()
    rollup_folder: str = default_of("SP_SYNC_ROLLUP_FOLDER")

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def name(self) -> str:
        """A short, path-safe name for state keys: the last path segment (or the host)."""
        parts = urlsplit(self.url)
        segment = parts.path.rstrip("/").rsplit("/", 1)[-1] or parts.hostname or "site"
        return re.sub(r"[^A-Za-z0-9._-]", "_", segment)


@dataclass(frozen=True)
class Settings:
    """Validated settings. Build with `Settings.from_env()`; never holds an unchecked value."""

    site_url: str | None
    auth: AuthMode = _DEFAULT_AUTH
    client_id: str | None = None
    tenant_id: str | None = None
    authority_url: str | None = None
    cert_path: Path | None = None
    cert_thumbprint: str | None = None
    ca_bundle: Path | None = None
    resource: str | None = None
    organisation: str = default_of("SP_SYNC_ORGANISATION")
    state: StateKind = _DEFAULT_STATE
    state_dir: Path = Path(default_of("SP_SYNC_STATE_DIR"))
    state_connection_setting: str = default_of("SP_SYNC_STATE_CONNECTION")
    state_connection_string: str | None = field(default=None, repr=False)
    state_container: str = default_of("SP_SYNC_STATE_CONTAINER")
    lists: tuple[str, ...] = ()
    schema_dir: Path = field(default_factory=_default_schema_dir)
    rollup_folder: str = default_of("SP_SYNC_ROLLUP_FOLDER")
    upload_chunk_mb: int = int(default_of("SP_SYNC_UPLOAD_CHUNK_MB"))
    language: Language = _DEFAULT_LANGUAGE
    time_budget_seconds: int = int(default_of("SP_SYNC_TIME_BUDGET_SECONDS"))
    schedule: str = default_of("SP_SYNC_SCHEDULE")
    sites_file: Path | None = None
    queue: str = default_of("SP_SYNC_QUEUE")
    site_configs: tuple[SiteConfig, ...] = ()
    #: AzureWebJobsStorage, the platform's own setting: the connection the job queue trigger
    #: reads, so the queue sender uses it too.
    jobs_connection_string: str | None = field(default=None, repr=False)
    mail_sender: str | None = None
    admin_mail: str | None = None
    #: "" = the digest is off.
    digest_schedule: str = default_of("SP_SYNC_DIGEST_SCHEDULE")
    stale_days: int = int(default_of("SP_SYNC_STALE_DAYS"))
    graph_url: str = default_of("SP_SYNC_GRAPH_URL")

    @property
    def sites(self) -> list[SiteConfig]:
        """The sites to sync: from SP_SYNC_SITES_FILE, or the one SP_SYNC_SITE_URL."""
        return list(self.site_configs)

    @property
    def upload_chunk_bytes(self) -> int:
        return self.upload_chunk_mb * 1024 * 1024

    def resource_for(self, site: SiteConfig) -> str:
        """The token resource for a site: SP_SYNC_RESOURCE or the site's origin."""
        return self.resource or site.origin

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting; raises one SettingsError naming every wrong setting
        (an administrator fixes them all in one go rather than one per try)."""
        env = os.environ if env is None else env
        get = _reader(env)
        problems: list[SettingsError] = []

        def checked(check: Callable[[], _T], fallback: _T) -> _T:
            try:
                return check()
            except SettingsError as exc:
                problems.append(exc)
                return fallback

        site_text = get("SP_SYNC_SITE_URL")
        site_url = (
            checked(lambda: _check_site_url("SP_SYNC_SITE_URL", site_text), None)
            if site_text is not None
            else None
        )
        auth = checked(lambda: _check_auth(get("SP_SYNC_AUTH")), _DEFAULT_AUTH)
        client_id = get("SP_SYNC_CLIENT_ID")
        tenant_id = get("SP_SYNC_TENANT_ID")
        authority_text = get("SP_SYNC_AUTHORITY_URL")
        authority_url = (
            checked(lambda: _check_authority(authority_text), None)
            if authority_text is not None
            else None
        )
        cert_path_text = get("SP_SYNC_CERT_PATH")
        cert_path = Path(cert_path_text) if cert_path_text else None
        thumbprint_text = get("SP_SYNC_CERT_THUMBPRINT")
        thumbprint = (
            checked(lambda: _check_thumbprint(thumbprint_text), None)
            if thumbprint_text is not None
            else None
        )
        if auth == "certificate":
            checked(
                lambda: _check_certificate_auth(client_id, tenant_id, authority_text, cert_path),
                None,
            )
        if tenant_id is not None and not re.fullmatch(r"[A-Za-z0-9.-]+", tenant_id):
            problems.append(
                _problem(
                    "SP_SYNC_TENANT_ID",
                    sv="måste vara ett klientorganisations-id (GUID) eller ett domännamn",
                    en="must be a tenant id (GUID) or a domain name",
                )
            )

        ca_text = get("SP_SYNC_CA_BUNDLE")
        ca_bundle = Path(ca_text) if ca_text else None
        if ca_bundle is not None and not ca_bundle.is_file():
            problems.append(_missing_file("SP_SYNC_CA_BUNDLE", ca_bundle))

        resource_text = get("SP_SYNC_RESOURCE")
        resource = (
            checked(lambda: _check_url("SP_SYNC_RESOURCE", resource_text).rstrip("/"), None)
            if resource_text is not None
            else None
        )
        organisation = checked(
            lambda: _check_organisation(get("SP_SYNC_ORGANISATION")),
            default_of("SP_SYNC_ORGANISATION"),
        )

        state = checked(lambda: _check_state(get("SP_SYNC_STATE")), _DEFAULT_STATE)
        state_dir = Path(get("SP_SYNC_STATE_DIR"))
        connection_setting = get("SP_SYNC_STATE_CONNECTION")
        if "=" in connection_setting:
            # The connection string itself rather than the name of the setting holding it:
            # accept it, and never echo it in a message.
            connection_string: str | None = connection_setting
            connection_setting = "SP_SYNC_STATE_CONNECTION"
        else:
            connection_string = env.get(connection_setting) or None
        if state == "azure" and not connection_string:
            problems.append(
                _problem(
                    "SP_SYNC_STATE_CONNECTION",
                    sv=f"SP_SYNC_STATE=azure behöver en anslutningssträng till lagringskontot i "
                    f"appinställningen {connection_setting}, som är tom",
                    en=f"SP_SYNC_STATE=azure needs a storage connection string in the app "
                    f"setting {connection_setting}, which is empty",
                )
            )
        if connection_string:
            register_secret(connection_string)
        jobs_connection_string = env.get("AzureWebJobsStorage") or None
        if jobs_connection_string:
            register_secret(jobs_connection_string)
        container = checked(
            lambda: _check_container(get("SP_SYNC_STATE_CONTAINER")),
            default_of("SP_SYNC_STATE_CONTAINER"),
        )

        lists = _split_list(get("SP_SYNC_LISTS"))
        schema_text = get("SP_SYNC_SCHEMA_DIR")
        schema_dir = Path(schema_text) if schema_text else _default_schema_dir()
        if schema_text and not schema_dir.is_dir():
            problems.append(_missing_file("SP_SYNC_SCHEMA_DIR", schema_dir, directory=True))
        rollup_folder = checked(
            lambda: _check_rollup_folder("SP_SYNC_ROLLUP_FOLDER", get("SP_SYNC_ROLLUP_FOLDER")),
            default_of("SP_SYNC_ROLLUP_FOLDER"),
        )
        chunk_mb = checked(
            lambda: _positive_int(
                "SP_SYNC_UPLOAD_CHUNK_MB", get("SP_SYNC_UPLOAD_CHUNK_MB"), maximum=250
            ),
            int(default_of("SP_SYNC_UPLOAD_CHUNK_MB")),
        )
        language = checked(lambda: _check_language(get("SP_SYNC_LANGUAGE")), _DEFAULT_LANGUAGE)
        budget = checked(
            lambda: _positive_int(
                "SP_SYNC_TIME_BUDGET_SECONDS",
                get("SP_SYNC_TIME_BUDGET_SECONDS"),
                maximum=MAX_TIME_BUDGET_SECONDS,
            ),
            int(default_of("SP_SYNC_TIME_BUDGET_SECONDS")),
        )
        schedule = checked(
            lambda: _check_schedule(get("SP_SYNC_SCHEDULE")), default_of("SP_SYNC_SCHEDULE")
        )
        queue = checked(lambda: _check_queue(get("SP_SYNC_QUEUE")), default_of("SP_SYNC_QUEUE"))
        mail_sender: str | None = checked(
            lambda: _check_mail("SP_SYNC_MAIL_SENDER", get("SP_SYNC_MAIL_SENDER")), None
        )
        admin_mail: str | None = checked(
            lambda: _check_mail("SP_SYNC_ADMIN_MAIL", get("SP_SYNC_ADMIN_MAIL")), None
        )
        digest_schedule = checked(
            lambda: _digest_schedule(
                env.get("SP_SYNC_DIGEST_SCHEDULE"), get("SP_SYNC_DIGEST_SCHEDULE")
            ),
            "",
        )
        stale_days = checked(
            lambda: _positive_int("SP_SYNC_STALE_DAYS", get("SP_SYNC_STALE_DAYS"), maximum=365),
            int(default_of("SP_SYNC_STALE_DAYS")),
        )
        graph_url = checked(
            lambda: _check_url("SP_SYNC_GRAPH_URL", get("SP_SYNC_GRAPH_URL")).rstrip("/"),
            default_of("SP_SYNC_GRAPH_URL"),
        )

        sites_text = get("SP_SYNC_SITES_FILE")
        sites_file = Path(sites_text) if sites_text else None
        site_configs: tuple[SiteConfig, ...] = ()
        if sites_file is not None:
            site_configs = checked(
                lambda: _load_sites_file(sites_file, lists, rollup_folder), site_configs
            )
        elif site_url is not None:
            site_configs = (SiteConfig(site_url, lists, rollup_folder),)
        elif site_text is None:
            problems.append(
                _problem(
                    "SP_SYNC_SITE_URL",
                    sv="saknas (eller ange flera webbplatser i SP_SYNC_SITES_FILE)",
                    en="is required (or name several sites in SP_SYNC_SITES_FILE)",
                )
            )
        if problems:
            raise SettingsError.combine(problems)

        return cls(
            site_url=site_url or site_configs[0].url,
            auth=auth,
            client_id=client_id,
            tenant_id=tenant_id,
            authority_url=authority_url,
            cert_path=cert_path,
            cert_thumbprint=thumbprint,
            ca_bundle=ca_bundle,
            resource=resource,
            organisation=organisation,
            state=state,
            state_dir=state_dir,
            state_connection_setting=connection_setting,
            state_connection_string=connection_string,
            state_container=container,
            lists=lists,
            schema_dir=schema_dir,
            rollup_folder=rollup_folder,
            upload_chunk_mb=chunk_mb,
            language=language,
            time_budget_seconds=budget,
            schedule=schedule,
            sites_file=sites_file,
            queue=queue,
            site_configs=site_configs,
            jobs_connection_string=jobs_connection_string,
            mail_sender=mail_sender,
            admin_mail=admin_mail,
            digest_schedule=digest_schedule,
            stale_days=stale_days,
            graph_url=graph_url,
        )


@dataclass(frozen=True)
class TriggerSettings:
    """What the Functions host needs when it indexes the app: the timer's schedule and the
    job queue's name. Checked by the same code as in `Settings.from_env`, so an invalid value
    fails the same way at indexing as in every run."""

    schedule: str
    queue: str
    #: SP_SYNC_DIGEST_SCHEDULE ("" = off) and whether SP_SYNC_MAIL_SENDER is set: the digest's
    #: functions are registered only when both say so.
    digest_schedule: str = ""
    mail_configured: bool = False

    @property
    def poison_queue(self) -> str:
        # The host's own naming rule for the queue it moves failed messages to.
        return f"{self.queue}-poison"

    @property
    def digest_enabled(self) -> bool:
        return bool(self.digest_schedule) and self.mail_configured

    @property
    def digest_queue(self) -> str:
        """The queue of the digest's per-site jobs (beside the nightly job queue)."""
        return f"{self.queue}-digest"


def trigger_settings(env: Mapping[str, str] | None = None) -> TriggerSettings:
    """SP_SYNC_SCHEDULE and SP_SYNC_QUEUE, validated; raises SettingsError naming the setting.

    Only these two are read at indexing time, so that any other wrong setting still leaves the
    app loaded and reported by the status endpoint and by each run.
    """
    get = _reader(os.environ if env is None else env)
    try:
        return TriggerSettings(
            schedule=_check_schedule(get("SP_SYNC_SCHEDULE")),
            queue=_check_queue(get("SP_SYNC_QUEUE")),
            digest_schedule=_digest_schedule(
                (os.environ if env is None else env).get("SP_SYNC_DIGEST_SCHEDULE"),
                get("SP_SYNC_DIGEST_SCHEDULE"),
            ),
            mail_configured=bool(get("SP_SYNC_MAIL_SENDER")),
        )
    except SettingsError as exc:
        # The Python worker may swallow an exception raised while it indexes the app and show
        # only "0 functions found" (Azure/azure-functions-python-worker#1338): log it first.
        log.error("sp-sync cannot register its functions: %s", exc)
        raise


class _Reader(Protocol):
    @overload
    def __call__(self, name: _Defaulted) -> str: ...
    @overload
    def __call__(self, name: str) -> str | None: ...


_Defaulted = Literal[
    "SP_SYNC_AUTH",
    "SP_SYNC_ORGANISATION",
    "SP_SYNC_STATE",
    "SP_SYNC_STATE_DIR",
    "SP_SYNC_STATE_CONNECTION",
    "SP_SYNC_STATE_CONTAINER",
    "SP_SYNC_ROLLUP_FOLDER",
    "SP_SYNC_UPLOAD_CHUNK_MB",
    "SP_SYNC_LANGUAGE",
    "SP_SYNC_TIME_BUDGET_SECONDS",
    "SP_SYNC_SCHEDULE",
    "SP_SYNC_QUEUE",
    "SP_SYNC_STALE_DAYS",
    "SP_SYNC_GRAPH_URL",
    "SP_SYNC_DIGEST_SCHEDULE",
]


def _reader(env: Mapping[str, str]) -> _Reader:
    """`get(name)`: the stripped value, else the table's default, else None."""

    def get(name: str) -> str | None:
        value = env.get(name)
        if value is None or not value.strip():
            return _SPECS[name].default or None
        return value.strip()

    return get  # type: ignore[return-value]


def language_from_env(env: Mapping[str, str] | None = None) -> Language:
    """SP_SYNC_LANGUAGE alone, validated as in `Settings.from_env` (for the demo, which builds
    its other settings itself)."""
    return _check_language(_reader(os.environ if env is None else env)("SP_SYNC_LANGUAGE"))


def language_or_default(env: Mapping[str, str] | None = None) -> Language:
    """SP_SYNC_LANGUAGE when it is valid, else the default: the language to report a settings
    error in (which may be the wrong SP_SYNC_LANGUAGE itself)."""
    try:
        return language_from_env(env)
    except SettingsError:
        return _DEFAULT_LANGUAGE


def _problem(name: str, *, sv: str, en: str) -> SettingsError:
    return SettingsError(name, Text(sv=sv, en=en))


def _missing_file(name: str, path: Path, *, directory: bool = False) -> SettingsError:
    if directory:
        return _problem(
            name, sv=f"katalogen {path} finns inte", en=f"directory {path} does not exist"
        )
    return _problem(name, sv=f"filen {path} finns inte", en=f"file {path} does not exist")


def _check_language(value: str) -> Language:
    language = value.lower()
    if language not in ("sv", "en"):
        raise _problem(
            "SP_SYNC_LANGUAGE",
            sv=f"okänt språk {language!r}; använd sv eller en",
            en=f"unknown language {language!r}; use sv or en",
        )
    return cast(Language, language)


def _check_auth(value: str) -> AuthMode:
    auth = value.lower().replace("-", "_")
    if auth not in ("managed_identity", "certificate"):
        raise _problem(
            "SP_SYNC_AUTH",
            sv=f"okänt inloggningssätt {auth!r}; använd managed_identity eller certificate",
            en=f"unknown mode {auth!r}; use managed_identity or certificate",
        )
    return cast(AuthMode, auth)


def _check_authority(value: str) -> str:
    url = _check_url("SP_SYNC_AUTHORITY_URL", value, https_only=True).rstrip("/")
    if not [p for p in urlsplit(url).path.split("/") if p]:
        raise _problem(
            "SP_SYNC_AUTHORITY_URL",
            sv="måste ange klientorganisationen, t.ex. https://login.microsoftonline.com/<tenant>",
            en="must name the tenant, e.g. https://login.microsoftonline.com/<tenant>",
        )
    return url


def _check_thumbprint(value: str) -> str:
    thumbprint = value.replace(":", "").upper()
    if not re.fullmatch(r"[0-9A-F]{40}", thumbprint):
        raise _problem(
            "SP_SYNC_CERT_THUMBPRINT",
            sv="måste vara 40 hexadecimala siffror (ett SHA-1-tumavtryck)",
            en="must be 40 hexadecimal digits (a SHA-1 thumbprint)",
        )
    return thumbprint


def _check_certificate_auth(
    client_id: str | None, tenant_id: str | None, authority: str | None, cert_path: Path | None
) -> None:
    # Several of these can be missing at once: report each (the caller collects them).
    problems: list[SettingsError] = []
    if not client_id:
        problems.append(
            _problem(
                "SP_SYNC_CLIENT_ID",
                sv="krävs med SP_SYNC_AUTH=certificate (appregistreringens klient-id)",
                en="is required with SP_SYNC_AUTH=certificate (the app registration's client id)",
            )
        )
    if not (tenant_id or authority):
        problems.append(
            _problem(
                "SP_SYNC_TENANT_ID",
                sv="krävs med SP_SYNC_AUTH=certificate om inte SP_SYNC_AUTHORITY_URL är satt",
                en="is required with SP_SYNC_AUTH=certificate unless SP_SYNC_AUTHORITY_URL is set",
            )
        )
    if cert_path is None:
        problems.append(
            _problem(
                "SP_SYNC_CERT_PATH",
                sv="krävs med SP_SYNC_AUTH=certificate",
                en="is required with SP_SYNC_AUTH=certificate",
            )
        )
    else:
        try:
            _check_pem("SP_SYNC_CERT_PATH", cert_path)
        except SettingsError as exc:
            problems.append(exc)
    if problems:
        raise SettingsError.combine(problems)


def _check_organisation(value: str) -> str:
    if "|" in value or any(ord(c) < 32 for c in value):
        raise _problem(
            "SP_SYNC_ORGANISATION",
            sv="får inte innehålla '|' eller styrtecken (värdet hamnar i User-Agent)",
            en="must not contain '|' or control characters (it goes into the User-Agent)",
        )
    return value


def _check_state(value: str) -> StateKind:
    state = value.lower()
    if state not in ("local", "azure"):
        raise _problem(
            "SP_SYNC_STATE",
            sv=f"okänd lagring {state!r}; använd local eller azure",
            en=f"unknown store {state!r}; use local or azure",
        )
    return cast(StateKind, state)


def _check_container(value: str) -> str:
    if not _QUEUE_OR_CONTAINER.match(value):
        raise _problem(
            "SP_SYNC_STATE_CONTAINER",
            sv=f"{value!r} är inget giltigt containernamn (3–63 gemener, siffror, enkla bindestreck)",
            en=f"{value!r} is not a valid container name (3-63 lower-case letters, digits, single hyphens)",
        )
    return value


def _check_site_url(name: str, value: str) -> str:
    return _check_url(name, value).rstrip("/")


def _check_rollup_folder(name: str, value: str) -> str:
    if any(c in value for c in '"*:<>?|#%') or value.startswith(("/", "~")):
        raise _problem(
            name,
            sv=f"{value!r} innehåller tecken som SharePoint inte tillåter i mappnamn",
            en=f"{value!r} contains characters SharePoint does not allow in folder names",
        )
    if any(part.strip() in ("", ".", "..") for part in value.replace("\\", "/").split("/")):
        # ".." would leave the document library; an empty or "." part names no folder.
        raise _problem(
            name,
            sv=f"{value!r} har en tom del, '.' eller '..'; ange mappar inne i biblioteket",
            en=f"{value!r} has an empty, '.' or '..' part; name folders inside the library",
        )
    return value


#: (lowest, highest, names) of the six NCRONTAB fields, in order.
_CRON_RANGES: tuple[tuple[int, int, tuple[str, ...]], ...] = (
    (0, 59, ()),
    (0, 59, ()),
    (0, 23, ()),
    (1, 31, ()),
    (
        1,
        12,
        tuple(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]),
    ),
    (0, 6, tuple(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])),
)


def _cron_field_ok(text: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    """One NCRONTAB field: `*`, numbers or names in range, ranges, lists and `/step`s."""

    def value(part: str) -> int | None:
        if part.isdigit() and len(part) <= 2:
            return int(part)
        if part.upper() in names:
            return names.index(part.upper()) + (low if low else 0)
        return None

    for item in text.split(","):
        base, slash, step = item.partition("/")
        if slash and not (step.isdigit() and 0 < int(step[:3]) <= high + 1 and len(step) <= 3):
            return False
        if base in ("*", "?"):
            continue
        bounds = [value(b) for b in base.split("-", 1)]
        if any(b is None or not low <= b <= high for b in bounds):
            return False
    return True


def _check_schedule(value: str, name: str = "SP_SYNC_SCHEDULE") -> str:
    schedule = " ".join(value.split())
    fields_ = schedule.split(" ")
    if (
        len(fields_) != 6
        or not all(_CRON_FIELD.match(f) for f in fields_)
        or not all(_cron_field_ok(f, *r) for f, r in zip(fields_, _CRON_RANGES, strict=True))
    ):
        raise _problem(
            name,
            sv=f"{schedule!r} är inget NCRONTAB-uttryck: det behöver 6 fält (sekund minut timme "
            "dag månad veckodag), t.ex. '0 0 2 * * *'",
            en=f"{schedule!r} is not an NCRONTAB expression: it needs 6 fields (second minute "
            "hour day month weekday), e.g. '0 0 2 * * *'",
        )
    return schedule


def _digest_schedule(raw: str | None, value: str | None) -> str:
    """SP_SYNC_DIGEST_SCHEDULE: unset → the default; set but empty, or "off" → "" (no digest).

    `raw` is the variable as set (None when unset), `value` what the reader made of it."""
    if raw is not None and (not raw.strip() or raw.strip().lower() == "off"):
        return ""
    return _check_schedule(value or "", "SP_SYNC_DIGEST_SCHEDULE")


# One plain addr-spec: no display name, no list, no quotes, no line breaks. Anything else is a
# configuration mistake (and a way to smuggle recipients into a header), not something to repair.
_MAIL_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


def is_mail_address(value: str) -> bool:
    """True for one plain address such as `foretag@myndighet.se`."""
    return len(value) <= 254 and bool(_MAIL_ADDRESS.match(value)) and ".." not in value


def _check_mail(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not is_mail_address(value):
        raise _problem(
            name,
            sv=f"{value!r} är inte en e-postadress (t.ex. sp-sync@contoso.se)",
            en=f"{value!r} is not one mail address (e.g. sp-sync@contoso.se)",
        )
    return value


def _check_queue(value: str) -> str:
    if not _QUEUE_OR_CONTAINER.match(value):
        raise _problem(
            "SP_SYNC_QUEUE",
            sv=f"{value!r} är inget giltigt könamn (3–63 gemener, siffror, enkla bindestreck)",
            en=f"{value!r} is not a valid queue name (3-63 lower-case letters, digits, single hyphens)",
        )
    return value


#: Characters RFC 3986 never allows unencoded in a URL (spaces, quotes, angle brackets…). A
#: site URL copied from a browser is already encoded; one with a raw space was typed or pasted
#: from a document, and would reach SharePoint as a different (or no) site.
_URL_FORBIDDEN = re.compile(r'[\s"<>\\^`{|}\x00-\x1f\x7f]')


def _check_url(name: str, value: str, *, https_only: bool = False) -> str:
    allowed = ("https",) if https_only else ("https", "http")
    example = "https://contoso.sharepoint.com/sites/x"
    bad = _URL_FORBIDDEN.search(value)
    if bad:
        char = "mellanslag" if bad.group() == " " else repr(bad.group())
        char_en = "a space" if bad.group() == " " else repr(bad.group())
        encoded = quote(value, safe=":/%@-._~!$&'()*+,;=")
        raise _problem(
            name,
            sv=f"{value!r} innehåller {char}, som inte får stå i en adress; "
            f"kopiera adressen från webbläsaren (kodad: {encoded})",
            en=f"{value!r} contains {char_en}, which a URL cannot hold; "
            f"copy the address from the browser (encoded: {encoded})",
        )
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:  # e.g. an unbalanced IPv6 bracket: "http://[::1"
        host = None
        parts = urlsplit("")
    if parts.scheme.lower() not in allowed or not host:
        need_sv = "en https-adress" if https_only else "en http(s)-adress"
        need_en = "an https URL" if https_only else "an http(s) URL"
        raise _problem(
            name,
            sv=f"{value!r} är inte {need_sv} (t.ex. {example})",
            en=f"{value!r} is not {need_en} (e.g. {example})",
        )
    if parts.query or parts.fragment:
        raise _problem(
            name,
            sv="får inte innehålla frågesträng (?…) eller fragment (#…)",
            en="must not contain a query string or fragment",
        )
    return value


def _check_pem(name: str, path: Path) -> None:
    if not path.is_file():
        raise _missing_file(name, path)
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise _problem(
            name,
            sv=f"kan inte läsa {path}: {exc.strerror}",
            en=f"cannot read {path}: {exc.strerror}",
        ) from exc
    if "PRIVATE KEY-----" not in text:
        raise _problem(
            name,
            sv=f"{path} innehåller ingen privat nyckel (PEM med nyckel och certifikat väntas)",
            en=f"{path} holds no private key (PEM with key and certificate expected)",
        )
    if "BEGIN CERTIFICATE-----" not in text:
        raise _problem(
            name,
            sv=f"{path} innehåller inget certifikat (PEM med nyckel och certifikat väntas)",
            en=f"{path} holds no certificate (PEM with key and certificate expected)",
        )


def _positive_int(name: str, text: str, *, maximum: int | None = None) -> int:
    if len(text.strip()) > 18:  # refuse 400-digit numbers before parsing them
        raise _problem(
            name,
            sv=f"{text[:20]!r}… är inget rimligt heltal",
            en=f"{text[:20]!r}… is not a sensible whole number",
        )
    try:
        value = int(text)
    except ValueError:
        raise _problem(
            name, sv=f"{text!r} är inget heltal", en=f"{text!r} is not a whole number"
        ) from None
    if value <= 0:
        raise _problem(
            name, sv=f"måste vara positivt, är {value}", en=f"must be positive, got {value}"
        )
    if maximum is not None and value > maximum:
        raise _problem(
            name,
            sv=f"får vara högst {maximum}, är {value}",
            en=f"must be at most {maximum}, got {value}",
        )
    return value


def _split_list(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    return tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))


def _load_sites_file(
    path: Path, default_lists: tuple[str, ...], default_folder: str
) -> tuple[SiteConfig, ...]:
    name = "SP_SYNC_SITES_FILE"
    if not path.is_file():
        raise _missing_file(name, path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _problem(
            name,
            sv=f"filen {path} är inte UTF-8-text ({exc.reason} vid byte {exc.start})",
            en=f"file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})",
        ) from exc
    except OSError as exc:
        raise _problem(
            name,
            sv=f"filen {path} kan inte läsas ({exc.strerror})",
            en=f"file {path} cannot be read ({exc.strerror})",
        ) from exc
    data: Any
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # JSON/YAML syntax errors of several kinds
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise _problem(
            name, sv=f"{path} är inte giltig {kind}: {exc}", en=f"{path} is not valid {kind}: {exc}"
        ) from exc
    if isinstance(data, dict) and "sites" in data:
        data = data["sites"]
    if not isinstance(data, list) or not data:
        raise _problem(
            name,
            sv=f"{path} måste innehålla en icke-tom lista med webbplatser "
            "(var och en med `url`, `lists`, `rollup_folder`)",
            en=f"{path} must hold a non-empty list of sites (each with url, lists, rollup_folder)",
        )
    sites: list[SiteConfig] = []
    for index, entry in enumerate(data, start=1):
        if not isinstance(entry, dict) or not entry.get("url"):
            raise _problem(
                name,
                sv=f"{path}: webbplats nr {index} saknar url",
                en=f"{path}: site #{index} has no url",
            )
        # Each value passes the same check as the setting it stands in for (SP_SYNC_SITE_URL,
        # SP_SYNC_LISTS, SP_SYNC_ROLLUP_FOLDER): a sites file is not a way around validation.
        url = _check_site_url(name, str(entry["url"]))
        raw_lists = entry.get("lists", list(default_lists))
        if isinstance(raw_lists, str):
            lists = _split_list(raw_lists)
        elif isinstance(raw_lists, list) and all(isinstance(x, str) for x in raw_lists):
            lists = tuple(dict.fromkeys(t.strip() for t in raw_lists if t.strip()))
        else:
            raise _problem(
                name,
                sv=f"{path}: webbplats nr {index} ({url}) har `lists` som inte är en lista med titlar",
                en=f"{path}: site #{index} ({url}) has lists that are not a list of titles",
            )
        folder_text = entry.get("rollup_folder")
        if folder_text is None or not str(folder_text).strip():
            folder = default_folder
        else:
            try:
                folder = _check_rollup_folder(name, str(folder_text).strip())
            except SettingsError as exc:
                problem = exc.problems[0][1]
                raise _problem(
                    name,
                    sv=f"{path}: webbplats nr {index} ({url}): rollup_folder {problem.sv}",
                    en=f"{path}: site #{index} ({url}): rollup_folder {problem.en}",
                ) from None
        sites.append(SiteConfig(url, lists, folder))
    urls = [s.url.lower() for s in sites]
    if len(set(urls)) != len(urls):
        raise _problem(
            name,
            sv=f"{path} anger samma webbplats två gånger",
            en=f"{path} names the same site twice",
        )
    return tuple(sites)


def settings_markdown_table() -> str:
    """The README's settings table, generated from `SETTINGS`."""
    lines = ["| Setting | Default | Description |", "|---|---|---|"]
    for spec in SETTINGS:
        default = f"`{spec.default}`" if spec.default else "—"
        lines.append(f"| `{spec.name}` | {default} | {spec.description} |")
    return "\n".join(lines)


def example_local_settings() -> dict[str, Any]:
    """`local.settings.example.json` content (Functions Core Tools format)."""
    values: dict[str, str] = {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    }
    for spec in SETTINGS:
        values[spec.name] = spec.default or ""
    # In the Functions app state must live in Blob Storage: an instance's disk is neither
    # durable nor shared, and the per-site fan-out coordinates through the state store.
    values["SP_SYNC_STATE"] = "azure"
    return {"IsEncrypted": False, "Values": values}
