"""The daemon's core: desired stacks, the controller that converges them, the event bus.

The API handlers call the methods here; nothing here knows HTTP. An apply records a
new revision of the stack (durably, before anything else: the resolved stack and the
content of the files it read), enqueues the stack and lets the controller converge it;
the caller watches the bus for progress and waits for a reconcile of its generation
(the revision's number) to finish. Every reconcile converges to the stored revision,
never to the files on disk. A daemon killed at any instant therefore loses nothing:
on start every stored stack is enqueued and converged to its revision again.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import trio

from stackd import __version__
from stackd.daemon import wire
from stackd.daemon.controller import Controller, Outcome, classify, leaves, told, typed_error
from stackd.daemon.desired_store import DesiredStack, DesiredStore, without_environ
from stackd.daemon.diskwatch import DiskWatch
from stackd.daemon.events import Event, EventBus
from stackd.daemon.metrics import Metrics
from stackd.daemon.models import (
    ApplyOptions,
    ApplyRequest,
    ExecRequest,
    ExecResult,
    LifecycleRequest,
    RemoveOptions,
    StackSource,
    StackStatus,
    Version,
)
from stackd.daemon.recordwatch import watch_records
from stackd.daemon.world import LoadedStack, World
from stackd.errors import (
    ConflictError,
    NoStackError,
    NotFoundError,
    StackdError,
    UpdateFailedError,
    disk_full,
)
from stackd.reconciler.asks import Ask, Verb
from stackd.reconciler.rolling import Rollout, resumed
from stackd.repeats import Repeats, with_count
from stackd.roots import Roots
from stackd.state.db import StateDB
from stackd.state.revisions import BlobStore, Cause, NewRevision, Revision

if TYPE_CHECKING:
    from sqlite3 import Connection

    from stackd.daemon.oneoff import ServiceRunRequest

log = logging.getLogger("stackd.engine")

# After world.watch failed: wait this long before watching again, doubling up to the max.
WATCH_RETRY = (1.0, 30.0)
DRAIN_TIMEOUT = 5.0  # s an outcome waits for its events to be streamed first
LOG_BATCH = 1000  # log records per write of a stream (wire.Batch)


@dataclass(eq=False)
class _Pending:
    """A user's lifecycle verb waiting for the stack's reconcile to carry it out."""

    ask: Ask
    done: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None

    def finish(self, error: BaseException | None) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


@dataclass(frozen=True)
class Asked:
    """A lifecycle verb queued for the controller, and the event it was queued after."""

    pending: _Pending
    mark: int


class Engine:
    def __init__(self, roots: Roots, world: World, db: StateDB, *,
                 resync_period: float = 30.0, workers: int = 4) -> None:
        self.roots = roots
        self.world = world
        self.started = time.time()
        self.bus = EventBus()
        # name → (project, state, health): read in full after each reconcile, and kept
        # current between them from the event stream (start, die, health, remove).
        self._containers_seen: dict[str, tuple[str, str, str]] = {}
        # That read is the refresher task's (`_keep_containers_seen`), not the reconcile's:
        # listing every container (~0.2 s at 500) held up each `up`'s answer.
        self._seen_stale = trio.Event()
        self.metrics = Metrics(lambda: list(self._containers_seen.values()))
        # One connection for the daemon, used from the trio thread only: every store
        # write is a short transaction, and sqlite3 connections don't like threads.
        self.db = db
        self.store = DesiredStore(self.db)
        self.revisions = self.store.revisions
        self.blobs = BlobStore(roots.state)
        # Storing a revision's blobs and collecting unreferenced ones must not interleave.
        self._revision_lock = trio.Lock()
        self.controller = Controller(self._reconcile, bus=self.bus, metrics=self.metrics,
                                     workers=workers, resync_period=resync_period,
                                     keys=self.store.projects)
        self.bus.listen(self._on_event)
        self._loaded: dict[str, tuple[int, LoadedStack]] = {}
        # Lifecycle verbs asked of each stack, carried out one per reconcile, in order.
        self._asks: dict[str, deque[_Pending]] = {}
        self._rollbacks: dict[int, tuple[str, str]] = {}  # generation → (project, why)
        # Cluster mode (daemon/clustering.py): `up` hands the stack to the cluster
        # (project, its resolved JSON) before recording it here; an error (etcd
        # unreachable) fails the `up` with nothing recorded.
        self.publish: Callable[[str, str], Awaitable[None]] | None = None
        # ... then, once recorded here, why the cluster's leader cannot place it ("").
        self.verdict: Callable[[str, str], Awaitable[str]] | None = None
        # Projects between publishing and recording their revision here: the agent
        # must not adopt their stack meanwhile (it would record a second revision).
        self.publishing: set[str] = set()
        # project → (generation, why the cluster cannot place it): said in that
        # generation's `done` (the leader's verdict comes back to the `up`).
        self._unplaced: dict[str, tuple[int, str]] = {}
        # ... `down` deletes it from the cluster (project, whether -v; → whether the
        # cluster had it), lifecycle verbs are refused on a cluster stack (raises), and
        # `plan` says where the cluster pins its services (project, stack → lines).
        self.unpublish: Callable[[str, bool], Awaitable[bool]] | None = None
        self.refuse_verb: Callable[[str, str], None] | None = None
        self.placement_notes: Callable[[str, str], Awaitable[list[str]]] | None = None
        # `ps --cluster`: (project or None, all) → rows of the slots other nodes run,
        # from their status summaries; and this node's name for its own rows.
        self.cluster_rows: Callable[[str | None, bool], list[dict[str, Any]]] | None = None
        self.node_name: Callable[[], str] | None = None
        # project → the generation whose rolling update has batches left: a waiter on
        # it waits for the last batch, not the first pass.
        self._updating: dict[str, int] = {}
        # The apply-only options (force recreate, build, pull always) hold for the first
        # successful reconcile of a revision; resyncs after it, and a restarted daemon,
        # must not recreate again: the revision records it (consumed), this caches it.
        self._consumed: dict[str, int] = {}
        # Work a request starts and the daemon finishes (a detached `run --rm`'s removal).
        self.background: trio.Nursery | None = None
        self.disks = DiskWatch([roots.state, roots.run], self.bus.emit)
        self._watch_failures = Repeats()

    # -- lifecycle ------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with trio.open_nursery() as nursery:
            self.background = nursery
            nursery.start_soon(self.disks.run)
            nursery.start_soon(watch_records, self.world, self.bus.emit)
            await nursery.start(self._watch)
            nursery.start_soon(self._keep_containers_seen)
            await nursery.start(self.controller.run)
            self.bus.emit("daemon", message=f"stackd {__version__} started (pid {os.getpid()})")
            task_status.started()

    async def _watch(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                     ) -> None:
        """world.watch, watched again after it fails. Its task group is where a fault of
        the host (a full disk under a container's exit) would otherwise end the daemon;
        the reconciles of the next watch adopt the containers again."""
        delay = WATCH_RETRY[0]
        while True:
            began = trio.current_time()
            try:
                await self.world.watch(self.bus.publish, task_status=task_status)
                return
            except Exception as exc:  # reported, then watched again
                typed = next(filter(None, map(disk_full, leaves(exc))), None)
                why = typed.message if typed else "; ".join(
                    f"{type(e).__name__}: {e}" for e in leaves(exc))
                repeated = self._watch_failures.admit(why)
                if repeated is not None:
                    log.error("watching the host failed; watching again",
                              exc_info=typed is None,
                              extra={"error": with_count(why, repeated), "retry_in": delay})
                self.bus.publish(Event(
                    type="error", message=f"watching the host failed, again in {delay:g}s: "
                    f"{why}", attrs={"fault": "disk_full"} if typed else {}))
            task_status = trio.TASK_STATUS_IGNORED  # started once is enough
            if trio.current_time() - began > WATCH_RETRY[1] * 2:
                delay = WATCH_RETRY[0]  # it had run well for a while: a new failure
            await trio.sleep(delay)
            delay = min(delay * 2, WATCH_RETRY[1])

    def close(self) -> None:
        self.controller.shut_down()

    def _on_event(self, event: Event) -> None:
        """Facts only enqueue the stack's key; its worker decides what they mean."""
        self.metrics.events.labels(event.type).inc()
        self._track(event)
        if (event.type in ("die", "oom", "health", "heal") and event.project
                and self.store.get(event.project) is not None):
            self.controller.enqueue(event.project)
        if event.type == "restart" and event.project and event.reason:
            self.metrics.restarts.labels(event.project, event.service or "",
                                         event.reason).inc()

    # -- the reconcile ----------------------------------------------------------------

    async def _reconcile(self, project: str) -> float | None:
        desired = self.store.get(project)
        pending = self._asks.get(project)
        ask = pending.popleft() if pending else None
        if pending:
            self.controller.enqueue(project)  # the next ask: one per reconcile, in order
        if desired is None:
            if ask is not None:
                ask.finish(NotFoundError(f"the daemon keeps no stack named {project!r}"))
            return None
        self.controller.key_status(project).reading = desired.generation
        try:
            if desired.phase == "removing":
                if ask is not None:
                    ask.finish(ConflictError(f"stack {project!r} is being removed (down)"))
                await self._teardown(desired)
                return None
            if ask is None and self._healable(desired):
                # A container's exit is healed before the whole stack is looked at:
                # the observe and plan of hundreds of containers took ~1 s at 500
                # (issue #20, heal <= 0.15 s). Same key, same writer; the pass below
                # converges the rest.
                await self.world.heal(project)
            stack = await self._stack(desired)
            options = desired.request.options
            if self._one_shot_done(desired):
                options = steady(options)
            revision = self.revisions.get(project, desired.generation)
            if revision is not None and revision.cause == "rollback":
                options = options.model_copy(update={"rolling_back": True})
            t0 = trio.current_time()
            before = self._rollouts(project, desired.generation)
            after: dict[str, Rollout] = dict(before)

            def keep(rollouts: Mapping[str, Rollout]) -> None:
                after.update(rollouts)
                self._keep_rollouts(desired, before, after)

            requeue = await self.world.reconcile(stack, options, self.bus.publish,
                                                 ask=ask.ask if ask else None,
                                                 rollouts=before, keep=keep)
            # A rolling update runs a batch per pass: the revision is reached (and its
            # one-shot options, --force-recreate, honoured) once no batch is left.
            if any(r.left > 0 and not r.paused for r in after.values()):
                self._updating[project] = desired.generation
            else:
                self._updating.pop(project, None)
            if not any(r.left > 0 for r in after.values()):
                self._consume(desired)
            log.info("reconciled", extra={"project": project, "generation": desired.generation,
                                          "seconds": round(trio.current_time() - t0, 4)})
            self._seen_stale.set()
            return requeue
        except BaseException as raised:
            self._updating.pop(project, None)
            err = typed_error(raised)
            if isinstance(err, UpdateFailedError) and err.rollback:
                await self._roll_back(desired, err.message)
            if ask is not None:
                ask.finish(err)
            raise
        finally:
            if ask is not None:
                ask.finish(None)

    async def _teardown(self, desired: DesiredStack) -> None:
        from stackd.daemon import oneoff, stack_images

        options = desired.remove or RemoveOptions()
        # `--rmi`: the stack file names the images; read it while it is still known.
        refs = await self._images_to_remove(desired, options)
        for name in await oneoff.remove_oneoffs(self.world, desired.project):
            self.bus.emit("progress", project=desired.project, container=name,
                          message=f"{name}: remove — one-off", verb="remove", state="done",
                          elapsed=0.0)
        await self.world.teardown(desired.project, options, self.bus.publish,
                                  stack=await self._stack_if_readable(desired))
        if refs:
            ports = getattr(self.world, "ports", None)
            for outcome in await stack_images.remove_images(ports, refs) if ports else []:
                self.bus.emit("remove", project=desired.project, message=outcome.line,
                              scope="image", generation=str(desired.generation))
        self.store.forget(desired.project, desired.generation)
        self._loaded.pop(desired.project, None)
        self.bus.emit("remove", project=desired.project, message="stack removed",
                      scope="stack")
        self._seen_stale.set()

    async def _stack_if_readable(self, desired: DesiredStack) -> LoadedStack | None:
        """The stack a `down` removes, for its stop order; None when it cannot be read
        any more (its files gone): then every container goes at once."""
        source = desired.request.source
        if source.files is None and source.content is None and source.cwd is None:
            return None
        try:
            return await self._stack(desired)
        except StackdError:
            return None

    async def _images_to_remove(self, desired: DesiredStack, options: RemoveOptions
                                ) -> list[str]:
        from stackd.daemon import stack_images

        if options.images == "none":
            return []
        try:
            applied = self._applied_revision(desired.project, desired.generation)
            if applied is None:
                raise NotFoundError("the daemon never applied it, so its files are unknown")
            stack: Any = await self._from_revision(applied)
            return stack_images.images_of(stack.stack, options.images)
        except StackdError as exc:
            self.bus.emit("remove", project=desired.project, scope="image",
                          generation=str(desired.generation),
                          message=f"warning: --rmi: no image removed: {exc}")
            return []

    def run_service(self, request: ServiceRunRequest
                    ) -> AbstractAsyncContextManager[trio.abc.ReceiveChannel[dict[str, Any]]]:
        """`stackd run SERVICE`: a one-off container of a stack's service (oneoff.py);
        a safe channel (docs/daemon.md, trio's rules)."""
        from stackd.daemon.oneoff import run_service

        return run_service(self, request)

    async def _stack(self, desired: DesiredStack) -> LoadedStack:
        """The stack as its revision holds it (never as its files are now)."""
        cached = self._loaded.get(desired.project)
        if cached and cached[0] == desired.generation:
            return cached[1]
        revision = self.revisions.get(desired.project, desired.generation)
        stack: LoadedStack
        if revision is None or revision.stack is None:
            # Applied by a daemon from before revisions: its files, once.
            stack = await self.world.load(desired.request.source)
        else:
            stack = await self._from_revision(revision)
            if stack.refused:
                # Once per daemon and revision: the restore is cached until the next.
                self.bus.emit("apply", project=desired.project, verb="warning", message=(
                    f"warning: revision {revision.number} was applied by an earlier stackd "
                    "and holds what this one refuses in a new `up`; it keeps running as "
                    "applied — change the stack file before its next `up`: "
                    + "; ".join(stack.refused)))
        self._loaded[desired.project] = (desired.generation, stack)
        return stack

    async def _from_revision(self, revision: Revision) -> LoadedStack:
        from stackd.daemon.revision import given_files

        files, environ = await trio.to_thread.run_sync(given_files, revision, self.blobs.get)
        pin = functools.partial(self.revisions.pin, revision.project, revision.number)
        return await self.world.restore(revision, files, environ, pin)

    def _applied_revision(self, project: str, before: int) -> Revision | None:
        """The newest kept revision below `before` that applied a stack (not a down)."""
        for revision in reversed(self.revisions.list(project)):
            if revision.number < before and revision.stack is not None:
                return revision
        return None

    async def _roll_back(self, desired: DesiredStack, why: str) -> int | None:
        """A failed update under `failure_action: rollback`: the revision before it is
        applied again, as a new revision of cause `rollback`. Its number, or None when
        there is none to go back to. The failed reconcile still fails, so the `up` that
        waits on it exits non-zero."""
        current = self.revisions.get(desired.project, desired.generation)
        if current is not None and current.cause == "rollback":
            # A rollback that fails is not rolled back in turn: the revision before it
            # is the very one that failed, and the two would alternate for ever.
            return None
        return await self._rollback_revision(desired, why, None)

    async def _rollback_revision(self, desired: DesiredStack, why: str,
                                 service: str | None, *, publish: bool = False
                                 ) -> int | None:
        """Record the revision before `desired`'s (for `service` only: the current stack
        with that one service as it was) as a new revision of cause `rollback`, and
        enqueue it — Kubernetes' rollback, "apply revision N-1", not special code."""
        project = desired.project
        current = self.revisions.get(project, desired.generation)
        previous = self._applied_revision(project, desired.generation)
        if previous is None or previous.stack is None:
            return None
        stack, files, images = previous.stack, previous.files, dict(previous.images)
        if service is not None:
            if current is None or current.stack is None:
                return None
            now, before = json.loads(current.stack), json.loads(previous.stack)
            if service not in before.get("services", {}):
                raise NotFoundError(f"service {service!r} is not in revision "
                                    f"{previous.number} of {project}",
                                    hint="`stackd history` lists the kept revisions")
            now["services"][service] = before["services"][service]
            stack = json.dumps(now, sort_keys=True, separators=(",", ":"))
            kept = {f.path: f for f in current.files}
            kept.update({f.path: f for f in previous.files})
            files = tuple(kept[p] for p in sorted(kept))
            images = {**current.images, **previous.images}
        request = ApplyRequest.model_validate({"source": json.loads(previous.source),
                                               "options": json.loads(previous.options)})
        request = request.model_copy(update={"options": steady(request.options)})
        if publish and self.publish is not None:
            self.publishing.add(project)
        try:
            if publish and self.publish is not None:
                await self.publish(project, stack)  # every node adopts it (cluster mode)
            async with self._revision_lock:
                gen = self.store.put(project, request, NewRevision(
                    cause="rollback", options=request.options.model_dump_json(),
                    source=previous.source, stack=stack, files=files))
                for ref, digest in sorted(images.items()):
                    self.revisions.pin(project, gen, ref, digest)
        finally:
            if publish:
                self.publishing.discard(project)
        what = f"service {service} of " if service else ""
        message = (f"{what}revision {desired.generation} rolled back to revision "
                   f"{previous.number} (now revision {gen}): {why}")
        self._rollbacks[gen] = (project, message)
        self.bus.emit("rollback", project=project, generation=str(gen), message=message)
        self.controller.enqueue(project)
        return gen

    async def rollback(self, project: str, service: str | None) -> int:
        """`stackd rollback [SERVICE]`: the revision before the current one, again."""
        desired = self.store.get(project)
        if desired is None or desired.phase == "removing":
            raise NotFoundError(f"the daemon keeps no stack named {project!r}",
                                hint="`stackd up` applies one")
        gen = await self._rollback_revision(desired, "asked by `stackd rollback`", service,
                                            publish=True)
        if gen is None:
            raise NotFoundError(f"{project} has no earlier applied revision to roll back to",
                                hint="`stackd history` lists the kept revisions")
        return gen

    def _rollouts(self, project: str, generation: int) -> dict[str, Rollout]:
        """What the revision's rolling updates did in the passes before (kept with it)."""
        kept = self.revisions.rollouts(project).get(generation, {})
        return {name: Rollout.from_json(data) for name, data in sorted(kept.items())
                if isinstance(data, dict)}

    def _keep_rollouts(self, desired: DesiredStack, before: Mapping[str, Rollout],
                       after: Mapping[str, Rollout]) -> None:
        """Record the pass's rollouts with the revision; a pause is said once, as an
        event (and `ps`, `history` say it while it lasts)."""
        if dict(after) == dict(before):
            return
        self.revisions.keep_rollouts(desired.project, desired.generation,
                                     {n: r.to_json() for n, r in after.items()})
        for name, r in sorted(after.items()):
            if r.paused and r.paused != before.get(name, Rollout()).paused:
                self.bus.emit("pause", project=desired.project, service=name,
                              generation=str(desired.generation),
                              message=f"revision {desired.generation}: {r.paused}; "
                              "`stackd up` (a new revision) or `stackd resume` goes on")

    def paused(self, project: str, generation: int) -> str:
        """Why the revision's rolling update is paused ("" when it is not)."""
        return "; ".join(r.paused for r in self._rollouts(project, generation).values()
                         if r.paused)

    async def resume(self, project: str) -> tuple[int, int]:
        """`stackd resume`: the current revision's paused updates go on where they
        stopped, the failed batches tried again. The revision's number, and the
        reconcile epoch after which the pass that resumes it ends (for `progress`)."""
        desired = self.store.get(project)
        if desired is None or desired.phase == "removing":
            raise NotFoundError(f"the daemon keeps no stack named {project!r}",
                                hint="`stackd up` applies one")
        before = self._rollouts(project, desired.generation)
        if not any(r.paused for r in before.values()):
            raise ConflictError(f"{project}: no rolling update of revision "
                                f"{desired.generation} is paused",
                                hint="`stackd history` shows each revision's outcome")
        after = {n: resumed(r) if r.paused else r for n, r in before.items()}
        self.revisions.keep_rollouts(project, desired.generation,
                                     {n: r.to_json() for n, r in after.items()})
        self.bus.emit("apply", project=project, generation=str(desired.generation),
                      message=f"revision {desired.generation}: paused update resumed")
        st = self.controller.key_status(project)
        # A reconcile under way read the rollouts before this: the one after it counts.
        epoch = st.finished_epoch + (project in self.controller.queue.processing)
        self.controller.enqueue(project)
        return desired.generation, epoch

    def _healable(self, desired: DesiredStack) -> bool:
        """Whether this daemon already converged to this very revision, with no rolling
        update in flight: then its watches hold this revision's containers, and
        restarting one of them now is what the full pass would do too."""
        project = desired.project
        outcome = self.controller.key_status(project).outcome
        return (self._consumed.get(project) == desired.generation
                and project not in self._updating
                and outcome is not None and outcome.status in ("ok", "requeue")
                and outcome.generation == desired.generation)

    def _one_shot_done(self, desired: DesiredStack) -> bool:
        if self._consumed.get(desired.project) == desired.generation:
            return True
        revision = self.revisions.get(desired.project, desired.generation)
        return revision is not None and revision.consumed

    def _consume(self, desired: DesiredStack) -> None:
        """Its one-shot options were honoured: durably, so a restart does not again."""
        if self._consumed.get(desired.project) != desired.generation:
            self.revisions.consume(desired.project, desired.generation)
            self._consumed[desired.project] = desired.generation

    async def _keep_containers_seen(self) -> None:
        """Read every container again after reconciles, at most one read at a time: a
        burst of reconciles while one read runs makes one more read, not one each."""
        while True:
            await self._seen_stale.wait()
            self._seen_stale = trio.Event()
            await self._refresh_containers()

    async def _refresh_containers(self) -> None:
        try:
            rows = await self.world.containers(None, True)
        except StackdError:
            return
        self._containers_seen = {str(r.get("name")): (r.get("project") or "",
                                                       r.get("state") or "",
                                                       r.get("health") or "") for r in rows}

    def _track(self, event: Event) -> None:
        """Keep the containers gauge current from the facts the bus carries."""
        name, project = event.container, event.project
        if not name or not project:
            return
        _, state, _ = self._containers_seen.get(name, (project, "", ""))
        if event.type in ("start", "restart") and (event.type == "start" or event.reason):
            self._containers_seen[name] = (project, "running", "")
        elif event.type == "die":
            self._containers_seen[name] = (project, "exited", "")
        elif event.type == "health" and state:
            self._containers_seen[name] = (project, state, event.attrs.get("healthStatus", ""))
        elif event.type == "remove" and event.slot:
            self._containers_seen.pop(name, None)

    # -- what the API calls --------------------------------------------------------------

    async def submit(self, request: ApplyRequest, *, cause: Cause = "up",
                     also: Callable[[Connection, int], None] | None = None,
                     up_of: tuple[str, ...] = ()) -> tuple[str, int]:
        """Load (to validate and name it), record as a new revision, enqueue.
        → (project, generation: the revision's number). `also(c, number)` writes in
        the revision's own transaction (GitOps: the commit applied). `up_of`: the
        services whose stopped containers this `up` starts (a `run`'s dependencies;
        empty: all it applies)."""
        stack = await self._load(request)
        request = self._recorded(request, stack)
        project = stack.project
        captured = stack.captured
        stack_text = captured.stack
        unplaced = ""
        if self.publish is not None:
            self.publishing.add(project)
            # The cluster's agents run the published stack with no options of their
            # own: `scale`'s replicas travel in it (and are recorded so here, so this
            # node adopts no second revision).
            if request.options.scale:
                from stackd.daemon.revision import with_scale

                stack_text = with_scale(stack_text, request.options.scale)
            try:
                await self.publish(project, stack_text)
            except BaseException:
                self.publishing.discard(project)
                raise
        try:
            async with self._revision_lock:
                await trio.to_thread.run_sync(self._put_blobs, captured.contents)
                gen = self.store.put(project, request, NewRevision(
                    cause=cause, options=request.options.model_dump_json(),
                    source=without_environ(request).source.model_dump_json(),
                    stack=stack_text, files=captured.files), also)
                await trio.to_thread.run_sync(self.blobs.collect,
                                              self.revisions.referenced_blobs())
        finally:
            self.publishing.discard(project)
        if self.verdict is not None:
            unplaced = await self.verdict(project, stack_text)
        if unplaced:
            self._unplaced[project] = (gen, unplaced)
        else:
            self._unplaced.pop(project, None)
        # `up` clears its services' holds and starts their stopped containers;
        # `create` holds the ones it makes, so they stay created (reconciler/asks.py).
        verb: Verb = "create" if request.options.no_start else "up"
        self._asks.setdefault(project, deque()).append(_Pending(Ask(verb, services=up_of)))
        self.bus.emit("apply", project=project, message=f"generation {gen} submitted",
                      generation=str(gen))
        self.controller.enqueue(project)
        return project, gen

    async def _load(self, request: ApplyRequest) -> Any:
        """The stack an apply or plan names, every service it names in it (before
        anything is recorded: `up nosuch` is an error, not an up to date stack)."""
        from stackd.scheduler.order import check_named, check_scaled

        stack = await self.world.load(request.source)
        check_named(stack.services, request.options.services)
        check_scaled(stack.stack, request.options.scale)
        return stack

    @staticmethod
    def _recorded(request: ApplyRequest, stack: Any) -> ApplyRequest:
        """The request as its revision keeps it: with the services the profiles left
        out, which a resync from the revision (no files read) must still not call
        orphans; and with the files it was loaded from when none was named (those
        $COMPOSE_FILE named, or discovery found), which `ls` shows."""
        source = request.source
        if not source.files and stack.stack.source_files:
            source = source.model_copy(update={"files": list(stack.stack.source_files)})
        return request.model_copy(update={"source": source, "options": request.options.model_copy(
            update={"disabled": list(stack.disabled)})})

    def stack_of(self, project: str) -> str | None:
        """The resolved stack JSON of the project's current revision (None: none kept,
        or being removed)."""
        desired = self.store.get(project)
        if desired is None or desired.phase == "removing":
            return None
        revision = self.revisions.get(project, desired.generation)
        return revision.stack if revision is not None else None

    async def adopt(self, project: str, stack: str) -> int:
        """Cluster mode: record `stack` (resolved JSON, as `up` on some node captured
        it and the cluster store holds it) as the project's new revision here, and
        enqueue it. Its configs'/secrets' files do not travel (docs/cluster.md)."""
        request = ApplyRequest(source=StackSource(project_name=project))
        async with self._revision_lock:
            gen = self.store.put(project, request, NewRevision(
                cause="up", options=request.options.model_dump_json(),
                source=request.source.model_dump_json(), stack=stack))
        self.bus.emit("apply", project=project, generation=str(gen),
                      message=f"generation {gen} from the cluster")
        self.controller.enqueue(project)
        return gen

    async def submit_removal(self, project: str, options: RemoveOptions, *,
                             local: bool = False) -> int:
        """`down`. On a cluster member it first deletes the stack from the cluster
        (every node removes its slots), unless `local` (the agent removing here a stack
        the cluster no longer has)."""
        published = False
        if self.unpublish is not None and not local:
            published = await self.unpublish(project, options.volumes)
        known = self.store.get(project) is not None
        if not known and not published and project not in await self.world.projects():
            raise NotFoundError(f"no stack named {project!r} is running",
                                hint="see `stackd ls` for the stacks this daemon keeps")
        gen = self.store.mark_removing(project, options, None)
        self.controller.enqueue(project)
        return gen

    async def wait_generation(self, project: str, generation: int, *,
                              after_epoch: int = -1) -> Outcome:
        """Wait for a reconcile that read `generation` (or a later one) to finish
        (one that started after the reconcile numbered `after_epoch` ended, if given),
        and for its rolling updates to have no batch left."""
        st = self.controller.key_status(project)
        while True:
            outcome = st.outcome
            if outcome is not None and outcome.generation >= generation \
                    and st.finished_epoch > after_epoch and not (
                    outcome.status == "requeue"
                    and self._updating.get(project) == outcome.generation):
                return outcome
            await st.changed.wait()

    @staticmethod
    def ask(verb: str, request: LifecycleRequest) -> Ask:
        return Ask(verb=verb,  # type: ignore[arg-type]  # the API's path pattern checked it
                   services=tuple(request.services), containers=tuple(request.containers),
                   signal=request.signal, force=request.force, timeout=request.timeout,
                   volumes=request.volumes, no_deps=request.no_deps)

    async def container_action(self, name: str, action: str, signal: str | None,
                               timeout: int | None = None) -> None:
        """One container's start/stop/restart/kill/remove. A stack's container is asked
        of its stack's controller; only a container of no stack (`stackd run IMAGE`) is
        acted on here directly, as it has no other writer."""
        rows = [r for r in await self.world.containers(None, True)
                if name in (r.get("name"), r.get("id"))]
        project = str(rows[0].get("project") or "") if rows else ""
        if not project or self.store.get(project) is None:
            await self.world.signal(name, action, signal, timeout)
            return
        verb = "rm" if action == "remove" else action
        # Docker's verb on one container: that container alone, no dependent follows.
        ask = Ask(verb=verb, containers=(name,), signal=signal or "SIGKILL",  # type: ignore[arg-type]
                  force=True, timeout=timeout, no_deps=True)
        async with self.lifecycle_events(project, self.lifecycle(project, ask)) as items:
            async for item in items:
                done = item.get("done")
                if isinstance(done, dict) and done.get("error"):
                    raise ConflictError(f"{name}: {action}: {done['error']}")

    async def check_ask(self, project: str, verb: str, services: Sequence[str]) -> None:
        """What Compose refuses before a lifecycle verb acts: a service the stack does
        not have (nor any container of it: an orphan may be named), and a `start` of a
        stack with no container at all."""
        desired = self.store.get(project)
        if desired is None or (not services and verb != "start"):
            return  # `lifecycle` says what is wrong with that
        rows = await self.world.containers(project, True)
        if verb == "start" and not rows:
            raise NotFoundError(f"{project}: no container to start",
                                hint="create them with `stackd up` (or `stackd create`)")
        stack = await self._stack(desired)
        known = {*stack.services, *getattr(stack, "disabled", ()),
                 *(str(r.get("service")) for r in rows)}
        for name in services:
            if name not in known:
                raise NotFoundError(f"no such service: {name}",
                                    hint="services in this stack: "
                                    + ", ".join(sorted(stack.services)))

    def lifecycle(self, project: str, ask: Ask) -> Asked:
        """`start`, `stop`, `restart`, `kill`, `rm`: a request to the stack's controller,
        carried out by its reconcile (the stack's one writer). Raises at once when
        there is no such stack; `lifecycle_events` streams what follows."""
        if self.refuse_verb is not None and ask.verb != "up":
            # `up` of a `run`'s dependencies starts this node's stopped containers of
            # the stack as an apply's `up` does, which a cluster member allows.
            self.refuse_verb(ask.verb, project)
        desired = self.store.get(project)
        if desired is None:
            raise NoStackError(f"the daemon keeps no stack named {project!r}",
                               hint="start it with `stackd up` first")
        if desired.phase == "removing":
            raise ConflictError(f"stack {project!r} is being removed (down)")
        past = self.bus.history()
        mark = past[-1].seq if past else 0  # the stream shows every event from here on
        pending = _Pending(ask)
        self._asks.setdefault(project, deque()).append(pending)
        self.controller.enqueue(project)
        return Asked(pending, mark)

    @trio.as_safe_channel
    async def lifecycle_events(self, project: str, asked: Asked
                               ) -> AsyncGenerator[dict[str, object], None]:
        """Events of `project` from the ask on until the reconcile that carried it out
        finishes, then its outcome."""
        pending = asked.pending
        yield {"accepted": {"project": project, "verb": pending.ask.verb}}

        async def outcome() -> dict[str, object]:
            await pending.done.wait()
            err = pending.error
            if err is None:
                return {"project": project, "result": "ok", "error": "", "error_type": ""}
            return {"project": project, "result": classify(err),
                    "error": told(err),
                    "error_type": type(err).__name__}

        async with self._events_until(project, outcome, since=asked.mark) as items:
            async for item in items:
                yield item

    @trio.as_safe_channel
    async def progress(self, project: str, generation: int, after_epoch: int = -1
                       ) -> AsyncGenerator[dict[str, object], None]:
        """Events of `project` until a reconcile of `generation` finishes (one after
        reconcile `after_epoch`, if given), then its outcome. Like every stream here
        that runs tasks, a safe channel: the caller holds it with `async with`
        (docs/daemon.md, trio's rules)."""
        async def outcome() -> dict[str, object]:
            o = await self.wait_generation(project, generation, after_epoch=after_epoch)
            done: dict[str, object] = {
                "project": project, "generation": generation, "result": o.status,
                "error": o.error, "error_type": o.error_type,
                "revision_outcome": self.revision_outcome(project, generation)}
            gen, why = self._unplaced.get(project, (0, ""))
            if why and gen == generation:
                done["unplaced"] = why  # cluster mode: the leader could not place it
            return done

        async with self._events_until(project, outcome) as items:
            async for item in items:
                yield item

    @trio.as_safe_channel
    async def _events_until(self, project: str,
                            outcome: Callable[[], Awaitable[dict[str, object]]], *,
                            since: int | None = None
                            ) -> AsyncGenerator[dict[str, object], None]:
        send, receive = trio.open_memory_channel[dict[str, object]](1000)
        # From now on, even what is published before pump_events subscribes.
        since = self.bus.last_seq if since is None else since
        # The newest event pump_events has passed on (or let by), and its news: the
        # outcome waits for it to catch up with the bus.
        passed = since
        moved = trio.Event()

        async def pump_events() -> None:
            nonlocal passed, moved
            async for event in self.bus.subscribe(since_seq=since):
                if event.project == project:
                    await send.send({"event": event.model_dump(mode="json")})
                passed = event.seq
                moved.set()
                moved = trio.Event()

        async def wait_done() -> None:
            done = await outcome()
            # Every event of the pass that ended was published before its outcome was
            # known, but the pump may not have passed them on yet: the stream ends
            # with them, then the outcome, not the outcome first and them never.
            mark = self.bus.last_seq
            with trio.move_on_after(DRAIN_TIMEOUT):
                while passed < mark:
                    await moved.wait()
            await send.send({"done": done})

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
                phase=d.phase,
                files=d.request.source.files or [], cwd=d.request.source.cwd or "",
                reconciles=st.reconciles,
                last_result=st.last_result, last_error=st.last_error,
                last_finished=st.last_finished,
                rollback=next((why for gen, (p, why) in self._rollbacks.items()
                               if p == d.project and gen == d.generation), ""),
                paused=self.paused(d.project, d.generation)))
        return out

    def _put_blobs(self, contents: Any) -> None:
        for data in contents.values():
            self.blobs.put(data)

    async def plan(self, request: ApplyRequest
                   ) -> tuple[str, list[dict[str, object]], dict[str, object] | None]:
        """What `up` would do now (against the host), and how the files on disk differ
        from the applied revision: {"number", "changes": [line, …]}, None if none."""
        project, actions, revision, _ = await self.plan_with_notes(request)
        return project, actions, revision

    async def plan_with_notes(self, request: ApplyRequest, *, as_up: bool = False
                              ) -> tuple[str, list[dict[str, object]],
                                         dict[str, object] | None, list[str]]:
        """`plan` (as `up` itself would, with `as_up`), and on a cluster member what
        the cluster says of the stack's placement (services pinned by their volumes,
        why it is not placed)."""
        stack = await self._load(request)
        notes = []
        if self.placement_notes is not None:
            notes = await self.placement_notes(stack.project, stack.captured.stack)
        return (*await self._plan(stack, request, as_up=as_up), notes)

    async def _plan(self, stack: Any, request: ApplyRequest, *, as_up: bool = False
                    ) -> tuple[str, list[dict[str, object]], dict[str, object] | None]:
        from stackd.daemon.revision import changed_files

        actions = await self.world.plan(stack, request.options, as_up=as_up)
        desired = self.store.get(stack.project)
        applied = (self._applied_revision(stack.project, desired.generation + 1)
                   if desired is not None and desired.phase == "active" else None)
        if applied is None:
            return stack.project, actions, None
        changes = changed_files(applied.files, stack.captured.files)
        for ref, digest in sorted(applied.images.items()):
            now = await self.world.image_digest(ref)
            if now != digest:
                changes.append(f"image {ref}: {digest[:19]} → {(now or 'not in the store')[:19]}")
        return stack.project, actions, {"number": applied.number, "changes": changes}

    def revision_outcome(self, project: str, number: int) -> str:
        """The revision's outcome as `history` says it: done, pending, updating,
        paused: …, failed: …, superseded, rolled back."""
        from stackd.daemon.revision import revision_outcome

        kept = self.revisions.list(project)
        after = next((r for r in kept if r.number > number), None)
        this = next((r for r in kept if r.number == number), None)
        if this is None:
            return "superseded"
        desired = self.store.get(project)
        outcome = self.controller.key_status(project).outcome
        return revision_outcome(
            this, after.cause if after else None,
            current=desired.generation if desired else None,
            outcome=(outcome.generation, outcome.status, outcome.error) if outcome else None,
            rolling=self._rolling_states(project).get(number, ""))

    def _rolling_states(self, project: str) -> dict[int, str]:
        """Per revision with an update not over: `paused: why` or `updating`."""
        out: dict[int, str] = {}
        for number, kept in self.revisions.rollouts(project).items():
            rollouts = [Rollout.from_json(d) for d in kept.values() if isinstance(d, dict)]
            paused = "; ".join(r.paused for r in rollouts if r.paused)
            if paused:
                out[number] = f"paused: {paused}"
            elif any(r.left > 0 for r in rollouts):
                out[number] = "updating"
        return out

    async def history(self, project: str, service: str | None) -> list[dict[str, Any]]:
        """The kept revisions of `project`, oldest first, each with the services it
        changed (against the revision before it)."""
        from stackd.daemon.revision import history_rows

        revisions = self.revisions.list(project)
        if not revisions:
            raise NotFoundError(f"no revision of a stack named {project!r}",
                                hint="`stackd up` applies one")
        desired = self.store.get(project)
        outcome = self.controller.key_status(project).outcome
        rows = await trio.to_thread.run_sync(functools.partial(
            history_rows, revisions, current=desired.generation if desired else None,
            outcome=(outcome.generation, outcome.status, outcome.error) if outcome else None,
            rolling=self._rolling_states(project)))
        if service is not None:
            if not any(service in r["services"] for r in rows):
                raise NotFoundError(f"no service {service!r} in the kept revisions of "
                                    f"{project}", hint="`stackd history` lists them all")
            for r in rows:
                r["changed"] = [s for s in r["changed"] if s == service]
        return rows

    async def describe(self, project: str) -> dict[str, Any]:
        """The stack as its current applied revision holds it (daemon/describe.py):
        services, pinned image digests, the dependency graph as dot."""
        from stackd.daemon.describe import describe

        desired = self.store.get(project)
        revision = (self._applied_revision(project, desired.generation + 1)
                    if desired is not None else None)
        if revision is None:
            raise NotFoundError(f"the daemon keeps no applied stack named {project!r}",
                                hint="`stackd up` applies one")
        return await trio.to_thread.run_sync(describe, revision)

    def asked(self, actor: str, verb: str, project: str | None, *,
              services: list[str] | None = None, container: str | None = None,
              detail: str = "") -> None:
        """Record who asked for a state-changing request (an `action` event), before
        what it causes: `stackd events` then says who restarted, scaled, rolled back."""
        who = actor or "an API client"
        what = " ".join(filter(None, [verb, ",".join(services or []), container, detail]))
        self.bus.publish(Event(type="action", project=project, container=container,
                               service=services[0] if services and len(services) == 1
                               else None, verb=verb, actor=actor,
                               message=f"{who} asked: {what}"))

    @trio.as_safe_channel
    async def project_logs(self, project: str, services: list[str], *, follow: bool,
                           tail: int | None, timestamps: bool,
                           since: float | None = None, until: float | None = None
                           ) -> AsyncGenerator[wire.Batch, None]:
        """Log records of a stack's containers, in batches (each one write of the
        response); with follow, also of containers that appear later (restarts, new
        replicas, recreates), until the client leaves. since/until (epoch seconds): only
        the records written in that window; `tail` counts within it, per container."""
        wanted = set(services)
        window = since is not None or until is not None

        def inside(rec: dict[str, object]) -> bool:
            at = datetime.fromisoformat(str(rec["time"])).timestamp()
            return (since is None or at >= since) and (until is None or at <= until)

        async def current() -> list[dict[str, object]]:
            rows = await self.world.containers(project, True)
            return [r for r in rows if not wanted or r.get("service") in wanted]

        if not follow:
            records: list[dict[str, object]] = []
            for row in await current():
                mine = [rec async for rec in self.world.logs(
                    str(row["id"]), follow=False, tail=None if window else tail,
                    timestamps=timestamps) if not window or inside(rec)]
                records += mine[-tail:] if window and tail is not None else mine
            records.sort(key=lambda r: str(r.get("time", "")))
            for at in range(0, len(records), LOG_BATCH):
                yield wire.Batch(records[at:at + LOG_BATCH])
            return

        send, receive = trio.open_memory_channel[dict[str, object]](1000)
        seen: set[str] = set()

        async def one(container_id: str, first: bool) -> None:
            # across_restarts: a restart keeps the id, so this one stream carries
            # every run of the slot; new ids (recreates, replicas) come from discover.
            # A container removed while followed (a recreate, a down) has simply no
            # more lines: its end must not end the other containers' streams.
            try:
                async for rec in self.world.logs(container_id, follow=True,
                                                 tail=tail if first and not window else None,
                                                 timestamps=timestamps, across_restarts=True):
                    if not window or inside(rec):
                        try:  # no checkpoint per record: a history fills a batch
                            send.send_nowait(rec)
                        except trio.WouldBlock:
                            await send.send(rec)
            except NotFoundError:
                return

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
                batch = wire.Batch([rec])  # and what else is waiting: one write
                while len(batch) < LOG_BATCH:
                    try:
                        batch.append(receive.receive_nowait())
                    except trio.WouldBlock:
                        break
                yield batch

    # -- reads and one-container requests the API serves (handlers go through here) ----

    async def run_image(self, request: Any) -> AsyncIterator[dict[str, Any]]:
        """`stackd run IMAGE`: {"started"}, output, {"exit"}; errors before the start
        are raised by the first item, so the API can answer them as errors."""
        items = self.world.run(request)
        first = await items.__anext__()
        self.bus.emit("start", container=first["started"]["name"], message="stackd run")

        async def rest() -> AsyncIterator[dict[str, Any]]:
            yield first
            async for item in items:
                yield item

        return rest()

    async def containers(self, project: str | None, all: bool,
                         cluster: bool = False) -> list[dict[str, Any]]:
        """This host's containers; with `cluster` on a member, each row says its node and
        the slots every other node runs follow (as their status summaries say)."""
        rows = await self.world.containers(project, all)
        if not cluster or self.cluster_rows is None or self.node_name is None:
            return rows
        here = self.node_name()
        return [*({**r, "node": here} for r in rows), *self.cluster_rows(project, all)]

    def container_logs(self, name: str, *, follow: bool, tail: int | None,
                       timestamps: bool) -> AsyncIterator[dict[str, Any]]:
        return self.world.logs(name, follow=follow, tail=tail, timestamps=timestamps)

    async def exec(self, name: str, request: ExecRequest) -> ExecResult:
        return await self.world.exec(name, request)

    async def stats(self, name: str) -> dict[str, Any]:
        return await self.world.stats(name)

    async def top(self, name: str) -> dict[str, Any]:
        return await self.world.top(name)

    async def build_network(self, container_id: str) -> AsyncIterator[dict[str, Any]]:
        """A `stackd build` step's container on the build network: its namespace and
        files, then held until the client goes (the stream is closed)."""
        async with self.world.build_network(container_id) as joined:
            yield {"netns": joined.netns, "files": dict(joined.files),
                   "gateway": joined.gateway}
            await trio.sleep_forever()

    async def networks(self) -> list[dict[str, Any]]:
        return await self.world.networks()

    async def volumes(self) -> list[dict[str, Any]]:
        return await self.world.volumes()

    async def images(self) -> list[dict[str, Any]]:
        return await self.world.images()

    async def events(self, *, since: int | None, project: str | None,
                     follow: bool) -> AsyncIterator[dict[str, Any]]:
        """The bus, as JSON: the kept past after `since`, then (with follow) live."""
        if not follow:
            for e in self.bus.history(since or 0):
                if project is None or e.project == project:
                    yield e.model_dump(mode="json")
            return
        async for e in self.bus.subscribe(since_seq=since):
            if project is None or e.project == project:
                yield e.model_dump(mode="json")

    def version(self) -> Version:
        return Version(version=__version__, pid=os.getpid(), state_root=str(self.roots.state),
                       run_root=str(self.roots.run), root_id=self.roots.id,
                       started=self.started, faults=self.disks.faults())


def steady(options: ApplyOptions) -> ApplyOptions:
    """The options a resync uses once a generation's apply-time options have been honoured."""
    return options.model_copy(update={
        "force_recreate": False, "always_recreate_deps": False, "build": False,
        "timeout": None,
        "renew_anon_volumes": False,
        "pull": None if options.pull == "always" else options.pull})
