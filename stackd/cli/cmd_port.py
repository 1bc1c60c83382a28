"""`stackd port SERVICE PRIVATE_PORT`: the host address a container port is published
on, as `docker compose port` prints it (`0.0.0.0:8080`), for scripts."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "Print the host address a service's container port is published on"
EXAMPLE = "stackd port web 80"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", type=int, default=1, help="which replica (default 1)")
    p.add_argument("--protocol", choices=("tcp", "udp"), default="tcp")
    p.add_argument("service", metavar="SERVICE")
    p.add_argument("private_port", type=int, metavar="PRIVATE_PORT")


def published(rows: list[dict[str, Any]], name: str, port: int, protocol: str
              ) -> list[str]:
    """`host_ip:host_port` of each binding of `port/protocol` of container `name`
    (`ps` rows' "ports": `host_ip:host_port->port/protocol`). Pure."""
    out = []
    for row in rows:
        if row.get("name") != name:
            continue
        for text in row.get("ports") or []:
            host, _, inside = str(text).partition("->")
            if inside == f"{port}/{protocol}":
                out.append(host)
    return out


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.cli.stackref import project_of
    from stackd.errors import NotFoundError

    project = project_of(args)
    name = f"{project}-{args.service}-{args.index}"
    with Client() as client:
        rows = client.get("/v1/containers", project=project)
    if not any(r.get("name") == name for r in rows):
        raise NotFoundError(f"no running container {name}",
                            hint="see `stackd ps`; --index picks another replica")
    hosts = published(rows, name, args.private_port, args.protocol)
    if not hosts:
        raise NotFoundError(f"no port {args.private_port}/{args.protocol} is published for "
                            f"container {name}", hint="see `stackd ps` for its ports")
    print("\n".join(hosts))
    return 0
