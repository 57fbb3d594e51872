"""Service-level responses: the form digest (`/_api/contextinfo`) and `$batch`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sp_emulator import odata
from sp_emulator.admin.observation import Digests
from sp_emulator.batch import handle_batch
from sp_emulator.http import Request, Response
from sp_emulator.model import Backend

# What SharePoint Online reports as its build in `contextinfo` (any recent value will do).
LIBRARY_VERSION = "16.0.25012.12006"


class ServiceResponses:
    """`contextinfo` issues digests; `$batch` runs each part through the app's dispatch."""

    def __init__(
        self, backend: Backend, digests: Digests, dispatch_sub: Callable[[Request], Response]
    ) -> None:
        self.backend = backend
        self.digests = digests
        self.dispatch_sub = dispatch_sub

    def contextinfo(self, request: Request, m: Any) -> Response:
        self.backend.get_site(request.site)
        site_url = request.site_url
        return odata.value(
            request,
            "GetContextWebInformation",
            {
                "__metadata": {"type": "SP.ContextWebInformation"},
                "FormDigestTimeoutSeconds": Digests.TIMEOUT,
                "FormDigestValue": self.digests.issue(),
                "LibraryVersion": LIBRARY_VERSION,
                "SiteFullUrl": site_url,
                "SupportedSchemaVersions": {
                    "__metadata": {"type": "Collection(Edm.String)"},
                    "results": ["14.0.0.0", "15.0.0.0"],
                },
                "WebFullUrl": site_url,
            },
        )

    def batch(self, request: Request, m: Any) -> Response:
        return handle_batch(request, self.dispatch_sub)
