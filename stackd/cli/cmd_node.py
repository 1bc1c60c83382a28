"""`stackd node join|ls|inspect|drain|active|rm`: cluster membership (docs/cluster.md).

`join` asks this host's daemon to become a member (it keeps the lease alive and
rejoins after a restart; with --listen it serves its API on TCP with mutual TLS).
`cert` writes a client identity for `--host tcp://` from the cluster's CA, its key made
here. The others read and write the cluster store directly, with
the etcd endpoints this host joined with (or `--etcd`), so they work from any host
and whether or not a daemon runs here.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

HELP = "Cluster nodes: join, ls, inspect, drain, active, rm, cert"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="subverb", required=True,
                           metavar="{join,ls,inspect,drain,active,rm,cert}")
    join = sub.add_parser("join", help="make this host's daemon a member of a cluster")
    join.add_argument("--etcd", nargs="+", required=True, metavar="URL",
                      help="the etcd cluster's client URLs (http://HOST:2379 …)")
    join.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                      help="a node label placement constraints can match (repeatable)")
    join.add_argument("--name", default=None, help="the node's name (default: host name)")
    join.add_argument("--ttl", type=int, default=10,
                      help="seconds without a renewal before the node counts as down")
    join.add_argument("--prefix", default="/stackd/", help="the cluster's etcd key prefix")
    join.add_argument("--address", default="", help="this node's underlay address")
    join.add_argument("--listen", default="", metavar="HOST:PORT",
                      help="also serve the API here, over TCP with mutual TLS, for "
                           "`stackd --host tcp://…` (default: the unix socket only)")
    cert = sub.add_parser("cert", help="write a client certificate of the cluster's CA "
                                       "(for --host tcp://) to a directory")
    cert.add_argument("--out", required=True, metavar="DIR",
                      help="where to write ca.pem, cert.pem, key.pem (root-only)")
    cert.add_argument("--name", default=None,
                      help="the name the certificate gives its holder (default: user@host)")
    cert.add_argument("--etcd", nargs="+", default=None, metavar="URL",
                      help="etcd client URLs (default: those this host joined with)")
    cert.add_argument("--prefix", default=None, help="the cluster's etcd key prefix")
    join.add_argument("--vxlan-port", type=int, default=4789, metavar="PORT",
                      help="the UDP port of the cluster's overlay networks (default 4789)")
    for verb, text in (("ls", "list the cluster's nodes"),
                       ("inspect", "a node's record and status, as JSON"),
                       ("drain", "move a node's slots away; it takes no new ones"),
                       ("active", "let a drained node take slots again"),
                       ("rm", "forget a node that is down")):
        sp = sub.add_parser(verb, help=text)
        if verb != "ls":
            sp.add_argument("names", nargs="+", metavar="NAME")
        else:
            sp.add_argument("--format", choices=["table", "json"], default="table")
        sp.add_argument("--etcd", nargs="+", default=None, metavar="URL",
                        help="etcd client URLs (default: those this host joined with)")
        sp.add_argument("--prefix", default=None, help="the cluster's etcd key prefix")


def run(args: argparse.Namespace) -> int:
    if args.subverb == "join":
        return _join(args)
    import trio

    return trio.run(_admin, args)


def _join(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.cluster.config import ClusterConfig, parse_labels

    body = ClusterConfig.from_json({
        "endpoints": args.etcd, "name": args.name or os.uname().nodename,
        "labels": parse_labels(args.label), "ttl": args.ttl, "prefix": args.prefix,
        "address": args.address, "listen": args.listen,
        "vxlan_port": args.vxlan_port}).to_json()
    with Client() as client:
        joined = client.post("/v1/cluster/join", body)
    print(f"joined the cluster as node {joined['name']}")
    if args.listen:
        print(f"serving the API on tcp://{args.listen} (mutual TLS)")
    return 0


async def _admin(args: argparse.Namespace) -> int:
    from stackd.cluster import config, keys, nodes
    from stackd.cluster.store import Store
    from stackd.errors import UsageError
    from stackd.roots import Roots

    joined = config.load(Roots.from_env().state)
    endpoints = args.etcd or (list(joined.endpoints) if joined else None)
    if not endpoints:
        raise UsageError("this host has not joined a cluster",
                         hint="pass --etcd URL, or run `stackd node join --etcd URL` first")
    prefix = args.prefix or (joined.prefix if joined else config.DEFAULT_PREFIX)
    async with Store(endpoints, prefix) as store:
        if args.subverb == "cert":
            return await _cert(store, args)
        if args.subverb == "ls":
            members = await nodes.members(store)
            boss = await store.get(keys.LEADER)
            leader = boss.value.decode() if boss else ""
            rows = [_row(m, leader) for m in members]
            if args.format == "json":
                print(json.dumps(rows, indent=2))
            else:
                from stackd.cli.table import render

                print(render(("NAME", "STATUS", "AVAILABILITY", "LEADER", "CPUS", "MEMORY",
                              "LABELS"),
                             [(r["name"], r["status"], r["availability"],
                               "yes" if r["leader"] else "", f"{r['cpus']:g}",
                               f"{r['memory'] >> 20} MiB",
                               ",".join(f"{k}={v}" for k, v in sorted(r["labels"].items())))
                              for r in rows]))
            await _say_unplaced(store)
            return 0
        for name in args.names:
            if args.subverb == "inspect":
                boss = await store.get(keys.LEADER)
                print(json.dumps(_row(await nodes.member(store, name),
                                      boss.value.decode() if boss else ""), indent=2))
            elif args.subverb in ("drain", "active"):
                await nodes.set_availability(store, name, args.subverb)
                print(name)
            else:
                await nodes.remove(store, name)
                print(name)
    return 0


async def _cert(store: Any, args: argparse.Namespace) -> int:
    """A client identity: the key made on this machine (it never leaves it), signed with
    the cluster's CA; only a member's join creates the CA."""
    import getpass
    from pathlib import Path

    import trio

    from stackd.cluster import keys, pki
    from stackd.errors import NotFoundError

    kv = await store.get(keys.CA)
    if kv is None:
        raise NotFoundError("the cluster has no CA yet",
                            hint="the first `stackd node join` makes it")
    ca = pki.Authority.from_json(kv.key, kv.value)
    name = args.name or f"{getpass.getuser()}@{os.uname().nodename}"
    where = pki.dir_identity(Path(args.out))
    await trio.to_thread.run_sync(
        lambda: pki.write_identity(where, ca, name, server=False))
    print(f"wrote {where.ca}, {where.cert}, {where.key}: use them with\n"
          f"  stackd --host tcp://NODE:PORT --tlscacert {where.ca} --tlscert {where.cert} "
          f"--tlskey {where.key} ps")
    return 0


async def _say_unplaced(store: Any) -> None:
    """The stacks the leader cannot place now, and why (its `unplaced/` records)."""
    import sys

    from stackd.cluster import keys
    from stackd.cluster.records import StoreRecordError, Unplaced

    kvs, _ = await store.range(keys.UNPLACED)
    for kv in kvs:
        try:
            why = Unplaced.from_json(kv.key, kv.value).reason
        except StoreRecordError as e:
            why = e.message
        print(f"stackd: stack {keys.tail(kv.key, keys.UNPLACED)} is not fully placed: {why}",
              file=sys.stderr)


def _row(m: Any, leader: str) -> dict[str, Any]:
    r = m.record
    return {"name": r.name, "status": m.status, "availability": r.availability,
            "leader": r.name == leader, "cpus": r.cpus, "memory": r.memory, "pids": r.pids,
            "labels": dict(r.labels), "arch": r.arch, "address": r.address}
