"""The small per-container verbs of compose: start, stop, restart, kill, rm, top, port, wait.

Each picks the stack's containers (optionally of some services) and asks the daemon
to act on each; the stack's controller looks at the stack again afterwards.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

HELP = "start|stop|restart|kill|rm|top|port|wait the stack's containers"

ACTIONS = {"start": "start", "stop": "stop", "restart": "restart", "kill": "kill",
           "rm": "remove"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    # One module for several verbs: main.py passes the verb in args.verb.
    p.add_argument("-s", "--signal", default="SIGKILL", help="kill: the signal to send")
    p.add_argument("-f", "--force", action="store_true", help="rm: also running containers")
    p.add_argument("-t", "--timeout", type=int, default=None, metavar="SECONDS",
                   help="stop, restart: SIGKILL after this long (default: the service's "
                   "stop_grace_period)")
    p.add_argument("services", nargs="*", metavar="SERVICE")


def _containers(client: Any, project: str, services: list[str], *, all: bool
                ) -> list[dict[str, Any]]:
    rows = client.get("/v1/containers", project=project, all=all)
    return [r for r in rows if not services or r.get("service") in services]


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.cli.stackref import project_of
    from stackd.errors import ConflictError

    verb = args.verb
    project = project_of(args)
    with Client() as client:
        if verb == "port":
            return _port(client, project, args.services)
        if verb == "top":
            return _top(client, project, args.services)
        if verb == "wait":
            return _wait(client, project, args.services)
        rows = _containers(client, project, args.services, all=verb in ("start", "rm"))
        if verb == "rm":
            running = [r["name"] for r in rows if r["state"] == "running"]
            if running and not args.force:
                raise ConflictError(f"containers still running: {', '.join(running)}",
                                    hint="stop them first, or use rm -f")
        signal = args.signal.upper() if verb == "kill" else None
        if signal and not signal.startswith("SIG"):
            signal = "SIG" + signal
        for r in rows:
            if verb == "start" and r["state"] == "running":
                continue
            timeout = args.timeout if verb in ("stop", "restart") else None
            client.post(f"/v1/containers/{r['name']}/{ACTIONS[verb]}", signal=signal,
                        timeout=timeout)
            print(f"{r['name']}: {verb}", file=sys.stderr)
    return 0


def _port(client: Any, project: str, services: list[str]) -> int:
    for r in _containers(client, project, services, all=False):
        for p in r.get("ports") or []:
            print(f"{r['name']}: {p}")
    return 0


def _top(client: Any, project: str, services: list[str]) -> int:
    for r in _containers(client, project, services, all=False):
        s = client.get(f"/v1/containers/{r['name']}/stats")
        print(f"{r['name']}  pid {r.get('pid')}  pids {s['pids']}  "
              f"mem {s['memory_bytes'] / 2**20:.1f} MiB  cpu {s['cpu_ns'] / 1e9:.2f}s")
    return 0


def _wait(client: Any, project: str, services: list[str]) -> int:
    """Block until the selected containers have exited; the first one's exit code."""
    while True:
        rows = _containers(client, project, services, all=True)
        if rows and all(r["state"] == "exited" for r in rows):
            for r in rows:
                print(f"{r['name']}: {r['exit_code']}")
            return int(rows[0]["exit_code"] or 0)
        time.sleep(0.2)
