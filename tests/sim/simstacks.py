"""Small desired states for simulation, and a fake host to converge them on.

`stack(...)` builds a DesiredState the way `translate.desired_state` would (labels, ids,
config hash over every hashed field) without a stack file or images, so a sim test
says only what it varies: environment, scale, dependencies, healthchecks, restarts.
"""

from __future__ import annotations

import graphlib
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio
from simfakes import FakeNetwork, FakeRuntime, FakeVolumes, Faults, NoImages, SimulatedCrash

from stackd.daemon.controller import Controller
from stackd.netbridge.model import Attachment, NetworkSpec
from stackd.reconciler.actual import ActualState, observe
from stackd.reconciler.apply import ApplyResult, apply
from stackd.reconciler.asks import Ask
from stackd.reconciler.desired import (
    DependsOn,
    DesiredContainer,
    DesiredService,
    DesiredState,
    slot_container,
)
from stackd.reconciler.diff import PlanOptions, plan
from stackd.reconciler.hash import config_hash
from stackd.reconciler.health import HealthCheck
from stackd.reconciler.plan import Plan
from stackd.reconciler.ports import Adapters
from stackd.reconciler.reconcile import converge
from stackd.reconciler.restart import RestartPolicy
from stackd.reconciler.rolling import Rollout
from stackd.reconciler.supervisor import Supervisor, SupervisorEvent
from stackd.runtime.containerspec import ContainerSpec, Mount, ProcessSpec
from stackd.state.db import StateDB
from stackd.state.intents import IntentLog

DEFAULTS = PlanOptions()
NO_RESTART = RestartPolicy()


