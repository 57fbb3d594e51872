"""Who may receive mail: one mailbox or group address per department, from the reference data.

The addresses live next to the departments in `list_schemas/reference.yaml`:

    departments:
      - {name: Företag, en: Business, mail: foretag@myndighet.se}

The allow-list is built only from there (plus the administrators' address from the settings for
the failure notice). The Graph sender checks every recipient against it again before anything
leaves the process, so a digest can never go to an address that is not configured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sp_sync.errors import ConfigurationError, SchemaError
from sp_sync.settings import is_mail_address

__all__ = [
    "RecipientDirectory",
    "UnconfiguredRecipientError",
    "is_mail_address",
    "load_recipients",
]


class UnconfiguredRecipientError(ConfigurationError):
    """A mail was addressed to someone who is not configured; nothing was sent."""


@dataclass(frozen=True)
class RecipientDirectory:
    """Department → address, and the administrators' address. Addresses compare case-blind."""

    departments: Mapping[str, str] = field(default_factory=dict)
    admin: str | None = None

    def for_department(self, department: str) -> str | None:
        """The department's address, or None when none is configured (then no digest)."""
        return self.departments.get(department)

    def allowed(self) -> frozenset[str]:
        """Every address mail may go to."""
        out = {a.lower() for a in self.departments.values()}
        if self.admin:
            out.add(self.admin.lower())
        return frozenset(out)

    def check(self, recipients: Iterable[str]) -> None:
        """Raise UnconfiguredRecipientError unless every recipient is configured."""
        allowed = self.allowed()
        unknown = sorted({r for r in recipients if r.lower() not in allowed})
        if unknown:
            raise UnconfiguredRecipientError(
                "Mail to an address that is not configured was refused (nothing was sent): "
                + ", ".join(unknown)
                + ". Addresses come from list_schemas/reference.yaml (departments: mail) and "
                "SP_SYNC_ADMIN_MAIL."
            )

    def with_admin(self, admin: str | None) -> RecipientDirectory:
        if admin is not None and not is_mail_address(admin):
            raise ConfigurationError(f"SP_SYNC_ADMIN_MAIL is not a mail address: {admin!r}.")
        return RecipientDirectory(dict(self.departments), admin)


def load_recipients(
    schema_dir: Path | str, *, known_departments: Iterable[str] | None = None
) -> RecipientDirectory:
    """Read `mail:` of each department in `<schema_dir>/reference.yaml`.

    A department without `mail` gets no digest. A malformed address, or an address given for a
    department that the schemas do not know, is a SchemaError naming the department.
    """
    path = Path(schema_dir) / "reference.yaml"
    try:
        doc: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SchemaError([f"{path}: cannot be read ({exc.strerror})."]) from exc
    except yaml.YAMLError as exc:
        raise SchemaError([f"{path}: the file is not valid YAML."]) from exc
    entries = doc.get("departments") if isinstance(doc, Mapping) else None
    problems: list[str] = []
    out: dict[str, str] = {}
    known = set(known_departments) if known_departments is not None else None
    for entry in entries or ():
        if not isinstance(entry, Mapping) or "mail" not in entry:
            continue
        name = str(entry.get("name") or "")
        mail = entry.get("mail")
        if not isinstance(mail, str) or not is_mail_address(mail.strip()):
            problems.append(
                f"{path.name}: the department '{name}' has 'mail: {mail}', which is not one "
                "plain mail address (e.g. foretag@myndighet.se)."
            )
            continue
        if known is not None and name not in known:
            problems.append(f"{path.name}: 'mail' is given for the unknown department '{name}'.")
            continue
        out[name] = mail.strip()
    if problems:
        raise SchemaError(problems)
    return RecipientDirectory(out)
