"""The small per-container verbs of compose: start, stop, restart, kill, rm, top, wait.

start, stop, restart, kill and rm are requests to the stack's controller (one per
verb, `POST /v1/stacks/{project}/{verb}`): its reconcile, the only code that changes
the stack's containers, carries them out (reconciler/asks.py) — `stop` dependents
first — and the display follows its progress events as `up`'s does.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

HELP = "start|stop|restart|kill|rm|top|wait the stack's containers"

def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    """Each verb's own flags (main.py passes the verb): no flag a verb would ignore."""
    if verb == "kill":
        p.add_argument("-s", "--signal", default="SIGKILL", help="the signal to send")
        p.add_argument("--remove-orphans", action="store_true",
                       help="also the containers of services the stack no longer has")
    if verb in ("stop", "restart"):
        p.add_argument("-t", "--timeout", type=int, default=None, metavar="SECONDS",
                       help="SIGKILL after this long (default: the service's "
                       "stop_grace_period)")
    if verb == "wait":
        p.add_argument("--down-project", action="store_true",
                       help="then take the stack down (as down --remove-orphans)")
    if verb == "start":
        p.add_argument("--wait", action="store_true",
                       help="until running and healthy (as up --wait)")
        p.add_argument("--wait-timeout", type=float, default=None, metavar="SECONDS",
                       help="--wait, failing after this long")
    if verb == "restart":
        p.add_argument("--no-deps", action="store_true",
                       help="not the services that depend on them with restart: true")
    if verb == "rm":
        p.add_argument("-f", "--force", action="store_true",
                       help="ask nothing (stackd never asks; Compose's flag)")
        p.add_argument("-s", "--stop", action="store_true",
                       help="stop running containers first, then remove them too")
        p.add_argument("-v", "--volumes", action="store_true",
                       help="also their anonymous volumes (named volumes stay)")
    p.add_argument("services", nargs="*", metavar="SERVICE")


def _containers(client: Any, project: str, services: list[str], *, all: bool
                ) -> list[dict[str, Any]]:
    rows = client.get("/v1/containers", project=project, all=all)
    return [r for r in rows if not services or r.get("service") in services]


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.cli.stackref import project_of
    from stackd.errors import NoStackError

    verb = args.verb
    project = project_of(args)
    with Client() as client:
        if verb == "top":
            return _top(client, project, args.services)
        if verb == "wait":
            code = _wait(client, project, args.services)
            if args.down_project:
                from stackd.cli import cmd_down

                # The whole stack: the services waited for are not down's to narrow.
                down = {**vars(args), "volumes": False, "remove_orphans": True,
                        "timeout": None, "rmi": None, "services": []}
                if cmd_down.run(argparse.Namespace(**down)) != 0:
                    return 1
            return code
        # rm: only `-s` reaches running containers (stopped, then removed); without it
        # they are left alone, as Compose's (whose -f only skips its question).
        force = getattr(args, "stop", False)
        none_stopped = verb == "rm" and not force and not any(
            r.get("state") != "running"
            for r in _containers(client, project, args.services, all=True))
        signal = args.signal.upper() if verb == "kill" else "SIGKILL"
        if not signal.startswith("SIG") and not signal.isdigit():  # `-s 9`, as docker's
            signal = "SIG" + signal
        services = list(args.services)
        if getattr(args, "remove_orphans", False) and not services:
            # Compose's kill leaves orphans alone unless asked: every service that has
            # a container then, the stack's and those it no longer declares.
            services = sorted({str(r["service"]) for r in _containers(
                client, project, [], all=False) if r.get("service")})
        body = {"services": services, "signal": signal, "force": force,
                "timeout": getattr(args, "timeout", None),
                "volumes": getattr(args, "volumes", False),
                "no_deps": getattr(args, "no_deps", False)}
        try:
            if not lifecycle(client, project, verb, body):
                return 1
            if none_stopped:
                print("No stopped containers", file=sys.stderr)
        except NoStackError:
            if verb == "start":
                raise
            # Nothing is up, so nothing is left to stop: Compose's answer, and 0.
            note = {"kill": "No container to kill", "rm": "No stopped containers"}
            if verb in note:
                print(note[verb], file=sys.stderr)
            return 0
        if getattr(args, "wait", False) or getattr(args, "wait_timeout", None) is not None:
            from stackd.cli.wait import wait_ready

            wait_ready(client, project, list(args.services), args.wait_timeout)
        return 0


