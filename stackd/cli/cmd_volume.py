"""`stackd volume ls | inspect NAME… | create NAME | rm NAME… | prune [-f]`: named volumes.

Like `stackd network`, not through the daemon: volumes are directories under
$STACKD_ROOT/volumes with a row in the state store, and removing one must work after
a daemon that is gone (stackd.daemon.host_verbs.VolumeAdmin). A volume a container
mounts (running or not, as Docker counts them) is not removed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "Manage named volumes: ls, inspect, create, rm, prune"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="subverb", required=True,
                           metavar="{ls,inspect,create,rm,prune}")
    ls = sub.add_parser("ls", help="list volumes")
    ls.add_argument("--format", default="table",
                    help="table, json, or a Docker template: '{{.Name}}'")
    ls.add_argument("-q", "--quiet", action="store_true", help="only names")
    ins = sub.add_parser("inspect", help="volumes as JSON: mountpoint, project, users")
    ins.add_argument("-f", "--format", default=None,
                     help="a Docker template over Docker's fields, one line per volume: "
                          "'{{.Mountpoint}}'; json: those fields")
    ins.add_argument("names", nargs="+", metavar="NAME")
    create = sub.add_parser("create", help="create a volume (no error if it exists)")
    create.add_argument("name", metavar="NAME")
    rm = sub.add_parser("rm", help="remove volumes no container uses")
    rm.add_argument("names", nargs="+", metavar="NAME")
    prune = sub.add_parser("prune", help="remove the anonymous volumes no container uses")
    prune.add_argument("-a", "--all", action="store_true",
                       help="named volumes too (as Docker's prune -a)")
    prune.add_argument("-f", "--force", action="store_true", help="don't ask")


def table(rows: list[dict[str, Any]]) -> str:
    from stackd.cli.table import render

    return render(("NAME", "PROJECT", "CONTAINERS"),
                  [(r["name"], r["project"] or "-", ",".join(r["containers"]) or "-")
                   for r in rows])


def run(args: argparse.Namespace) -> int:
    from stackd.daemon.host_verbs import VolumeAdmin
    from stackd.roots import Roots

    with VolumeAdmin(Roots.from_env()) as admin:
        if args.subverb == "create":
            admin.create(args.name)
            print(args.name)
        elif args.subverb == "ls":
            rows = admin.list()
            if args.quiet:
                print("\n".join(r["name"] for r in rows))
            elif args.format == "json":
                print(json.dumps(rows, indent=2))
            elif args.format == "table":
                print(table(rows))
            else:
                from stackd.cli.goformat import render
                from stackd.cli.volume_view import ls_fields

                sys.stdout.write(render(args.format, [ls_fields(r) for r in rows]))
        elif args.subverb == "inspect":
            described = [admin.inspect(n) for n in args.names]
            if args.format is None:
                print(json.dumps(described, indent=2))
            else:
                from stackd.cli.volume_view import docker_volume

                docs = [docker_volume(d) for d in described]
                if args.format == "json":
                    print(json.dumps(docs, indent=4))
                else:
                    from stackd.cli.goformat import render

                    sys.stdout.write(render(args.format, docs))
        elif args.subverb == "rm":
            admin.remove(args.names)
            print("\n".join(args.names))
        else:
            from stackd.cli.confirm import confirmed

            which = "every volume" if args.all else "every anonymous volume"
            if not args.force and not confirmed(
                    f"Remove {which} no container uses? [y/N] ",
                    refusal="volume prune removes data and asks first"):
                return 0
            removed = admin.prune(all=args.all)
            if removed:
                print("Deleted volumes:\n" + "\n".join(removed))
    return 0
