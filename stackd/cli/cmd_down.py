"""`stackd down`: stop and remove the stack's containers and networks (volumes with -v)."""

from __future__ import annotations

import argparse

HELP = "Stop and remove the stack's containers and networks (-v: volumes too)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--volumes", action="store_true", help="also remove named volumes")
    p.add_argument("--remove-orphans", action="store_true")
    p.add_argument("--rmi", choices=["local", "all"], default=None,
                   help="also remove images (not yet supported: refused)")


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.cli.progress_view import ProgressView
    from stackd.cli.stackref import project_of
    from stackd.errors import UsageError

    if args.rmi:
        raise UsageError("--rmi is not supported yet",
                         hint="remove images with `stackd image rm` after `down`")
    project = project_of(args)
    ok = True
    with Client() as client, ProgressView() as view:
        params = {"volumes": args.volumes, "remove_orphans": args.remove_orphans}
        for item in client.stream("DELETE", f"/v1/stacks/{project}", params=params):
            if "event" in item and item["event"]["type"] == "progress":
                e = item["event"]
                view.update(e.get("container") or "", e["attrs"].get("state", ""),
                            e["message"], float(e["attrs"].get("elapsed", 0)))
            elif "done" in item:
                ok = item["done"]["result"] in ("ok", "requeue")
                if not ok:
                    view.note(f"stackd: {project}: {item['done']['error']}")
    return 0 if ok else 1
