"""apply: carry out a Plan. It makes no decisions the plan did not make.

Order: networks and volumes first (in parallel); then removals, dependents first;
then the services wave by wave in dependency order, in parallel within a wave, each
service waiting until its `depends_on` conditions hold; last, networks and volumes
to remove. A step that fails is reported with its cause and fails the services that
depend on it (unless the dependency is `required: false`); everything else carries on.

Before each side effect the step's intent is written to the state store, and marked
done after; an apply killed half-way leaves the intent pending, and the next plan
uses it to finish an interrupted remove or undo an interrupted create (see diff).
Intents still pending when an apply starts are closed when it ends: that apply
planned from the host as it found it, which is what finishing them means.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import trio

from stackd import hostnames
from stackd.errors import StackdError, UpdateFailedError
from stackd.reconciler import lifecycle, rolling
from stackd.reconciler.desired import DesiredService, DesiredState
from stackd.reconciler.plan import (
    Action,
    BringUp,
    Create,
    NetworkCreate,
    NetworkRecreate,
    NetworkRemove,
    Plan,
    Recreate,
    Remove,
    Restart,
    Start,
    Stop,
    VolumeCreate,
    VolumeRemove,
)
from stackd.reconciler.ports import Adapters
from stackd.reconciler.repair import repair
from stackd.reconciler.supervisor import Supervisor

OutcomeStatus = Literal["done", "failed", "skipped"]
ProgressState = Literal["working", "done", "failed", "skipped", "waiting"]


@dataclass(frozen=True, slots=True)
class Outcome:
    line: str
    status: OutcomeStatus
    error: str = ""
    # The step's error as raised, so its class (spec error or not, retry or not)
    # reaches the controller unchanged; None for done and skipped steps.
    exception: StackdError | None = None
    action: Action | None = None

    def __str__(self) -> str:
        return self.line if self.status == "done" else f"{self.line} [{self.status}: {self.error}]"


@dataclass(frozen=True, slots=True)
class Progress:
    """One step's state for a live display: resource, state, elapsed seconds."""

    resource: str
    state: ProgressState
    message: str
    elapsed: float
    action: Action | None = None  # the plan step it is about, if any


@dataclass
class ApplyResult:
    plan: Plan
    outcomes: list[Outcome] = field(default_factory=list)
    # Seconds after which the stack wants looking at again (a restart's backoff, a
    # rolling update's next batch).
    requeue_after: float | None = None
    # Each rolling update's state after this pass, for the caller to keep and hand to
    # the next pass (rolling.py: one batch per pass).
    rollouts: dict[str, rolling.Rollout] = field(default_factory=dict)

    @property
    def updating(self) -> bool:
        """A rolling update has batches left (not paused): the stack is not there yet."""
        return any(r.left > 0 and not r.paused for r in self.rollouts.values())

    @property
    def ok(self) -> bool:
        return all(o.status == "done" for o in self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != "done"]

    def __str__(self) -> str:
        if not self.outcomes:
            return str(self.plan)
        return "\n".join(str(o) for o in self.outcomes)


OnProgress = Callable[[Progress], None]
OnRollout = Callable[[Mapping[str, rolling.Rollout]], None]


