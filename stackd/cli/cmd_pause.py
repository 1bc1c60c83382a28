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
    from stackd.errors import ConflictError, NotFoundError
    from stackd.roots import Roots

    project = project_of(args)
    with Client() as client:
        rows = client.get("/v1/containers", project=project, all=False)
    # The running containers of the services named that have one, as Compose's: a
    # named service with none is passed over, not a reason to pause nothing.
    rows = [r for r in rows if not args.services or r.get("service") in args.services]
    of = f" of {', '.join(args.services)}" if args.services else ""
    if not rows:
        raise NotFoundError(f"project {project} has no running container{of}",
                            hint="see `stackd ps -a`")
    pausing = args.verb == "pause"
    # Those already as asked are left so; a verb that would change none is an error,
    # as Docker's "is already paused" / "is not paused".
    rows = [r for r in rows if bool(r.get("paused")) != pausing]
    if not rows:
        raise ConflictError(
            f"project {project} has no {'unpaused' if pausing else 'paused'} container{of}",
            hint="they are all paused already: `stackd unpause` thaws them" if pausing
            else "see `stackd ps`: pause them first")
    roots = Roots.from_env()
    for row in rows:
        pause(roots, row["id"], pausing)
        print(row["name"])
    return 0
