"""A user's lifecycle verb (`start`, `stop`, `restart`, `kill`, `rm`, and the hold
`up` clears) as carried out inside the stack's reconcile, which holds its key.

The CLI verbs are requests to the stack's controller, never side doors: the daemon
queues an `Ask`, enqueues the stack, and its reconcile calls `carry_out` before it
observes and plans. What a verb means is said here once:

- `stop` holds the containers (durable desired state: "stopped"); the plan then
  stops the running ones, dependents first, and never starts a held one again.
- `start SERVICE…` takes what the services depend on along, as Compose's.
- `start`, `restart` and `up` clear the holds of their services' containers (`up`
  also of those `rm` removed, which it makes again; `start` and `restart` act only on
  containers that exist, as Compose's); `start` starts their exited containers (a
  finished one-shot job too), `restart` also restarts the running ones — and, unless
  `--no-deps`, the running services that depend on them with `restart: true`
  (Compose's) —, `up` starts every exited one, a finished one-shot job too (Compose's
  `up`). `up_releases` says which holds `up` clears; `up --dry-run` asks the same.
- `create` (`stackd create`, `up --no-start`) holds the missing containers of its
  services before the plan makes them, and plans with `no_start`: they are created and
  stay created, through every later pass, until `start` or `up` clears the hold.
- `kill` signals the running containers; with SIGKILL (its default) or their stop
  signal it also holds them, as Docker's kill marks a container stopped by the user:
  no restart policy brings it back until `start` or `up`. After another signal
  (`-s HUP`, a reload) what follows an exit is the restart policy's.
- `rm` removes the stopped containers (with `force`, running ones too) and keeps
  them held, so the stack's next pass does not make them again until `up`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from stackd.errors import StackdError
from stackd.reconciler import lifecycle
from stackd.reconciler.actual import ActualContainer, ActualState, observe
from stackd.reconciler.desired import DesiredState
from stackd.reconciler.diff import PlanOptions, selected_services
from stackd.reconciler.ports import Adapters
from stackd.reconciler.supervisor import Supervisor

Verb = Literal["up", "create", "start", "stop", "restart", "kill", "rm"]


@dataclass(frozen=True, slots=True)
class Ask:
    verb: Verb
    # empty: every service (`up`, `create`: the apply's); `up` of a `run`'s
    # dependencies: those and what they depend on
    services: tuple[str, ...] = ()
    containers: tuple[str, ...] = ()  # only these (names or ids); empty: all of them
    signal: str = "SIGKILL"  # kill
    force: bool = False  # rm: running containers too
    timeout: float | None = None  # stop, restart: SIGKILL after this long (None: the spec's)
    volumes: bool = False  # rm -v: each removed container's anonymous volumes too
    no_deps: bool = False  # restart: not the dependents that say `restart: true`


@dataclass(frozen=True, slots=True)
class Done:
    """One container an ask acted on directly (kill, rm), for the caller's display."""

    container: ActualContainer
    verb: str
    error: StackdError | None = None


Report = Callable[[Done], None]


def _services(ask: Ask, desired: DesiredState, options: PlanOptions) -> frozenset[str]:
    if ask.verb in ("up", "create") and not ask.services:
        return selected_services(desired, options)
    if ask.verb in ("up", "start") and ask.services:
        # Compose's `start web` starts what web depends on too, first (`stop` and
        # `restart` act on the services named); so does the `up` of a `run`'s
        # dependencies.
        return selected_services(desired, PlanOptions(services=ask.services))
    return frozenset(ask.services or desired.services)


def _held_services(held_id: str, project: str, services: frozenset[str]) -> bool:
    m = re.match(rf"^{re.escape(project)}-(?P<service>.+)-\d+-[0-9a-f]{{8}}$", held_id)
    return m is not None and m["service"] in services


def up_releases(actual: ActualState, services: frozenset[str]) -> frozenset[str]:
    """Pure: the holds `up` of `services` clears — of their containers a user stopped
    or killed, and of those `rm` removed, which `up` makes again."""
    return frozenset(cid for cid in actual.held
                     if _held_services(cid, actual.project, services))


