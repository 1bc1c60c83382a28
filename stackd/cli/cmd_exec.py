"""`stackd exec SERVICE CMD…`: run a command in a service's running container.

It runs straight through the runtime from this process, attached to our own stdio:
stdin is forwarded as compose's exec does by default (`echo hi | stackd exec -T svc
cat` prints hi), output streams as it comes, and with a terminal on both ends (unless
-T) the process gets a pty of the container's that is relayed to ours, window size
included. Ctrl-C and Ctrl-D go to the process: as bytes through the pty, or, without
one, Ctrl-C as a signal forwarded to it while stdin's EOF is its EOF.

Against another node (`--host tcp://`) it goes through the daemon's exec API instead:
no TTY and no stdin (like `exec -T … </dev/null`), the output printed once the command
ends, its exit code ours.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "Run a command in a running service container"


def add_arguments(p: argparse.ArgumentParser, *, target: str = "SERVICE") -> None:
    p.add_argument("-d", "--detach", action="store_true",
                   help="start the command and return; it runs on, its output unread")
    p.add_argument("-T", "--no-TTY", dest="no_tty", action="store_true",
                   help="don't allocate a TTY (the default when stdin is not a terminal)")
    p.add_argument("-t", "--tty", action="store_true",
                   help="allocate a TTY (the default when stdin is a terminal)")
    # Compose's exec is always interactive; -i is accepted so that `exec -it` reads
    # as it does with docker.
    p.add_argument("-i", "--interactive", action="store_true", default=True,
                   help="keep stdin attached (always: compose's default)")
    p.add_argument("--privileged", action="store_true",
                   help="every capability and no seccomp filter, for this command")
    p.add_argument("-u", "--user", default="")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VAL")
    p.add_argument("-w", "--workdir", default="")
    if target == "SERVICE":
        p.add_argument("--index", type=int, default=1, help="which replica (default 1)")
    p.add_argument("service", metavar=target)
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD")


def wants_tty(args: argparse.Namespace, stdin_tty: bool, stdout_tty: bool) -> bool:
    """Compose's rule: a TTY unless -T, and only with a terminal to relay it to (stdin
    a terminal; stdout too unless -t asked for one explicitly). Pure."""
    if args.no_tty or not stdin_tty:
        return False
    return stdout_tty or bool(args.tty)


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.cli.stackref import project_of
    from stackd.errors import NotFoundError, UsageError

    if not args.cmd:
        raise UsageError("exec needs a command", hint="e.g. stackd exec web sh")
    if args.no_tty and args.tty:
        raise UsageError("-t and -T contradict each other", hint="give one of them")
    if args.detach and args.tty:
        raise UsageError("exec -d runs the command without a terminal: not with -t",
                         hint="drop -t (or -d, to use the terminal)")
    project = project_of(args)
    with Client() as client:
        name = _slot_name(client, project, args.service, args.index)
        if client.remote is not None:
            return _exec_remote(client, name, args)
    try:
        return exec_attached(name, args, tty=wants_tty(args, sys.stdin.isatty(),
                                                       sys.stdout.isatty()),
                             hint="see `stackd ps`")
    except NotFoundError:
        from stackd.cli.cmd_logs import check_services

        with Client() as client:  # a typo says so, with the services there are
            check_services(client, args, project, [args.service])
        raise


def exec_attached(name: str, args: argparse.Namespace, *, tty: bool, hint: str) -> int:
    """Run args.cmd in the running container `name` (or id), attached to our stdio."""
    from stackd.cli.containers import running_id
    from stackd.daemon.host_verbs import exec_attached as run_attached
    from stackd.roots import Roots

    cid = running_id(name, hint=hint)
    if getattr(args, "detach", False):
        from stackd.daemon.host_verbs import exec_detached

        code, why = exec_detached(Roots.from_env(), cid, args.cmd, env=args.env,
                                  cwd=args.workdir or None, user=args.user or None,
                                  privileged=args.privileged)
        if why:
            print(why, file=sys.stderr)
        return code
    sys.stdout.flush()
    return run_attached(Roots.from_env(), cid, args.cmd, env=args.env,
                        cwd=args.workdir or None, user=args.user or None, tty=tty,
                        privileged=getattr(args, "privileged", False))


def _exec_remote(client: Any, name: str, args: argparse.Namespace) -> int:
    """exec through the API on the node `--host` names: output at the end, no stdin."""
    from stackd.errors import UsageError

    if args.tty:
        raise UsageError(f"exec -t needs a terminal on this host; {client.remote.url} is "
                         "another one", hint="drop -t: over --host, exec runs without a "
                                             "TTY or stdin")
    # As long as the command runs: the answer comes when it ends.
    result = client.request("POST", f"/v1/containers/{name}/exec",
                            json_body={"cmd": args.cmd, "env": args.env, "user": args.user,
                                       "workdir": args.workdir,
                                       "detach": getattr(args, "detach", False),
                                       "privileged": getattr(args, "privileged", False)},
                            timeout=None)
    sys.stdout.write(result["stdout"])
    sys.stdout.flush()
    sys.stderr.write(result["stderr"])
    return int(result["exit_code"])


def _slot_name(client: Any, project: str, service: str, index: int) -> str:
    """The slot's container by its labels: `<project>-<service>-<n>`, or the service's
    container_name."""
    rows = client.get("/v1/containers", project=project)
    for r in rows:
        if r["service"] == service and r["index"] == index:
            return str(r["name"])
    return f"{project}-{service}-{index}"  # not running: the error names what was meant
