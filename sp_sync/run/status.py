"""The status words a run, a list job and a rollup can have: one closed set each (issue 11,
item 7). `--json`, the run documents and the status endpoint show only these words; a value
outside its set is refused where it is written, so a typo can be neither stored nor shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

__all__ = [
    "ListStatus",
    "RollupStatus",
    "RunStatus",
    "check_run_document",
    "checked",
]


class RunStatus(StrEnum):
    """A whole run of one site (the run summary, the site's "last run")."""

    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"


class ListStatus(StrEnum):
    """One list of a Functions run (its entry in the run document)."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    CONTINUES = "continues"
    DONE = "done"
    FAILED = "failed"


class RollupStatus(StrEnum):
    """One site's rollup in a Functions run."""

    WAITING = "waiting"
    CLAIMED = "claimed"
    DONE = "done"
    #: Not finished because a newer run's workbooks reached the site first: the site keeps them.
    SUPERSEDED = "superseded"
    FAILED = "failed"


E = TypeVar("E", bound=StrEnum)


def checked(kind: type[E], value: object) -> E:
    """`value` as a member of `kind`; ValueError naming the allowed words otherwise (a typo in
    the code is a bug to be found by the tests, never a word stored for a user to read)."""
    if isinstance(value, str) and value in kind.__members__.values():
        return kind(value)
    allowed = ", ".join(m.value for m in kind)
    raise ValueError(f"{value!r} is not a {kind.__name__} (one of {allowed})")


def check_run_document(doc: Mapping[str, Any]) -> None:
    """Every status in a run document is from its set (called before each write)."""
    for entry in (doc.get("sites") or {}).values():
        for list_entry in entry.get("lists", {}).values():
            checked(ListStatus, list_entry.get("status"))
        checked(RollupStatus, entry.get("rollup", {}).get("status"))
        summary = entry.get("rollup", {}).get("summary")
        if isinstance(summary, Mapping) and "status" in summary:
            checked(RunStatus, summary["status"])
