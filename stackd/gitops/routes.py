"""The GitOps API, added to the daemon's app (`/v1/gitops/…`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Path, Query

from stackd.daemon.api import Actor
from stackd.gitops.models import SourceSpec

if TYPE_CHECKING:
    from fastapi import FastAPI

    from stackd.gitops.service import GitOps

SourceName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


def add_routes(app: FastAPI, gitops: GitOps) -> None:
    @app.post("/v1/gitops/sources")
    async def add(spec: SourceSpec) -> dict[str, Any]:
        """Record a source (durably) and start following it."""
        return await gitops.add(spec)

    @app.get("/v1/gitops/sources")
    async def ls() -> list[dict[str, Any]]:
        return await gitops.statuses()

    @app.get("/v1/gitops/sources/{name}")
    async def status(name: SourceName) -> dict[str, Any]:
        return await gitops.status(name)

    @app.delete("/v1/gitops/sources/{name}")
    async def remove(name: SourceName, keep_stack: Annotated[bool, Query()] = False
                     ) -> dict[str, str]:
        await gitops.remove(name, keep_stack)
        return {"removed": name}

    @app.post("/v1/gitops/sources/{name}/sync")
    async def sync(name: SourceName, actor: Actor = "") -> dict[str, Any]:
        """Fetch and apply now; the status after. Who asked is an `action` event, as
        for the stack verbs (the console's "sync now" names its token)."""
        gitops.store.get(name)  # NotFound before an event saying someone asked
        gitops.engine.asked(actor, "sync", name, detail=f"gitops source {name}")
        return await gitops.sync_now(name)

    @app.post("/v1/gitops/sources/{name}/diff")
    async def diff(name: SourceName) -> dict[str, Any]:
        """What the next sync would do, changing nothing."""
        return await gitops.diff(name)

    @app.post("/v1/gitops/sources/{name}/suspend")
    async def suspend(name: SourceName) -> dict[str, Any]:
        gitops.suspend(name, True)
        return await gitops.status(name)

    @app.post("/v1/gitops/sources/{name}/resume")
    async def resume(name: SourceName) -> dict[str, Any]:
        gitops.suspend(name, False)
        return await gitops.status(name)