class _Executor:
    def __init__(self, plan: Plan, services: Mapping[str, DesiredService], ports: Adapters,
                 supervisor: Supervisor, on_progress: OnProgress | None,
                 gate_timeout: float | None,
                 rollouts: Mapping[str, rolling.Rollout] | None = None,
                 on_rollout: OnRollout | None = None,
                 slot_ids: Mapping[tuple[str, int], str] | None = None,
                 parallel: int | None = None) -> None:
        self.plan = plan
        # Compose's --parallel: at most this many steps at once. Held for a step's own
        # work only — a step never waits on another — so it cannot deadlock a gate.
        self.limit = trio.CapacityLimiter(parallel) if parallel else None
        self.on_rollout = on_rollout
        self.slot_ids = dict(slot_ids or {})
        self.gate_timeout = gate_timeout
        self.services = services
        self.ports = ports
        self.supervisor = supervisor
        self.on_progress = on_progress
        self.result = ApplyResult(plan, rollouts=dict(rollouts or {}))
        self.rolling_wait: float | None = None  # the soonest next batch of an update
        self.failed: dict[str, str] = {}  # service → why
        self.repairing: set[str] = set()  # container ids a gate's repair is acting on

    def _progress(self, resource: str, state: ProgressState, message: str, since: float,
                  action: Action | None = None) -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(resource, state, message, trio.current_time() - since,
                                      action))

    def progress(self, resource: str, message: str) -> None:
        self._progress(resource, "working", message, trio.current_time())

    def watch_new(self, action: Recreate) -> None:
        """Supervise a rolling update's new container from its start."""
        want = action.container
        self.supervisor.watch(want.id, want, self.services[want.service], running=True)

    def keep(self, service: str, rollout: rolling.Rollout) -> None:
        """A rolling update's state mid-pass (the batch it starts), kept by the caller
        at once: a daemon that dies in the batch leaves the next pass to gate it."""
        self.result.rollouts[service] = rollout
        if self.on_rollout is not None:
            self.on_rollout(dict(self.result.rollouts))

    def slot_id(self, service: str, index: int) -> str | None:
        return self.slot_ids.get((service, index))

    def skip(self, action: Action, why: str) -> None:
        self.result.outcomes.append(Outcome(action.line, "skipped", why, action=action))
        self._progress(action.resource, "skipped", why, trio.current_time(), action)

    async def step(self, action: Action, container_id: str | None,
                   effect: Callable[[], Awaitable[None]]) -> bool:
        if self.limit is None:
            return await self._step(action, container_id, effect)
        async with self.limit:
            return await self._step(action, container_id, effect)

    async def _step(self, action: Action, container_id: str | None,
                    effect: Callable[[], Awaitable[None]]) -> bool:
        started = trio.current_time()
        intent = self.ports.state.begin(self.plan.project, action.verb, action.resource,
                                        container_id, action.line)
        self._progress(action.resource, "working", action.line, started, action)
        try:
            await effect()
        except StackdError as err:
            self.ports.state.done(intent)  # finished, badly: not interrupted
            self.result.outcomes.append(Outcome(action.line, "failed", str(err), err, action))
            self._progress(action.resource, "failed", str(err), started, action)
            return False
        self.ports.state.done(intent)
        self.result.outcomes.append(Outcome(action.line, "done", action=action))
        self._progress(action.resource, "done", action.line, started, action)
        return True

    # -- one step per action kind -----------------------------------------------------

    async def run(self, action: Action) -> bool:
        ports = self.ports
        if isinstance(action, NetworkCreate):
            return await self.step(action, None, lambda: ports.network.ensure_network(action.spec))
        if isinstance(action, NetworkRemove):
            return await self.step(action, None, lambda: ports.network.remove_network(action.key))
        if isinstance(action, NetworkRecreate):
            async def remake() -> None:
                await ports.network.remove_network(action.spec.key)
                await ports.network.ensure_network(action.spec)
            return await self.step(action, None, remake)
        if isinstance(action, VolumeCreate):
            async def make_volume() -> None:
                await ports.volumes.ensure_volume(self.plan.project, action.name,
                                                  anonymous=action.anonymous)
            return await self.step(action, None, make_volume)
        if isinstance(action, VolumeRemove):
            return await self.step(action, None, lambda: ports.volumes.remove_volume(action.name))
        if isinstance(action, Remove):
            async def remove() -> None:
                await self.supervisor.release(action.container_id)
                await lifecycle.tear_down(ports, action.container_id, grace=action.grace)
                for volume in action.detach:
                    await ports.volumes.detach(volume)
            return await self.step(action, action.container_id, remove)
        if isinstance(action, Stop):
            async def stop() -> None:
                await self.supervisor.release(action.container_id)
                await lifecycle.stop(ports, action.container_id, action.grace)
            return await self.step(action, action.container_id, stop)
        return await self.bring_up(action)

    async def bring_up(self, action: BringUp) -> bool:
        want = action.container
        service = self.services[want.service]
        watch_id = want.id
        if isinstance(action, Create) and not action.start:
            async def make() -> None:
                await lifecycle.create(self.ports, want, renew=action.renew)
            # Nothing to supervise: a created container is adopted once it runs.
            return await self.step(action, want.id, make)
        if isinstance(action, Create):
            async def effect() -> None:
                await lifecycle.bring_up(self.ports, want, renew=action.renew)
            intent_id = want.id
        elif isinstance(action, Recreate):
            old = action.old_id

            keep = isinstance(action, Restart)  # a user's restart keeps the layer

            async def effect() -> None:
                await self.supervisor.release(old)
                await lifecycle.replace(self.ports, want, old, grace=action.grace,
                                        keep_layer=keep, renew=action.renew)
            intent_id = old
        else:
            old = action.old_id
            watch_id = intent_id = old

            async def effect() -> None:
                await self.supervisor.release(old)
                if old == want.id:  # a user's start (or up) of it: its layer goes on
                    await lifecycle.bring_up(self.ports, want, keep_layer=True)
                else:  # --no-recreate kept an older config: start that one as it is
                    await lifecycle.start_existing(self.ports, old)
        ok = await self.step(action, intent_id, effect)
        if ok:
            self.supervisor.watch(watch_id, want, service, running=True)
        return ok

    # -- phases -----------------------------------------------------------------------

    async def parallel(self, actions: Sequence[Action]) -> list[bool]:
        results = [False] * len(actions)

        async def one(i: int, a: Action) -> None:
            results[i] = await self.run(a)

        async with trio.open_nursery() as nursery:
            for i, a in enumerate(actions):
                nursery.start_soon(one, i, a)
        return results

    async def removals(self, actions: Sequence[Remove | Stop],
                       waves: Sequence[Sequence[str]]) -> None:
        """Dependents first (reverse waves); one service's slots highest index first."""
        rank = {s: i for i, wave in enumerate(reversed(waves)) for s in wave}
        groups: dict[int, dict[str, list[Remove | Stop]]] = {}
        for a in actions:
            groups.setdefault(rank.get(a.service, -1), {}).setdefault(a.service, []).append(a)
        for level in sorted(groups):
            async with trio.open_nursery() as nursery:
                for service in sorted(groups[level]):
                    nursery.start_soon(self._in_sequence, groups[level][service])

    async def _in_sequence(self, actions: Sequence[Action]) -> None:
        for a in actions:
            await self.run(a)

    async def gate(self, ids: list[str], condition: str) -> str | None:
        """Wait until `condition` holds for the dependency's containers (None), or why it
        never will. This reconcile holds the stack's key, so it is the one to restart a
        dependency that exits meanwhile under its restart policy."""
        while True:
            changed = self.supervisor.changed
            verdict = self.supervisor.verdict(ids, condition)
            if verdict != "wait":
                return verdict
            after = await repair(self.plan.project, self.ports, self.supervisor,
                                 only=set(ids), busy=self.repairing)
            if self.supervisor.verdict(ids, condition) != "wait":
                continue
            with trio.move_on_after(after if after is not None else math.inf):
                await changed.wait()

    async def service(self, name: str, actions: Sequence[BringUp],
                      ids_of: Callable[[str], list[str]]) -> None:
        svc = self.services[name]
        # `create` starts nothing, so it waits for no dependency either.
        starts = any(not isinstance(a, Create) or a.start for a in actions)
        for dep in svc.depends_on if starts else ():
            why = self.failed.get(dep.service)
            if why is None:
                self._progress(name, "waiting", f"waiting for {dep.service} ({dep.condition})",
                               trio.current_time())
                limit = self.gate_timeout if self.gate_timeout is not None else math.inf
                why = f"not {dep.condition.removeprefix('service_')} after {limit:g}s"
                with trio.move_on_after(limit):
                    why = await self.gate(ids_of(dep.service), dep.condition)
            if why is not None and dep.required:
                reason = f"dependency {dep.service} failed: {why}"
                self.failed[name] = reason
                for a in actions:
                    self.skip(a, reason)
                return
        update = svc.update
        rolled = rolling.rolled(Plan(self.plan.project, tuple(actions)),
                                self.services).get(name, [])
        results = await self.parallel([a for a in actions if a not in rolled])
        rollout = self.result.rollouts.get(name, rolling.Rollout())
        if (rolled or rollout.in_flight) and update is not None:
            r = await rolling.roll(self, name, rolled, update, rollout,
                                   gate_timeout=self.gate_timeout)
            self.result.rollouts[name] = r.rollout
            if r.wait is not None:
                self.rolling_wait = min(r.wait, self.rolling_wait if self.rolling_wait
                                        is not None else r.wait)
            stopped = r.stopped
            if stopped is not None:
                err = UpdateFailedError(stopped, hint="fix the service and run `up` again; "
                                        "`stackd logs` shows why its containers failed",
                                        rollback=update.failure_action == "rollback")
                self.result.outcomes.append(Outcome(f"{name}: rolling update", "failed",
                                                    stopped, err))
                self._progress(name, "failed", stopped, trio.current_time())
                results.append(False)
        if not all(results):
            errors = [o.error for o in self.result.outcomes
                      if o.status == "failed" and (o.line in {a.line for a in actions}
                                                   or o.line == f"{name}: rolling update")]
            self.failed[name] = errors[0] if errors else "failed"


