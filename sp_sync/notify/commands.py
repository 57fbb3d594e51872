"""`sp-sync digest [--dry-run] [--department NAME] [--out DIR]`: the CLI side of the digest.

`sp_sync.cli` registers the parser with `add_digest_parser` and calls `run_digest_command` per
site, so the command's options, texts and exit codes live next to the code they drive.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sp_sync.errors import ExitCode

if TYPE_CHECKING:  # imported when the command runs: `sp-sync --help` must stay light
    from sp_sync.notify.entry import MailConfig, MailRuntime, SiteLike

__all__ = ["add_digest_parser", "run_digest_command"]

DESCRIPTION = (
    "Send this week's digest to each department that has something to read: feedback received "
    "since the last digest, overdue items (oldest first) and items due in the next 14 days, with "
    "links. Each department gets it once per week, however often the command runs. Reads the "
    "synchronised state only (run `sp-sync sync` or `run` first). Settings: SP_SYNC_MAIL_SENDER, "
    "SP_SYNC_ADMIN_MAIL, SP_SYNC_LANGUAGE, the department addresses in list_schemas/reference.yaml "
    "(departments: mail). Exit codes: 0 sent or nothing to send, 2 configuration, 3 permission, "
    "6 some mail must be retried (the next run does it, nothing is sent twice)."
)


def add_digest_parser(
    sub: Any, add_common: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    """Add the `digest` command to the CLI's subparsers."""
    p: argparse.ArgumentParser = sub.add_parser(
        "digest",
        help="send (or --dry-run: preview) the weekly digest to each department",
        description=DESCRIPTION,
    )
    add_common(p)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="render the digests and print their subjects; send and record nothing",
    )
    p.add_argument(
        "--department",
        metavar="NAME",
        help="only this department (its name or its English label)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="also save each digest as .html and .eml here"
    )
    return p


def run_digest_command(
    args: argparse.Namespace, runtime: MailRuntime, settings: MailConfig, site: SiteLike
) -> tuple[int, dict[str, Any], str]:
    """(exit code, JSON result, text) of the digest for one site."""
    from sp_sync.notify.entry import digest_site

    result = digest_site(
        runtime,
        settings,
        site,
        dry_run=bool(args.dry_run),
        department=args.department,
        out_dir=args.out,
    )
    code = ExitCode.RETRY_LATER if result.needs_retry else ExitCode.OK
    return int(code), result.to_dict(), result.format_text(settings.language)
