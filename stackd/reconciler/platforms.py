"""Refuse, before anything is pulled or built, a service whose platform its node can't run.

Pure: the node's platform comes from its machine name (`Node.arch`, `uname -m`).
"""

from __future__ import annotations

from collections.abc import Sequence

from stackd.errors import SpecError
from stackd.scheduler import Node
from stackd.scheduler.platform import Platform, parse_platform, platform_of_machine
from stackd.spec.model import Stack


def service_platform(stack: Stack, name: str, host: Platform | None) -> Platform | None:
    """The platform service `name` asks for (None: its node's); a SpecError when `host`
    can't run it or one of its `build.platforms`. No host: nothing is checked."""
    svc = stack.services[name]
    asked: list[tuple[str, tuple[str | int, ...]]] = []
    if svc.platform is not None:
        asked.append((svc.platform, ("services", name, "platform")))
    if svc.build is not None:
        asked += [(p, ("services", name, "build", "platforms", i))
                  for i, p in enumerate(svc.build.platforms)]
    for text, path in asked:
        if host is not None and not host.runs(parse_platform(text)):
            what = "build platform" if "build" in path else "platform"
            raise SpecError(
                f"service {name!r} asks for {what} {text}, which this host ({host}) "
                "cannot run", location=stack.location_of(path),
                hint=f"use an image built for {host}, or remove the {what}")
    return parse_platform(svc.platform) if svc.platform is not None else None


def check_platforms(stack: Stack, nodes: Sequence[Node]) -> dict[str, Platform | None]:
    """Every service's platform (None: the node's), refusing those the node can't run.

    One node today (this host); no nodes (tests of the plan alone): nothing checked.
    """
    host = platform_of_machine(nodes[0].arch) if nodes and nodes[0].arch else None
    return {name: service_platform(stack, name, host) for name in sorted(stack.services)}
