"""`stackd pull`: fetch images into the local store — Docker's `pull NAME[:TAG|@DIGEST]`,
or Compose's: with no argument, or with service names when a stack file is in play,
the images of the stack's services. Beside a stack file a plain name is a service; a
name with a ':', '/' or '@' is always an image."""

from __future__ import annotations

import argparse
import sys

HELP = "Pull an image, or the images of the stack's services"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="IMAGE|SERVICE",
                        help="an image (e.g. redis:7, ghcr.io/owner/app@sha256:…), or services "
                             "of the stack (none: every service's image)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the image digest")
    parser.add_argument("--ignore-pull-failures", action="store_true",
                        help="say what could not be pulled and go on")
    parser.add_argument("--include-deps", action="store_true",
                        help="also the images of the services the named ones depend on")
    parser.add_argument("--policy", choices=("always", "missing"), default="always",
                        help="missing: only images the store does not hold")
    parser.add_argument("--ignore-buildable", action="store_true",
                        help="skip images a build: makes (always so here: they are built)")


def run(args: argparse.Namespace) -> int:
    import trio

    from stackd.cli.image_view import TransferPrinter
    from stackd.errors import StackdError
    from stackd.images import ImageStore
    from stackd.images.reference import parse
    from stackd.roots import Roots

    refs = _refs(args)
    store = ImageStore(Roots.from_env().ensure())
    progress = None if args.quiet else TransferPrinter()
    failed = []
    for ref in refs:
        try:
            image = trio.run(store.ensure, ref, args.policy, progress)
        except StackdError as err:
            if not args.ignore_pull_failures:
                raise
            failed.append(ref)
            print(f"stackd: warning: {ref}: {err.message}", file=sys.stderr)
            continue
        # The name asked for, in full (an image under two names is one image here).
        print(image.digest if args.quiet else f"{parse(ref)}: {image.digest}")
    if failed and not args.quiet:
        print(f"not pulled: {', '.join(failed)}", file=sys.stderr)
    return 0


def _refs(args: argparse.Namespace) -> list[str]:
    """What to pull: Docker's one image, or the stack's services' (Compose's)."""
    from stackd.cli.cmd_run import stack_in_play
    from stackd.cli.stack_images import is_image_name, only_services

    if len(args.names) == 1 and (is_image_name(args.names[0]) or not stack_in_play(args)):
        return list(args.names)  # an image
    if args.names and not stack_in_play(args):
        from stackd.errors import UsageError

        raise UsageError("pull takes one image, or service names of a stack",
                         hint="pull images one at a time, or run it beside compose.yaml")
    from stackd.cli.main import load_stack
    from stackd.cli.stack_images import pull_refs

    stack = load_stack(args, targeted=args.names or None)
    if len(args.names) == 1 and args.names[0] not in stack.services:
        from stackd.errors import UsageError

        raise UsageError(f"no such service: {args.names[0]}",
                         hint=f"beside a stack file a plain name is a service; to pull the "
                              f"image, give its tag: stackd pull {args.names[0]}:latest")
    stack = only_services(stack, list(args.names), include_deps=args.include_deps)
    refs, built = pull_refs(stack)
    if built and not args.quiet:
        print(f"not pulled, built here: {', '.join(built)}", file=sys.stderr)
    return refs
