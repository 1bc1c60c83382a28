"""`stackd network ls | inspect NAME | rm NAME… | prune`: the host's stack networks.

It reads and changes the state store and the host directly (not through the daemon's
API, through `daemon.host_verbs.NetworkAdmin`): networks are host objects, and `rm`/`prune`
must work to clean up after a daemon that is gone.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "List, inspect and remove networks (ls, inspect, rm, prune)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="subverb", required=True, metavar="{ls,inspect,rm,prune}")
    ls = sub.add_parser("ls", help="list networks")
    ls.add_argument("--format", choices=["table", "json"], default="table")
    ls.add_argument("-q", "--quiet", action="store_true", help="only names")
    ins = sub.add_parser("inspect", help="a network with its containers and ports, as JSON")
    ins.add_argument("names", nargs="+", metavar="NAME")
    rm = sub.add_parser("rm", help="remove networks no container uses")
    rm.add_argument("names", nargs="+", metavar="NAME")
    sub.add_parser("prune", help="remove every network no container uses")


def table(rows: list[dict[str, Any]]) -> str:
    header = ("NAME", "PROJECT", "BRIDGE", "SUBNET", "GATEWAY", "INTERNAL")
    from stackd.cli.table import render

    return render(header, [(r["name"], r["project"], r["bridge"], r["subnet"], r["gateway"],
                            "yes" if r["internal"] else "") for r in rows])


def run(args: argparse.Namespace) -> int:
    from stackd.daemon.host_verbs import NetworkAdmin
    from stackd.roots import Roots

    with NetworkAdmin(Roots.from_env()) as admin:
        if args.subverb == "ls":
            rows = [admin.describe(key) for key in admin.network_keys()]
            if args.quiet:
                print("\n".join(r["name"] for r in rows))
            elif args.format == "json":
                print(json.dumps(rows, indent=2))
            else:
                print(table(rows))
            return 0
        if args.subverb == "inspect":
            print(json.dumps([admin.describe(n) for n in args.names], indent=2))
            return 0
        if args.subverb == "rm":
            for name in args.names:
                admin.remove(name)
                print(name)
            return 0
        removed = admin.prune()
        if removed:
            print("Deleted networks:\n" + "\n".join(removed))
        return 0
