"""`stackd attach SERVICE`: a service's running container's output until it exits, then
its exit code, as compose's `attach`. A container of a service with `stdin_open: true`
also takes our stdin (its TTY, with `tty: true`: raw, Ctrl-C is the container's, and
Ctrl-P Ctrl-Q detaches); the first attach also shows what it printed before (up to
1 MiB, kept by the monitor until then). Other containers, or `--no-stdin`: the output
from now, and Ctrl-C detaches and leaves the container running."""

from __future__ import annotations

import argparse

HELP = "Follow a service container's output until it exits (its exit code)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", type=int, default=1, help="which replica (default 1)")
    p.add_argument("--no-stdin", action="store_true",
                   help="do not attach stdin (only services with stdin_open take it)")
    p.add_argument("service", metavar="SERVICE")


def run(args: argparse.Namespace) -> int:
    import sys

    from stackd.cli.client import Client
    from stackd.cli.stackref import project_of
    from stackd.errors import NotFoundError

    project = project_of(args)
    with Client() as client:
        rows = [r for r in client.get("/v1/containers", project=project, all=False)
                if r.get("service") == args.service and not r.get("oneoff")]
        row = next((r for r in rows if r.get("index") == args.index), None)
        if row is None:
            raise NotFoundError(
                f"no running container of {args.service} (replica {args.index}) in "
                f"project {project}", hint="see `stackd ps -a`")
        if not args.no_stdin:
            attached = _attach_stdin(row["id"])
            if attached is not None:
                return attached
        try:
            for rec in client.stream("GET", f"/v1/containers/{row['id']}/logs",
                                     params={"follow": True, "tail": 0}):
                out = sys.stderr if rec.get("stream") == "stderr" else sys.stdout
                out.write(rec.get("line", "") + "\n")
                out.flush()
        except KeyboardInterrupt:
            return 0  # detached; the container runs on
        done = next((r for r in client.get("/v1/containers", project=project, all=True)
                     if r["id"] == row["id"]), None)
    code = done.get("exit_code") if done is not None else None
    return int(code) if isinstance(code, int) else 0


def _attach_stdin(container_id: str) -> int | None:
    """Relay our stdin and stdout to a container made with stdin_open: its exit code (0
    if detached with Ctrl-P Ctrl-Q); None if it takes no stdin (then only its output)."""
    import sys

    from stackd.daemon.host_verbs import attach
    from stackd.errors import ConflictError, UnavailableError
    from stackd.roots import Roots

    sys.stdout.flush()
    try:
        record = attach(Roots.from_env(), container_id, stdin=True, detach_keys=True)
    except ConflictError:
        return None  # not created to be attached: follow its output instead
    if record is None:
        raise UnavailableError(f"lost the runtime monitor while attached to {container_id}",
                               hint="`stackd ps -a` shows whether it still runs")
    if record.get("detached"):
        return 0
    code = record.get("code")
    return int(code) if isinstance(code, int) else 0
