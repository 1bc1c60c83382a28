"""`stackd pull NAME[:TAG|@DIGEST]`: fetch an image from its registry into the local store."""

from __future__ import annotations

import argparse

HELP = "Pull an image from a registry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="e.g. redis:7, ghcr.io/owner/app@sha256:…")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the image digest")


def run(args: argparse.Namespace) -> int:
    import trio

    from stackd.cli.image_view import TransferPrinter
    from stackd.images import ImageStore
    from stackd.roots import Roots

    store = ImageStore(Roots.from_env().ensure())
    progress = None if args.quiet else TransferPrinter()
    image = trio.run(store.pull, args.image, progress)
    print(image.digest if args.quiet else f"{image.references[0]}: {image.digest}")
    return 0
