"""`stackd commit SERVICE [REPOSITORY[:TAG]]` (or a CONTAINER): a new image from a
container's changes, as `docker compose commit` and `docker commit` make it
(daemon/containerimage.py)."""

from __future__ import annotations

import argparse

HELP = "Make an image from a service container's changes"
EXAMPLE = "stackd commit -m 'debug tools' web shop/web:debug"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", type=int, default=1, help="which replica (default 1)")
    p.add_argument("-a", "--author", default="", help="who made it")
    p.add_argument("-m", "--message", default="", help="the commit message")
    p.add_argument("-c", "--change", action="append", default=[], metavar="INSTRUCTION",
                   help="a Dockerfile instruction for the image's config (CMD, ENV, …)")
    p.add_argument("-p", "--pause", action=argparse.BooleanOptionalAction, default=True,
                   help="pause a running container while its layer is read (default; "
                        "--no-pause is refused for one: it could change its files meanwhile)")
    p.add_argument("service", metavar="SERVICE|CONTAINER")
    p.add_argument("reference", nargs="?", default=None, metavar="REPOSITORY[:TAG]")


def run(args: argparse.Namespace) -> int:
    from stackd.cli.containers import named_id
    from stackd.daemon.containerimage import commit
    from stackd.roots import Roots

    cid = named_id(args, args.service, args.index)
    image = commit(Roots.from_env(), cid, args.reference, changes=args.change,
                   message=args.message, author=args.author, pause=args.pause)
    print(image.id)
    return 0
