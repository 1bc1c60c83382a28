"""The running containers a verb names (`stats`, `pause`, `top`): a service given
that has none is an error naming it, before anything is done."""

from __future__ import annotations

from typing import Any

from stackd.errors import NotFoundError


def running_of(client: Any, project: str, services: list[str]) -> list[dict[str, Any]]:
    """The project's running containers' rows, only those of `services` if any given."""
    rows: list[dict[str, Any]] = client.get("/v1/containers", project=project, all=False)
    if not services:
        return rows
    missing = set(services) - {r["service"] for r in rows}
    if missing:
        raise NotFoundError(f"no running container of {', '.join(sorted(missing))} "
                            f"in project {project}", hint="see `stackd ps -a`")
    return [r for r in rows if r["service"] in services]
