"""`stackd exec SERVICE CMD…`: run a command in a service's running container.

Without a terminal (or with -T) it goes through the daemon's API and the output comes
back whole; with a terminal on both ends it runs straight through the runtime from
this process, so the TTY is the user's own.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "Run a command in a running service container"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-T", "--no-TTY", dest="no_tty", action="store_true",
                   help="don't allocate a TTY (the default when stdin is not a terminal)")
    p.add_argument("-i", "--interactive", action="store_true", default=True)
    p.add_argument("-u", "--user", default="")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VAL")
    p.add_argument("-w", "--workdir", default="")
    p.add_argument("--index", type=int, default=1, help="which replica (default 1)")
    p.add_argument("service", metavar="SERVICE")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD")


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.cli.stackref import project_of
    from stackd.errors import UsageError

    if not args.cmd:
        raise UsageError("exec needs a command", hint="e.g. stackd exec web sh")
    project = project_of(args)
    tty = not args.no_tty and sys.stdin.isatty() and sys.stdout.isatty()
    with Client() as client:
        name = _slot_name(client, project, args.service, args.index)
        if tty:
            return _exec_tty(name, args)
        result = client.post(f"/v1/containers/{name}/exec", {
            "cmd": args.cmd, "env": args.env, "user": args.user, "workdir": args.workdir})
    sys.stdout.write(result["stdout"])
    sys.stderr.write(result["stderr"])
    sys.stdout.flush()
    return int(result["exit_code"])


def _slot_name(client: Any, project: str, service: str, index: int) -> str:
    """The slot's container by its labels: `<project>-<service>-<n>`, or the service's
    container_name."""
    rows = client.get("/v1/containers", project=project)
    for r in rows:
        if r["service"] == service and r["index"] == index:
            return str(r["name"])
    return f"{project}-{service}-{index}"  # not running: the error names what was meant


def _exec_tty(name: str, args: argparse.Namespace) -> int:

    from stackd.cli.client import Client
    from stackd.daemon.local import exec_tty
    from stackd.errors import NotFoundError
    from stackd.roots import Roots

    with Client() as client:
        rows = client.get("/v1/containers", all=False)
    match = [r for r in rows if r["name"] == name]
    if not match:
        raise NotFoundError(f"no running container {name}", hint="see `stackd ps`")
    return exec_tty(Roots.from_env(), match[0]["id"], args.cmd, env=args.env,
                    cwd=args.workdir or None, user=args.user or None)
