"""`stackd version [--format json]`: the client's version and, if one runs, the
daemon's (its pid and roots); a daemon that is not running is said, not started."""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "Show the version of the stackd client and daemon"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--short", action="store_true", help="only the client's version number")


def run(args: argparse.Namespace) -> int:
    from stackd import __version__
    from stackd.cli.client import Client
    from stackd.errors import UnavailableError

    if args.short:
        print(__version__)
        return 0
    daemon: dict[str, Any] | None
    try:
        with Client(autostart=False) as client:
            daemon = client.get("/v1/version")
    except UnavailableError:
        daemon = None
    if args.format == "json":
        print(json.dumps({"client": {"version": __version__}, "daemon": daemon}, indent=2))
        return 0
    print(f"stackd client: {__version__}")
    if daemon is None:
        print("stackd daemon: not running (commands that need it start it)")
    else:
        print(f"stackd daemon: {daemon['version']} (API {daemon['api']}), pid {daemon['pid']}, "
              f"state {daemon['state_root']}, run {daemon['run_root']}")
    return 0
