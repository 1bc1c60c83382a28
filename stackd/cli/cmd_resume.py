"""`stackd resume`: the stack's paused rolling update goes on.

An update whose batch failed under `failure_action: pause` stays paused (no batch
runs, `ps` and `history` say why) until the next `up` makes a new revision, or until
this: the current revision's update runs on from where it stopped, its failed batches
tried again, with `up`'s progress display.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

HELP = "Resume the stack's paused rolling update"


def add_arguments(p: argparse.ArgumentParser) -> None:
    del p  # no arguments: the project is found as for every verb


def run(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from stackd.cli.client import Client
    from stackd.cli.cmd_up import apply
    from stackd.cli.stackref import project_of

    project = project_of(args)
    with Client() as client:
        _, ok = apply(client, None, path=f"/v1/stacks/{quote(project)}/resume")
    return 0 if ok else 1
