"""The supervisor: one watcher task per container that records what happens to it —
its exit, its health — and tells DNS whether it is ready. It changes no container.

Facts only: a watcher never restarts, kills or starts anything. What it sees is
reported as `SupervisorEvent`s (die, health…), which the daemon turns into bus events
that enqueue the stack's key; the controller's worker for that stack then reads the
facts (`watches()`) and acts on them (`reconciler/repair.py`: restarts under the
restart policy with its backoff, kills an unhealthy or disrupted container). So one
writer changes a stack's containers, whatever happened and whichever verb started it.

DNS readiness is the one thing a watcher sets itself: it changes no container, only
which addresses the resolver hands out, and it must follow a probe within the probe.

Beyond Compose: a container that turns unhealthy is killed and so restarted under
its restart policy, as a Kubernetes liveness probe would (opt out per service with
`x-stackd: {restart_on_unhealthy: false}`); and a replica is in DNS only while it
runs and, when it has a healthcheck, is healthy (Kubernetes readiness).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import trio

from stackd.errors import StackdError
from stackd.reconciler.desired import DesiredContainer, DesiredService
from stackd.reconciler.health import HealthState, HealthStatus, run_healthcheck
from stackd.reconciler.ports import Adapters
from stackd.reconciler.restart import Backoff, RestartHistory, should_restart

SupervisorEventType = Literal["die", "oom", "health", "restart", "heal", "error"]


@dataclass(frozen=True, slots=True)
class SupervisorEvent:
    type: SupervisorEventType
    project: str
    service: str
    container: str  # container name, e.g. demo-web-1
    message: str
    time: float  # trio.current_time()
    # why a restart happened: exit (restart policy), unhealthy, disrupted
    reason: str = ""
    slot: str = ""  # e.g. web-1
    exit_code: int | None = None  # a die's, when the runtime told it
    health: str = ""  # a health event's new status: starting, healthy, unhealthy


Emit = Callable[[SupervisorEvent], object]


@dataclass(eq=False)
class Watch:
    """What the daemon knows of one container. The watcher writes the facts (running,
    exit, health); the controller's worker writes the restart bookkeeping below them."""

    container_id: str
    desired: DesiredContainer
    service: DesiredService
    running: bool
    exit_code: int | None = None
    oom_killed: bool = False  # the last exit was the kernel's OOM killer's
    health: HealthStatus | None = None  # None: no healthcheck
    finished: bool = False  # exited, and the restart policy will not start it again
    started_at: float = 0.0
    exited_at: float = 0.0
    released: bool = False
    held: bool = False  # a user stopped it: never restart (StatePort holds)
    disrupted: str = ""  # its cgroup, netns or veth was removed from outside: why
    # Found running by a new daemon: its health is probed at once, not an interval
    # after, or a healthy container read "starting" for that long (30 s by default).
    adopted: bool = False
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    # -- the controller's: restart policy state, per container ---------------------
    restarts: int = 0
    history: RestartHistory = field(default_factory=lambda: RestartHistory(None))
    backoff: Backoff = field(default_factory=Backoff)
    restart_at: float | None = None  # when the pending restart is due
    restart_delay: float = 0.0
    killing: bool = False  # a kill was sent for this run; its exit is expected

    @property
    def ready(self) -> bool:
        return self.running and self.health in (None, "healthy")

    @property
    def restarting(self) -> bool:
        """Exited, and its restart policy will start it again (Docker's "restarting":
        a crash loop shows as one, not as a container that stopped)."""
        return not (self.running or self.finished or self.held or self.released)

    @property
    def project(self) -> str:
        return self.desired.project


