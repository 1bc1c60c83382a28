"""`stackd push [NAME[:TAG]]`: upload an image from the local store to its registry; with
no image, those of the stack's built services (compose's `push`)."""

from __future__ import annotations

import argparse

HELP = "Push an image to a registry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", nargs="?", default=None,
                        help="a name in the local store, e.g. localhost:5000/app:1 (none: "
                             "the images of the stack's services with build: and image:)")
    parser.add_argument("destination", nargs="?", default=None,
                        help="push under this name instead (like tag + push)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the digest")


def run(args: argparse.Namespace) -> int:
    import trio

    from stackd.cli.image_view import TransferPrinter
    from stackd.images import ImageStore
    from stackd.roots import Roots

    if args.image:
        pushes = [(args.image, args.destination)]
    else:
        from stackd.cli.main import load_stack
        from stackd.cli.stack_images import push_refs

        pushes = [(ref, None) for ref in push_refs(load_stack(args))]
    store = ImageStore(Roots.from_env().ensure())
    progress = None if args.quiet else TransferPrinter()
    for image, destination in pushes:
        digest = trio.run(store.push, image, destination, progress)
        print(digest if args.quiet else f"{destination or image}: digest: {digest}")
    return 0
