"""The daemon's core: desired stacks, the controller that converges them, the event bus.

The API handlers call the methods here; nothing here knows HTTP. An apply writes the
desired state (durably, before anything else), enqueues the stack and lets the
controller converge it; the caller watches the bus for progress and waits for a
reconcile of its generation to finish. A daemon killed at any instant therefore loses
nothing: on start every stored stack is enqueued and converged again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from stackd import __version__
from stackd.daemon.controller import Controller
from stackd.daemon.desired import DesiredStack, DesiredStore
from stackd.daemon.events import Event, EventBus
from stackd.daemon.metrics import Metrics
from stackd.daemon.models import (
    ApplyOptions,
    ApplyRequest,
    RemoveOptions,
    StackStatus,
    Version,
)
from stackd.daemon.world import LoadedStack, World
from stackd.errors import NotFoundError, StackdError
from stackd.roots import Roots
from stackd.state.db import StateDB

if TYPE_CHECKING:
    from stackd.daemon.oneoff import ServiceRunRequest

log = logging.getLogger("stackd.engine")


@dataclass
class _Outcome:
    generation: int
    result: str  # "ok", "requeue", "error", "terminal"
    error: str


class Engine:
    def __init__(self, roots: Roots, world: World, db: StateDB, *,
                 resync_period: float = 30.0, workers: int = 4) -> None:
        self.roots = roots
        self.world = world
        self.started = time.time()
        self.bus = EventBus()
        self._containers_seen: list[tuple[str, str, str]] = []
        self.metrics = Metrics(lambda: list(self._containers_seen))
        # One connection for the daemon, used from the trio thread only: every store
        # write is a short transaction, and sqlite3 connections don't like threads.
        self.db = db
        self.store = DesiredStore(self.db)
        self.controller = Controller(self._reconcile, bus=self.bus, metrics=self.metrics,
                                     workers=workers, resync_period=resync_period,
                                     keys=self.store.projects)
        self.bus.listen(self._on_event)
        self._loaded: dict[str, tuple[int, LoadedStack]] = {}
        self._outcomes: dict[str, _Outcome] = {}
        # The apply-only options (force recreate, build, pull always) hold for the first
        # successful reconcile of a generation; resyncs after it must not recreate again.
        self._consumed: dict[str, int] = {}
        # Work a request starts and the daemon finishes (a detached `run --rm`'s removal).
        self.background: trio.Nursery | None = None

    # -- lifecycle ------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with trio.open_nursery() as nursery:
            self.background = nursery
            await nursery.start(self._watch)
            await nursery.start(self.controller.run)
            self.bus.emit("daemon", message=f"stackd {__version__} started (pid {os.getpid()})")
            task_status.started()

    async def _watch(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                     ) -> None:
        await self.world.watch(self.bus.publish, task_status=task_status)

    def close(self) -> None:
        self.controller.shut_down()

    def _on_event(self, event: Event) -> None:
        self.metrics.events.labels(event.type).inc()
        if (event.type in ("die", "oom", "health", "heal") and event.project
                and self.store.get(event.project) is not None):
            self.controller.enqueue(event.project)
        if event.type == "restart" and event.project:
            self.metrics.restarts.labels(event.project, event.service or "",
                                         event.attrs.get("reason", "")).inc()

    # -- the reconcile ----------------------------------------------------------------

    async def _reconcile(self, project: str) -> float | None:
        desired = self.store.get(project)
        if desired is None:
            return None
        try:
            if desired.phase == "removing":
                return await self._teardown(desired)
            stack = await self._stack(desired)
            options = desired.request.options
            if self._consumed.get(project) == desired.generation:
                options = steady(options)
            t0 = trio.current_time()
            requeue = await self.world.reconcile(stack, options, self.bus.publish)
            self._consumed[project] = desired.generation
            self._outcomes[project] = _Outcome(desired.generation,
                                               "requeue" if requeue else "ok", "")
            log.info("reconciled", extra={"project": project, "generation": desired.generation,
                                          "seconds": round(trio.current_time() - t0, 4)})
            await self._refresh_containers()
            return requeue
        except BaseException as exc:
            if isinstance(exc, Exception):
                self._outcomes[project] = _Outcome(desired.generation, "error",
                                                   str(exc) if isinstance(exc, StackdError)
                                                   else repr(exc))
            raise

    async def _teardown(self, desired: DesiredStack) -> None:
        from stackd.daemon import oneoff, stack_images

        options = desired.remove or RemoveOptions()
        # `--rmi`: the stack file names the images; read it while it is still known.
        refs = await self._images_to_remove(desired, options)
        for name in await oneoff.remove_oneoffs(self.world, desired.project):
            self.bus.emit("progress", project=desired.project, container=name,
                          message=f"{name}: remove — one-off", state="done", elapsed="0")
        await self.world.teardown(desired.project, options, self.bus.publish)
        if refs:
            ports = getattr(self.world, "ports", None)
            for outcome in await stack_images.remove_images(ports, refs) if ports else []:
                self.bus.emit("remove", project=desired.project, message=outcome.line,
                              scope="image", generation=str(desired.generation))
        self.store.forget(desired.project, desired.generation)
        self._loaded.pop(desired.project, None)
        self._consumed.pop(desired.project, None)
        self._outcomes[desired.project] = _Outcome(desired.generation, "ok", "")
        self.bus.emit("remove", project=desired.project, message="stack removed",
                      scope="stack")
        await self._refresh_containers()

    async def _images_to_remove(self, desired: DesiredStack, options: RemoveOptions
                                ) -> list[str]:
        from stackd.daemon import stack_images

        if options.images == "none":
            return []
        source = desired.request.source
        try:
            if source.files is None and source.content is None and source.cwd is None:
                raise NotFoundError("the daemon never applied it, so its files are unknown")
            stack: Any = await self._stack(desired)
            return stack_images.images_of(stack.stack, options.images)
        except StackdError as exc:
            self.bus.emit("remove", project=desired.project, scope="image",
                          generation=str(desired.generation),
                          message=f"warning: --rmi: no image removed: {exc}")
            return []

    def run_service(self, request: ServiceRunRequest) -> AsyncIterator[dict[str, Any]]:
        """`stackd run SERVICE`: a one-off container of a stack's service (oneoff.py)."""
        from stackd.daemon.oneoff import run_service

        return run_service(self, request)

    async def _stack(self, desired: DesiredStack) -> LoadedStack:
        cached = self._loaded.get(desired.project)
        if cached and cached[0] == desired.generation:
            return cached[1]
        stack = await self.world.load(desired.request.source)
        self._loaded[desired.project] = (desired.generation, stack)
        return stack

    async def _refresh_containers(self) -> None:
        try:
            rows = await self.world.containers(None, True)
        except StackdError:
            return
        self._containers_seen = [(r.get("project") or "", r.get("state") or "",
                                  r.get("health") or "") for r in rows]

    # -- what the API calls --------------------------------------------------------------

    async def submit(self, request: ApplyRequest) -> tuple[str, int]:
        """Load (to validate and name it), record as desired, enqueue. → (project, generation)"""
        stack = await self.world.load(request.source)
        project = stack.project
        gen = self.store.put(project, request)
        self._loaded[project] = (gen, stack)
        self.bus.emit("apply", project=project, message=f"generation {gen} submitted",
                      generation=str(gen))
        self.controller.enqueue(project)
        return project, gen

    async def submit_removal(self, project: str, options: RemoveOptions) -> int:
        known = self.store.get(project) is not None
        if not known and project not in await self.world.projects():
            raise NotFoundError(f"no stack named {project!r} is running",
                                hint="see `stackd ls` for the stacks this daemon keeps")
        gen = self.store.mark_removing(project, options, None)
        self.controller.enqueue(project)
        return gen

    async def wait_generation(self, project: str, generation: int) -> _Outcome:
        """Wait for a reconcile that read `generation` (or a later one) to finish."""
        st = self.controller.key_status(project)
        while True:
            outcome = self._outcomes.get(project)
            if outcome is not None and outcome.generation >= generation:
                return outcome
            await st.changed.wait()

    async def progress(self, project: str, generation: int) -> AsyncIterator[dict[str, object]]:
        """Events of `project` until a reconcile of `generation` finishes, then its outcome."""
        send, receive = trio.open_memory_channel[dict[str, object]](1000)

        async def pump_events() -> None:
            async for event in self.bus.subscribe():
                if event.project == project:
                    await send.send({"event": event.model_dump(mode="json")})

        async def wait_done() -> None:
            outcome = await self.wait_generation(project, generation)
            await send.send({"done": {"project": project, "generation": generation,
                                      "result": outcome.result, "error": outcome.error}})

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump_events)
            nursery.start_soon(wait_done)
            async for item in receive:
                yield item
                if "done" in item:
                    nursery.cancel_scope.cancel()
                    return

    def stacks(self) -> list[StackStatus]:
        out = []
        for d in self.store.all():
            st = self.controller.key_status(d.project)
            out.append(StackStatus(
                project=d.project, generation=d.generation,
                phase=d.phase,  # type: ignore[arg-type]
                files=d.request.source.files or [], cwd=d.request.source.cwd or "",
                reconciles=st.reconciles,
                last_result=st.last_result, last_error=st.last_error,
                last_finished=st.last_finished))
        return out

    async def plan(self, request: ApplyRequest) -> tuple[str, list[dict[str, object]]]:
        stack = await self.world.load(request.source)
        return stack.project, await self.world.plan(stack, request.options)

    async def project_logs(self, project: str, services: list[str], *, follow: bool,
                           tail: int | None, timestamps: bool
                           ) -> AsyncIterator[dict[str, object]]:
        """Log records of a stack's containers; with follow, also of containers that
        appear later (restarts, new replicas, recreates), until the client leaves."""
        wanted = set(services)

        async def current() -> list[dict[str, object]]:
            rows = await self.world.containers(project, True)
            return [r for r in rows if not wanted or r.get("service") in wanted]

        if not follow:
            records: list[dict[str, object]] = []
            for row in await current():
                async for rec in self.world.logs(str(row["id"]), follow=False, tail=tail,
                                                 timestamps=timestamps):
                    records.append(rec)
            records.sort(key=lambda r: str(r.get("time", "")))
            for rec in records:
                yield rec
            return

        send, receive = trio.open_memory_channel[dict[str, object]](1000)
        seen: set[str] = set()

        async def one(container_id: str, first: bool) -> None:
            # across_restarts: a restart keeps the id, so this one stream carries
            # every run of the slot; new ids (recreates, replicas) come from discover.
            async for rec in self.world.logs(container_id, follow=True,
                                             tail=tail if first else None,
                                             timestamps=timestamps, across_restarts=True):
                await send.send(rec)

        async def discover(nursery: trio.Nursery) -> None:
            first = True
            while True:
                for row in await current():
                    cid = str(row["id"])
                    if cid not in seen:
                        seen.add(cid)
                        nursery.start_soon(one, cid, first)
                first = False
                await trio.sleep(0.5)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(discover, nursery)
            async for rec in receive:
                yield rec

    def version(self) -> Version:
        return Version(version=__version__, pid=os.getpid(), state_root=str(self.roots.state),
                       run_root=str(self.roots.run), root_id=self.roots.id,
                       started=self.started)


def steady(options: ApplyOptions) -> ApplyOptions:
    """The options a resync uses once a generation's apply-time options have been honoured."""
    return options.model_copy(update={
        "force_recreate": False, "build": False,
        "pull": None if options.pull == "always" else options.pull})
