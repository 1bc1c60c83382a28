"""`stackd push NAME[:TAG]`: upload an image from the local store to its registry."""

from __future__ import annotations

import argparse

HELP = "Push an image to a registry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="a name in the local store, e.g. localhost:5000/app:1")
    parser.add_argument("destination", nargs="?", default=None,
                        help="push under this name instead (like tag + push)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the digest")


def run(args: argparse.Namespace) -> int:
    import trio

    from stackd.cli.image_view import TransferPrinter
    from stackd.images import ImageStore
    from stackd.roots import Roots

    store = ImageStore(Roots.from_env().ensure())
    progress = None if args.quiet else TransferPrinter()
    digest = trio.run(store.push, args.image, args.destination, progress)
    print(digest if args.quiet else f"{args.destination or args.image}: digest: {digest}")
    return 0
