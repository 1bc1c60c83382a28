"""`stackd container ls|inspect|logs|start|stop|kill|pause|unpause|rm|prune|exec`: single
containers by name or id, anywhere, no stack file (docker's verbs) — for `stackd run`
containers first of all, but any container of the root is found."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "Single containers by name or id, with docker's verbs: ls, inspect, rm, exec…"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="subverb", required=True,
                           metavar="SUBVERB")
    ls = sub.add_parser("ls", help="list containers (running; -a: all)")
    ls.add_argument("-a", "--all", action="store_true")
    ls.add_argument("--format", default="table",
                    help="table, json, or a Docker template: '{{.Names}}'")
    ls.add_argument("-q", "--quiet", action="store_true", help="only names")
    inspect = sub.add_parser("inspect", help="containers as JSON (-f: through a template)")
    inspect.add_argument("-f", "--format", default=None,
                         help="a Docker template over Docker's fields, one line per "
                              "container: '{{.State.Status}}', "
                              "'{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'; "
                              "json: those fields as JSON")
    inspect.add_argument("names", nargs="+")
    logs = sub.add_parser("logs", help="a container's output")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("-n", "--tail", type=int, default=None)
    logs.add_argument("-t", "--timestamps", action="store_true")
    logs.add_argument("name")
    for verb, what in (("start", "start stopped containers"), ("stop", "stop containers"),
                       ("pause", "freeze running containers (the cgroup freezer)"),
                       ("unpause", "thaw paused containers")):
        sub.add_parser(verb, help=what).add_argument("names", nargs="+")
    kill = sub.add_parser("kill", help="send a signal (default SIGKILL)")
    kill.add_argument("-s", "--signal", default="SIGKILL")
    kill.add_argument("names", nargs="+")
    rm = sub.add_parser("rm", help="remove containers (-f: running ones too)")
    rm.add_argument("-f", "--force", action="store_true")
    rm.add_argument("names", nargs="+")
    prune = sub.add_parser("prune", help="remove every stopped container (a stack's too)")
    prune.add_argument("-f", "--force", action="store_true", help="don't ask")
    ex = sub.add_parser("exec", help="run a command in a running container")
    from stackd.cli.cmd_exec import add_arguments as exec_arguments

    exec_arguments(ex, target="NAME")


def _rows(client: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = client.get("/v1/containers", all=True)
    return rows


def prune_stopped(client: Any) -> list[str]:
    """Remove every container that does not run — exited or only created, a stack's as
    well as `run`'s, as Docker's `container prune` —; their names. One the daemon is
    restarting runs, as far as this is concerned."""
    stopped = [r for r in _rows(client)
               if r["state"] in ("exited", "created") and not r.get("restarting")]
    for row in stopped:
        client.post(f"/v1/containers/{row['name']}/remove")
    return [r["name"] for r in stopped]


def find(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The row of the container with that name or id (an id prefix of 4+ characters, as
    docker allows, when it is unambiguous)."""
    from stackd.errors import NotFoundError, UsageError

    exact = [r for r in rows if name in (r["name"], r["id"])]
    if exact:
        return exact[0]
    prefixed = [r for r in rows if len(name) >= 4 and r["id"].startswith(name)]
    if len(prefixed) > 1:
        raise UsageError(f"{name!r} is the start of several container ids",
                         hint="give more of it, or the name")
    if not prefixed:
        raise NotFoundError(f"no container {name!r}", hint="see `stackd container ls -a`")
    return prefixed[0]


def _inspect(row: dict[str, Any]) -> dict[str, Any]:
    from stackd.daemon.host_verbs import container_json
    from stackd.roots import Roots

    return {**container_json(Roots.from_env(), row["id"]), "ports": row.get("ports") or []}


