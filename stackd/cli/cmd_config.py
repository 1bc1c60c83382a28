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
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="only check the stack; print nothing when it is valid")


def run(args: argparse.Namespace) -> int:
    from stackd.cli.main import load_stack
    from stackd.spec.render import to_json, to_yaml

    # Listing profiles means looking at every service, enabled or not.
    stack = load_stack(args, all_profiles=args.list_profiles)
    if args.quiet:
        return 0
    if args.services:
        names = sorted(stack.services)
    elif args.volumes:
        names = sorted(stack.volumes)
    elif args.list_profiles:
        names = sorted({p for s in stack.services.values() for p in s.profiles})
    else:
        sys.stdout.write(to_json(stack) if args.format == "json" else to_yaml(stack))
        return 0
    for name in names:
        print(name)
    return 0
