"""`stackd push [IMAGE [DESTINATION]]`: upload an image from the local store to its
registry (Docker's); beside a stack file, `push [SERVICE…]` the images of the stack's
built services that name their `image:` (Compose's: none named, all of them)."""

from __future__ import annotations

import argparse
import sys

HELP = "Push an image to a registry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="IMAGE [DEST]|SERVICE",
                        help="a name in the local store, e.g. localhost:5000/app:1, and a "
                             "name to push it under (like tag + push); or services of the "
                             "stack (none: every service with build: and image:)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the digest")
    parser.add_argument("--ignore-push-failures", action="store_true",
                        help="say what could not be pushed and go on")
    parser.add_argument("--include-deps", action="store_true",
                        help="also the images of the services the named ones depend on")


def run(args: argparse.Namespace) -> int:
    import trio

    from stackd.cli.image_view import TransferPrinter
    from stackd.errors import StackdError
    from stackd.images import ImageStore
    from stackd.roots import Roots

    pushes = _pushes(args)
    store = ImageStore(Roots.from_env().ensure())
    progress = None if args.quiet else TransferPrinter()
    failed = []
    for image, destination in pushes:
        try:
            digest = trio.run(store.push, image, destination, progress)
        except StackdError as err:
            if not args.ignore_push_failures:
                raise
            failed.append(destination or image)
            print(f"stackd: warning: {destination or image}: {err.message}", file=sys.stderr)
            continue
        print(digest if args.quiet else f"{destination or image}: digest: {digest}")
    if failed and not args.quiet:
        print(f"not pushed: {', '.join(failed)}", file=sys.stderr)
    return 0


def _pushes(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """(image, destination or None) pairs: Docker's one image, or the stack's."""
    from stackd.cli.cmd_run import stack_in_play
    from stackd.cli.stack_images import is_image_name, only_services, push_refs
    from stackd.errors import UsageError

    names = list(args.names)
    docker_form = bool(names) and (is_image_name(names[0]) or not stack_in_play(args))
    if docker_form:
        if len(names) > 2:
            raise UsageError("push takes one image and at most one name to push it under",
                             hint="push images one at a time")
        return [(names[0], names[1] if len(names) == 2 else None)]
    from stackd.cli.main import load_stack

    stack = only_services(load_stack(args, targeted=names or None), names,
                          include_deps=args.include_deps)
    refs = push_refs(stack)
    if names and not refs:
        raise UsageError(f"nothing to push for {', '.join(names)}: a service pushes the "
                         "image its build: makes, under its image: name",
                         hint="give the service build: and image:, or push an image by name")
    return [(ref, None) for ref in refs]
