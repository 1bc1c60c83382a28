"""The rolling-update strategy: a service's recreates in batches behind a health gate.

A service with `deploy.update_config` has the plan's recreates of its replicas carried
out `parallelism` at a time (0: all in one batch), in slot order:

- stop-first (default): the old container leaves DNS and its published ports'
  backends (`Supervisor.release` → readiness), gets its stop grace period to drain,
  is removed, and its slot's new container is made. Capacity drops by a batch.
- start-first: the new container is made beside the old one (ports are shared by a
  service's replicas); once the batch has passed its gate, the old ones leave and are
  removed. Capacity never drops.

A batch passes its gate when each new container is ready — healthy, or running when
it has no healthcheck — and stays so for `monitor`. A new container that turns
unhealthy or exits, or is not ready within the gate's limit, fails its batch. Once the
failed share of the replicas exceeds `max_failure_ratio`, `failure_action` decides:
`continue` goes on; `pause` and `rollback` stop the update there (the rest skipped). A
start-first batch that failed is undone whatever the action: its new containers are
removed, and its old ones, never touched, keep serving the old revision. A broken new
container is never ready, so it never receives traffic. Between batches the update
waits `delay`.

The pure parts (`batches`, `over_ratio`) are separate from `roll`, which drives the
executor's steps; apply makes no decision of its own about them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import trio

from stackd.reconciler import lifecycle
from stackd.reconciler.desired import DesiredService
from stackd.reconciler.plan import Action, Plan, Recreate, Remove, Restart
from stackd.reconciler.ports import Adapters
from stackd.reconciler.supervisor import Supervisor
from stackd.spec.model import UpdateConfig


@dataclass(frozen=True, slots=True)
class Batch:
    number: int  # from 1
    total: int
    actions: tuple[Recreate, ...]

    @property
    def label(self) -> str:
        slots = ", ".join(a.resource for a in self.actions)
        return f"batch {self.number}/{self.total} ({slots})"


def batches(actions: Sequence[Recreate], parallelism: int) -> list[Batch]:
    """The recreates in slot order, `parallelism` per batch (0: one batch). Pure."""
    ordered = sorted(actions, key=lambda a: a.container.index)
    size = parallelism if parallelism > 0 else max(len(ordered), 1)
    groups = [tuple(ordered[i:i + size]) for i in range(0, len(ordered), size)]
    return [Batch(n, len(groups), g) for n, g in enumerate(groups, start=1)]


def rolled(plan: Plan, services: Mapping[str, DesiredService]
           ) -> dict[str, list[Recreate]]:
    """Per service with an update_config, the plan's recreates the update rolls. Pure."""
    out: dict[str, list[Recreate]] = {}
    for a in plan.actions:
        if isinstance(a, Recreate) and not isinstance(a, Restart) \
                and a.service in services and services[a.service].update is not None:
            out.setdefault(a.service, []).append(a)
    return out


def annotate(plan: Plan, services: Mapping[str, DesiredService]) -> Plan:
    """The plan with each rolled recreate's cause naming its batch, so `stackd plan`
    (and `up`'s progress) show the batches the update will run. Pure."""
    labels: dict[int, str] = {}
    for name, actions in rolled(plan, services).items():
        update = services[name].update
        assert update is not None
        for b in batches(actions, update.parallelism):
            for a in b.actions:
                labels[id(a)] = f"rolling update batch {b.number}/{b.total}, {update.order}"
    if not labels:
        return plan
    return Plan(plan.project, tuple(
        dataclasses.replace(a, cause=f"{a.cause} ({labels[id(a)]})") if id(a) in labels
        else a for a in plan.actions), plan.warnings)


def over_ratio(failed: int, total: int, max_failure_ratio: float) -> bool:
    """Whether `failed` of `total` replicas is more than the update tolerates. Pure."""
    return total > 0 and failed / total > max_failure_ratio


class Steps(Protocol):
    """What `roll` needs of apply's executor: its recorded steps and progress."""

    ports: Adapters
    supervisor: Supervisor

    async def step(self, action: Action, container_id: str | None,
                   effect: Callable[[], Awaitable[None]]) -> bool: ...
    def skip(self, action: Action, why: str) -> None: ...
    def progress(self, resource: str, message: str) -> None: ...
    def watch_new(self, action: Recreate) -> None: ...