def docker_doc(row: dict[str, Any]) -> dict[str, Any]:
    from stackd.cli.container_view import docker_container
    from stackd.daemon.host_verbs import container_json, container_links
    from stackd.roots import Roots

    roots = Roots.from_env()
    record = container_json(roots, row["id"])
    links = container_links(roots, row["id"],
                            [m.get("source") or "" for m in record["spec"]["mounts"]])
    return docker_container(row, record, links)


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.errors import ConflictError, UsageError

    if args.subverb == "exec":
        from stackd.cli.cmd_exec import exec_attached, wants_tty

        if not args.cmd:
            raise UsageError("exec needs a command", hint="e.g. stackd container exec NAME sh")
        with Client() as client:
            name = find(_rows(client), args.service)["name"]
        return exec_attached(name, args, tty=wants_tty(args, sys.stdin.isatty(),
                                                       sys.stdout.isatty()),
                             hint="see `stackd container ls`")
    with Client() as client:
        if args.subverb == "ls":
            rows = [r for r in _rows(client) if args.all or r["state"] == "running"]
            if args.quiet:
                for r in rows:
                    print(r["name"])
            elif args.format == "json":
                print(json.dumps(rows, indent=2))
            elif args.format != "table":
                from stackd.cli.cmd_ps import template_fields
                from stackd.cli.goformat import render as render_template

                sys.stdout.write(render_template(args.format,
                                                 [template_fields(r, True) for r in rows]))
            else:
                import time

                from stackd.cli.cmd_ps import command_text, running_for, status_text
                from stackd.cli.table import render

                now = time.time()
                # Docker's columns, in its order.
                print(render(("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                              "PORTS", "NAMES"),
                             [(r["id"], r.get("image") or "", command_text(r, True),
                               running_for(r, now), status_text(r, now),
                               ", ".join(r.get("ports") or []), r["name"]) for r in rows]))
            return 0
        if args.subverb == "prune":
            from stackd.cli.confirm import confirmed

            if not args.force and not confirmed(
                    "WARNING! This will remove all stopped containers.\n"
                    "Are you sure you want to continue? [y/N] ",
                    refusal="container prune removes every stopped container, and asks "
                    "first"):
                return 1
            removed = prune_stopped(client)
            if removed:
                print("Deleted Containers:\n" + "\n".join(removed))
            return 0
        rows = _rows(client)
        if args.subverb == "inspect":
            found = [find(rows, n) for n in args.names]  # every name checked first
            if args.format is None:
                print(json.dumps([_inspect(row) for row in found], indent=2))
            elif args.format == "json":
                print(json.dumps([docker_doc(row) for row in found], indent=4))
            else:
                from stackd.cli.goformat import render as render_template

                sys.stdout.write(render_template(args.format, [docker_doc(r) for r in found]))
            return 0
        if args.subverb == "logs":
            row = find(rows, args.name)
            for rec in client.stream("GET", f"/v1/containers/{row['name']}/logs",
                                     params={"follow": args.follow, "tail": args.tail,
                                             "timestamps": args.timestamps}):
                text = rec.get("line", "")
                if args.timestamps:
                    text = f"{rec.get('time', '')} {text}"
                out = sys.stderr if rec.get("stream") == "stderr" else sys.stdout
                out.write(text + "\n")
                out.flush()
            return 0
        targets = [find(rows, n) for n in args.names]  # every name checked first
        for row in targets:
            if args.subverb in ("pause", "unpause"):
                from stackd.daemon.host_verbs import pause
                from stackd.roots import Roots

                pause(Roots.from_env(), row["id"], args.subverb == "pause")
                print(row["name"])
                continue
            action = {"rm": "remove"}.get(args.subverb, args.subverb)
            if action == "remove" and row["state"] == "running" and not args.force:
                raise ConflictError(f"container {row['name']} is running",
                                    hint="stop it first, or use rm -f")
            params = {"signal": args.signal.upper()} if action == "kill" else {}
            client.post(f"/v1/containers/{row['name']}/{action}", **params)
            print(row["name"])
    return 0
