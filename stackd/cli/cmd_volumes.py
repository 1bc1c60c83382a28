"""`stackd volumes [SERVICE…]`: the stack's named volumes (Compose's `volumes`), those
the named services mount if any are named. Read from the state store, as `stackd volume
ls` reads it; a volume of the files not made yet is not listed (Compose lists what the
engine has)."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "List the stack's volumes (those the named services mount)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="table", metavar="table|json",
                   choices=["table", "json"])
    p.add_argument("-q", "--quiet", action="store_true", help="only names")
    p.add_argument("services", nargs="*", metavar="SERVICE")


def run(args: argparse.Namespace) -> int:
    from stackd.cli.stackref import project_of
    from stackd.daemon.host_verbs import VolumeAdmin
    from stackd.roots import Roots

    project = project_of(args)
    wanted = _mounted_by(args) if args.services else None
    with VolumeAdmin(Roots.from_env()) as admin:
        # Named services: what they mount, an external volume too; else the stack's own.
        rows = [{"driver": "local", **r} for r in admin.list()
                if (r["name"] in wanted if wanted is not None else r["project"] == project)]
    if args.quiet:
        sys.stdout.write("".join(f"{r['name']}\n" for r in rows))
    elif args.format == "json":
        # As Compose's (Docker's volume list): an object per line, its names beside ours.
        sys.stdout.write("".join(json.dumps({
            **r, "Driver": r["driver"], "Name": r["name"], "Mountpoint": r["mountpoint"],
            "Scope": "local", "Labels": ""}) + "\n" for r in rows))
    else:
        from stackd.cli.table import render

        print(render(("DRIVER", "VOLUME NAME"), [(r["driver"], r["name"]) for r in rows]))
    return 0


def _mounted_by(args: argparse.Namespace) -> set[str]:
    """The host names of the stack's named volumes the named services mount."""
    from stackd.cli.main import load_stack
    from stackd.errors import NotFoundError

    stack = load_stack(args, targeted=args.services)
    missing = sorted(set(args.services) - set(stack.services))
    if missing:
        raise NotFoundError(f"no such service: {', '.join(missing)}",
                            hint="see `stackd config --services`")
    return {stack.volume_host_name(v.source) for name in args.services
            for v in stack.services[name].volumes
            if v.type == "volume" and v.source is not None and v.source in stack.volumes}