def lifecycle(client: Any, project: str, verb: str, body: dict[str, Any]) -> bool:
    """Stream one lifecycle request with the live display; whether it succeeded."""
    from stackd.cli.progress_view import HeldErrors, ProgressView

    ok = False
    held = HeldErrors()
    with ProgressView() as view:
        for item in client.stream("POST", f"/v1/stacks/{project}/{verb}", json_body=body):
            if "event" in item:
                e = item["event"]
                if e["type"] == "progress" and e.get("state"):
                    view.update(e.get("container") or "", e["state"], e["message"],
                                float(e.get("elapsed") or 0))
                elif e["type"] == "error" and not held.hold(e):
                    view.note(f"error: {e['message']}")
            elif "done" in item:
                d = item["done"]
                ok = d["result"] in ("ok", "requeue")
                held.flush(view, None if ok else d["error"])
                if not ok:
                    view.note(f"stackd: {project}: {verb}: {d['error']}")
    return ok


def _top(client: Any, project: str, services: list[str]) -> int:
    """Each running container's name, then its processes as `ps -ef` shows them (as
    `docker compose top` prints them), a blank line between containers."""
    from stackd.cli.running import running_of
    from stackd.errors import NotFoundError

    first = True
    for r in sorted(running_of(client, project, services), key=lambda r: r["name"]):
        try:
            top = client.get(f"/v1/containers/{r['name']}/top")
        except NotFoundError:
            continue  # removed since the listing
        if not first:
            print()
        first = False
        print(r["name"])
        lines = [top["titles"], *top["processes"]]
        *aligned, _ = top["titles"]  # the command, last, is not padded
        widths = [max(len(line[i]) for line in lines) for i in range(len(aligned))]
        for line in lines:
            *cells, command = line
            print("   ".join([*(c.ljust(w) for c, w in zip(cells, widths, strict=True)),
                              command]))
    return 0


def _wait(client: Any, project: str, services: list[str]) -> int:
    """Compose's `wait`: block until each selected container has exited once — one its
    restart policy starts again counts at that exit —, printing each as it does
    (Compose's line); the exit code of the last one."""
    from stackd.errors import NotFoundError

    begun = time.time()
    # A one-off (`stackd run SERVICE`) is left out: no supervisor reports its exit.
    rows = [r for r in _containers(client, project, services, all=True)
            if not r.get("oneoff")]
    if not rows:  # nothing would ever exit: say so rather than wait forever
        what = f"of {', '.join(services)} " if services else ""
        raise NotFoundError(f"no container {what}in project {project}",
                            hint="see `stackd ps -a`")
    waiting = {r["name"]: r["id"] for r in rows}
    code = 0

    def exited(name: str, exit_code: int) -> None:
        nonlocal code
        print(f'container "{waiting.pop(name)}" exited with status code {exit_code}',
              flush=True)
        code = exit_code

    # An exited row without a code yet is being recorded: its die event brings it.
    for r in rows:
        if r["state"] == "exited" and r.get("exit_code") is not None:
            exited(r["name"], int(r["exit_code"]))
    if not waiting:
        return code
    # The die events since the listing began: the daemon's history replayed first,
    # so an exit between the listing and this stream is not missed.
    for e in client.stream("GET", "/v1/events",
                           params={"project": project, "since": 0, "follow": True}):
        if e.get("type") == "die" and e.get("container") in waiting \
                and e["time"] >= begun and "exitCode" in (e.get("attrs") or {}):
            exited(e["container"], int(e["attrs"]["exitCode"]))
            if not waiting:
                return code
    from stackd.errors import StackdError

    raise StackdError(f"the daemon's events ended while {', '.join(sorted(waiting))} ran",
                      hint="see `stackd daemon status`; then `stackd wait` again")
