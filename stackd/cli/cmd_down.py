"""`stackd down`: stop and remove the stack's containers and networks (volumes with -v)."""

from __future__ import annotations

import argparse

HELP = "Stop and remove the stack's containers and networks (-v: volumes too)"

RMI = """\
--rmi local removes the images built for services that have no `image:` (named
<project>-<service>); --rmi all every image the services use. An image another
container still runs on (another stack's, a `stackd run` one) is kept, with a
warning.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = RMI
    p.add_argument("-v", "--volumes", action="store_true", help="also remove named volumes")
    p.add_argument("--remove-orphans", action="store_true")
    p.add_argument("-t", "--timeout", type=int, default=None, metavar="SECONDS",
                   help="SIGKILL each container after this long (default: its service's "
                   "stop_grace_period)")
    p.add_argument("--rmi", choices=["local", "all"], default=None,
                   help="also remove images: local (built ones) or all")
    p.add_argument("services", nargs="*", metavar="SERVICE",
                   help="only these and what depends on them (the stack stays)")


def down_services(args: argparse.Namespace) -> int:
    """Compose's `down SERVICE…`: those services' containers and their dependents',
    stopped (dependents first) and removed, with -v their anonymous volumes; the stack,
    its networks and named volumes stay (others use them). They are held as after
    `rm`, so no pass makes them again until `up`."""
    from stackd.cli.client import Client
    from stackd.cli.cmd_lifecycle import lifecycle
    from stackd.cli.main import load_stack
    from stackd.cli.stackref import project_of
    from stackd.errors import UsageError
    from stackd.scheduler import build_graph, select_for_stop, stop_waves
    from stackd.scheduler.from_stack import from_stack

    if args.rmi:
        raise UsageError("--rmi takes the whole stack down, not some services",
                         hint="stackd down --rmi local, or stackd rmi IMAGE")
    stack = load_stack(args, targeted=args.services)
    # Dependents first: the rm ask removes in the order the services are named.
    services = [s for wave in stop_waves(select_for_stop(build_graph(from_stack(stack)),
                                                         args.services)) for s in wave]
    with Client() as client:
        ok = lifecycle(client, project_of(args), "rm", {
            "services": services, "force": True, "volumes": args.volumes,
            "timeout": args.timeout})
    return 0 if ok else 1


def run(args: argparse.Namespace) -> int:
    import itertools
    import sys

    from stackd.cli.client import Client
    from stackd.cli.progress_view import ProgressView
    from stackd.cli.stackref import project_of
    from stackd.errors import NotFoundError

    if args.services:
        return down_services(args)
    project = project_of(args)
    ok = True
    gen = None
    shown: set[int] = set()
    with Client() as client, ProgressView() as view:
        from stackd.cli.composeenv import flag

        params = {"volumes": args.volumes,
                  "remove_orphans": args.remove_orphans or flag("COMPOSE_REMOVE_ORPHANS"),
                  "rmi": args.rmi, "timeout": args.timeout}
        try:
            stream = client.stream("DELETE", f"/v1/stacks/{project}", params=params)
            first = next(stream, None)
        except NotFoundError:
            # Already down: nothing for the daemon to tear down, but `down` keeps
            # volumes, so `down -v` afterwards must still find and remove them.
            removed = []
            from stackd.cli.remote import is_remote

            if args.volumes and not is_remote():  # a remote node's volumes are its own
                from stackd.daemon.host_verbs import VolumeAdmin
                from stackd.roots import Roots

                with VolumeAdmin(Roots.from_env()) as admin:
                    removed = admin.prune(project)
            if not removed:
                # compose's answer, and its exit code: nothing to do is no failure
                print(f"stackd: warning: no resource found to remove for project "
                      f"{project!r}", file=sys.stderr)
                return 0
            for name in removed:
                view.note(f"Volume {name}  Removed")
            return 0
        for item in itertools.chain([first] if first is not None else [], stream):
            if "accepted" in item:
                gen = item["accepted"]["generation"]
            elif "event" in item and item["event"]["type"] == "progress":
                e = item["event"]
                view.update(e.get("container") or "", e.get("state") or "",
                            e["message"], float(e.get("elapsed") or 0))
            elif "event" in item and item["event"]["attrs"].get("scope") == "image":
                shown.add(item["event"]["seq"])
                view.note(item["event"]["message"])
            elif "done" in item:
                ok = item["done"]["result"] in ("ok", "requeue")
                if not ok:
                    view.note(f"stackd: {project}: {item['done']['error']}")
        if args.rmi and gen is not None:
            # The outcome can overtake the last events on the stream; the bus's recent
            # history has them all, in order.
            for e in client.stream("GET", "/v1/events",
                                   params={"project": project, "follow": False}):
                attrs = e.get("attrs") or {}
                if (attrs.get("scope") == "image" and attrs.get("generation") == str(gen)
                        and e["seq"] not in shown):
                    print(e["message"], file=sys.stderr)
    return 0 if ok else 1