class Supervisor:
    def __init__(self, ports: Adapters, nursery: trio.Nursery, emit: Emit | None = None) -> None:
        self._ports = ports
        self._nursery = nursery
        self._emit = emit
        self._watches: dict[str, Watch] = {}
        self._changed = trio.Event()

    # -- what the controller's worker calls --------------------------------------------

    def watch(self, container_id: str, desired: DesiredContainer, service: DesiredService, *,
              running: bool, exit_code: int | None = None, held: bool = False,
              adopted: bool = False) -> None:
        """Watch a container from now on; if it already is, take the new policy, and if
        it runs again after an exit (whoever started it), watch this new run.

        Restart policy and the unhealthy opt-out are not in the config hash: a changed
        one reaches a running container here, without recreating it.
        """
        existing = self._watches.get(container_id)
        if existing is not None:
            existing.desired, existing.service = desired, service
            existing.held = held
            if running and not existing.running:
                self._arm(existing)
            return
        w = Watch(container_id, desired, service, running=running, exit_code=exit_code,
                  health="starting" if running and service.healthcheck else None,
                  started_at=trio.current_time(), held=held,
                  history=RestartHistory(service.restart.window),
                  backoff=Backoff(service.restart.delay), adopted=adopted and running)
        self._watches[container_id] = w
        self._nursery.start_soon(self._run, w, w.scope)
        self._notify()

    def restarted(self, w: Watch, container_id: str) -> None:
        """The controller started a new run of `w` (as `container_id`): watch it."""
        if container_id != w.container_id:
            self._watches.pop(w.container_id, None)
            w.container_id = container_id
            self._watches[container_id] = w
        self._arm(w)

    def _arm(self, w: Watch) -> None:
        w.scope.cancel()  # a watcher of the run before, if any, has nothing left to see
        w.scope = trio.CancelScope()
        w.running, w.exit_code, w.finished, w.disrupted = True, None, False, ""
        w.killing, w.restart_at = False, None
        w.started_at = trio.current_time()
        w.health = "starting" if w.service.healthcheck else None
        self._nursery.start_soon(self._run, w, w.scope)
        self._notify()

    async def release(self, container_id: str) -> None:
        """Stop watching (before apply stops or removes it: that exit is not a crash)."""
        w = self._watches.pop(container_id, None)
        if w is None:
            # Not watched — made before this daemon started, and removed before its
            # apply adopted it (a duplicate a crash left): its readiness is in the
            # store all the same, so it leaves the port's backends before it stops.
            try:
                await self._ports.network.set_ready(container_id, False)
            except StackdError:
                pass  # the teardown that follows unpublishes it in any case
            return
        w.released = True
        w.scope.cancel()
        self._notify()
        await self._set_ready(w, False)

    async def unready(self, w: Watch) -> None:
        """Out of DNS and its published ports' backends, now: before the reconcile
        kills it, or connections balanced to it meanwhile are refused."""
        await self._set_ready(w, False)

    def get(self, container_id: str) -> Watch | None:
        return self._watches.get(container_id)

    def watches(self) -> list[Watch]:
        return [self._watches[k] for k in sorted(self._watches)]

    def report(self, w: Watch, type_: SupervisorEventType, message: str, *,
               reason: str = "", exit_code: int | None = None, health: str = "") -> None:
        if self._emit is not None:
            self._emit(SupervisorEvent(type_, w.desired.project, w.desired.service,
                                       w.desired.name, message, trio.current_time(),
                                       reason=reason, slot=w.desired.slot,
                                       exit_code=exit_code, health=health))

    def mark_disrupted(self, w: Watch, why: str) -> bool:
        """A host check found part of the container gone: a fact for the controller,
        whose next reconcile of the stack kills it so its restart makes all afresh.
        Whether it is news (the caller then reports it, which enqueues the stack)."""
        if w.disrupted or not w.running:
            return False
        w.disrupted = why
        self._notify()
        return True

    @property
    def changed(self) -> trio.Event:
        """Set at the next change of any watch's facts."""
        return self._changed

    async def wait_for(self, container_ids: Iterable[str], condition: str) -> str | None:
        """Block until `condition` holds for all of them; None, or why it never will."""
        ids = sorted(container_ids)
        while True:
            changed = self._changed
            verdict = self.verdict(ids, condition)
            if verdict != "wait":
                return verdict
            await changed.wait()

    def verdict(self, ids: Iterable[str], condition: str) -> str | None:
        """None (holds), "wait", or why `condition` never will hold for `ids`."""
        if condition == "service_started":
            return None
        waiting = False
        for cid in sorted(ids):
            w = self._watches.get(cid)
            if w is None:
                continue  # not ours to judge (not selected, or gone): don't block on it
            name = w.desired.name
            if condition == "service_healthy":
                if w.health is None and w.running:
                    continue  # no healthcheck: started is the best we can know
                if w.health == "unhealthy":
                    return f"{name} is unhealthy"
                if w.finished:
                    return f"{name} exited with code {w.exit_code} before it was healthy"
                if w.health != "healthy":
                    waiting = True
            elif condition == "service_completed_successfully":
                if not w.finished:
                    waiting = True
                elif w.exit_code != 0:
                    return f"{name} exited with code {w.exit_code}"
        return "wait" if waiting else None

    # -- the watcher task -------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _set_ready(self, w: Watch, ready: bool, *, running: bool = False) -> None:
        try:
            await self._ports.network.set_ready(w.container_id, ready, running=running)
        except StackdError as err:
            self.report(w, "error", f"DNS readiness: {err}")

    async def _on_health(self, w: Watch, state: HealthState) -> None:
        if w.health == state.status:
            return
        w.health = state.status
        # Out of (or into) DNS and the port's backends first, then the fact: it
        # enqueues the stack, whose reconcile may kill an unhealthy container at once.
        await self._set_ready(w, w.ready, running=w.running)
        self._notify()
        self.report(w, "health", state.status if state.status != "unhealthy"
                    else f"unhealthy: {state.last_output.strip()[-200:]}",
                    health=state.status)

    async def _run_until_exit(self, w: Watch) -> int | None:
        check = w.service.healthcheck
        await self._set_ready(w, w.ready, running=w.running)
        async with trio.open_nursery() as nursery:
            if check is not None:
                async def report(state: HealthState) -> None:
                    await self._on_health(w, state)
                nursery.start_soon(functools.partial(
                    run_healthcheck, self._ports.runtime, w.container_id, check, report,
                    at_once=w.adopted))
            w.adopted = False  # a later run of it is a fresh start
            try:
                status = await self._ports.runtime.wait(w.container_id)
                code = status.code
                w.oom_killed = bool(getattr(status, "oom_killed", False))
            except StackdError:
                code = None  # gone from under us: treat as a crash
            nursery.cancel_scope.cancel()
        return code

    async def _run(self, w: Watch, scope: trio.CancelScope) -> None:
        """Watch one run of the container, until it exits."""
        with scope:
            was_running = w.running
            code = await self._run_until_exit(w) if was_running else w.exit_code
            now = trio.current_time()
            w.running, w.exit_code, w.exited_at = False, code, now
            w.health = None if w.service.healthcheck is None else w.health
            w.finished = not should_restart(w.service.restart, code,
                                            stopped_by_user=w.released or w.held,
                                            attempts=w.history.count(now))
            self._notify()
            await self._set_ready(w, False)
            if was_running:
                if w.oom_killed:  # as Docker: oom, then die
                    self.report(w, "oom", "killed by the kernel's OOM killer: the memory "
                                "limit was reached")
                self.report(w, "die", f"exit code {code}"
                            + (" (OOM killed)" if w.oom_killed else ""), exit_code=code)
