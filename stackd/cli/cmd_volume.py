"""`stackd volume ls | inspect NAME… | create NAME | rm NAME… | prune [-f]`: named volumes.

Like `stackd network`, it reads and changes the state store directly (not through the
daemon): volumes are directories under $STACKD_ROOT/volumes with a row in the state db
(stackd.state.volumes), and removing one must work after a daemon that is gone. What
uses a volume is read from the runtime's containers (running or not, as Docker
counts them): such a volume is not removed.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

HELP = "Manage named volumes: ls, inspect, create, rm, prune"
DB_NAME = "stackd.db"  # the daemon's state database under $STACKD_ROOT


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="subverb", required=True,
                           metavar="{ls,inspect,create,rm,prune}")
    ls = sub.add_parser("ls", help="list volumes")
    ls.add_argument("--format", choices=["table", "json"], default="table")
    ls.add_argument("-q", "--quiet", action="store_true", help="only names")
    ins = sub.add_parser("inspect", help="volumes as JSON: mountpoint, project, users")
    ins.add_argument("names", nargs="+", metavar="NAME")
    create = sub.add_parser("create", help="create a volume (no error if it exists)")
    create.add_argument("name", metavar="NAME")
    rm = sub.add_parser("rm", help="remove volumes no container uses")
    rm.add_argument("names", nargs="+", metavar="NAME")
    prune = sub.add_parser("prune", help="remove every volume no container uses")
    prune.add_argument("-f", "--force", action="store_true", help="don't ask")


def users(containers: list[Any], mountpoint: str) -> list[str]:
    """Names of the containers that mount the volume at `mountpoint`. Pure."""
    return sorted({c.name for c in containers for m in c.spec.mounts
                   if m.type == "volume" and m.source == mountpoint})


def describe(store: Any, row: Any, containers: list[Any]) -> dict[str, Any]:
    mountpoint = store.path(row["name"])
    return {"name": row["name"], "project": row["project"],
            "created": datetime.fromtimestamp(row["created"], UTC).isoformat(),
            "mountpoint": mountpoint, "containers": users(containers, mountpoint)}


def table(rows: list[dict[str, Any]]) -> str:
    from stackd.cli.table import render

    return render(("NAME", "PROJECT", "CONTAINERS"),
                  [(r["name"], r["project"] or "-", ",".join(r["containers"]) or "-")
                   for r in rows])


def remove_project_volumes(project: str) -> list[str]:
    """`down -v` of a stack that is already down (no containers, not desired, so the
    daemon has nothing to tear down): its volumes that no container mounts, removed
    here. Their names."""
    import trio

    import stackd.state.volumes  # noqa: F401  (registers the table)
    from stackd.roots import Roots
    from stackd.runtime.runtime import Runtime
    from stackd.state.db import StateDB
    from stackd.state.volumes import VolumeStore

    roots = Roots.from_env().ensure()
    db = StateDB.open(roots.state / DB_NAME)
    try:
        db.ensure_schemas()
        store = VolumeStore(db, roots.state)
        names = [r["name"] for r in db.conn.execute(
            "SELECT name FROM volumes WHERE project=? ORDER BY name", (project,))]
        if not names:
            return []
        containers = trio.run(Runtime(roots).list)
        unused = [n for n in names if not users(containers, store.path(n))]
        for name in unused:
            trio.run(store.remove_volume, name)
        return unused
    finally:
        db.close()


def run(args: argparse.Namespace) -> int:
    import trio

    import stackd.state.volumes  # noqa: F401  (registers the table)
    from stackd.errors import ConflictError, NotFoundError, UsageError
    from stackd.roots import Roots
    from stackd.runtime.runtime import Runtime
    from stackd.state.db import StateDB
    from stackd.state.volumes import VolumeStore

    roots = Roots.from_env().ensure()
    db = StateDB.open(roots.state / DB_NAME)
    try:
        db.ensure_schemas()
        store = VolumeStore(db, roots.state)
        if args.subverb == "create":
            store.path(args.name)  # a UsageError for a name that is not one
            trio.run(store.ensure_volume, "", args.name)
            print(args.name)
            return 0

        def row(name: str) -> Any:
            store.path(name)
            found = db.conn.execute("SELECT name, project, created FROM volumes WHERE name=?",
                                    (name,)).fetchone()
            if found is None:
                raise NotFoundError(f"no volume {name!r}", hint="see `stackd volume ls`")
            return found

        containers = trio.run(Runtime(roots).list)
        if args.subverb == "ls":
            all_rows = db.conn.execute(
                "SELECT name, project, created FROM volumes ORDER BY name").fetchall()
            rows = [describe(store, r, containers) for r in all_rows]
            if args.quiet:
                print("\n".join(r["name"] for r in rows))
            elif args.format == "json":
                print(json.dumps(rows, indent=2))
            else:
                print(table(rows))
            return 0
        if args.subverb == "inspect":
            print(json.dumps([describe(store, row(n), containers) for n in args.names],
                             indent=2))
            return 0
        if args.subverb == "rm":
            for name in args.names:
                used = users(containers, store.path(row(name)["name"]))
                if used:
                    raise ConflictError(f"volume {name} is in use by {', '.join(used)}",
                                        hint="remove those containers first (`stackd rm`, "
                                             "`stackd down`)")
            for name in args.names:
                trio.run(store.remove_volume, name)
                print(name)
            return 0
        if not args.force:
            if not sys.stdin.isatty():
                raise UsageError("volume prune removes data and asks first",
                                 hint="add -f to prune without asking")
            answer = input("Remove every volume no container uses? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                return 0
        unused = [r["name"] for r in db.conn.execute("SELECT name FROM volumes ORDER BY name")
                  if not users(containers, store.path(r["name"]))]
        for name in unused:
            trio.run(store.remove_volume, name)
        if unused:
            print("Deleted volumes:\n" + "\n".join(unused))
        return 0
    finally:
        db.close()