async def apply(plan: Plan, desired: DesiredState | None, ports: Adapters, supervisor: Supervisor,
                *, waves: Sequence[Sequence[str]] | None = None,
                on_progress: OnProgress | None = None,
                gate_timeout: float | None = None,
                rollouts: Mapping[str, rolling.Rollout] | None = None,
                on_rollout: OnRollout | None = None,
                parallel: int | None = None) -> ApplyResult:
    """Carry out `plan` (from `diff.plan`, or `plan_down` with desired None).

    `waves` (start order; removals go the other way) defaults to the desired state's;
    give it for a `down` so dependents stop before what they depend on.
    `gate_timeout`: how long a service waits for one depends_on condition before it
    counts as failed (None: as long as it takes, as Compose does).
    `rollouts`: what the rolling updates did in earlier passes (rolling.Rollout); this
    pass runs the next batch of each, and `ApplyResult.rollouts` is their state after;
    `on_rollout` gets them as a batch starts, to keep at once.
    `parallel`: at most this many steps at once (None: as many as the plan allows).
    """
    services = dict(desired.services) if desired is not None else {}
    if waves is None:
        waves = desired.waves if desired is not None else ()
    slot_ids = {(c.service, c.index): c.id for c in desired.containers} if desired else {}
    ex = _Executor(plan, services, ports, supervisor, on_progress, gate_timeout, rollouts,
                   on_rollout, slot_ids, parallel)
    stale = list(ports.state.pending(plan.project))

    first = [a for a in plan.actions if isinstance(a, (NetworkCreate, VolumeCreate))]
    ok = all(await ex.parallel(first))
    removals = [a for a in plan.actions if isinstance(a, (Remove, Stop))]
    await ex.removals(removals, waves)
    # After the removals: a recreated network's containers are gone from it by now.
    remade = [a for a in plan.actions if isinstance(a, NetworkRecreate)]
    ok = all(await ex.parallel(remade)) and ok

    bring: dict[str, list[BringUp]] = {}
    for a in plan.actions:
        if isinstance(a, (Create, Recreate, Start)):
            bring.setdefault(a.service, []).append(a)
    if not ok:
        why = "a network or volume could not be created"
        for actions in bring.values():
            for a in actions:
                ex.skip(a, why)
        bring = {}

    if desired is not None:
        touched = {a.container.id for acts in bring.values() for a in acts}
        touched |= {a.old_id for acts in bring.values() for a in acts
                    if not isinstance(a, Create)}
        await _adopt(desired, ports, supervisor, touched)
        ordered = [list(w) for w in waves] or [sorted(services)]
        for wave in ordered:
            async with trio.open_nursery() as nursery:
                for name in wave:
                    # A batch a dead daemon left to gate, even with nothing else to do.
                    cut_short = ex.result.rollouts.get(name, rolling.Rollout()).in_flight
                    if name in bring or cut_short:
                        nursery.start_soon(ex.service, name, bring.get(name, []),
                                           _ids_of(desired))

    last = [a for a in plan.actions if isinstance(a, (NetworkRemove, VolumeRemove))]
    await ex.parallel(last)
    for p in stale:
        ports.state.done(p.id)
    if desired is not None:
        # What the watchers saw (exits, health) is acted on here, under the same key.
        after = await repair(plan.project, ports, supervisor, busy=ex.repairing)
        waits = [w for w in (after, ex.rolling_wait) if w is not None]
        ex.result.requeue_after = min(waits) if waits else None
    # An update this pass found nothing left of (its slots changed meanwhile) is over.
    rolled = rolling.rolled(plan, services)
    for name, r in list(ex.result.rollouts.items()):
        if r.left and name not in rolled:
            ex.result.rollouts[name] = dataclasses.replace(r, left=0)
    return ex.result


def _ids_of(desired: DesiredState) -> Callable[[str], list[str]]:
    def ids(service: str) -> list[str]:
        return [c.id for c in desired.containers_of(service)]
    return ids


async def _adopt(desired: DesiredState, ports: Adapters, supervisor: Supervisor,
                 touched: set[str]) -> None:
    """Supervise the desired containers the plan leaves alone (found running or exited)."""
    views = await ports.runtime.list()
    found = {v.id: v for v in views if v.labels.get(hostnames.LABEL_PROJECT) == desired.project}
    held = set(ports.state.held(desired.project))
    for c in desired.containers:
        view = found.get(c.id)
        if c.id not in touched and view is not None and view.status != "created":
            code = view.exit.code if view.exit is not None else None
            supervisor.watch(c.id, c, desired.services[c.service],
                             running=view.status == "running", exit_code=code,
                             held=c.id in held, adopted=True)
