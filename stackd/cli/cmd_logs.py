"""`stackd logs`: the stack's output with coloured per-container prefixes."""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "Show (and follow) the logs of the stack's containers"

COLOURS = (36, 33, 32, 35, 34, 96, 93, 92, 95, 94)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    p.add_argument("-n", "--tail", default="all", help="lines from the end of each log")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("--no-color", action="store_true")
    p.add_argument("--no-log-prefix", action="store_true")
    p.add_argument("services", nargs="*", metavar="SERVICE")


def follow_project(client: Any, project: str, *, services: list[str], tail: int | None,
                   timestamps: bool, follow: bool, color: bool | None = None,
                   prefix: bool = True) -> None:
    out = sys.stdout
    color = out.isatty() if color is None else color
    colours: dict[str, int] = {}
    params: dict[str, Any] = {"follow": follow, "tail": tail, "timestamps": timestamps,
                              "service": services or None}
    width = 0
    for rec in client.stream("GET", f"/v1/stacks/{project}/logs", params=params):
        name = str(rec.get("container", ""))
        width = max(width, len(name))
        text = rec.get("line", "")
        if timestamps:
            text = f"{rec.get('time', '')} {text}"
        if prefix:
            label = f"{name:<{width}} | "
            if color:
                c = colours.setdefault(name, COLOURS[len(colours) % len(COLOURS)])
                label = f"\x1b[{c}m{label}\x1b[0m"
            text = label + text
        out.write(text + "\n")
        out.flush()


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.cli.stackref import project_of
    from stackd.errors import UsageError

    if args.tail == "all":
        tail = None
    elif args.tail.isdigit():
        tail = int(args.tail)
    else:
        raise UsageError(f"--tail {args.tail!r} is not a number", hint="use --tail 100 or all")
    project = project_of(args)
    with Client() as client:
        follow_project(client, project, services=args.services, tail=tail,
                       timestamps=args.timestamps, follow=args.follow,
                       color=False if args.no_color else None, prefix=not args.no_log_prefix)
    return 0
