"""A container the user named, for the verbs that act on it from this process (exec,
cp, pause, commit, export): found by name or id through the daemon's API."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


def running_id(name: str, *, hint: str) -> str:
    """The id of the running container called `name` (or with that id)."""
    return _find(name, hint, running=True)


def any_id(name: str, *, hint: str) -> str:
    """The id of the container called `name` (or with that id), running or not."""
    return _find(name, hint, running=False)


def named_id(args: argparse.Namespace, name: str, index: int) -> str:
    """The id of the container a verb names: a stack's service (its `index`th replica)
    when a stack file is in play, else a container's name or id (Docker's form);
    running or not."""
    from stackd.cli.cmd_run import stack_in_play

    if stack_in_play(args):
        from stackd.cli.stackref import project_of

        return _find(f"{project_of(args)}-{name}-{index}", "see `stackd ps -a`",
                     running=False)
    return _find(name, "see `stackd container ls -a`", running=False)


def _find(name: str, hint: str, *, running: bool) -> str:
    from stackd.cli.client import Client
    from stackd.errors import NotFoundError

    with Client() as client:
        rows = client.get("/v1/containers", all=not running)
    match = [r for r in rows if name in (r["name"], r["id"])]
    if not match:
        raise NotFoundError(f"no {'running ' if running else ''}container {name}", hint=hint)
    return str(match[0]["id"])
