"""`stackd plan`: what the host lacks of the files, one line per action `up` would take
for it with its reason (not the exited containers `up` also starts: `up --dry-run`),
and how the files on disk differ from the applied revision; changes nothing."""

from __future__ import annotations

import argparse
import json

HELP = "Show how the host differs from the files"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from stackd.cli.cmd_up import add_plan_arguments

    add_plan_arguments(p)
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--exit-code", action="store_true",
                   help="exit 1 when there is something to do (for scripts and CI)")


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.cli.cmd_up import options_from_args
    from stackd.cli.stackref import source_from_args

    body = {"source": source_from_args(args, args.services),
            "options": options_from_args(args),
            # `up --dry-run`: what `up` itself does, finished jobs run again included
            "as_up": getattr(args, "as_up", False)}
    with Client() as client:
        result = client.post("/v1/stacks/plan", body)
    actions = result["actions"]
    revision = result.get("revision")
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return 1 if args.exit_code and actions else 0
    if not actions:
        print(f"{result['project']}: up to date, nothing to do")
    else:
        for a in actions:
            print(a["line"])
    for line in result.get("cluster") or ():
        print(f"cluster: {line}")
    if revision is not None and revision["changes"]:
        print(f"since the applied revision {revision['number']}:")
        for line in revision["changes"]:
            print(f"  {line}")
    return 1 if args.exit_code and actions else 0
