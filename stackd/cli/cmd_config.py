"""`stackd config`: print the fully resolved stack, like `docker compose config`."""

from __future__ import annotations

import argparse
import sys

HELP = "Print the resolved stack (like docker compose config)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("yaml", "json"), default="yaml",
                        help="output format (default: yaml)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--services", action="store_true", help="print the service names")
    what.add_argument("--volumes", action="store_true", help="print the volume names")
    what.add_argument("--profiles", dest="list_profiles", action="store_true",
                      help="print the profile names the services use")
    what.add_argument("--images", action="store_true",
                      help="print the image each service runs (as up names a built one)")
    what.add_argument("--networks", action="store_true", help="print the network names")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="only check the stack; print nothing when it is valid")
    parser.add_argument("-o", "--output", default=None, metavar="FILE",
                        help="write the resolved stack to FILE instead of the screen")


def run(args: argparse.Namespace) -> int:
    from stackd.cli.main import load_stack
    from stackd.spec.render import to_json, to_yaml

    # Listing profiles means looking at every service, enabled or not.
    stack = load_stack(args, all_profiles=args.list_profiles)
    # What up would refuse before it starts anything, Compose's config refuses too:
    # a dependency cycle, or one on a service that is not there.
    from stackd.scheduler import build_graph
    from stackd.scheduler.from_stack import from_stack

    build_graph(from_stack(stack))
    if args.quiet:
        return 0
    if args.services:
        names = sorted(stack.services)
    elif args.volumes:
        names = sorted(stack.volumes)
    elif args.list_profiles:
        names = sorted({p for s in stack.services.values() for p in s.profiles})
    elif args.images:
        from stackd.spec.image_names import image_ref

        names = sorted({image_ref(stack, n, s) for n, s in stack.services.items()})
    elif args.networks:
        names = sorted(stack.networks)
    else:
        text = to_json(stack) if args.format == "json" else to_yaml(stack)
        if args.output is None:
            sys.stdout.write(text)
        else:
            from pathlib import Path

            Path(args.output).write_text(text)
        return 0
    text = "".join(f"{name}\n" for name in names)
    if args.output is None:
        sys.stdout.write(text)
    else:
        from pathlib import Path

        Path(args.output).write_text(text)
    return 0
