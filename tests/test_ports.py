"""The typed seams: the real client and the sync tests' fake both satisfy `SharePointSource`.

The functions below are checked by mypy when it runs over tests/ (a `SharePointClient` or a
`FakeSharePoint` passed where the engine wants a `SharePointSource`); the test checks the same
at run time, member by member, so a method renamed on one side fails here too.
"""

from __future__ import annotations

import inspect

import pytest

from sp_sync.sharepoint import SharePointClient
from sp_sync.sync.ports import SharePointSource
from tests.sync.fakes import FakeSharePoint


def _as_source_real(client: SharePointClient) -> SharePointSource:
    return client


def _as_source_fake(client: FakeSharePoint) -> SharePointSource:
    return client


def _members() -> list[str]:
    return [
        name
        for name, value in vars(SharePointSource).items()
        if callable(value) and not name.startswith("_")
    ]


@pytest.mark.parametrize("implementation", [SharePointClient, FakeSharePoint])
def test_implementations_have_every_member_with_compatible_keywords(
    implementation: type,
) -> None:
    assert _members(), "the protocol lists the engine's reads"
    for name in _members():
        wanted = inspect.signature(getattr(SharePointSource, name))
        have = inspect.signature(getattr(implementation, name))
        # Keyword-only parameters the engine passes by name must exist under that name.
        for param in wanted.parameters.values():
            if param.kind is inspect.Parameter.KEYWORD_ONLY:
                assert param.name in have.parameters, (implementation.__name__, name, param.name)
        positional = [
            p for p in wanted.parameters.values() if p.kind is inspect.Parameter.POSITIONAL_ONLY
        ]
        have_positional = [
            p
            for p in have.parameters.values()
            if p.kind
            in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ]
        assert len(have_positional) >= len(positional), (implementation.__name__, name)
