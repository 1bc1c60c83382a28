"""`stackd network ls | inspect NAME | rm NAME… | prune`: the host's stack networks.

It reads and changes the state store and the host directly (not through the daemon):
networks are host objects, and `rm`/`prune` must work to clean up after a daemon that
is gone. Both sides take the same host-wide lock for firewall changes.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "List, inspect and remove networks (ls, inspect, rm, prune)"
DB_NAME = "stackd.db"  # the daemon's state database under $STACKD_ROOT


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


def _open() -> tuple[Any, Any]:
    import stackd.state.allocations  # noqa: F401  (registers the tables)
    from stackd.roots import Roots
    from stackd.state.db import StateDB

    roots = Roots.from_env().ensure()
    return roots, StateDB.open(roots.state / DB_NAME)


def table(rows: list[dict[str, Any]]) -> str:
    header = ("NAME", "PROJECT", "BRIDGE", "SUBNET", "GATEWAY", "INTERNAL")
    lines = [(r["name"], r["project"], r["bridge"], r["subnet"], r["gateway"],
              "yes" if r["internal"] else "") for r in rows]
    widths = [max(len(str(x[i])) for x in [header, *lines]) for i in range(len(header))]
    return "\n".join("   ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True))
                     .rstrip() for row in [header, *lines])


def describe(alloc: Any, key: str) -> dict[str, Any]:
    from stackd.errors import NotFoundError

    row = alloc.network(key)
    if row is None:
        raise NotFoundError(f"network {key} does not exist",
                            hint="see `stackd network ls` for the networks there are")
    containers = alloc.addresses(network_key=key)
    ips = {a.ip for a in containers}
    return {
        "name": row.key, "project": row.project, "compose_name": row.name,
        "bridge": row.bridge, "subnet": row.subnet, "gateway": row.gateway,
        "internal": row.internal, "mtu": row.mtu, "labels": row.labels,
        "containers": [{"id": a.container_id, "ip": a.ip, "mac": a.mac, "ifname": a.ifname,
                        "host_ifname": a.host_ifname, "aliases": list(a.aliases)}
                       for a in containers],
        "ports": [f"{p.host_ip or '0.0.0.0'}:{p.host_port}->{p.container_ip}:"
                  f"{p.container_port}/{p.protocol}" for p in alloc.ports()
                  if p.container_ip in ips],
    }


def run(args: argparse.Namespace) -> int:
    import trio

    from stackd.state.allocations import Allocations

    roots, db = _open()
    try:
        alloc = Allocations(db)
        if args.subverb == "ls":
            rows = [describe(alloc, n.key) for n in alloc.networks()]
            if args.quiet:
                print("\n".join(r["name"] for r in rows))
            elif args.format == "json":
                print(json.dumps(rows, indent=2))
            else:
                print(table(rows))
            return 0
        if args.subverb == "inspect":
            print(json.dumps([describe(alloc, n) for n in args.names], indent=2))
            return 0
        from stackd.netbridge import DnsFeed, Networks

        # Tell the root's resolver process too (never start one): with no daemon, its
        # last network removed here is what makes it exit.
        nets = Networks(roots, db, resolver=DnsFeed(roots, start=False))
        trio.run(nets.restore_dns)
        if args.subverb == "rm":
            for name in args.names:
                nets.inspect(name)  # NotFoundError names it
                trio.run(nets.remove_network, name)
                print(name)
            return 0
        removed = []
        for n in alloc.networks():
            if not alloc.addresses(network_key=n.key):
                trio.run(nets.remove_network, n.key)
                removed.append(n.key)
        if removed:
            print("Deleted networks:\n" + "\n".join(removed))
        return 0
    finally:
        db.close()
