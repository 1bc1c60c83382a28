"""`stackd pause [SERVICE…]` / `stackd unpause [SERVICE…]`: freeze and thaw the stack's
running containers (the cgroup freezer), as compose's pause/unpause.

Straight through the runtime from this process, like exec: the container is found
through the daemon, its cgroup frozen here. A paused container still ends on SIGKILL
(`kill`, the last step of `stop`/`down`)."""

from __future__ import annotations

import argparse

HELP = "Pause (freeze) the stack's running containers; unpause thaws them"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("services", nargs="*", metavar="SERVICE")


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.cli.stackref import project_of
    from stackd.daemon.host_verbs import pause
    from stackd.errors import NotFoundError
    from stackd.roots import Roots

    project = project_of(args)
    with Client() as client:
        rows = client.get("/v1/containers", project=project, all=False)
    # The running containers of the services named that have one, as Compose's: a
    # named service with none is passed over, not a reason to pause nothing.
    rows = [r for r in rows if not args.services or r.get("service") in args.services]
    if not rows:
        of = f" of {', '.join(args.services)}" if args.services else ""
        raise NotFoundError(f"project {project} has no running container{of}",
                            hint="see `stackd ps -a`")
    roots = Roots.from_env()
    for row in rows:
        pause(roots, row["id"], args.verb == "pause")
        print(row["name"])
    return 0
