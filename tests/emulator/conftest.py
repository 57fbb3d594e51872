"""Shared fixtures for the emulator's own suite: a running emulator and a wired office365 client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from office365.sharepoint.client_context import ClientContext

from sp_emulator import SharePointEmulator


@pytest.fixture
def emulator() -> Iterator[SharePointEmulator]:
    """A fresh emulator with site `x` (and `y`) on a free loopback port."""
    with SharePointEmulator(sites=["x", "y"]) as emu:
        yield emu


@pytest.fixture
def client(emulator: SharePointEmulator) -> ClientContext:
    """An office365 ClientContext for site `x`, authenticated with an emulator-issued token."""
    return make_client(emulator, "x")


def make_client(
    emu: SharePointEmulator, site: str = "x", session: requests.Session | None = None
) -> ClientContext:
    token = emu.issue_token()
    ctx = ClientContext(emu.site_url(site)).with_access_token(
        lambda: {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
    )
    if session is not None:
        ctx.with_transport(session=session)
    return ctx


@pytest.fixture
def raw(emulator: SharePointEmulator) -> Callable[..., requests.Response]:
    """Raw HTTP against site `x`: raw("GET", "/_api/web", fmt="verbose", json=...)."""
    session = requests.Session()
    token = emulator.issue_token()

    def call(
        method: str,
        path: str,
        *,
        fmt: str = "verbose",
        site: str = "x",
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        accept = {
            "verbose": "application/json;odata=verbose",
            "minimal": "application/json;odata=minimalmetadata",
            "nometadata": "application/json;odata=nometadata",
            "json": "application/json",
        }[fmt]
        h = {"Authorization": f"Bearer {token}", "Accept": accept}
        if headers:
            h.update(headers)
        url = path if path.startswith("http") else emulator.site_url(site) + path
        return session.request(method, url, headers=h, timeout=30, **kwargs)

    return call