def up_options(options: PlanOptions, actual: ActualState, services: frozenset[str]
               ) -> PlanOptions:
    """Pure: how `up` plans once its holds are cleared: every exited container of its
    services is started, as Compose's `up` — a server a user stopped, and a one-shot
    job that finished (run again)."""
    exited = frozenset(c.id for c in actual.containers
                       if c.service in services and c.status == "exited")
    return dataclasses.replace(options, start=options.start | exited)


def up_view(desired: DesiredState, actual: ActualState, options: PlanOptions
            ) -> tuple[ActualState, PlanOptions]:
    """Pure: the host and options `up` would plan with, changing nothing (`up
    --dry-run`): `carry_out` of an `up` without its writes."""
    services = selected_services(desired, options)
    released = up_releases(actual, services)
    return (dataclasses.replace(actual, held=actual.held - released),
            up_options(options, actual, services))


async def carry_out(ask: Ask, desired: DesiredState, ports: Adapters, supervisor: Supervisor,
                    options: PlanOptions, report: Report | None = None) -> PlanOptions:
    """Do what `ask` does before planning; the plan options that do the rest."""
    project = desired.project
    services = _services(ask, desired, options)
    actual = await observe(project, ports)
    mine = [c for c in actual.containers if c.service in services
            and (not ask.containers or c.id in ask.containers or c.name in ask.containers)]
    if ask.verb == "create":
        # Held before they exist: a daemon killed between the create and the hold
        # would otherwise start them on its next pass.
        present = {c.id for c in actual.containers}
        for want in desired.containers:
            if want.service in services and want.id not in present:
                ports.state.hold(project, want.id)
        return dataclasses.replace(options, no_start=True)
    if ask.verb in ("up", "start", "restart"):
        ids = {c.id for c in mine}
        # `start` and `restart` act on containers that exist, as Compose's: one
        # removed by `rm` stays gone until `up` makes it again.
        released = up_releases(actual, services) if ask.verb == "up" else frozenset()
        for cid in actual.held:
            if cid in ids or cid in released:
                ports.state.unhold(cid)
        if ask.verb == "up":
            return up_options(options, actual, services)
        return dataclasses.replace(
            options, start=options.start | ids,
            restart=options.restart | (ids if ask.verb == "restart" else frozenset()),
            restart_dependents=ask.verb == "restart" and not ask.no_deps, grace=ask.timeout)
    if ask.verb == "stop":
        for c in mine:
            ports.state.hold(project, c.id)
        return dataclasses.replace(options, grace=ask.timeout)
    if ask.verb == "kill":
        stop_signals = {d.id: d.spec.stop_signal for d in desired.containers}
        for c in mine:
            if c.status == "running":
                if lifecycle.kill_stops(ask.signal, stop_signals.get(c.id, "SIGTERM")):
                    # Docker's kill: stopped by the user, so no restart policy brings
                    # it back (until `start`/`up`); another signal (`-s HUP`) is not.
                    ports.state.hold(project, c.id)
                async def kill(c: ActualContainer = c) -> None:
                    await ports.runtime.kill(c.id, ask.signal)
                await _act(c, "kill", report, kill)
        return options
    # rm -v: a slot's anonymous volumes (image VOLUMEs, `- /path`) go with its container,
    # as Compose's; named volumes stay. Without -v they are kept, set apart: the slot's
    # next container (`up`) starts with new ones, as Compose's new container does.
    anonymous = {(d.service, d.index): d.anonymous for d in desired.containers}
    named = {s: i for i, s in enumerate(ask.services)}  # the order asked (down: dependents first)
    for c in sorted(mine, key=lambda c: named.get(c.service, len(named))):  # rm
        if c.status != "running" or ask.force:
            async def remove(c: ActualContainer = c) -> None:
                await supervisor.release(c.id)
                await lifecycle.tear_down(ports, c.id)
                ports.state.hold(project, c.id)
                for volume in anonymous.get((c.service, c.index), ()):
                    if ask.volumes:
                        await ports.volumes.remove_volume(volume)
                    else:
                        await ports.volumes.detach(volume)
            await _act(c, "rm", report, remove)
    return options


async def _act(c: ActualContainer, verb: str, report: Report | None,
               effect: Callable[[], Awaitable[None]]) -> None:
    error: StackdError | None = None
    try:
        await effect()
    except StackdError as err:
        error = err
    if report is not None:
        report(Done(c, verb, error))