async def settle(supervisor: Supervisor, ids: Sequence[str], monitor: float,
                 limit: float) -> str | None:
    """None once every container is ready and stayed so for `monitor` seconds; else why
    not (unhealthy, exited, or not ready within `limit`)."""
    why: str | None = f"not ready after {limit:g}s"
    with trio.move_on_after(limit):
        why = await supervisor.wait_for(ids, "service_healthy")
    if why is not None:
        return why
    deadline = trio.current_time() + monitor
    while True:
        changed = supervisor.changed
        for cid in ids:
            w = supervisor.get(cid)
            if w is None:
                return f"{cid} is no longer watched"
            if not w.running:
                return f"{w.desired.name} exited with code {w.exit_code}"
            if w.health == "unhealthy":
                return f"{w.desired.name} became unhealthy"
        left = deadline - trio.current_time()
        if left <= 0:
            return None
        with trio.move_on_after(left):
            await changed.wait()


async def roll(ex: Steps, service: str, actions: Sequence[Recreate], update: UpdateConfig,
               *, gate_timeout: float | None) -> str | None:
    """Carry out `actions` (one service's recreates) batch by batch. None when the
    update went through (failed batches under `continue` included: their steps say
    so); else why it stopped (paused or rolled back; the rest of it skipped)."""
    ports, sup = ex.ports, ex.supervisor
    plan = batches(actions, update.parallelism)
    limit = gate_timeout if gate_timeout is not None else math.inf
    monitor = update.monitor.total_seconds()
    start_first = update.order == "start-first"
    failed = 0
    for batch in plan:
        if batch.number > 1 and update.delay.total_seconds() > 0:
            ex.progress(service, f"waiting {update.delay.total_seconds():g}s (delay)")
            await trio.sleep(update.delay.total_seconds())
        ex.progress(service, f"rolling update {batch.label}, {update.order}")
        made: list[Recreate] = []
        for a in batch.actions:
            old = a.old_id

            async def start_new(a: Recreate = a) -> None:
                await lifecycle.bring_up(ports, a.container)

            async def stop_old_then_start(a: Recreate = a, old: str = old) -> None:
                await sup.release(old)
                await lifecycle.replace(ports, a.container, old)

            ok = await ex.step(a, old, start_new if start_first else stop_old_then_start)
            if ok:
                ex.watch_new(a)
                made.append(a)
        why = await settle(sup, [a.container.id for a in made], monitor, limit) \
            if made else "no new container started"
        if len(made) < len(batch.actions) and why is None:
            why = "a new container could not be made"
        if start_first and why is None:  # the batch passed: its old containers go
            for a in made:
                await _remove(ex, a.old_id, a, f"replaced by the new {a.resource} "
                              "(rolling update)")
        if why is None:
            ex.progress(service, f"{batch.label} done")
            continue
        failed += len(batch.actions)
        ex.progress(service, f"{batch.label} failed: {why}")
        if not over_ratio(failed, len(actions), update.max_failure_ratio) \
                or update.failure_action == "continue":
            if start_first:
                await _undo(ex, made)
            continue
        if start_first:
            await _undo(ex, made)
        rest = [a for b in plan[batch.number:] for a in b.actions]
        verb = "paused" if update.failure_action == "pause" else "rolled back"
        for a in rest:
            ex.skip(a, f"update {verb}: {batch.label} failed: {why}")
        return f"update of {service} {verb}: {batch.label} failed: {why}"
    return None


async def _undo(ex: Steps, made: Sequence[Recreate]) -> None:
    """Start-first batch that failed: the new containers go, the old ones serve on."""
    for a in made:
        await _remove(ex, a.container.id, a, "its rolling-update batch failed")


async def _remove(ex: Steps, container_id: str, a: Recreate, cause: str) -> None:
    """One container out, as a recorded step (its intent survives a crash, its error
    is an outcome): it leaves DNS and the port's backends first, then drains."""
    remove = Remove(cause=cause, container_id=container_id, service=a.service,
                    index=a.container.index)

    async def effect() -> None:
        await ex.supervisor.release(container_id)
        await lifecycle.tear_down(ex.ports, container_id)
    await ex.step(remove, container_id, effect)
