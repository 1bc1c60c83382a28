"""The pure part of cluster placement: given the stacks, the usable nodes and where
slots are now, which assignments to write and which to delete.

A slot stays on its node while that node is up and active (nothing moves for no
reason); slots on a node that is down or drained, and new slots, are placed around
the kept ones with the scheduler. Slots no longer desired (scaled down) are deleted.
Stacks are placed one at a time in project order, each seeing what the others hold
on every node, so the cluster as a whole is spread (or packed), not each stack alone.

Volumes: a service mounting a named volume that is not declared shared runs on the
node holding that volume's data, as Swarm does with local volumes. Services joined by
such volumes form a group placed on one node. The first placement chooses the node
(the one the group already runs on, else the next by the strategy over what the
cluster holds) and records it (`Change.volumes` → `volumes/<project>/<volume>`); later
placements keep the group there. A group whose node is down or drained stays
unplaced, with a reason saying so, rather than moving away from its data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from stackd.cluster.records import StackRecord
from stackd.errors import StackdError
from stackd.scheduler import Node, Resources, place
from stackd.scheduler.constraints import parse_constraint


@dataclass(frozen=True, slots=True)
class Change:
    put: dict[str, str]  # slot name (<service>-<index>) → node
    delete: tuple[str, ...]
    # volume → node: first placements of node-local volumes, to record (create-only)
    volumes: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.put or self.delete or self.volumes)


def plan(stack: StackRecord, usable: Sequence[Node], current: Mapping[str, str],
         reserved: Mapping[str, tuple[Resources, int]] | None = None,
         pins: Mapping[str, str] | None = None) -> Change:
    """What to write so that every slot of `stack` has a usable node. `reserved`: what
    other stacks hold per node; `pins`: service → the one node its slots may run on
    (a slot elsewhere moves there). Raises the scheduler's UnschedulableError when the
    usable nodes cannot hold it."""
    pins = pins or {}
    desired = pinned(stack, pins).slots()
    names = {n.name for n in usable}
    by_name = {str(s): s for s in desired}
    kept = {s: node for s in desired if (node := current.get(str(s))) in names
            and pins.get(s.service, node) == node}
    placed = place(desired, usable, stack.strategy, kept=kept, reserved=reserved).assignments
    return Change(put={str(s): n for s, n in placed.items() if current.get(str(s)) != n},
                  delete=tuple(sorted(k for k in current if k not in by_name)))


def per_node(stack: StackRecord, usable: Sequence[Node]) -> StackRecord:
    """`stack` with each global service's replicas counted: one on every usable node its
    constraints allow (Swarm's global mode; a node drained or down runs none)."""
    if all(s.mode != "global" for s in stack.services):
        return stack
    out = []
    for s in stack.services:
        if s.mode == "global":
            rules = [parse_constraint(c, service=s.name) for c in s.constraints]
            count = sum(all(r.matches(n) for r in rules) for n in usable)
            s = dataclasses.replace(s, replicas=count, max_per_node=1)
        out.append(s)
    return dataclasses.replace(stack, services=tuple(out))


def pinned(stack: StackRecord, pins: Mapping[str, str]) -> StackRecord:
    """`stack` with each pinned service constrained to its node (the scheduler's own
    `node.hostname ==` constraint, so its refusals name the pin)."""
    if not pins:
        return stack
    return dataclasses.replace(stack, services=tuple(
        dataclasses.replace(s, constraints=(*s.constraints, f"node.hostname == {pins[s.name]}"))
        if s.name in pins else s for s in stack.services))


def volume_groups(stack: StackRecord) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """The services joined by node-local volumes (two services mounting one volume
    run on one node): (services, volumes) per group, sorted."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for svc in stack.services:
        for vol in svc.volumes:
            parent[root("s:" + svc.name)] = root("v:" + vol)
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for item in sorted(parent):
        services, volumes = groups.setdefault(root(item), ([], []))
        (services if item.startswith("s:") else volumes).append(item[2:])
    return sorted((tuple(s), tuple(v)) for s, v in groups.values())


def pins_of(stack: StackRecord, recorded: Mapping[str, str]
            ) -> list[tuple[str, str, str]]:
    """(service, node, volume) for each service pinned by a recorded volume: what
    `stackd plan` says ("web pinned to node B by volume data")."""
    out = []
    for svc in stack.services:
        held = [(recorded[v], v) for v in svc.volumes if v in recorded]
        if held:
            node, vol = min(held)
            out.append((svc.name, node, vol))
    return out


class _Held:
    """Per node: the summed needs and number of slots placed there."""

    def __init__(self) -> None:
        self.by_node: dict[str, list[float]] = {}

    def add(self, node: str, needs: Resources, sign: int = 1) -> None:
        row = self.by_node.setdefault(node, [0.0, 0.0, 0.0, 0.0])
        row[0] += sign * (needs.cpus or 0)
        row[1] += sign * (needs.memory or 0)
        row[2] += sign * (needs.pids or 0)
        row[3] += sign

    def minus(self, own: _Held) -> dict[str, tuple[Resources, int]]:
        out = {}
        for node, row in self.by_node.items():
            mine = own.by_node.get(node, [0.0, 0.0, 0.0, 0.0])
            out[node] = (Resources(cpus=row[0] - mine[0], memory=int(row[1] - mine[1]),
                                   pids=int(row[2] - mine[2])), int(row[3] - mine[3]))
        return out


class _Unplaceable(Exception):
    def __init__(self, why: str) -> None:
        self.why = why


def _pins(stack: StackRecord, usable: Sequence[Node], now: Mapping[str, str],
          recorded: Mapping[str, str], reserved: Mapping[str, tuple[Resources, int]],
          held: Mapping[str, int]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(service → node, volume → node to record, stranded service → why) for the
    stack's volume groups: a stranded service's node is down or drained, so it is
    neither moved nor placed. Raises _Unplaceable when a group cannot be placed."""
    names = {n.name for n in usable}
    groups = volume_groups(stack)
    if not groups:
        return {}, {}, {}
    slotted = {svc.name for svc in stack.services if svc.replicas > 0}
    pins: dict[str, str] = {}
    record: dict[str, str] = {}
    stranded: dict[str, str] = {}
    open_groups = []
    for services, vols in groups:
        at = sorted({(recorded[v], v) for v in vols if v in recorded})
        if len({node for node, _ in at}) > 1:
            held_by = ", ".join(f"{v} on {node}" for node, v in at)
            raise _Unplaceable(
                f"services {', '.join(services)} share node-local volumes held on "
                f"different nodes ({held_by}); declare them shared (x-stackd: "
                "{shared: true}) or remove the extra volume records")
        if not slotted & set(services):
            continue  # scaled to 0: nothing to run, nothing to record yet
        if not at:
            open_groups.append((services, vols))
            continue
        node, vol = at[0]
        if node not in names:
            stranded.update(dict.fromkeys(services, (
                f"service {services[0]!r} is pinned to node {node!r} by volume {vol!r}, "
                f"and {node} is down or drained; it stays unplaced until {node} is back "
                "(or declare the volume shared: x-stackd: {shared: true})")))
            continue
        pins.update(dict.fromkeys(services, node))
        record.update({v: node for v in vols if v not in recorded})
    if stranded and open_groups:  # try the open groups without what cannot be placed
        stack = dataclasses.replace(stack, services=tuple(
            s for s in stack.services if s.name not in stranded))
    for services, vols in open_groups:
        # Where the group runs now, if on one usable node (a stack placed before its
        # volumes were recorded stays put); else the strategy's next node.
        here = {now[str(s)] for s in stack.slots() if s.service in services and str(s) in now}
        sign = 1 if stack.strategy == "spread" else -1
        order = sorted(names, key=lambda n: (here != {n}, sign * held.get(n, 0), n))
        first: StackdError | None = None
        for node in order:
            try:
                plan(stack, usable, now, reserved, {**pins, **dict.fromkeys(services, node)})
            except StackdError as e:
                first = first or e
                continue
            pins.update(dict.fromkeys(services, node))
            record.update(dict.fromkeys(vols, node))
            break
        else:
            why = first.message if first else "no node is up and active"
            raise _Unplaceable(f"services {', '.join(services)} share volumes "
                               f"{', '.join(vols)}, so run on one node, and none can hold "
                               f"them: {why}")
    return pins, record, stranded


def plan_all(stacks: Sequence[StackRecord], usable: Sequence[Node],
             current: Mapping[str, Mapping[str, str]],
             volumes: Mapping[str, Mapping[str, str]] | None = None,
             ) -> tuple[dict[str, Change], dict[str, str]]:
    """Every stack's change, and the stacks that cannot be placed now (project → why).
    `current` maps project → slot name → node; `volumes` project → volume → the node
    recorded as holding it."""
    volumes = volumes or {}
    stacks = [per_node(s, usable) for s in stacks]
    names = {n.name for n in usable}
    needs = {s.project: {str(slot): slot.needs for slot in s.slots()} for s in stacks}
    total, own = _Held(), {s.project: _Held() for s in stacks}
    for s in stacks:
        for slot, node in current.get(s.project, {}).items():
            if node in names and slot in needs[s.project]:
                total.add(node, needs[s.project][slot])
                own[s.project].add(node, needs[s.project][slot])
    changes: dict[str, Change] = {}
    refused: dict[str, str] = {}
    for s in sorted(stacks, key=lambda s: s.project):
        now = current.get(s.project, {})
        reserved = total.minus(own[s.project])
        try:
            pins, record, stranded = _pins(
                s, usable, now, volumes.get(s.project, {}), reserved,
                {n: int(row[3]) for n, row in total.by_node.items()})
        except _Unplaceable as e:
            refused[s.project] = e.why
            continue
        if stranded:
            # Its slots stay assigned where its data is; the rest is placed as usual.
            refused[s.project] = "; ".join(sorted(set(stranded.values())))
            s = dataclasses.replace(s, services=tuple(x for x in s.services
                                                      if x.name not in stranded))
            now = {k: n for k, n in now.items() if k.rpartition("-")[0] not in stranded}
        wanted = needs[s.project].keys() if not stranded else {str(x) for x in s.slots()}
        if now.keys() == wanted and not record and all(
                n in names and pins.get(slot.rpartition("-")[0], n) == n
                for slot, n in now.items()):
            continue  # every slot placed, on a usable node, where its data is
        try:
            change = plan(s, usable, now, reserved, pins)
        except StackdError as e:
            refused[s.project] = e.message
            continue
        change.volumes.update(record)
        for slot, node in change.put.items():
            old = now.get(slot)
            if old in names:
                total.add(old, needs[s.project][slot], -1)
            total.add(node, needs[s.project][slot])
        if change:
            changes[s.project] = change
    return changes, refused
