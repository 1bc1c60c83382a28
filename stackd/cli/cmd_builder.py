"""`stackd builder prune`: forget the build cache — the cached steps and the
directories `RUN --mount=type=cache` keeps — as `docker builder prune -a` does."""

from __future__ import annotations

import argparse

HELP = "Manage the build cache: prune"
EXAMPLE = "stackd builder prune"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="subverb", required=True, metavar="SUBVERB")
    p = sub.add_parser("prune", help="forget every cached build step and cache mount "
                                     "(a cache mount a running build uses is kept)")
    p.add_argument("-a", "--all", action="store_true",
                   help="accepted for Docker's sake: stackd always forgets all of it")
    p.add_argument("-f", "--force", action="store_true", help="accepted: nothing is asked")


def run(args: argparse.Namespace) -> int:
    from stackd.images import ImageStore
    from stackd.images.build.cache import BuildCache
    from stackd.images.build.cachemounts import CacheDirs
    from stackd.roots import Roots

    store = ImageStore(Roots.from_env().ensure())
    steps = BuildCache(store).forget_all()
    mounts = CacheDirs(store.root).prune()
    print(f"Deleted {steps} cached build steps and {mounts} cache mounts "
          "(`stackd image prune` then frees the layers no image uses)")
    return 0
