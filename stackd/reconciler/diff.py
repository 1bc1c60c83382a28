"""diff: (desired, actual) → Plan. Pure, synchronous, sorted; no I/O and no clock.

Rules, in the order a reader would ask about them:

- A network missing from the host is created; one whose recorded hash
  (`netbridge.model.network_hash`: subnet, gateway, internal, labels, driver options…)
  differs from the file's is recreated, and every container attached to it is
  removed before and created after ("network demo_default recreated").
- A slot with no container is created ("new service", "scale 1 → 3", "missing").
- A slot whose container carries another config hash is recreated, and the cause
  names the fields that changed (`environment changed: LOG_LEVEL`). Other services'
  containers, and other slots of the same service, are left alone.
- A container a user stopped is held (StatePort holds): stopped if it runs, never
  started, recreated or restarted, until `up` or `start` clears the hold.
- `no_start` (`stackd create`): a slot with no container is created and not started;
  the ask held its id first, so it stays created until `start` or `up` clears that.
- A container that was created but never started is started. An exited one is
  started again only when it is in `start` (`start`, `restart`, and an explicit
  `up`: every exited one of its services, a one-shot job that finished too, as
  Compose's `up` runs `migrate` again — asks.py); restarting crashed containers under
  the restart policy is `repair`'s job, so the plan never fights it.
- A running, current container in `restart` is restarted (`restart`).
- A running, current container is restarted when a service it declares
  `depends_on: {x: {restart: true}}` on is recreated (or itself restarted, or
  restarted by the user's `restart` without --no-deps), as Compose does after
  updating or restarting a dependency.
- Slots past the service's scale are removed, highest index first.
- Containers of services no longer in the file are orphans: warned about, removed
  only with `remove_orphans` — unless an interrupted apply created them, in which
  case the unfinished create is undone.
- An interrupted remove (intent written, never finished) is finished.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from stackd.netbridge.model import network_hash
from stackd.reconciler.actual import ActualContainer, ActualState
from stackd.reconciler.desired import DesiredContainer, DesiredState
from stackd.reconciler.plan import (
    Action,
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
    makes_container,
)
from stackd.scheduler import with_dependencies

# How a plan names a hashed field (hash.hashed_document's keys); others print as they are.
FIELD_WORDS = {
    "process.args": "command",
    "process.env": "environment",
    "process.cwd": "working directory",
    "process.user": "user",
    "process.additional_groups": "group_add",
    "process.terminal": "tty",
    "process.stdin_open": "stdin_open",
    "process.rlimits": "ulimits",
    "process.init": "init",
    "files": "configs/secrets",
    "readonly_rootfs": "read_only",
}


@dataclass(frozen=True, slots=True)
class PlanOptions:
    services: tuple[str, ...] = ()  # only these (plus their dependencies unless no_deps)
    no_deps: bool = False
    remove_orphans: bool = False
    # --force-recreate: the services named (all when none is), as Compose; what they
    # depend on is recreated only if changed, or with recreate_deps
    # (--always-recreate-deps) too.
    force_recreate: bool = False
    recreate_deps: bool = False
    no_recreate: bool = False
    start: frozenset[str] = frozenset()  # container ids to start if exited (`start`)
    restart: frozenset[str] = frozenset()  # container ids to restart if running (`restart`)
    # `restart` (not --no-deps): those restarts also restart the running services that
    # depend on theirs with `restart: true`, as a recreate does.
    restart_dependents: bool = False
    # stop, restart, up `-t`: SIGKILL after this long (None: the spec's), for every
    # container the plan stops, replaces or removes
    grace: float | None = None
    no_start: bool = False  # `create`: missing containers are created, held, not started
    # `up -V`: each container the plan creates or recreates gets new anonymous volumes
    # instead of its predecessor's.
    renew_anon_volumes: bool = False
    # Services in the files that their profiles left out: their containers are kept
    # as they are, never orphans (not even for remove_orphans).
    disabled: frozenset[str] = frozenset()


def selected_services(desired: DesiredState, options: PlanOptions) -> frozenset[str]:
    """`up web`: web and what it needs, unless no_deps (the scheduler's rule)."""
    if not options.services:
        return frozenset(desired.services)
    if options.no_deps:
        return frozenset(s for s in options.services if s in desired.services)
    needs = {name: (*s.needs, *(d.service for d in s.depends_on))
             for name, s in desired.services.items()}
    return with_dependencies(needs, options.services)


def _targeted(options: PlanOptions, service: str) -> bool:
    """Named on the command line (every service is when none is), not only needed."""
    return not options.services or service in options.services


def _forced(options: PlanOptions, service: str) -> bool:
    if _targeted(options, service):
        return options.force_recreate
    return options.recreate_deps


def describe_changes(want: DesiredContainer, have: ActualContainer) -> str:
    if not have.fields:
        return "config hash changed"
    parts: list[str] = []
    for name in want.config_hash.changed_fields(have.fields):
        word = FIELD_WORDS.get(name, name)
        if name == "process.env" and have.env is not None:
            new, old = want.env, have.env
            keys = sorted(k for k in set(new) | set(old) if new.get(k) != old.get(k))
            parts.append(f"{word} changed: {', '.join(keys)}" if keys else f"{word} changed")
        else:
            parts.append(f"{word} changed")
    return "; ".join(parts) or "config hash changed"


def _pick(found: list[ActualContainer], want: DesiredContainer
          ) -> tuple[ActualContainer | None, list[ActualContainer]]:
    """The container to keep for a slot, and the duplicates to remove."""
    if not found:
        return None, []

    def rank(c: ActualContainer) -> tuple[int, int, str]:
        return (c.config_hash != want.config_hash.digest, c.status != "running", c.id)

    ordered = sorted(found, key=rank)
    return ordered[0], ordered[1:]


def _held_stop(keep: ActualContainer, options: PlanOptions) -> Stop:
    return Stop(cause="held: stopped by the user", container_id=keep.id,
                service=keep.service, index=keep.index, grace=options.grace)


def plan(desired: DesiredState, actual: ActualState, options: PlanOptions = PlanOptions()
         ) -> Plan:
    if actual.project != desired.project:
        raise ValueError(f"diff of {desired.project!r} against {actual.project!r}")
    actions: list[Action] = []
    warnings: list[str] = []
    selected = selected_services(desired, options)

    remade: set[str] = set()  # networks made again: their containers go and come back
    for key in sorted(desired.networks):
        net = desired.networks[key]
        if net.external:
            continue
        if key not in actual.networks:
            actions.append(NetworkCreate(cause="declared in the stack", spec=net))
        elif actual.network_hashes.get(key) not in (None, "", network_hash(net)):
            actions.append(NetworkRecreate(cause="its configuration changed", spec=net))
            remade.add(key)
    # A container `rm` removed stays gone until `up`; so do its volumes (`rm -v`).
    slots = {(c.service, c.index) for c in actual.containers}
    mounted = {v for w in desired.containers
               if w.id not in actual.held or (w.service, w.index) in slots
               for v in w.volumes}
    anonymous = {v for w in desired.containers for v in w.anonymous}
    for name in desired.volumes:
        if name not in actual.volumes and name in mounted:
            actions.append(VolumeCreate(cause="declared in the stack", name=name,
                                        anonymous=name in anonymous))

    by_slot: dict[tuple[str, int], list[ActualContainer]] = defaultdict(list)
    for c in actual.containers:
        by_slot[(c.service, c.index)].append(c)
    have_count = {s: len({i for (svc, i) in by_slot if svc == s}) for s in desired.services}
    pending_removes = {p.container_id for p in actual.pending if p.verb in ("remove", "recreate")}
    pending_creates = {p.container_id for p in actual.pending if p.verb == "create"}

    removals: list[Action] = []
    current: list[tuple[DesiredContainer, ActualContainer]] = []  # running, no action
    # Running containers of services not selected: still restarted when a dependency
    # with `restart: true` is made again (Compose's rule; a service in another's
    # network namespace has that dependency implied).
    bystanders: list[tuple[DesiredContainer, ActualContainer]] = []
    # `start`/`restart` of containers outside the last `up`'s services (`up -d web`,
    # then `start db`): theirs are acted on all the same.
    asked = options.start | options.restart
    for want in desired.containers:
        on_remade = sorted({a.network_key for a in want.attachments} & remade)
        keep, extras = _pick(by_slot.pop((want.service, want.index), []), want)
        chosen = want.service in selected or (keep is not None and keep.id in asked)
        held = keep is not None and keep.id in actual.held
        if not chosen and not on_remade:
            if held and keep is not None and keep.status == "running":
                # Held (`stop`) is the user's word on the container, whatever the last
                # `up` named: it was left running when its service was not among them.
                removals.append(_held_stop(keep, options))
            elif not held and keep is not None and keep.status == "running" \
                    and keep.config_hash == want.config_hash.digest:
                bystanders.append((want, keep))
            continue
        removals.extend(Remove(cause=f"duplicate of {want.slot}", container_id=e.id,
                               service=e.service, index=e.index) for e in extras)
        if keep is None and want.id in actual.held and not options.no_start:
            continue  # removed by `rm`: stays gone until `up`
        if held and keep is not None:
            if keep.status == "running":
                removals.append(_held_stop(keep, options))
            continue
        if on_remade and keep is not None:
            # A container's interfaces hang off the old bridge: it goes before the
            # network is made again and is created on the new one.
            why = f"network {on_remade[0]} recreated"
            removals.append(Remove(cause=why, container_id=keep.id, service=keep.service,
                                   index=keep.index))
            actions.append(Create(cause=why, container=want))
            continue
        if not chosen:
            continue
        scale = desired.services[want.service].scale
        if keep is None:
            count = have_count.get(want.service, 0)
            if count == 0:
                cause = "new service"
            elif want.index > count:
                cause = f"scale {count} → {scale}"
            else:
                cause = "missing"
            if options.no_start:
                cause = f"{cause}; not started (create)"
            actions.append(Create(cause=cause, container=want, start=not options.no_start))
        elif _forced(options, want.service):
            flag = ("--force-recreate" if _targeted(options, want.service)
                    else "--always-recreate-deps")
            actions.append(Recreate(cause=f"forced ({flag})", container=want,
                                    old_id=keep.id))
        elif keep.config_hash != want.config_hash.digest and not options.no_recreate:
            actions.append(Recreate(cause=describe_changes(want, keep), container=want,
                                    old_id=keep.id))
        elif keep.status == "created":
            actions.append(Start(cause="created, never started", container=want,
                                 old_id=keep.id))
        elif keep.status == "exited" and keep.id in options.start:
            actions.append(Start(cause=f"exited (code {keep.exit_code})", container=want,
                                 old_id=keep.id))
        elif keep.status == "running" and keep.id in options.restart:
            actions.append(Restart(cause="restart requested", container=want, old_id=keep.id,
                                   grace=options.grace))
        elif keep.status == "running" and keep.config_hash == want.config_hash.digest:
            current.append((want, keep))
    actions.extend(_dependency_restarts(desired, actions, current + bystanders,
                                        options.restart_dependents))

    for (service, _index), found in sorted(by_slot.items(), key=_highest_first):
        for c in found:
            if service in desired.services:
                if service not in selected:
                    continue
                scale = desired.services[service].scale
                cause = f"scale {have_count[service]} → {scale}"
                # The slot ends: a later scale up makes a new container, with new
                # anonymous volumes (as Compose's); these are kept, set apart.
                removals.append(Remove(cause=cause, container_id=c.id, service=c.service,
                                       index=c.index, detach=c.anonymous))
            elif (service in options.disabled or service in desired.left_alone) \
                    and c.id not in pending_creates and c.id not in pending_removes:
                continue  # in the file, only left out (by its profiles): no orphan
            elif options.remove_orphans:
                removals.append(Remove(cause=f"orphan: service {service} is not in the stack",
                                       container_id=c.id, service=c.service, index=c.index,
                                       detach=c.anonymous))
            elif c.id in pending_creates:
                removals.append(Remove(cause="undoing an interrupted create", container_id=c.id,
                                       service=c.service, index=c.index))
            elif c.id in pending_removes:
                # What it was (a down, rm -v, an orphan's removal) is not recorded:
                # setting its anonymous volumes apart keeps their data, prunable.
                removals.append(Remove(cause="finishing an interrupted remove",
                                       container_id=c.id, service=c.service, index=c.index,
                                       detach=c.anonymous))
            else:
                warnings.append(f"orphan container {c.name} (service {service} is not in the "
                                "stack); run with --remove-orphans to remove it")
    # An interrupted create may have left a network namespace and no container: tear
    # down what there is, unless the same container is still wanted.
    present = {c.id for c in actual.containers} | {c.id for c in desired.containers}
    for p in actual.pending:
        if p.verb == "create" and p.container_id and p.container_id not in present:
            service, _, index = p.resource.rpartition("-")
            removals.append(Remove(cause="undoing an interrupted create",
                                   container_id=p.container_id, service=service,
                                   index=int(index) if index.isdigit() else 0))
    actions.extend(removals)

    if options.remove_orphans:
        for key in sorted(actual.networks - set(desired.networks)):
            actions.append(NetworkRemove(cause="no longer declared", key=key))
    if options.grace is not None:
        actions = [_with_grace(a, options.grace) for a in actions]
    if options.renew_anon_volumes:
        actions = [_renewing(a) for a in actions]
    return Plan(desired.project, tuple(actions), tuple(warnings))


def _renewing(action: Action) -> Action:
    """A create or recreate (not a restart: the same container goes on) that makes the
    container's anonymous volumes afresh."""
    if makes_container(action) and action.container.anonymous:
        return dataclasses.replace(action, renew=action.container.anonymous,
                                   cause=f"{action.cause}; new anonymous volumes (-V)")
    return action


def _with_grace(action: Action, grace: float) -> Action:
    """The action, stopping what it stops with `grace` unless it has its own."""
    if isinstance(action, (Recreate, Remove, Stop)) and action.grace is None:
        return dataclasses.replace(action, grace=grace)
    return action


def _dependency_restarts(desired: DesiredState, actions: list[Action],
                         current: list[tuple[DesiredContainer, ActualContainer]],
                         asked: bool = False) -> list[Restart]:
    """Restarts of running containers whose `restart: true` dependency is recreated (or,
    `asked`, restarted by the user); a restarted service counts as recreated for its
    own dependents."""
    recreated = {a.service for a in actions
                 if isinstance(a, Recreate) and not isinstance(a, Restart)}
    changed = recreated | ({a.service for a in actions if isinstance(a, Restart)}
                           if asked else set())
    running = {want.service for want, _ in current}
    why: dict[str, str] = {}
    grew = True
    while grew:
        grew = False
        for name, svc in sorted(desired.services.items()):
            if name in changed or name in why or name not in running:
                continue
            trigger = next((d.service for d in svc.depends_on
                            if d.restart and (d.service in changed or d.service in why)), None)
            if trigger is not None:
                verb = "recreated" if trigger in recreated else "restarted"
                why[name] = f"{trigger} {verb} (depends_on restart: true)"
                grew = True
    return [Restart(cause=why[want.service], container=want, old_id=keep.id)
            for want, keep in current if want.service in why]


def _highest_first(item: tuple[tuple[str, int], list[ActualContainer]]) -> tuple[str, int]:
    (service, index), _ = item
    return (service, -index)


def plan_down(actual: ActualState, *, stop_order: Iterable[str] = (),
              remove_volumes: bool = False, grace: float | None = None) -> Plan:
    """`down`: every container of the project, then its networks (and volumes with -v).

    `stop_order` lists services dependents-first (the scheduler's stop waves); others go
    first, as orphans would.
    """
    order = {s: i for i, s in enumerate(stop_order)}
    containers = sorted(actual.containers,
                        key=lambda c: (order.get(c.service, -1), c.service, -c.index, c.id))
    actions: list[Action] = [Remove(cause="down", container_id=c.id, service=c.service,
                                    index=c.index, grace=grace,
                                    detach=() if remove_volumes else c.anonymous)
                             for c in containers]
    actions.extend(NetworkRemove(cause="down", key=k) for k in sorted(actual.networks))
    if remove_volumes:
        actions.extend(VolumeRemove(cause="down -v", name=v) for v in sorted(actual.volumes))
    return Plan(actual.project, tuple(actions))
