"""`stackd port SERVICE PRIVATE_PORT`: the host address a container port is published
on, as `docker compose port` prints it (`0.0.0.0:8080`), for scripts. Without a stack
file in play, `docker port CONTAINER [PRIVATE_PORT[/PROTO]]`: a container by name or
id, and without a port every binding (`80/tcp -> 0.0.0.0:8080`)."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "Print the host address a service's container port is published on"
EXAMPLE = "stackd port web 80"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", type=int, default=1, help="which replica (default 1)")
    p.add_argument("--protocol", choices=("tcp", "udp"), default="tcp")
    p.add_argument("service", metavar="SERVICE|CONTAINER")
    p.add_argument("private_port", nargs="?", default=None, metavar="PRIVATE_PORT[/PROTO]")


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


def bindings(row: dict[str, Any]) -> list[str]:
    """`docker port CONTAINER`'s lines, `80/tcp -> 0.0.0.0:8080`, by container port.
    Pure."""
    pairs = [str(text).partition("->")[::2] for text in row.get("ports") or []]

    def key(pair: tuple[str, str]) -> tuple[int, str, str]:
        port, _, proto = pair[1].partition("/")
        return (int(port) if port.isdigit() else 0, proto, pair[0])
    return [f"{inside} -> {host}" for host, inside in sorted(pairs, key=key)]


def _port(text: str, protocol: str) -> tuple[int, str]:
    from stackd.errors import UsageError

    port, _, proto = text.partition("/")
    if not port.isdigit() or proto not in ("", "tcp", "udp"):
        raise UsageError(f"{text!r} is not a container port", hint="e.g. 80 or 53/udp")
    return int(port), proto or protocol


def run(args: argparse.Namespace) -> int:
    from stackd.cli.client import Client
    from stackd.cli.cmd_run import stack_in_play
    from stackd.cli.stackref import project_of
    from stackd.errors import NotFoundError, UsageError

    if not stack_in_play(args):
        return _container_port(args)
    if args.private_port is None:
        raise UsageError("port SERVICE PRIVATE_PORT: name the container port",
                         hint=f"e.g. stackd port {args.service} 80")
    port, protocol = _port(args.private_port, args.protocol)
    project = project_of(args)
    name = f"{project}-{args.service}-{args.index}"
    with Client() as client:
        rows = client.get("/v1/containers", project=project)
    if not any(r.get("name") == name for r in rows):
        raise NotFoundError(f"no running container {name}",
                            hint="see `stackd ps`; --index picks another replica")
    hosts = published(rows, name, port, protocol)
    if not hosts:
        raise NotFoundError(f"no port {port}/{protocol} is published for "
                            f"container {name}", hint="see `stackd ps` for its ports")
    print("\n".join(hosts))
    return 0


def _container_port(args: argparse.Namespace) -> int:
    """`docker port CONTAINER [PRIVATE_PORT[/PROTO]]`."""
    from stackd.cli.client import Client
    from stackd.errors import NotFoundError

    with Client() as client:
        rows = [r for r in client.get("/v1/containers")
                if args.service in (r.get("name"), r.get("id"))]
    if not rows:
        raise NotFoundError(f"no running container {args.service}",
                            hint="see `stackd container ls`")
    if args.private_port is None:
        lines = bindings(rows[0])
    else:
        port, protocol = _port(args.private_port, args.protocol)
        lines = published(rows, rows[0]["name"], port, protocol)
        if not lines:
            raise NotFoundError(f"no port {port}/{protocol} is published for container "
                                f"{args.service}", hint="see `stackd port "
                                f"{args.service}` for what is")
    if lines:
        print("\n".join(lines))
    return 0
