"""`stackd stats [SERVICE…] [--no-stream] [--format table|json] [-a]`: the stack's running
containers' CPU, memory, network and block I/O and process counts, redrawn every second
(compose's stats); with -a the stopped ones too, at zero.

CPU % is the container's CPU time over the wall time between two samples (100% = one
core busy), so even --no-stream samples twice, half a second apart, as docker does."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

HELP = "Live CPU, memory and process counts of the stack's containers"
INTERVAL = 1.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-stream", action="store_true", help="print one sample and exit")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("-a", "--all", action="store_true",
                   help="stopped containers too, at zero (as Compose's -a)")
    p.add_argument("--all-projects", action="store_true",
                   help="every container, not only the stack's")
    # Docker's: nothing here is truncated, so there is nothing to keep whole.
    p.add_argument("--no-trunc", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("services", nargs="*", metavar="SERVICE")


def sample(client: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    """name → the API's stats of each container still there."""
    from stackd.errors import ConflictError, NotFoundError

    out = {}
    for name in names:
        try:
            out[name] = client.get(f"/v1/containers/{name}/stats")
        except (NotFoundError, ConflictError):
            continue  # gone between the listing and now
    return out


def rows(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]],
         seconds: float, stopped: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per container in both samples: CPU % over the interval; and one at zero
    for each of `stopped` (name → id) not sampled. Pure."""
    out = []
    for name in sorted(after):
        if name not in before:
            continue
        a, b = before[name], after[name]
        cpu = max(0, b["cpu_ns"] - a["cpu_ns"]) / (seconds * 1e9) * 100 if seconds > 0 else 0.0
        limit = int(b.get("memory_limit") or 0)
        out.append({"name": name, "id": b["id"], "cpu_percent": round(cpu, 2),
                    "memory_bytes": b["memory_bytes"], "memory_limit": limit,
                    "memory_percent": round(b["memory_bytes"] / limit * 100, 2) if limit
                    else 0.0, "pids": b["pids"],
                    **{k: int(b.get(k) or 0) for k in _TOTALS}})
    out += [{"name": name, "id": cid, "cpu_percent": 0.0, "memory_bytes": 0,
             "memory_limit": 0, "memory_percent": 0.0, "pids": 0, **dict.fromkeys(_TOTALS, 0)}
            for name, cid in (stopped or {}).items() if name not in after]
    return sorted(out, key=lambda r: r["name"])


# Counted since the container started, as Docker's NET I/O and BLOCK I/O.
_TOTALS = ("net_rx", "net_tx", "block_read", "block_write")


def _io(r: dict[str, Any], a: str, b: str) -> str:
    from stackd.cli.humanize import decimal_size

    return f"{decimal_size(r[a])} / {decimal_size(r[b])}"


def _usage(r: dict[str, Any]) -> str:
    """Docker's `MEM USAGE / LIMIT`."""
    from stackd.cli.humanize import binary_size

    return f"{binary_size(r['memory_bytes'])} / {binary_size(r['memory_limit'])}"


def _docker_fields(r: dict[str, Any]) -> dict[str, Any]:
    return {"Name": r["name"], "ID": r["id"], "Container": r["id"],
            "CPUPerc": f"{r['cpu_percent']:.2f}%", "MemUsage": _usage(r),
            "MemPerc": f"{r['memory_percent']:.2f}%", "PIDs": str(r["pids"]),
            "NetIO": _io(r, "net_rx", "net_tx"), "BlockIO": _io(r, "block_read", "block_write")}


def table(data: list[dict[str, Any]]) -> str:
    from stackd.cli.table import render

    return render(("NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O",
                   "PIDS"),
                  [(r["name"], f"{r['cpu_percent']:.2f}%", _usage(r),
                    f"{r['memory_percent']:.2f}%", _io(r, "net_rx", "net_tx"),
                    _io(r, "block_read", "block_write"), r["pids"]) for r in data])


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client

    with Client() as client:
        def targets() -> tuple[list[str], dict[str, str]]:
            """The running containers' names, and the others' (-a): name → id."""
            from stackd.cli.stackref import project_of

            if args.all_projects:
                listed = client.get("/v1/containers", all=args.all)
            elif args.all:
                listed = [r for r in client.get("/v1/containers", project=project_of(args),
                                                all=True)
                          if not args.services or r["service"] in args.services]
            else:
                from stackd.cli.running import running_of

                listed = running_of(client, project_of(args), args.services)
            return ([r["name"] for r in listed if r["state"] == "running"],
                    {r["name"]: r["id"] for r in listed if r["state"] != "running"})

        names, stopped = targets()
        before, t0 = sample(client, names), time.monotonic()
        live = not args.no_stream
        from stackd.cli import display

        # Redrawn in place only where escape codes may go (not with --ansi never).
        tty = display.progress(sys.stdout) == "tty"
        while True:
            time.sleep(INTERVAL if live else INTERVAL / 2)
            after, t1 = sample(client, names), time.monotonic()
            data = rows(before, after, t1 - t0, stopped)
            if args.format == "json":
                # As Docker's: an object per container per line, its names beside ours.
                sys.stdout.write("".join(json.dumps({**r, **_docker_fields(r)}) + "\n"
                                         for r in data))
                sys.stdout.flush()
            else:
                if live and tty:
                    sys.stdout.write("\x1b[H\x1b[2J")  # redraw in place
                print(table(data), flush=True)
            if not live:
                return 0
            if not tty and args.format == "table":
                print(flush=True)  # blocks apart in a pipe or a file
            names, stopped = targets()
            before, t0 = after, t1
