"""`stackd create [SERVICE…]`: make the stack's containers and start none of them
(compose's `create`, the same as `up --no-start`). The daemon holds what it makes, so
they stay created until `start` or `up` (reconciler/asks.py)."""

from __future__ import annotations

import argparse

HELP = "Create the stack's containers without starting them (like docker compose create)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from stackd.cli.cmd_up import add_make_arguments, add_scale_arguments

    add_make_arguments(p, before="creating")
    add_scale_arguments(p)


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.cli.cmd_up import apply, hidden_progress, make_options
    from stackd.cli.stackref import source_from_args

    options = {**make_options(args), "no_start": True}
    with Client() as client:
        _project, ok = apply(client, {"source": source_from_args(args, args.services),
                                      "options": options}, hidden=hidden_progress(args))
    return 0 if ok else 1
