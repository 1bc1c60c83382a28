"""`stackd pull [NAME[:TAG|@DIGEST]]`: fetch an image from its registry into the local
store; with no image, those of the stack's services (compose's `pull`)."""

from __future__ import annotations

import argparse

HELP = "Pull an image from a registry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", nargs="?", default=None,
                        help="e.g. redis:7, ghcr.io/owner/app@sha256:… (none: the images "
                             "of the stack's services)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the image digest")


def run(args: argparse.Namespace) -> int:
    import trio

    from stackd.cli.image_view import TransferPrinter
    from stackd.images import ImageStore
    from stackd.roots import Roots

    refs = [args.image] if args.image else _stack_refs(args)
    store = ImageStore(Roots.from_env().ensure())
    progress = None if args.quiet else TransferPrinter()
    for ref in refs:
        image = trio.run(store.pull, ref, progress)
        print(image.digest if args.quiet else f"{image.references[0]}: {image.digest}")
    return 0


def _stack_refs(args: argparse.Namespace) -> list[str]:
    import sys

    from stackd.cli.main import load_stack
    from stackd.cli.stack_images import pull_refs

    refs, built = pull_refs(load_stack(args))
    if built and not args.quiet:
        print(f"not pulled, built here: {', '.join(built)}", file=sys.stderr)
    return refs
