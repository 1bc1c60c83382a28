"""`stackd scale SERVICE=N…`: set replica counts (an `up -d --scale` of those services only)."""

from __future__ import annotations

import argparse

HELP = "Set the number of replicas of services"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-deps", action="store_true", help="don't start linked services")
    p.add_argument("scales", nargs="+", metavar="SERVICE=N")


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.cli.cmd_up import apply, parse_scale
    from stackd.cli.stackref import source_from_args

    scale = parse_scale(args.scales)
    options = {"services": sorted(scale), "scale": scale, "no_deps": args.no_deps}
    with Client() as client:
        _, ok = apply(client, {"source": source_from_args(args, sorted(scale)),
                               "options": options})
    return 0 if ok else 1
