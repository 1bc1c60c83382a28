"""`stackd build [CONTEXT]`: build an image from a Dockerfile with a layer cache."""

from __future__ import annotations

import argparse

HELP = "Build an image from a Dockerfile"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("context", nargs="?", default=".", help="build context dir (default .)")
    parser.add_argument("-f", "--file", dest="dockerfile", default="Dockerfile",
                        help="Dockerfile path, relative to the context (default Dockerfile)")
    parser.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]",
                        help="name the result (repeatable)")
    parser.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="set a build ARG (repeatable; KEY alone takes it from the env)")
    parser.add_argument("--target", default=None, help="build this stage, not the last")
    parser.add_argument("--no-cache", action="store_true", help="ignore the build cache")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the image id")


def parse_build_args(items: list[str]) -> dict[str, str]:
    import os

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            if key not in os.environ:
                continue
            value = os.environ[key]
        out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    import trio

    from stackd.cli.image_view import TransferPrinter
    from stackd.images import ImageStore
    from stackd.roots import Roots

    store = ImageStore(Roots.from_env().ensure())
    progress = None if args.quiet else TransferPrinter()
    image = trio.run(lambda: store.build(
        args.context, dockerfile=args.dockerfile, tag=args.tag,
        build_args=parse_build_args(args.build_arg), target=args.target, progress=progress,
        no_cache=args.no_cache))
    print(image.id if args.quiet else f"Built {image.id}"
          + (f" as {', '.join(image.references)}" if image.references else ""))
    return 0
