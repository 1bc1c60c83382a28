"""`stackd attach SERVICE`: the output of a service's running container, from now until
it exits, then its exit code — compose's `attach --no-stdin --sig-proxy=false`:
Ctrl-C detaches and leaves the container running. Service containers keep no stdin
open to attach to (`run -i` for that)."""

from __future__ import annotations

import argparse

HELP = "Follow a service container's output until it exits (its exit code)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", type=int, default=1, help="which replica (default 1)")
    p.add_argument("--no-stdin", action="store_true",
                   help="accepted: stdin is never attached (service containers keep none)")
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
