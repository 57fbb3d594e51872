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

from sp_sync.errors import ConfigurationError
from sp_sync.i18n import Text
from sp_sync.schema.model import SchemaSet
from sp_sync.settings import is_mail_address

__all__ = [
    "RecipientDirectory",
    "UnconfiguredRecipientError",
    "is_mail_address",
    "recipients_from_schemas",
]


_NOT_CONFIGURED = Text(
    sv="E-post till en adress som inte är konfigurerad stoppades (inget skickades): {addresses}. "
    "Adresserna kommer från list_schemas/reference.yaml (departments: mail) och "
    "SP_SYNC_ADMIN_MAIL.",
    en="Mail to an address that is not configured was refused (nothing was sent): {addresses}. "
    "Addresses come from list_schemas/reference.yaml (departments: mail) and "
    "SP_SYNC_ADMIN_MAIL.",
)
_BAD_ADMIN = Text(
    sv="SP_SYNC_ADMIN_MAIL är inte en e-postadress: {admin}.",
    en="SP_SYNC_ADMIN_MAIL is not a mail address: {admin}.",
)


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
            raise UnconfiguredRecipientError(_NOT_CONFIGURED.fill(addresses=", ".join(unknown)))

    def with_admin(self, admin: str | None) -> RecipientDirectory:
        if admin is not None and not is_mail_address(admin):
            raise ConfigurationError(_BAD_ADMIN.fill(admin=repr(admin)))
        return RecipientDirectory(dict(self.departments), admin)


def recipients_from_schemas(schemas: SchemaSet, admin: str | None = None) -> RecipientDirectory:
    """Department → `mail:` from the schemas' reference data (validated by the loader), plus
    the administrators' address (SP_SYNC_ADMIN_MAIL). A department without `mail` gets no digest."""
    departments = {d.name: d.mail for d in schemas.reference.departments if d.mail}
    return RecipientDirectory(departments).with_admin(admin)
