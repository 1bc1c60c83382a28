"""A container the user named, for the verbs that act on it from this process (exec,
cp, pause): found by name or id through the daemon's API."""

from __future__ import annotations


def running_id(name: str, *, hint: str) -> str:
    """The id of the running container called `name` (or with that id)."""
    from stackd.cli.client import Client
    from stackd.errors import NotFoundError

    with Client() as client:
        rows = client.get("/v1/containers", all=False)
    match = [r for r in rows if name in (r["name"], r["id"])]
    if not match:
        raise NotFoundError(f"no running container {name}", hint=hint)
    return str(match[0]["id"])
