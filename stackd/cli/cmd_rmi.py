"""`stackd rmi IMAGE…`: remove names (or, given an id, every name of that image)."""

from __future__ import annotations

import argparse

HELP = "Remove images (untag; `stackd image prune` frees the space)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--no-prune", action="store_true",
                        help="keep the content of now unnamed images until the next prune")


def run(args: argparse.Namespace) -> int:
    from stackd.images import ImageStore
    from stackd.roots import Roots

    store = ImageStore(Roots.from_env().ensure())
    for ref in args.images:
        for name in store.remove(ref):
            print(f"Untagged: {name}")
    if not args.no_prune:
        report = store.prune(in_use=_in_use_layers())
        if report.blobs_removed:
            print(f"Deleted {report.blobs_removed} blobs, {report.snapshots_removed} layers")
    return 0


def _in_use_layers() -> list[str]:
    from stackd.daemon.host_verbs import in_use_layers
    from stackd.roots import Roots

    return in_use_layers(Roots.from_env())
