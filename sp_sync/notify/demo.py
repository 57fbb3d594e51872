"""The digest in `make demo`: sent through the emulator's Graph stand-in, saved as .html/.eml.

The repository's reference.yaml configures no addresses (a deployment adds its own), so the demo
gives each department an address under the reserved `.example` domain (RFC 2606): the mail goes
only to the emulator, and nothing could ever be delivered to it.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from sp_sync.auth import TokenProvider
from sp_sync.notify.entry import MailRuntime, SiteLike
from sp_sync.notify.recipients import RecipientDirectory
from sp_sync.notify.site import MailSettings, SiteMailResult, run_site_digest
from sp_sync.schema.model import SchemaSet

__all__ = ["DEMO_ADMIN", "DEMO_DOMAIN", "DEMO_SENDER", "demo_digests", "demo_recipients"]

DEMO_DOMAIN = "regionarbete.example"
DEMO_SENDER = f"sp-sync@{DEMO_DOMAIN}"
DEMO_ADMIN = f"it-drift@{DEMO_DOMAIN}"


def _local_part(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name.lower()).encode("ascii", "ignore").decode()
    return "".join(ch if ch.isalnum() else "-" for ch in folded).strip("-") or "avdelning"


def demo_recipients(schemas: SchemaSet) -> RecipientDirectory:
    """foretag@regionarbete.example, regioner@… for every department, and the demo admin."""
    return RecipientDirectory(
        {d.name: f"{_local_part(d.name)}@{DEMO_DOMAIN}" for d in schemas.reference.departments},
        DEMO_ADMIN,
    )


def demo_digests(
    runtime: MailRuntime,
    site: SiteLike,
    *,
    graph_url: str,
    token_provider: TokenProvider,
    out_dir: Path,
    language: str = "sv",
) -> SiteMailResult:
    """Send this week's digests of the demo site to the emulator and save them in `out_dir`."""
    return run_site_digest(
        store=runtime.store,
        site_url=site.url,
        site_name=site.name,
        schemas=runtime.schemas,
        mail=MailSettings(DEMO_SENDER, DEMO_ADMIN, graph_url=graph_url),
        token_provider=token_provider,
        now=runtime.now(),
        language=language,
        out_dir=out_dir,
        recipients=demo_recipients(runtime.schemas),
    )
