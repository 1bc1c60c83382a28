"""`stackd rollback [SERVICE]`: the stack's previous applied revision, again.

A rollback is a new revision (cause `rollback`) holding the stack of the revision
before the current one — or the current stack with SERVICE as it was there — applied
like any other, rolling update and all; `stackd history` lists it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

HELP = "Apply the revision before the current one again (only SERVICE of it, if given)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("service", nargs="?", metavar="SERVICE",
                   help="roll back only this service; the others stay as they are")


def run(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from stackd.cli.client import Client
    from stackd.cli.cmd_up import apply
    from stackd.cli.stackref import project_of

    project = project_of(args)
    params = {"service": args.service} if args.service else None
    with Client() as client:
        _, ok = apply(client, None, path=f"/v1/stacks/{quote(project)}/rollback",
                      params=params)
    return 0 if ok else 1
