"""`stackd network ls | inspect NAME | create NAME | rm NAME… | prune`: the host's
networks: the stacks' own, and those made with `create` for stacks to share
(`external: true`).

It reads and changes the state store and the host directly (not through the daemon's
API, through `daemon.host_verbs.NetworkAdmin`): networks are host objects, and `rm`/`prune`
must work to clean up after a daemon that is gone.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

HELP = "List, inspect, create and remove networks (ls, inspect, create, rm, prune)"

# Docker's rule for a network's name.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="subverb", required=True,
                           metavar="{ls,inspect,create,rm,prune}")
    ls = sub.add_parser("ls", help="list networks")
    ls.add_argument("--format", default="table",
                    help="table, json, or a Docker template: '{{.Name}}'")
    ls.add_argument("-q", "--quiet", action="store_true", help="only names")
    ins = sub.add_parser("inspect", help="a network with its containers and ports, as JSON")
    ins.add_argument("-f", "--format", default=None,
                     help="a Docker template over Docker's fields, one line per network: "
                          "'{{range .IPAM.Config}}{{.Subnet}}{{end}}'; json: those fields")
    ins.add_argument("names", nargs="+", metavar="NAME")
    create = sub.add_parser("create", help="a network for stacks to join (external: true)")
    create.add_argument("name", metavar="NAME")
    create.add_argument("-d", "--driver", default="bridge", help="bridge (the only one)")
    create.add_argument("--subnet", help="its subnet (CIDR); else a free one is chosen")
    create.add_argument("--gateway", help="the gateway address in the subnet")
    create.add_argument("--ip-range", help="where containers' addresses come from (CIDR)")
    create.add_argument("--internal", action="store_true", help="no way out of it")
    create.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    create.add_argument("-o", "--opt", action="append", default=[], metavar="KEY=VALUE",
                        help="com.docker.network.driver.mtu=N, "
                        "com.docker.network.bridge.enable_icc=false")
    rm = sub.add_parser("rm", help="remove networks no container uses")
    rm.add_argument("names", nargs="+", metavar="NAME")
    sub.add_parser("prune", help="remove every network no container uses").add_argument(
        "-f", "--force", action="store_true",
        help="accepted as docker's: stackd's prune asks nothing")


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
            elif args.format == "table":
                print(table(rows))
            else:
                from stackd.cli.goformat import render
                from stackd.cli.network_view import ls_fields

                sys.stdout.write(render(args.format, [ls_fields(r) for r in rows]))
            return 0
        if args.subverb == "inspect":
            described = [admin.describe(n) for n in args.names]
            if args.format is None:
                print(json.dumps(described, indent=2))
                return 0
            from stackd.cli.network_view import docker_network
            from stackd.daemon.host_verbs import containers_here

            names = {c.id: c.name for c in containers_here(admin.roots)}
            docs = [docker_network(d, names) for d in described]
            if args.format == "json":
                print(json.dumps(docs, indent=4))
            else:
                from stackd.cli.goformat import render

                sys.stdout.write(render(args.format, docs))
            return 0
        if args.subverb == "create":
            create(admin, args)
            print(args.name)
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


def create(admin: Any, args: argparse.Namespace) -> None:
    """`network create`, its options checked before anything is made."""
    from stackd.errors import UsageError

    if not _NAME.fullmatch(args.name):
        raise UsageError(f"invalid network name {args.name!r}",
                         hint="letters, digits, '_', '.' and '-', starting with a letter "
                              "or digit")
    if args.driver != "bridge":
        raise UsageError(f"network driver {args.driver!r} is not supported",
                         hint="stackd's networks are bridges; leave --driver out")
    if (args.gateway or args.ip_range) and not args.subnet:
        raise UsageError("--gateway and --ip-range need --subnet",
                         hint="give the subnet they are in, e.g. --subnet 10.50.0.0/24")
    if args.subnet:  # the rules of a stack's ipam pool (the range inside the subnet…)
        from ipaddress import IPv4Network

        from pydantic import ValidationError

        try:
            IPv4Network(args.subnet, strict=False)
        except ValueError:
            raise UsageError(f"--subnet {args.subnet!r} is not an IPv4 subnet",
                             hint="write a network address and prefix, e.g. 10.1.2.0/24"
                             ) from None

        from stackd.spec.model import IpamPool

        try:
            IpamPool(subnet=args.subnet, ip_range=args.ip_range, gateway=args.gateway)
        except (ValidationError, ValueError) as e:
            why = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
            raise UsageError(f"network {args.name}: {why.removeprefix('Value error, ')}",
                             hint="e.g. --subnet 10.50.0.0/24 --ip-range 10.50.0.128/25"
                             ) from None
    from stackd.daemon.keyvalues import key_values

    admin.create(args.name, subnet=args.subnet, gateway=args.gateway,
                 ip_range=args.ip_range, internal=args.internal,
                 labels=key_values(args.label, "--label"),
                 options=key_values(args.opt, "--opt"))
