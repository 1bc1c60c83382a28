"""`stackd logs`: the stack's output with coloured per-container prefixes."""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from typing import Any

HELP = "Show (and follow) the logs of the stack's containers"

COLOURS = (36, 33, 32, 35, 34, 96, 93, 92, 95, 94)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    p.add_argument("-n", "--tail", default="all", help="lines from the end of each log")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("--no-color", action="store_true")
    p.add_argument("--no-log-prefix", action="store_true")
    p.add_argument("--since", metavar="TIME", default=None,
                   help="only lines written since TIME: 2026-12-05T10:00:00Z, a Unix time, "
                        "or a duration ago (42m, 1h30m)")
    p.add_argument("--until", metavar="TIME", default=None,
                   help="only lines written before TIME (same forms)")
    p.add_argument("--index", type=int, default=None,
                   help="only this replica of the named services")
    p.add_argument("services", nargs="*", metavar="SERVICE")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_time(text: str, now: float) -> float:
    """Pure: docker's --since/--until forms as epoch seconds: an RFC 3339 time (no zone:
    local), a Unix time, or a duration (Go's: 1h30m, 42s, 500ms) before `now`."""
    from datetime import datetime

    from stackd.errors import UsageError

    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if re.fullmatch(f"(?:{_DURATION.pattern})+", text):
        return now - sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(text))
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise UsageError(f"{text!r} is not a time",
                         hint="e.g. 2026-12-05T10:00:00Z, 1764928800, or 10m (ago)") from None


def follow_project(client: Any, project: str, *, services: list[str], tail: int | None,
                   timestamps: bool, follow: bool, color: bool | None = None,
                   prefix: bool = True, since: float | None = None,
                   until: float | None = None, only: frozenset[str] | None = None,
                   on_line: Callable[[], None] | None = None) -> None:
    """only: these containers' lines alone (`--index`), by name; `on_line` is called
    after each line printed."""
    out = sys.stdout
    if color is None:
        from stackd.cli import display

        color = display.color(out)
    colours: dict[str, int] = {}
    params: dict[str, Any] = {"follow": follow, "tail": tail, "timestamps": timestamps,
                              "service": services or None, "since": since, "until": until}
    width = 0
    for rec in client.stream("GET", f"/v1/stacks/{project}/logs", params=params):
        name = str(rec.get("container", ""))
        if only is not None and name not in only:
            continue
        width = max(width, len(name))
        text = rec.get("line", "")
        if timestamps:
            text = f"{rec.get('time', '')} {text}"
        if prefix:
            # Compose's prefix: the name padded one past the longest so far, then " | ".
            label = f"{name:<{width + 1}} | "
            if color:
                c = colours.setdefault(name, COLOURS[len(colours) % len(COLOURS)])
                label = f"\x1b[{c}m{label}\x1b[0m"
            text = label + text
        out.write(text + "\n")
        out.flush()
        if on_line is not None:
            on_line()


def check_services(client: Any, args: argparse.Namespace, project: str,
                   names: list[str]) -> None:
    """Compose's `no such service`: every name must be a service of the stack file in
    play or of a container the project has; a typo otherwise prints nothing, exit 0."""
    from stackd.errors import NotFoundError

    rows = client.get("/v1/containers", project=project, all=True)
    known = {str(r.get("service") or "") for r in rows} - {""}
    missing = [n for n in names if n not in known]
    if missing:
        from stackd.cli.cmd_run import stack_in_play

        if stack_in_play(args):
            from stackd.cli.main import load_stack

            known |= set(load_stack(args).services)
            missing = [n for n in names if n not in known]
    if missing:
        listed = ", ".join(sorted(known)) or "none (is the stack up?)"
        raise NotFoundError(f"no such service: {', '.join(missing)} in project {project}",
                            hint=f"its services are: {listed}")


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
    if args.index is not None and not args.services:
        raise UsageError("--index picks a replica of the services named",
                         hint="e.g. stackd logs --index 2 web")
    project = project_of(args)
    only = (frozenset(f"{project}-{s}-{args.index}" for s in args.services)
            if args.index is not None else None)
    with Client() as client:
        if args.services:
            check_services(client, args, project, args.services)
        now = time.time()

        def show(client: Any = client, on_line: Callable[[], None] | None = None, *,
                 follow: bool = args.follow) -> None:
            follow_project(client, project, services=args.services, tail=tail, on_line=on_line,
                           timestamps=args.timestamps, follow=follow,
                           color=False if args.no_color else None,
                           prefix=not args.no_log_prefix,
                           since=parse_time(args.since, now) if args.since else None,
                           until=parse_time(args.until, now) if args.until else None,
                           only=only)

        if not args.follow or args.until:
            show()
            return 0
        from stackd.cli.followed import all_ended, follow_until_ended, look

        # Compose's `logs -f` ends, as its attached `up`, once every container it
        # follows has exited for good: `up -d && logs -f tests` in a CI script returns
        # when the suite has run. Ended already: what they wrote, as `docker logs -f`
        # of a stopped container.
        services = list(args.services) or None
        if all_ended(look(client, project)[0], services):
            show(follow=False)
            return 0
        return follow_until_ended(client, project, services,
                                  follow=lambda on_line: show(Client(), on_line))
