"""sp-sync's error tree, split by what the caller can do about it.

    SpSyncError
    ├── RetryableError          try again later (the run is incomplete, nothing is lost)
    │   ├── ThrottledError      429/503 after the retry budget was spent
    │   ├── TransientError      5xx, dropped connections, timeouts
    │   └── RunLockedError      another run holds the lock on this state
    │       └── RunLockLostError  this run's lock expired or was taken over; stop writing
    ├── ConfigurationError      fix a setting, a schema file or the site
    │   ├── SettingsError       a wrong or missing setting (names the setting)
    │   ├── SchemaError         a malformed list schema file (names file and position)
    │   ├── NotFoundError       a site, list, folder or file that does not exist
    │   └── DriftError          the site lacks a column the reports need
    ├── PermissionDeniedError   fix permissions (grants, certificate, identity)
    │   └── AuthenticationError the token could not be obtained or was refused (401)
    └── FatalError              give up: a bug, a threshold error, corrupted state
        ├── ThresholdError      SharePoint's list view threshold (SPQueryThrottledException)
        ├── StateError          the state store holds something unreadable or conflicting
        │   ├── StateConflictError  a conditional write lost: another run wrote first
        │   └── LocalDiskError  the state directory is full, read-only or not writable
        └── UploadError         a workbook could not be uploaded (the previous one is intact)

Errors keep the HTTP status, SharePoint's error code and the request id, and are raised with
`raise X from exc` so the cause stays visible in logs. Messages never contain secrets or tokens
(URLs go through `sp_sync.redact`).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

from sp_sync.i18n import Plural, Text, normalise_language


class ExitCode(IntEnum):
    """Process exit codes of the CLI and the demo (documented in the README), one per kind of
    error below, so a script can tell "fix a setting" from "try again later"."""

    OK = 0
    UNEXPECTED = 1  # a bug, or a fatal error such as corrupted state
    CONFIGURATION = 2  # settings, schema, site/list not found
    PERMISSION = 3  # token refused, grant missing
    DRIFT = 4  # a column the reports need is gone, or `check` found drift
    UPLOAD = 5  # a workbook could not be uploaded
    RETRY_LATER = 6  # throttled, unreachable, or a partial run that continues next time
    LOCKED = 7  # another run holds the lock
    PARTIAL = 8  # some lists failed
    LOCAL_DISK = 9  # the state directory is full, read-only or not writable (names it)
    INTERRUPTED = 130  # Ctrl+C (128 + SIGINT, as shells report it)


class SpSyncError(Exception):
    """Base of all sp-sync errors. `str(err)` is a plain sentence meant for the user."""

    #: Process exit code the CLI uses for this kind of error.
    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(
        self,
        message: str | Text,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        text: Text | None = None,
    ) -> None:
        if isinstance(message, Text):
            # The usual way: one bilingual sentence. `message` (logs, JSON) stays English.
            text, message = message, message.en
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        #: The message in both languages where the raiser wrote both; `render()` picks one.
        self.text = text

    def __str__(self) -> str:
        return self.message

    def render(self, language: str) -> str:
        """The message for a person reading `language` (the English `message` when the raiser
        wrote no translation)."""
        return self.text.render(language) if self.text is not None else self.message

    def as_text(self) -> Text:
        """The message in both languages (the English one twice when only that was written)."""
        return self.text or Text(sv=self.message, en=self.message)

    def details(self) -> dict[str, object]:
        """A JSON-friendly description for run summaries."""
        out: dict[str, object] = {"error": type(self).__name__, "message": self.message}
        if self.text is not None and self.text.sv != self.message:
            # The Swedish twin, so a stored run summary prints in either language.
            out["message_sv"] = self.text.sv
        if self.status is not None:
            # "http_status", not "status": a run or job status word shares dicts with it
            out["http_status"] = self.status
        if self.code:
            out["code"] = self.code
        if self.request_id:
            out["request_id"] = self.request_id
        return out


class RetryableError(SpSyncError):
    exit_code = ExitCode.RETRY_LATER


class ThrottledError(RetryableError):
    pass


class TransientError(RetryableError):
    pass


class RunLockedError(RetryableError):
    exit_code = ExitCode.LOCKED


class RunLockLostError(RunLockedError):
    """The run's lock expired or was taken over; the run must stop writing state."""


