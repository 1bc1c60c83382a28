"""`stackd rmi IMAGE…`: remove names (or, given an id, every name of that image)."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "Remove images (untag; `stackd image prune` frees the space)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("-f", "--force", action="store_true",
                        help="untag an image containers use (kept while they do)")
    parser.add_argument("--no-prune", action="store_true",
                        help="keep the content of now unnamed images until the next prune")


def run(args: argparse.Namespace) -> int:
    from stackd.daemon.stack_images import layers_in_use
    from stackd.images import ImageStore
    from stackd.roots import Roots

    store = ImageStore(Roots.from_env().ensure())
    views = containers_here()
    untag(store, args.images, views, force=args.force)
    if not args.no_prune:
        report = store.prune(in_use=layers_in_use(views))
        if report.blobs_removed:
            print(f"Deleted {report.blobs_removed} blobs, {report.snapshots_removed} layers")
    return 0


def untag(store: Any, refs: list[str], views: list[Any], *, force: bool) -> None:
    """Remove the names; none at all (Docker's conflict) if one would leave an image
    that a container (of `views`) runs on without a name, unless `force`."""
    from stackd.daemon.stack_images import users_of
    from stackd.errors import ConflictError

    gone: set[str] = set()  # the names the refs before this one remove
    for ref in refs:
        digest, parsed = store.resolve(ref)
        names = {n for n, d in store.refs.refs().items() if d == digest} - gone
        gone |= {str(parsed)} if parsed is not None else names
        if force or names - gone:
            continue  # it keeps another name
        if using := users_of(store.layer_dirs(digest), views):
            raise ConflictError(
                f"image {ref} is used by {', '.join(using)}",
                hint="remove those first (`stackd down`, `stackd rm`), or give -f to untag "
                     "it: its content is kept while a container uses it")
    for ref in refs:
        for name in store.remove(ref):
            print(f"Untagged: {name}")


def containers_here() -> list[Any]:
    from stackd.daemon.host_verbs import containers_here as listed
    from stackd.roots import Roots

    return listed(Roots.from_env())
