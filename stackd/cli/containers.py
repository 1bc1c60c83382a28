"""A container the user named, for the verbs that act on it from this process (exec,
cp): found by name or id through the daemon, then read from the runtime directly."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stackd.runtime.model import ContainerState


def running(name: str, *, hint: str) -> ContainerState:
    """The running container called `name` (or with that id); NotFoundError if none."""
    import trio

    from stackd.cli.client import Client
    from stackd.errors import NotFoundError
    from stackd.roots import Roots
    from stackd.runtime.runtime import Runtime

    with Client() as client:
        rows = client.get("/v1/containers", all=False)
    match = [r for r in rows if name in (r["name"], r["id"])]
    if not match:
        raise NotFoundError(f"no running container {name}", hint=hint)
    return trio.run(Runtime(Roots.from_env()).inspect, match[0]["id"])
