"""`stackd ps`: the stack's containers, their state, health and published ports."""

from __future__ import annotations

import json
import sys
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from stackd.cli.humanize import human_duration
from stackd.daemon.rows import docker_state

if TYPE_CHECKING:
    import argparse

HELP = "List the stack's containers"
# Compose's states that stackd's containers can be in.
STATUSES = ("created", "running", "paused", "restarting", "exited")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true",
                   help="include stopped containers, and those of `stackd run`")
    p.add_argument("--format", default="table",
                   help="table, json, or a Docker template: '{{.Name}} {{.Status}}', "
                        "'table {{.Service}}\\t{{.Ports}}'")
    p.add_argument("-q", "--quiet", action="store_true", help="only container ids")
    p.add_argument("--all-projects", action="store_true", help="every stack's containers")
    p.add_argument("--cluster", action="store_true",
                   help="on a cluster member: every node's containers, with a NODE column")
    p.add_argument("--services", dest="list_services", action="store_true",
                   help="only the names of the services that have containers listed")
    p.add_argument("--status", action="append", default=[], choices=STATUSES,
                   help="only containers in this state (repeatable; implies -a)")
    p.add_argument("--filter", action="append", default=[], metavar="status=STATE",
                   help="as --status (Compose's only filter)")
    p.add_argument("--no-trunc", action="store_true",
                   help="the COMMAND column whole (cut to 20 characters without it)")
    from stackd.cli.composeenv import go_bool

    p.add_argument("--orphans", type=go_bool, nargs="?", const=True, default=True,
                   metavar="BOOL", help="=false: only the services the stack files declare")
    p.add_argument("services", nargs="*", metavar="SERVICE")


def status_text(c: dict[str, Any], now: float) -> str:
    text = _state_text(c, now)
    # Its record could not be read (why: `ps --format json`, and the events).
    return f"{text} (unreadable record)" if c.get("problem") else text


def _state_text(c: dict[str, Any], now: float) -> str:
    """Docker's status words, each with how long since (`Up 2 minutes`, `Exited (3) 5
    seconds ago`) when the row says when."""
    state = c.get("state", "")
    if state == "running":
        # Another node's slot (`--cluster`) comes without its start time.
        text = "Up " + human_duration(now - float(c["started_at"])) \
            if c.get("started_at") else "Up"
        if c.get("paused"):
            text += " (Paused)"  # docker's word for it
        elif c.get("health"):
            # Docker's words: "(health: starting)", "(healthy)", "(unhealthy)".
            health = c["health"]
            text += f" ({'health: starting' if health == 'starting' else health})"
        return text
    since = f" {human_duration(now - float(c['finished_at']))} ago" \
        if c.get("finished_at") else ""
    if docker_state(c) == "restarting":
        return f"Restarting ({c.get('exit_code')}){since}"
    if state == "exited":
        if c.get("oom_killed"):
            return f"Exited ({c.get('exit_code')}, OOM killed){since}"
        return f"Exited ({c.get('exit_code')}){since}"
    return str(state).capitalize()


def command_text(c: dict[str, Any], trunc: bool) -> str:
    """Compose's COMMAND: the process's words joined, cut to 20 characters unless
    --no-trunc, in double quotes."""
    from stackd.printable import quoted

    text = " ".join(c.get("command") or [])
    if trunc and len(text) > 20:
        text = text[:19] + "…"
    return quoted(text)


def table(rows: list[dict[str, Any]], trunc: bool = True) -> str:
    now = time.time()
    from stackd.cli.table import render

    if any("node" in c for c in rows):  # `--cluster`: whose each one is
        return render(("NAME", "SERVICE", "NODE", "STATUS", "PORTS"), [
            (c["name"], c.get("service") or "", c.get("node") or "",
             status_text(c, now), ", ".join(c.get("ports") or [])) for c in rows])
    # Compose's columns, in its order.
    return render(("NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"), [
        (c["name"], c.get("image") or "", command_text(c, trunc), c.get("service") or "",
         running_for(c, now), status_text(c, now), ", ".join(c.get("ports") or []))
        for c in rows])


def running_for(c: dict[str, Any], now: float) -> str:
    """Compose's CREATED: how long ago the container was made."""
    created = c.get("created_at")
    return f"{human_duration(now - float(created))} ago" if created else ""


def fast_args(argv: list[str]) -> SimpleNamespace | None:
    """`stackd ps …` parsed without argparse, whose import and parser building cost more
    than a `ps` may take (podman ps answers in ~50 ms). Only the plain forms; None for
    anything else (-h, a bad value, unknown flags), which then goes through argparse
    for its full checking and messages. Must accept exactly what add_arguments does."""
    args = SimpleNamespace(all=False, format="table", quiet=False, all_projects=False,
                           cluster=False, services=[], list_services=False, status=[],
                           filter=[], orphans=True, no_trunc=False)
    it = iter(argv)
    closed = False  # argparse takes the SERVICE list in one run: an option ends it
    for word in it:
        if word.startswith("-") and args.services:
            closed = True
        if word in ("-a", "--all"):
            args.all = True
        elif word in ("-q", "--quiet"):
            args.quiet = True
        elif word == "--all-projects":
            args.all_projects = True
        elif word == "--cluster":
            args.cluster = True
        elif word == "--services":
            args.list_services = True
        elif word == "--no-trunc":
            args.no_trunc = True
        elif word == "--format" or word.startswith("--format="):
            value = word.partition("=")[2] if "=" in word else next(it, None)
            if value not in ("table", "json"):
                return None
            args.format = value
        elif word.startswith("-") or closed:
            return None
        else:
            args.services.append(word)
    return args


