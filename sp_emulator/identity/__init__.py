"""The emulator's identity service: managed identity, OpenID authority, tokens and grants.

SharePoint itself only checks tokens; issuing them is Entra ID's (and App Service's) job. The
emulator plays both, here, so the SharePoint side (`sp_emulator.server`) only asks
`authenticate`/`authorize` and knows nothing about certificates or JWTs.
"""

from __future__ import annotations

from sp_emulator.identity.certificates import generate_client_certificate
from sp_emulator.identity.service import (
    EMULATOR_TENANT_ID,
    MI_ROUTE,
    SHAREPOINT_PRINCIPAL_ID,
    AuthService,
    Identity,
)

__all__ = [
    "EMULATOR_TENANT_ID",
    "MI_ROUTE",
    "SHAREPOINT_PRINCIPAL_ID",
    "AuthService",
    "Identity",
    "generate_client_certificate",
]
