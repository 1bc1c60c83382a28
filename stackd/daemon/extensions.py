"""Services that live in the daemon but belong to a package above it (GitOps).

The daemon imports nothing above it (tests/unit/test_layering.py); whoever starts the
daemon (`stackd daemon`, in the CLI) hands it these. Each runs as a task of the
daemon's nursery beside the engine, and may add API routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import trio

if TYPE_CHECKING:
    from fastapi import FastAPI

    from stackd.daemon.engine import Engine


class Extension(Protocol):
    async def run(self, engine: Engine, *, task_status: trio.TaskStatus[None]) -> None:
        """Run until cancelled; started once the engine runs."""

    def routes(self, app: FastAPI, engine: Engine) -> None:
        """Add this service's API routes (called once, in a worker thread)."""
