"""`stackd history [SERVICE]`: the stack's kept revisions, what each changed, how it went."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

HELP = "List the stack's applied revisions (what each changed, and its outcome)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("service", nargs="?", metavar="SERVICE",
                   help="say only whether each revision changed this service")
    p.add_argument("--format", choices=["table", "json"], default="table")


def table(rows: list[dict[str, Any]], service: str | None) -> str:
    header = ("REVISION", "CREATED", "CAUSE", "OUTCOME",
              "CHANGED" if service is None else service.upper() + " CHANGED")
    lines = []
    for r in rows:
        if service is None:
            changed = ", ".join(r["changed"]) or "-"
        else:
            changed = "yes" if r["changed"] else "no"
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created"]))
        lines.append((str(r["number"]), created, r["cause"], r["outcome"], changed))
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
    return "\n".join("   ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *lines])


def run(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from stackd.cli.client import Client
    from stackd.cli.stackref import project_of

    project = project_of(args)
    params = {"service": args.service} if args.service else {}
    with Client() as client:
        rows = client.get(f"/v1/stacks/{quote(project)}/history", **params)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(table(rows, args.service))
    return 0
