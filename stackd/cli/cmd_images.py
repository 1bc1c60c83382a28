"""`stackd images`: the images in the local store, one line per name."""

from __future__ import annotations

import argparse

HELP = "List images in the local store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="print only image ids")
    parser.add_argument("--format", choices=("table", "json"), default="table")


def run(args: argparse.Namespace) -> int:
    import json

    from stackd.cli.image_view import image_table
    from stackd.images import ImageStore
    from stackd.roots import Roots

    images = ImageStore(Roots.from_env().ensure()).list()
    if args.quiet:
        for img in images:
            print(img.id[7:19])
    elif args.format == "json":
        print(json.dumps([i.model_dump() for i in images], indent=2))
    else:
        print(image_table(images))
    return 0
