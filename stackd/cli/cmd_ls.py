"""`stackd ls [-a] [--format table|json] [-q]`: the stacks, their status and files
(compose's `ls`): each stack the daemon holds as desired, and each project that has
containers on the host; without -a, only those with a running container or desired."""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from typing import Any

from stackd.daemon.rows import docker_state

HELP = "List stacks: their status and stack files"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true",
                   help="also stacks whose containers are all stopped")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("-q", "--quiet", action="store_true", help="only names")
    p.add_argument("--filter", action="append", default=[], metavar="name=TEXT",
                   help="only stacks whose name holds TEXT (Compose's one filter)")


def name_filters(items: list[str]) -> list[str]:
    """`--filter name=TEXT`, as Compose's ls takes it; any other filter is refused."""
    from stackd.errors import UsageError

    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key != "name":
            raise UsageError(f"--filter {item!r}: ls filters by name only",
                             hint="e.g. --filter name=shop")
        out.append(value)
    return out


def stack_files(files: list[str], cwd: str) -> list[str]:
    """The stack's files as absolute paths: those given (-f), else the ones compose
    discovery finds from where `up` ran."""
    from pathlib import Path

    from stackd.cli.stackref import _discover

    if files:
        return [f if f == "-" else os.path.normpath(os.path.join(cwd, f)) for f in files]
    found = _discover(Path(cwd)) if cwd else None
    return [str(p) for p in found[0]] if found else []


def summarise(stacks: list[dict[str, Any]], containers: list[dict[str, Any]],
              *, all: bool) -> list[dict[str, Any]]:
    """One row per project, sorted by name; status as compose prints it, e.g.
    "running(2), exited(1)". Pure but for stack_files' look at the disk."""
    states: dict[str, Counter[str]] = {}
    for c in containers:
        if c.get("project"):
            state = docker_state(c)
            states.setdefault(c["project"], Counter())[state] += 1
    desired = {s["project"]: s for s in stacks}
    rows = []
    for project in sorted(set(states) | set(desired)):
        counts = states.get(project, Counter())
        if not all and project not in desired and not counts["running"]:
            continue
        status = ", ".join(f"{state}({n})" for state, n in sorted(counts.items()))
        stack = desired.get(project)
        if stack is not None and stack["phase"] == "removing":
            status = ", ".join(filter(None, ["removing", status]))
        rows.append({"name": project, "status": status or "desired, no containers",
                     "desired": stack is not None,
                     "files": stack_files(stack["files"], stack.get("cwd", ""))
                     if stack else []})
    return rows


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.cli.table import render

    with Client() as client:
        stacks = client.get("/v1/stacks")
        containers = client.get("/v1/containers", all=True)
    wanted = name_filters(args.filter)
    rows = [r for r in summarise(stacks, containers, all=args.all)
            if all(w in r["name"] for w in wanted)]
    if args.quiet:
        for r in rows:
            print(r["name"])
    elif args.format == "json":
        # Compose's names beside stackd's, for scripts written against `docker compose
        # ls --format json` (`.Name`, `.Status`, `.ConfigFiles`).
        print(json.dumps([{**r, "Name": r["name"], "Status": r["status"],
                           "ConfigFiles": ",".join(r["files"])} for r in rows], indent=2))
    else:
        print(render(("NAME", "STATUS", "CONFIG FILES"),
                     [(r["name"], r["status"], ",".join(r["files"]) or "-") for r in rows]))
    return 0