def _states(args: argparse.Namespace | SimpleNamespace) -> set[str]:
    from stackd.errors import UsageError

    out = set(args.status)
    for f in args.filter:
        key, _, value = f.partition("=")
        if key != "status" or value not in STATUSES:
            raise UsageError(f"--filter {f!r}: stackd filters by status only",
                             hint="--filter status=" + "|".join(STATUSES))
        out.add(value)
    return out


def run(args: argparse.Namespace | SimpleNamespace) -> int:
    from stackd.cli.client import Client
    from stackd.cli.stackref import project_of

    project = None if args.all_projects else project_of(args)
    states = _states(args)
    with Client() as client:
        # Without -a, Docker's ps lists the restarting too: asked for all, the stopped
        # are left out here.
        query: dict[str, Any] = {"project": project, "all": True}
        if args.cluster:
            query["cluster"] = True
        rows = client.get("/v1/containers", **query)
        if not (args.all or states):
            # Compose's: the `run` containers only with -a (or --status), as the stopped.
            rows = [r for r in rows if docker_state(r) in ("running", "paused", "restarting")
                    and not r.get("oneoff")]
        stacks = client.get("/v1/stacks") if args.format != "json" and not args.quiet \
            else []
        if args.services and project is not None:
            from stackd.cli.cmd_logs import check_services

            check_services(client, args, project, args.services)  # type: ignore[arg-type]
    for s in stacks:
        if s.get("rollback") and (project is None or s["project"] == project):
            # Beside the table, not in it: scripts read `ps --format json`.
            print(f"{s['project']}: {s['rollback']}", file=sys.stderr)
        if s.get("paused") and (project is None or s["project"] == project):
            print(f"{s['project']}: {s['paused']} (`stackd resume` goes on)", file=sys.stderr)
    if args.services:
        rows = [r for r in rows if r.get("service") in args.services]
    elif not args.orphans and project is not None:
        # Compose's: a service the files no longer declare (in any profile) is an
        # orphan; only here are the files read whole.
        from stackd.cli.main import load_stack

        declared = load_stack(args, all_profiles=True).services  # type: ignore[arg-type]
        rows = [r for r in rows if r.get("service") in declared]
    if states:
        rows = [r for r in rows if docker_state(r) in states]
    if args.list_services:  # a line each, nothing for none (as Compose's)
        sys.stdout.write("".join(f"{name}\n" for name in sorted(
            {str(r["service"]) for r in rows if r.get("service")})))
        return 0
    if args.quiet:
        sys.stdout.write("".join(f"{r['id']}\n" for r in rows))
    elif args.format == "json":
        # stackd's fields, and Compose's under its names (`.State`, `.Service`, …) for
        # the scripts written against `docker compose ps --format json`: as Compose's
        # (2.21 on), an object per line, nothing for no container (`jq .Name` reads it).
        sys.stdout.write("".join(json.dumps({**r, **docker_fields(r)},
                                            separators=(",", ":")) + "\n" for r in rows))
    elif args.format == "table":
        print(table(rows, trunc=not args.no_trunc))
    else:
        from stackd.cli.goformat import render

        sys.stdout.write(render(args.format, [template_fields(r, not args.no_trunc)
                                              for r in rows]))
    return 0


def docker_fields(c: dict[str, Any]) -> dict[str, Any]:
    """A row under the names Docker's and Compose's `ps --format` templates use."""
    return {"ID": c["id"], "Name": c["name"], "Names": c["name"],
            "Service": c.get("service") or "", "Project": c.get("project") or "",
            "State": docker_state(c),
            "Status": status_text(c, time.time()), "Health": c.get("health") or "",
            "ExitCode": c.get("exit_code") if c.get("exit_code") is not None else 0,
            "Pid": c.get("pid") or 0,
            "Ports": ", ".join(c.get("ports") or []),
            "Publishers": publishers(c.get("ports") or []),
            "Command": " ".join(c.get("command") or []),
            "Image": c.get("image") or "", "Created": int(c.get("created_at") or 0),
            "RunningFor": running_for(c, time.time()),
            "CreatedAt": _created_at(c)}


def template_fields(c: dict[str, Any], trunc: bool) -> dict[str, Any]:
    """A row for a `--format` template: Docker's fields, with COMMAND as its table shows
    it (quoted, cut unless --no-trunc) rather than JSON's plain words."""
    return {**docker_fields(c), "Command": command_text(c, trunc)}


def _created_at(c: dict[str, Any]) -> str:
    """Docker's `.CreatedAt` (Go's time.String of the local time, to the second)."""
    if not c.get("created_at"):
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(float(c["created_at"])))


def publishers(ports: list[str]) -> list[dict[str, Any]]:
    """Compose's `Publishers` of a row's `HOST_IP:PORT->PORT/PROTO` texts: what scripts
    read a published port from (`jq '.Publishers[0].PublishedPort'`). Pure."""
    found = []
    for text in ports:
        host, _, target = text.partition("->")
        url, _, published = host.rpartition(":")
        port, _, protocol = target.partition("/")
        if published.isdigit() and port.isdigit():
            found.append({"URL": url, "TargetPort": int(port),
                          "PublishedPort": int(published), "Protocol": protocol or "tcp"})
    return found
