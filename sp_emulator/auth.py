"""Former home of the identity service, now `sp_emulator.identity`; kept for existing imports."""

from __future__ import annotations

from sp_emulator.identity import (
    EMULATOR_TENANT_ID,
    SHAREPOINT_PRINCIPAL_ID,
    AuthService,
    Identity,
    generate_client_certificate,
)

__all__ = [
    "EMULATOR_TENANT_ID",
    "SHAREPOINT_PRINCIPAL_ID",
    "AuthService",
    "Identity",
    "generate_client_certificate",
]
