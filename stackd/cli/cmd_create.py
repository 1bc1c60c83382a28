"""`stackd create [SERVICE…]`: make the stack's containers and start none of them
(compose's `create`, the same as `up --no-start`). The daemon holds what it makes, so
they stay created until `start` or `up` (reconciler/asks.py)."""

from __future__ import annotations

import argparse

HELP = "Create the stack's containers without starting them (like docker compose create)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--build", action="store_true", help="build images before creating")
    p.add_argument("--pull", choices=["always", "missing", "never"], default=None,
                   help="pull images (default: each service's pull_policy, else missing)")
    p.add_argument("--remove-orphans", action="store_true",
                   help="remove containers of services no longer in the stack files")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--force-recreate", action="store_true",
                   help="recreate containers even if their configuration is unchanged")
    g.add_argument("--no-recreate", action="store_true",
                   help="keep existing containers even if their configuration changed")
    p.add_argument("--scale", action="append", default=[], metavar="SERVICE=N",
                   help="set the number of replicas of a service (repeatable)")
    p.add_argument("services", nargs="*", metavar="SERVICE")


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.cli.cmd_up import apply, parse_scale
    from stackd.cli.stackref import source_from_args

    options = {
        "services": list(args.services), "remove_orphans": args.remove_orphans,
        "force_recreate": args.force_recreate, "no_recreate": args.no_recreate,
        "build": args.build, "pull": args.pull, "scale": parse_scale(args.scale),
        "no_start": True,
    }
    with Client() as client:
        _project, ok = apply(client, {"source": source_from_args(args), "options": options})
    return 0 if ok else 1
