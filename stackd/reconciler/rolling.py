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

One batch per reconcile pass: `roll` carries out the first batch of what is left and
returns; the stack's reconcile then ends with a requeue after `delay`, so the stack's
other work (a user's `stop`, a restart under the policy, a heal) is served between
batches, by the same one writer. What the update has done so far is a `Rollout`,
kept with the revision by the caller (the daemon) and handed to the next pass: the
slots it updated and the ones whose batch failed (left as they are under `continue`),
the batches run, and why it paused. A paused update stays paused — no batch runs —
until a new revision (the next `up`) or a resume clears it, as Swarm's does.

The pure parts (`batches`, `over_ratio`, `pending`) are separate from `roll`, which
drives the executor's steps; apply makes no decision of its own about them.
"""

from __future__ import annotations

import dataclasses
import math
import time
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
class Rollout:
    """One service's update of one revision so far, carried from pass to pass."""

    done: tuple[int, ...] = ()  # slots updated (their new container passed its gate)
    failed: tuple[int, ...] = ()  # slots whose batch failed: not tried again this revision
    batches: int = 0  # batches run
    failed_batches: int = 0  # of them, those that failed (a resume runs them again)
    left: int = 0  # slots still to update after this pass
    paused: str = ""  # why the update stopped under failure_action pause; "": it runs on
    not_before: float = 0.0  # wall time (epoch s) the next batch may start: `delay`
    # The batch under way, kept before its first step: a daemon that dies in it leaves
    # these slots' new containers ungated, and the next pass gates them first.
    in_flight: tuple[int, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"done": list(self.done), "failed": list(self.failed),
                "batches": self.batches, "failed_batches": self.failed_batches,
                "left": self.left, "paused": self.paused, "not_before": self.not_before,
                "in_flight": list(self.in_flight)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Rollout:
        def ints(key: str) -> tuple[int, ...]:
            v = data.get(key)
            return tuple(int(i) for i in v) if isinstance(v, list) else ()

        def num(key: str) -> int:
            v = data.get(key)
            return int(v) if isinstance(v, int) else 0

        paused, not_before = data.get("paused"), data.get("not_before")
        return cls(ints("done"), ints("failed"), num("batches"), num("failed_batches"),
                   num("left"), paused if isinstance(paused, str) else "",
                   float(not_before) if isinstance(not_before, (int, float)) else 0.0,
                   ints("in_flight"))


@dataclass(frozen=True, slots=True)
class Batch:
    number: int  # from 1
    total: int
    actions: tuple[Recreate, ...]

    @property
    def label(self) -> str:
        slots = ", ".join(a.resource for a in self.actions)
        return f"batch {self.number}/{self.total} ({slots})"


def batches(actions: Sequence[Recreate], parallelism: int, *, before: int = 0
            ) -> list[Batch]:
    """The recreates in slot order, `parallelism` per batch (0: one batch), numbered
    after the `before` batches earlier passes of the update ran. Pure."""
    ordered = sorted(actions, key=lambda a: a.container.index)
    size = parallelism if parallelism > 0 else max(len(ordered), 1)
    groups = [tuple(ordered[i:i + size]) for i in range(0, len(ordered), size)]
    return [Batch(before + n, before + len(groups), g)
            for n, g in enumerate(groups, start=1)]


def pending(actions: Sequence[Recreate], rollout: Rollout) -> list[Recreate]:
    """The recreates the update still has to carry out: not the slots it already did
    (a forced recreate would plan them again) nor those whose batch failed. Pure."""
    skip = set(rollout.done) | set(rollout.failed) | set(rollout.in_flight)
    return [a for a in actions if a.container.index not in skip]


def rolled(plan: Plan, services: Mapping[str, DesiredService]
           ) -> dict[str, list[Recreate]]:
    """Per service with an update_config, the plan's recreates the update rolls. Pure."""
    out: dict[str, list[Recreate]] = {}
    for a in plan.actions:
        if isinstance(a, Recreate) and not isinstance(a, Restart) \
                and a.service in services and services[a.service].update is not None:
            out.setdefault(a.service, []).append(a)
    return out


def annotate(plan: Plan, services: Mapping[str, DesiredService],
             rollouts: Mapping[str, Rollout] | None = None) -> Plan:
    """The plan with each rolled recreate's cause naming its batch, so `stackd plan`
    (and `up`'s progress) show the batches the update will run (`rollouts`: what the
    update did in earlier passes). Pure."""
    labels: dict[int, str] = {}
    for name, actions in rolled(plan, services).items():
        update = services[name].update
        assert update is not None
        rollout = (rollouts or {}).get(name, Rollout())
        if rollout.paused:
            for a in actions:
                labels[id(a)] = f"rolling update paused: {rollout.paused}"
            continue
        for b in batches(pending(actions, rollout), update.parallelism,
                         before=rollout.batches):
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
    def keep(self, service: str, rollout: Rollout) -> None: ...
    def slot_id(self, service: str, index: int) -> str | None: ...


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


@dataclass(frozen=True, slots=True)
class Rolled:
    """What one pass of a service's update did."""

    rollout: Rollout  # to keep for the next pass
    stopped: str | None = None  # why the update stopped in this pass (paused, rolled back)
    wait: float | None = None  # seconds until the next batch is due; None: none is


def _now() -> float:
    # Wall time, not trio's clock: `not_before` outlives the daemon in the revision.
    return time.time()


async def roll(ex: Steps, service: str, actions: Sequence[Recreate], update: UpdateConfig,
               rollout: Rollout, *, gate_timeout: float | None) -> Rolled:
    """Carry out the next batch of `actions` (one service's recreates), given what the
    update did in earlier passes. Its new state, and whether it stopped (paused or to
    be rolled back: the rest is skipped) or when its next batch is due."""
    if rollout.paused:
        return Rolled(rollout)  # stays paused until a new revision or a resume
    todo = pending(actions, rollout)
    limit = gate_timeout if gate_timeout is not None else math.inf
    monitor = update.monitor.total_seconds()
    if rollout.in_flight:
        # A daemon died in this batch: the new containers it made (the plan kept them,
        # and removed a start-first batch's old ones as duplicates) pass the gate
        # first, as that batch; slots it had not made a container for yet go back to
        # the update's list.
        made_ids = {n: cid for n in rollout.in_flight
                    if (cid := ex.slot_id(service, n)) is not None
                    and ex.supervisor.get(cid) is not None}
        if not made_ids:
            rollout = dataclasses.replace(rollout, in_flight=(),
                                          batches=max(rollout.batches - 1, 0))
            todo = pending(actions, rollout)
        else:
            number = rollout.batches
            rest = pending(actions, dataclasses.replace(rollout, in_flight=tuple(made_ids)))
            total = number + len(batches(rest, update.parallelism))
            label = f"batch {number}/{total} (" + ", ".join(
                f"{service}-{n}" for n in sorted(made_ids)) + ")"
            ex.progress(service, f"rolling update {label}, {update.order}: the gate of a "
                        "batch a stopped daemon left")
            why = await settle(ex.supervisor, sorted(made_ids.values()), monitor, limit)
            return await _conclude(ex, service, update, rollout, number, label,
                                   tuple(sorted(made_ids)), why, [], rest)
    if not todo:
        return Rolled(dataclasses.replace(rollout, left=0))
    early = rollout.not_before - _now()
    if early > 0:
        return Rolled(dataclasses.replace(rollout, left=len(todo)), wait=early)
    ports, sup = ex.ports, ex.supervisor
    plan = batches(todo, update.parallelism, before=rollout.batches)
    batch = plan[0]
    start_first = update.order == "start-first"
    slots_of = tuple(a.container.index for a in batch.actions)
    ex.keep(service, dataclasses.replace(rollout, batches=batch.number, in_flight=slots_of))
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
    return await _conclude(ex, service, update, rollout, batch.number, batch.label,
                           slots_of, why, made if start_first else [],
                           [a for b in plan[1:] for a in b.actions])


async def _conclude(ex: Steps, service: str, update: UpdateConfig, rollout: Rollout,
                    number: int, label: str, slots: tuple[int, ...], why: str | None,
                    undo: Sequence[Recreate], rest: Sequence[Recreate]) -> Rolled:
    """After batch `number` (`slots`; `why` it failed, None if it passed): the
    update's new state, and whether it stops here (`rest` skipped) or goes on."""
    delay = update.delay.total_seconds()
    after = dataclasses.replace(rollout, batches=number, in_flight=(), left=len(rest),
                                not_before=_now() + delay if rest else 0.0)
    wait = delay if rest else None
    if why is None:
        ex.progress(service, f"{label} done")
        return Rolled(dataclasses.replace(after, done=tuple(sorted(rollout.done + slots))),
                      wait=wait)
    ex.progress(service, f"{label} failed: {why}")
    await _undo(ex, undo)
    failed = tuple(sorted(rollout.failed + slots))
    after = dataclasses.replace(after, failed=failed,
                                failed_batches=rollout.failed_batches + 1)
    total = len(rollout.done) + len(rollout.failed) + len(slots) + len(rest)
    if update.failure_action == "continue" \
            or not over_ratio(len(failed), total, update.max_failure_ratio):
        return Rolled(after, wait=wait)
    verb = "paused" if update.failure_action == "pause" else "rolled back"
    stopped = f"update of {service} {verb}: {label} failed: {why}"
    for a in rest:
        ex.skip(a, f"update {verb}: {label} failed: {why}")
    if update.failure_action == "pause":
        after = dataclasses.replace(after, paused=stopped)
    return Rolled(after, stopped=stopped)


def resumed(rollout: Rollout) -> Rollout:
    """A paused update, resumed: it goes on, its failed batches to run again. Pure."""
    return dataclasses.replace(rollout, paused="", failed=(), failed_batches=0,
                               batches=rollout.batches - rollout.failed_batches)


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
