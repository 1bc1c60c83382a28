"""The supervisor: one task per container that watches it exit, runs its healthcheck,
restarts it under its restart policy and tells DNS whether it is ready.

It lives as long as its nursery: the daemon's for the daemon's life, or one `up`'s
while that runs. `apply` hands it every container it started or found; it hands
back answers to "is db healthy yet?" for depends_on gating. What it observes is
reported as `SupervisorEvent`s (die, health, restart…), facts for the event bus.

Beyond Compose: a container that turns unhealthy is killed and so restarted under
its restart policy, as a Kubernetes liveness probe would (opt out per service with
`x-stackd: {restart_on_unhealthy: false}`); and a replica is in DNS only while it
runs and, when it has a healthcheck, is healthy (Kubernetes readiness).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import trio

from stackd.errors import StackdError
from stackd.reconciler import lifecycle
from stackd.reconciler.desired import DesiredContainer, DesiredService
from stackd.reconciler.health import HealthState, HealthStatus, run_healthcheck
from stackd.reconciler.ports import Ports
from stackd.reconciler.restart import Backoff, RestartHistory, should_restart


@dataclass(frozen=True, slots=True)
class SupervisorEvent:
    type: str  # die, oom, health, restart, error — the daemon's event types
    project: str
    service: str
    container: str  # container name, e.g. demo-web-1
    message: str
    time: float  # trio.current_time()


Emit = Callable[[SupervisorEvent], None]


@dataclass(eq=False)
class Watch:
    container_id: str
    desired: DesiredContainer
    service: DesiredService
    running: bool
    exit_code: int | None = None
    oom_killed: bool = False  # the last exit was the kernel's OOM killer's
    health: HealthStatus | None = None  # None: no healthcheck
    finished: bool = False  # exited, and the restart policy will not start it again
    restarts: int = 0
    started_at: float = 0.0
    released: bool = False
    held: bool = False  # a user stopped it: never restart (StatePort holds)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    @property
    def ready(self) -> bool:
        return self.running and self.health in (None, "healthy")


class Supervisor:
    def __init__(self, ports: Ports, nursery: trio.Nursery, emit: Emit | None = None) -> None:
        self._ports = ports
        self._nursery = nursery
        self._emit = emit
        self._watches: dict[str, Watch] = {}
        self._changed = trio.Event()

    # -- what apply calls -------------------------------------------------------------

    def watch(self, container_id: str, desired: DesiredContainer, service: DesiredService, *,
              running: bool, exit_code: int | None = None, held: bool = False) -> None:
        """Supervise a container from now on; if it already is, take the new policy.

        Restart policy and the unhealthy opt-out are not in the config hash: a changed
        one reaches a running container here, without recreating it.
        """
        existing = self._watches.get(container_id)
        if existing is not None:
            existing.desired, existing.service = desired, service
            existing.held = held
            return
        w = Watch(container_id, desired, service, running=running, exit_code=exit_code,
                  health="starting" if running and service.healthcheck else None,
                  started_at=trio.current_time(), held=held)
        self._watches[container_id] = w
        self._nursery.start_soon(self._run, w)
        self._notify()

    async def release(self, container_id: str) -> None:
        """Stop supervising (before apply stops or removes it: that exit is not a crash)."""
        w = self._watches.pop(container_id, None)
        if w is None:
            return
        w.released = True
        w.scope.cancel()
        self._notify()
        await self._set_ready(w, False)

    def get(self, container_id: str) -> Watch | None:
        return self._watches.get(container_id)

    def watches(self) -> list[Watch]:
        return [self._watches[k] for k in sorted(self._watches)]

    async def wait_for(self, container_ids: Iterable[str], condition: str) -> str | None:
        """Block until `condition` holds for all of them; None, or why it never will."""
        ids = sorted(container_ids)
        if condition == "service_started":
            return None
        while True:
            changed = self._changed
            verdict = self._verdict(ids, condition)
            if verdict != "wait":
                return verdict
            await changed.wait()

    def _verdict(self, ids: list[str], condition: str) -> str | None:
        waiting = False
        for cid in ids:
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

    # -- the watch task ---------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _event(self, w: Watch, type_: str, message: str) -> None:
        if self._emit is not None:
            self._emit(SupervisorEvent(type_, w.desired.project, w.desired.service,
                                       w.desired.name, message, trio.current_time()))

    async def _set_ready(self, w: Watch, ready: bool) -> None:
        try:
            await self._ports.network.set_ready(w.container_id, ready)
        except StackdError as err:
            self._event(w, "error", f"DNS readiness: {err}")

    async def _on_health(self, w: Watch, state: HealthState) -> None:
        if w.health == state.status:
            return
        w.health = state.status
        self._notify()
        self._event(w, "health", state.status if state.status != "unhealthy"
                    else f"unhealthy: {state.last_output.strip()[-200:]}")
        await self._set_ready(w, w.ready)
        svc = w.service
        if state.status == "unhealthy" and svc.restart_on_unhealthy and \
                svc.restart.restarts_at_all:
            self._event(w, "restart", "killing unhealthy container")
            try:
                await self._ports.runtime.kill(w.container_id, "SIGKILL")
            except StackdError as err:
                self._event(w, "error", f"kill: {err}")

    async def _run_until_exit(self, w: Watch) -> int | None:
        check = w.service.healthcheck
        await self._set_ready(w, w.ready)
        async with trio.open_nursery() as nursery:
            if check is not None:
                async def report(state: HealthState) -> None:
                    await self._on_health(w, state)
                nursery.start_soon(run_healthcheck, self._ports.runtime, w.container_id,
                                   check, report)
            try:
                status = await self._ports.runtime.wait(w.container_id)
                code = status.code
                w.oom_killed = bool(getattr(status, "oom_killed", False))
            except StackdError:
                code = None  # gone from under us: treat as a crash
            nursery.cancel_scope.cancel()
        return code

    async def _run(self, w: Watch) -> None:
        history = RestartHistory(w.service.restart.window)
        backoff = Backoff(w.service.restart.delay)
        with w.scope:
            while True:
                code = await self._run_until_exit(w) if w.running else w.exit_code
                now = trio.current_time()
                w.running, w.exit_code = False, code
                w.health = None if w.service.healthcheck is None else w.health
                self._notify()
                await self._set_ready(w, False)
                if w.oom_killed:  # as Docker: oom, then die
                    self._event(w, "oom", "killed by the kernel's OOM killer: the memory "
                                "limit was reached")
                self._event(w, "die", f"exit code {code}"
                            + (" (OOM killed)" if w.oom_killed else ""))
                policy = w.service.restart
                if not should_restart(policy, code, stopped_by_user=w.released or w.held,
                                      attempts=history.count(now)):
                    w.finished = True
                    self._notify()
                    return
                delay = backoff.next_delay(now - w.started_at)
                await trio.sleep(delay)
                history.record(trio.current_time())
                try:
                    await lifecycle.replace(self._ports, w.desired, w.container_id)
                except StackdError as err:
                    self._event(w, "error", f"restart failed: {err}")
                    w.started_at = trio.current_time()
                    continue  # counts as a failed run; the backoff grows
                self._watches.pop(w.container_id, None)
                w.container_id = w.desired.id
                self._watches[w.container_id] = w
                w.running, w.restarts = True, w.restarts + 1
                w.started_at = trio.current_time()
                w.health = "starting" if w.service.healthcheck else None
                self._notify()
                self._event(w, "restart", f"restart {w.restarts} after {delay:g}s")
