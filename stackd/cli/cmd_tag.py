"""`stackd tag SOURCE TARGET`: give an image another name."""

from __future__ import annotations

import argparse

HELP = "Give an image another name"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a name or id in the local store")
    parser.add_argument("target", help="the new name, e.g. localhost:5000/app:1")


def run(args: argparse.Namespace) -> int:
    from stackd.images import ImageStore
    from stackd.roots import Roots

    ImageStore(Roots.from_env().ensure()).tag(args.source, args.target)
    return 0
