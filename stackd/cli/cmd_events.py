"""`stackd events`: what the daemon sees happen (start, die, oom, health, restart, apply…)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

HELP = "Stream the daemon's events (containers, health, restarts, applies)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--all-projects", action="store_true",
                   help="every stack's events, not only this one's")
    p.add_argument("--since", type=int, default=None, metavar="SEQ",
                   help="first replay the events after this sequence number (0: all kept)")
    p.add_argument("--no-follow", action="store_true", help="print past events and exit")


def format_event(e: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(e["time"]))
    subject = e.get("container") or e.get("project") or "daemon"
    by = f" (by {e['actor']})" if e.get("actor") else ""
    return f"{when} {e['type']:<8} {subject}: {e['message']}{by}"


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.cli.stackref import project_of

    project = None if args.all_projects else project_of(args)
    params = {"project": project, "since": args.since, "follow": not args.no_follow}
    with Client() as client:
        for e in client.stream("GET", "/v1/events", params=params):
            print(json.dumps(e) if args.json else format_event(e), flush=True)
    return 0
