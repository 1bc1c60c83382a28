"""`stackd export SERVICE` (or CONTAINER): the container's file tree as a tar archive,
as `docker compose export` and `docker export` write it (daemon/containerimage.py)."""

from __future__ import annotations

import argparse

HELP = "Write a service container's file tree as a tar archive"
EXAMPLE = "stackd export -o web.tar web"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", type=int, default=1, help="which replica (default 1)")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="write to FILE (default: standard output, never a terminal)")
    p.add_argument("service", metavar="SERVICE|CONTAINER")


def run(args: argparse.Namespace) -> int:
    import sys

    from stackd.cli.containers import named_id
    from stackd.daemon.containerimage import check_not_stdout_tty, export
    from stackd.roots import Roots

    cid = named_id(args, args.service, args.index)
    if args.output is None:
        check_not_stdout_tty(sys.stdout.buffer)
        export(Roots.from_env(), cid, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return 0
    from stackd.outfile import replaced

    with replaced(args.output, "export -o") as out:
        export(Roots.from_env(), cid, out)
    return 0
