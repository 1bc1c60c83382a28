"""The real World: spec, reconciler, runtime, images and netbridge behind the daemon's interface."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NoReturn

import trio

from stackd.daemon.models import ApplyOptions, ExecRequest, ExecResult, RemoveOptions, StackSource
from stackd.daemon.world import Emit, LoadedStack, World
from stackd.errors import UnavailableError
from stackd.roots import Roots


def _missing(what: str) -> NoReturn:
    raise UnavailableError(f"{what} is not available in this build of stackd",
                           hint="install the complete stackd package")


class MissingWorld:
    """A World whose every host operation says it is unavailable (pieces not built yet)."""

    async def watch(self, emit: Emit, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await trio.sleep_forever()

    async def load(self, source: StackSource) -> LoadedStack:
        _missing("the stack file loader")

    async def reconcile(self, stack: LoadedStack, options: ApplyOptions,
                        emit: Emit) -> float | None:
        _missing("the reconciler")

    async def plan(self, stack: LoadedStack, options: ApplyOptions) -> list[dict[str, Any]]:
        _missing("the reconciler")

    async def teardown(self, project: str, options: RemoveOptions, emit: Emit) -> None:
        _missing("the reconciler")

    async def containers(self, project: str | None, all: bool) -> list[dict[str, Any]]:
        _missing("the container runtime")

    async def projects(self) -> list[str]:
        return []

    async def networks(self) -> list[dict[str, Any]]:
        _missing("networking")

    async def volumes(self) -> list[dict[str, Any]]:
        _missing("the volume store")

    async def images(self) -> list[dict[str, Any]]:
        _missing("the image store")

    async def logs(self, container: str, *, follow: bool, tail: int | None,
                   timestamps: bool) -> AsyncIterator[dict[str, Any]]:
        _missing("the container runtime")
        yield {}

    async def exec(self, container: str, request: ExecRequest) -> ExecResult:
        _missing("the container runtime")

    async def stats(self, container: str) -> dict[str, Any]:
        _missing("the container runtime")

    async def signal(self, container: str, action: str, signal: str | None) -> None:
        _missing("the container runtime")


def make_world(roots: Roots) -> World:
    return MissingWorld()