@dataclass(frozen=True)
class Svc:
    name: str
    scale: int = 1
    env: dict[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ("sleep", "infinity")
    depends: tuple[DependsOn, ...] = ()
    health: HealthCheck | None = None
    restart: RestartPolicy = NO_RESTART
    restart_on_unhealthy: bool = True
    networks: tuple[str, ...] = ("default",)
    volumes: tuple[str, ...] = ()


def svc(name: str, **kw: object) -> Svc:
    deps = kw.pop("depends", ())
    if isinstance(deps, dict):
        kw["depends"] = tuple(DependsOn(k, v) for k, v in sorted(deps.items()))
    elif deps:
        kw["depends"] = tuple(d if isinstance(d, DependsOn) else DependsOn(d)
                              for d in deps)  # type: ignore[union-attr]
    return Svc(name, **kw)  # type: ignore[arg-type]


def _container(project: str, s: Svc, index: int) -> DesiredContainer:
    env = tuple(f"{k}={v}" for k, v in sorted(s.env.items()))
    spec = ContainerSpec(id="placeholder", name="placeholder", layers=("/sim/layers/busybox",),
                         process=ProcessSpec(args=s.command, env=env))
    attachments = tuple(Attachment(f"{project}_{n}", aliases=(s.name,)) for n in s.networks)
    digest = config_hash(spec.model_copy(update={"mounts": tuple(
        Mount(type="volume", source=v, target=f"/{v}") for v in sorted(s.volumes))}),
        image="sha256:busybox", attachments=attachments, healthcheck=s.health)
    return slot_container(project, s.name, index, spec, digest,
                          attachments=attachments,
                          volumes=tuple(f"{project}_{v}" for v in s.volumes))


def stack(project: str, *services: Svc) -> DesiredState:
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for s in services:
        sorter.add(s.name, *(d.service for d in s.depends))
    sorter.prepare()
    waves: list[tuple[str, ...]] = []
    while sorter.is_active():
        ready = tuple(sorted(sorter.get_ready()))
        waves.append(ready)
        sorter.done(*ready)
    nets = sorted({n for s in services for n in s.networks})
    vols = sorted({f"{project}_{v}" for s in services for v in s.volumes})
    return DesiredState(
        project=project,
        services={s.name: DesiredService(s.name, s.scale, s.depends, s.health, s.restart,
                                         s.restart_on_unhealthy) for s in services},
        containers=tuple(_container(project, s, i) for s in sorted(services, key=lambda s: s.name)
                         for i in range(1, s.scale + 1)),
        networks={f"{project}_{n}": NetworkSpec(f"{project}_{n}", project, n) for n in nets},
        volumes=tuple(vols),
        waves=tuple(waves),
    )


@dataclass(eq=False)
class _Up:
    options: PlanOptions
    ask: Ask | None
    done: trio.Event = field(default_factory=trio.Event)
    result: ApplyResult | None = None
    error: BaseException | None = None

    def add(self, result: ApplyResult) -> None:
        """One more pass of its revision (a rolling update's next batch): its steps
        after those of the passes before; the first pass's plan stands for them all."""
        if self.result is None:
            self.result = result
            return
        self.result = ApplyResult(self.result.plan, [*self.result.outcomes, *result.outcomes],
                                  result.requeue_after, result.rollouts)


@dataclass
class Host:
    """The fake host, with the daemon's own controller: `up` and every fact the
    supervisor reports (die, health, heal) only enqueue the stack; its reconcile is
    the one writer of its containers, as in the daemon."""

    runtime: FakeRuntime
    network: FakeNetwork
    volumes: FakeVolumes
    state: IntentLog
    faults: Faults
    supervisor: Supervisor
    events: list[SupervisorEvent]
    nursery: trio.Nursery
    _supervisor_scope: trio.CancelScope
    controller: Controller | None = None
    desired: dict[str, DesiredState] = field(default_factory=dict)
    _ups: dict[str, list[_Up]] = field(default_factory=dict)
    # What the daemon keeps with a revision: its rolling updates' state, pass to pass;
    # and the `up` whose revision is still rolling (it waits for the last batch).
    rollouts: dict[str, dict[str, Rollout]] = field(default_factory=dict)
    _rolling: dict[str, _Up] = field(default_factory=dict)
    # reconciles of each stack running right now (the one-writer property: never > 1)
    writers: dict[str, int] = field(default_factory=dict)
    most_writers: int = 0

    @property
    def ports(self) -> Adapters:
        return Adapters(self.runtime, NoImages(), self.network, self.volumes, self.state)

    async def actual(self, project: str) -> ActualState:
        return await observe(project, self.ports)

    async def plan(self, desired: DesiredState, options: PlanOptions = DEFAULTS) -> Plan:
        return plan(desired, await self.actual(desired.project), options)

    async def up(self, desired: DesiredState, options: PlanOptions = DEFAULTS, *,
                 ask: Ask | None = None) -> ApplyResult:
        """Make `desired` the stack's desired state and wait for the reconcile that
        carried it out (with `options` and `ask`; the passes after it plan plainly)."""
        assert self.controller is not None
        self.desired[desired.project] = desired
        self.rollouts.pop(desired.project, None)  # a new revision: a new update
        up = _Up(options, ask)
        self._ups.setdefault(desired.project, []).append(up)
        self.controller.enqueue(desired.project)
        await up.done.wait()
        if up.error is not None:
            raise up.error
        assert up.result is not None
        return up.result

    async def apply_directly(self, desired: DesiredState, options: PlanOptions = DEFAULTS
                             ) -> ApplyResult:
        """Plan and apply outside the controller: a daemon's reconcile as it crashes."""
        p = await self.plan(desired, options)
        return await apply(p, desired, self.ports, self.supervisor)

    async def reconcile(self, project: str) -> float | None:
        """The controller's reconcile of one stack (the daemon's Engine._reconcile)."""
        desired = self.desired.get(project)
        ups = self._ups.get(project) or []
        up = ups.pop(0) if ups else None
        if ups:
            self.controller.enqueue(project)  # type: ignore[union-attr]
        if desired is None:
            return None
        self.writers[project] = self.writers.get(project, 0) + 1
        self.most_writers = max(self.most_writers, self.writers[project])
        waiting = up if up is not None else self._rolling.pop(project, None)
        try:
            result = await converge(desired, self.ports, up.options if up else DEFAULTS,
                                    self.supervisor, ask=up.ask if up else None,
                                    rollouts=self.rollouts.get(project))
        except BaseException as exc:
            if waiting is not None:
                waiting.error = exc
                waiting.done.set()
            raise
        finally:
            self.writers[project] -= 1
        self.rollouts[project] = result.rollouts
        if waiting is not None:
            waiting.add(result)
            if result.updating:
                self._rolling[project] = waiting
            else:
                waiting.done.set()
        return result.requeue_after

    def report(self, event: SupervisorEvent) -> None:
        self.events.append(event)
        if event.type in ("die", "health", "heal") and self.controller is not None:
            self.controller.enqueue(event.project)

    async def restart_supervisor(self) -> None:
        """A new daemon life: the old supervisor's tasks die with it, a fresh one starts."""
        self._supervisor_scope.cancel()
        self._supervisor_scope, nursery = await self.nursery.start(_child_nursery)
        self.supervisor = Supervisor(self.ports, nursery, self.report)

    async def crash_during_up(self, desired: DesiredState, at: int,
                              options: PlanOptions = DEFAULTS) -> bool:
        """Run `up` with a crash after the at-th side effect; whether it crashed."""
        self.faults.ops, self.faults.crash_at = 0, at
        try:
            await self.apply_directly(desired, options)
        except BaseException as exc:
            if not _is_crash(exc):
                raise
            return True
        finally:
            self.faults.crash_at = None
        return False

    def event_lines(self, *types: str) -> list[str]:
        return [f"{e.time:g} {e.container} {e.type}: {e.message}" for e in self.events
                if not types or e.type in types]


@asynccontextmanager
async def sim_host(tmp_path: Path) -> AsyncIterator[Host]:
    db = StateDB.open(tmp_path / "sim.db")
    try:
        async with trio.open_nursery() as nursery:
            faults = Faults()
            runtime = FakeRuntime(nursery, faults)
            net, vols = FakeNetwork(faults), FakeVolumes(faults)
            runtime.unresolved = net.unresolved
            events: list[SupervisorEvent] = []
            scope, child = await nursery.start(_child_nursery)
            host = Host(runtime, net, vols, IntentLog(db), faults,
                        Supervisor(Adapters(runtime, NoImages(), net, vols, IntentLog(db)),
                                   child), events, nursery, scope)
            host.supervisor = Supervisor(host.ports, child, host.report)
            # No periodic resync: the tests say when the stack is looked at again. inf,
            # not a large number: while a reconcile waits on a worker thread the autojump
            # clock jumps to the next deadline, and a resync's would shift every time.
            host.controller = Controller(host.reconcile, workers=2, resync_period=math.inf)
            await nursery.start(host.controller.run)
            yield host
            nursery.cancel_scope.cancel()
    finally:
        db.close()


async def _child_nursery(
    task_status: trio.TaskStatus[tuple[trio.CancelScope, trio.Nursery]] = trio.TASK_STATUS_IGNORED,
) -> None:
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            task_status.started((scope, nursery))
            await trio.sleep_forever()


def _is_crash(exc: BaseException) -> bool:
    if isinstance(exc, SimulatedCrash):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_crash(e) for e in exc.exceptions)
    return False