class ConfigurationError(SpSyncError):
    exit_code = ExitCode.CONFIGURATION


_ONE_SETTING = Text(sv="Inställningen {setting}: {problem}", en="Setting {setting}: {problem}")
#: A command-line option (`--list`) is not a setting: named as what it is.
_ONE_OPTION = Text(sv="Flaggan {setting}: {problem}", en="Option {setting}: {problem}")
_MANY_SETTINGS = Text(
    sv="{count} inställningar är fel (rätta alla, sedan kör igen):",
    en="{count} settings are wrong (fix them all, then run again):",
)
_MANY_OPTIONS = Text(
    sv="{count} flaggor är fel (rätta alla, sedan kör igen):",
    en="{count} options are wrong (fix them all, then run again):",
)


class SettingsError(ConfigurationError):
    """One or more wrong settings, each named. `setting` and `problem` (English) describe the
    first; `problems` holds every (setting, problem in both languages), so that an
    administrator fixes all of them in one go (see `combine`)."""

    def __init__(self, setting: str, problem: str | Text) -> None:
        text = problem if isinstance(problem, Text) else Text(sv=problem, en=problem)
        self.setting = setting
        self.problem = text.en
        self.problems: tuple[tuple[str, Text], ...] = ((setting, text),)
        super().__init__(self.render("en"))

    @classmethod
    def combine(cls, errors: Sequence[SettingsError]) -> SettingsError:
        """One error reporting every problem of `errors` (in order; at least one)."""
        if len(errors) == 1:
            return errors[0]
        first = errors[0]
        combined = cls(first.setting, first.problems[0][1])
        combined.problems = tuple(p for e in errors for p in e.problems)
        combined.message = combined.render("en")
        return combined

    def render(self, language: str) -> str:
        lang = normalise_language(language)
        lines = [
            (_ONE_OPTION if name.startswith("--") else _ONE_SETTING).render(
                lang, setting=name, problem=text.render(lang)
            )
            for name, text in self.problems
        ]
        if len(lines) == 1:
            return lines[0]
        options = all(name.startswith("--") for name, _ in self.problems)
        head = (_MANY_OPTIONS if options else _MANY_SETTINGS).render(lang, count=len(lines))
        return head + "".join(f"\n  - {line}" for line in lines)


_SCHEMA_PROBLEMS = Text(
    sv="Listschemana har {count}:\n{problems}", en="The list schemas have {count}:\n{problems}"
)
_PROBLEMS = Plural("problem", "problem", "problem", "problems")


class SchemaError(ConfigurationError):
    """Malformed list schema files; each problem names its file and position (the problems
    themselves are written by the loader)."""

    def __init__(self, problems: list[str]) -> None:
        listed = "\n".join(f"  - {p}" for p in problems)
        counted = Text(
            sv=_PROBLEMS.render("sv", len(problems)), en=_PROBLEMS.render("en", len(problems))
        )
        super().__init__(_SCHEMA_PROBLEMS.fill(count=counted, problems=listed))
        self.problems = problems


class NotFoundError(ConfigurationError):
    pass


class DriftError(ConfigurationError):
    exit_code = ExitCode.DRIFT


class PermissionDeniedError(SpSyncError):
    exit_code = ExitCode.PERMISSION


class AuthenticationError(PermissionDeniedError):
    pass


class FatalError(SpSyncError):
    exit_code = ExitCode.UNEXPECTED


class ThresholdError(FatalError):
    pass


class StateError(FatalError):
    pass


class StateConflictError(StateError):
    """The manifest or document changed since it was read (another run wrote it)."""


class LocalDiskError(StateError):
    """The local state directory cannot be written: disk full, read-only, no permission."""

    exit_code = ExitCode.LOCAL_DISK


class UploadError(FatalError):
    exit_code = ExitCode.UPLOAD
