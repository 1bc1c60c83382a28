"""`stackd events`: what the daemon sees happen (start, die, oom, health, restart, apply…)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

HELP = "Stream the daemon's events (containers, health, restarts, applies)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="one JSON object per line: stackd's fields, and Compose's action, "
                        "id and attributes")
    p.add_argument("--all-projects", action="store_true",
                   help="every stack's events, not only this one's")
    p.add_argument("--since", default=None, metavar="SEQ|TIME",
                   help="first replay the events after this sequence number (0: all "
                        "kept), or since TIME (10m, 2026-12-05T10:00:00Z, a Unix time)")
    p.add_argument("--until", default=None, metavar="TIME",
                   help="stop at TIME (same forms); one past: print and exit")
    p.add_argument("--no-follow", action="store_true", help="print past events and exit")
    p.add_argument("services", nargs="*", metavar="SERVICE",
                   help="only these services' events (as Compose's)")


# A --since number below this is a sequence number (stackd's), above it a Unix time
# (Docker's): the daemon would have to emit an event a second for 30 years to blur them.
_SEQ_BELOW = 1_000_000_000


class _Until(Exception):
    pass


def since_of(text: str | None, now: float) -> tuple[int | None, float | None]:
    """(sequence number to replay after, earliest event time) of --since. Pure."""
    from stackd.cli.cmd_logs import parse_time

    if text is None:
        return None, None
    if text.isdigit() and int(text) < _SEQ_BELOW:
        return int(text), None
    return 0, parse_time(text, now)


# stackd's container facts under the actions `docker compose events --json` names them
# by; a plan step's progress counts once done.
_ACTIONS = {"start": "start", "die": "die", "oom": "oom", "restart": "restart",
            "remove": "destroy"}
_STEP_ACTIONS = ("create", "stop", "kill")


def with_compose_keys(e: dict[str, Any]) -> dict[str, Any]:
    """`e` with the keys `docker compose events --json` gives a script — `action`, `id`
    (the container's name, which every stackd verb takes), `attributes` (its name,
    `exitCode` of a die) — beside stackd's own. Pure."""
    action = _ACTIONS.get(e["type"], e["type"])
    slot, project = e.get("slot") or "", e.get("project") or ""
    if e["type"] == "health":
        action = f"health_status: {(e.get('attrs') or {}).get('healthStatus', '')}"
    elif e["type"] == "remove" and not slot:
        action = "remove"  # the stack's, not a container's
    elif e["type"] == "progress":
        step = e.get("verb") or ""
        action = step if e.get("state") == "done" and slot and step in _STEP_ACTIONS \
            else "progress"
    name = f"{project}-{slot}" if slot and project else ""
    return {**e, "action": action, "id": name,
            "attributes": {**({"name": name} if name else {}), **(e.get("attrs") or {})}}


def format_event(e: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(e["time"]))
    subject = e.get("container") or e.get("project") or "daemon"
    by = f" (by {e['actor']})" if e.get("actor") else ""
    return f"{when} {e['type']:<8} {subject}: {e['message']}{by}"


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.cli.cmd_logs import check_services, parse_time
    from stackd.cli.stackref import project_of
    from stackd.errors import UsageError

    now = time.time()
    if args.services and args.all_projects:
        raise UsageError("SERVICE names a service of this stack: not with --all-projects")
    project = None if args.all_projects else project_of(args)
    seq, earliest = since_of(args.since, now)
    until = parse_time(args.until, now) if args.until is not None else None
    follow = not args.no_follow and (until is None or until > now)
    params = {"project": project, "since": seq, "follow": follow}
    if follow and until is not None:
        import signal

        def stop(*_: object) -> None:
            raise _Until

        signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, until - now)
    wanted = set(args.services)
    try:
        with Client() as client:
            if project is not None and wanted:
                check_services(client, args, project, args.services)
            for e in client.stream("GET", "/v1/events", params=params):
                if wanted and e.get("service") not in wanted:
                    continue
                if earliest is not None and e["time"] < earliest:
                    continue
                if until is not None and e["time"] >= until:
                    continue  # not break: the replayed history is in seq order, not time's
                print(json.dumps(with_compose_keys(e)) if args.json else format_event(e),
                      flush=True)
    except _Until:
        pass
    return 0
