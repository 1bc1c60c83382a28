"""`stackd stats [SERVICE…] [--no-stream] [--format table|json] [-a]`: the stack's running
containers' CPU, memory and process counts, redrawn every second (compose's stats).

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
    p.add_argument("-a", "--all-projects", action="store_true",
                   help="every running container, not only the stack's")
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
         seconds: float) -> list[dict[str, Any]]:
    """One row per container in both samples: CPU % over the interval. Pure."""
    out = []
    for name in sorted(after):
        if name not in before:
            continue
        a, b = before[name], after[name]
        cpu = max(0, b["cpu_ns"] - a["cpu_ns"]) / (seconds * 1e9) * 100 if seconds > 0 else 0.0
        out.append({"name": name, "id": b["id"], "cpu_percent": round(cpu, 2),
                    "memory_bytes": b["memory_bytes"], "pids": b["pids"]})
    return out


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f}{unit}" if unit != "B" else f"{n}B"
        n /= 1024  # type: ignore[assignment]
    return f"{n}B"


def table(data: list[dict[str, Any]]) -> str:
    from stackd.cli.table import render

    return render(("NAME", "CPU %", "MEM USAGE", "PIDS"),
                  [(r["name"], f"{r['cpu_percent']:.2f}%", human_bytes(r["memory_bytes"]),
                    r["pids"]) for r in data])


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client

    with Client() as client:
        def targets() -> list[str]:
            if args.all_projects:
                listed = client.get("/v1/containers", all=False)
            else:
                from stackd.cli.running import running_of
                from stackd.cli.stackref import project_of

                listed = running_of(client, project_of(args), args.services)
            return [r["name"] for r in listed]

        names = targets()
        before, t0 = sample(client, names), time.monotonic()
        live = not args.no_stream
        from stackd.cli import display

        # Redrawn in place only where escape codes may go (not with --ansi never).
        tty = display.progress(sys.stdout) == "tty"
        while True:
            time.sleep(INTERVAL if live else INTERVAL / 2)
            after, t1 = sample(client, names), time.monotonic()
            data = rows(before, after, t1 - t0)
            if args.format == "json":
                print(json.dumps(data), flush=True)
            else:
                if live and tty:
                    sys.stdout.write("\x1b[H\x1b[2J")  # redraw in place
                print(table(data), flush=True)
            if not live:
                return 0
            if not tty and args.format == "table":
                print(flush=True)  # blocks apart in a pipe or a file
            names = targets()
            before, t0 = after, t1
