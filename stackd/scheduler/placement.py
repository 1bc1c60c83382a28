"""Placing replica slots onto nodes by resources and constraints.

Each slot needs its reservations (falling back to limits) free on a node whose labels
satisfy its constraints, and on which fewer than its service's max_replicas_per_node
already run. Two strategies:

- spread:  the node holding the fewest slots of this service, then the least loaded,
           then the one holding the fewest slots of any service;
- binpack: the most loaded node that still fits.

Spread preferences (`spread: node.labels.zone`) come before either: the slot goes to
the group of nodes (by that label's value; nodes without it are one group) holding
the fewest of the service's slots, as Swarm's do.

"Load" is a node's dominant share: the largest of reserved/capacity over CPUs, memory
and pids. Ties go to the node name, so the same input always gives the same placement.

Services are placed one at a time, the one whose replicas are largest first (as in
first-fit decreasing, which leaves fewer gaps), and each service's slots in index
order. Placement is greedy: it refuses a stack only when no node has room for a slot
at that point. `kept` slots (cluster mode: those already running on a node that is
still up) stay where they are: their reservations and per-service counts are taken
first, and only the other slots are placed around them. `reserved` is what other
stacks' slots already hold on each node (their summed needs and their number), so
placing one stack at a time still spreads the cluster as a whole.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from stackd.errors import UsageError
from stackd.scheduler.constraints import Constraint, spread_value
from stackd.scheduler.errors import UnschedulableError
from stackd.scheduler.nodes import Node
from stackd.scheduler.services import Resources
from stackd.scheduler.slots import Slot

Strategy = Literal["spread", "binpack"]
STRATEGIES: tuple[Strategy, ...] = ("spread", "binpack")

# CPUs are counted in thousandths so sums never drift the way floats do.
_MILLI = 1000


@dataclass(frozen=True, slots=True)
class _Amount:
    cpu: int  # thousandths of a CPU
    memory: int
    pids: int

    @classmethod
    def of(cls, r: Resources) -> _Amount:
        return cls(round((r.cpus or 0) * _MILLI), r.memory or 0, r.pids or 0)

    def __add__(self, other: _Amount) -> _Amount:
        return _Amount(self.cpu + other.cpu, self.memory + other.memory,
                       self.pids + other.pids)

    def fits_in(self, room: _Amount) -> bool:
        return self.cpu <= room.cpu and self.memory <= room.memory and self.pids <= room.pids


# service, what one replica needs, its constraints, its max replicas per node
_GroupKey = tuple[str, _Amount, tuple[Constraint, ...], int | None, tuple[str, ...]]


class _Bin:
    """A node's capacity and what has been reserved on it so far."""

    __slots__ = ("cap", "held", "load", "name", "node", "used_cpu", "used_memory",
                 "used_pids")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.name = node.name
        self.cap = _Amount.of(Resources(node.cpus, node.memory, node.pids))
        self.used_cpu = self.used_memory = self.used_pids = 0
        self.held = 0  # slots of any service
        # Kept up to date by take(): ranking reads it for every node of every service.
        self.load = 0.0

    def fits(self, need: _Amount) -> bool:
        return (self.used_cpu + need.cpu <= self.cap.cpu
                and self.used_memory + need.memory <= self.cap.memory
                and self.used_pids + need.pids <= self.cap.pids)

    def take(self, need: _Amount, slots: int = 1) -> None:
        self.held += slots
        self.used_cpu += need.cpu
        self.used_memory += need.memory
        self.used_pids += need.pids
        share = 0.0
        for used, cap in ((self.used_cpu, self.cap.cpu), (self.used_memory, self.cap.memory),
                          (self.used_pids, self.cap.pids)):
            if cap > 0:
                share = max(share, used / cap)
        self.load = share

    def free(self) -> _Amount:
        return _Amount(self.cap.cpu - self.used_cpu, self.cap.memory - self.used_memory,
                       self.cap.pids - self.used_pids)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where each slot runs. `assignments` maps slot → node name in slot order."""

    assignments: dict[Slot, str]
    nodes: tuple[Node, ...]

    def node_of(self, slot: Slot) -> str:
        return self.assignments[slot]

    def slots_on(self, node: str) -> list[Slot]:
        return [s for s, n in self.assignments.items() if n == node]

    def reserved_on(self, node: str) -> Resources:
        """The sum of what the slots placed on `node` need."""
        total = _Amount(0, 0, 0)
        for slot in self.slots_on(node):
            total = total + _Amount.of(slot.needs)
        return Resources(total.cpu / _MILLI, total.memory, total.pids)


def place(slots: Iterable[Slot], nodes: Sequence[Node], strategy: Strategy = "spread",
          kept: Mapping[Slot, str] | None = None,
          reserved: Mapping[str, tuple[Resources, int]] | None = None) -> Placement:
    """Assign every slot to a node, or raise UnschedulableError naming the service and the
    numbers. Deterministic for the same slots, nodes, strategy and `kept`.

    `kept` maps slots already placed to their node (which must be among `nodes`); they
    keep it, and count against its room and its max_replicas_per_node. `reserved`
    maps a node name to what other slots hold there: (their summed needs, their
    number); nodes not given are skipped."""
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown placement strategy {strategy!r}",
                         hint=f"use one of {', '.join(STRATEGIES)}")
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise UsageError(f"node names must be unique, got {', '.join(sorted(names))}")
    kept = kept or {}
    slot_list = sorted(s for s in slots if s not in kept)
    bins = [_Bin(n) for n in sorted(nodes, key=lambda n: n.name)]
    by_name = {b.name: b for b in bins}
    for name, (needs, count) in (reserved or {}).items():
        if name in by_name:
            by_name[name].take(_Amount.of(needs), count)
    kept_count: dict[tuple[str, str], int] = {}
    for slot, node in kept.items():
        if node not in by_name:
            raise UsageError(f"slot {slot} is kept on node {node!r}, which is not given")
        by_name[node].take(_Amount.of(slot.needs))
        kept_count[slot.service, node] = kept_count.get((slot.service, node), 0) + 1

    # Slots of one service share needs, constraints and per-node cap (slots() makes
    # them so), but a caller may build its own; group by all so every group is uniform.
    groups: dict[_GroupKey, list[Slot]] = {}
    for slot in slot_list:
        key = (slot.service, _Amount.of(slot.needs), slot.constraints, slot.max_per_node,
               slot.spread)
        groups.setdefault(key, []).append(slot)

    total_cap = _Amount(sum(b.cap.cpu for b in bins), sum(b.cap.memory for b in bins),
                        sum(b.cap.pids for b in bins))

    def demand(key: _GroupKey) -> tuple[float, str]:
        service, need, _, _, _ = key
        share = max((part / cap for part, cap in ((need.cpu, total_cap.cpu),
                                                  (need.memory, total_cap.memory),
                                                  (need.pids, total_cap.pids)) if cap > 0),
                    default=0.0)
        return (-share, service)

    chosen: dict[Slot, str] = {}
    eligible_for: dict[tuple[Constraint, ...], list[_Bin]] = {}
    for key in sorted(groups, key=demand):
        service, need, constraints, per_node, spread = key
        group = groups[key]
        eligible = eligible_for.get(constraints)
        if eligible is None:
            eligible = [b for b in bins if all(c.matches(b.node) for c in constraints)]
            eligible_for[constraints] = eligible
        if not eligible:
            raise _no_node_matches(service, constraints, bins)
        if not any(need.fits_in(b.cap) for b in eligible):
            raise _too_big(service, need, eligible)
        counts = [kept_count.get((service, b.name), 0) for b in eligible]
        if per_node is not None and per_node * len(eligible) < len(group) + sum(counts):
            raise _capped(service, len(group) + sum(counts), per_node, eligible)
        if spread:
            left = _place_spread(group, eligible, counts, spread, strategy, need, per_node,
                                 chosen)
            if left is not None:
                raise _overcommitted(left, len(group), need, eligible, slot_list, total_cap)
            continue
        heap = [(_rank(strategy, b, counts[i]), i) for i, b in enumerate(eligible)
                if per_node is None or counts[i] < per_node]
        heapq.heapify(heap)
        for slot in group:
            while heap:
                _, i = heap[0]
                b = eligible[i]
                if b.fits(need):
                    break
                # Nodes only fill up while this service is placed: a node too full for
                # this slot is too full for the rest of the group.
                heapq.heappop(heap)
            else:
                raise _overcommitted(slot, len(group), need, eligible, slot_list, total_cap)
            b.take(need)
            chosen[slot] = b.name
            counts[i] += 1
            if counts[i] == per_node:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (_rank(strategy, b, counts[i]), i))

    chosen.update(kept)
    return Placement(assignments={s: chosen[s] for s in sorted(chosen)},
                     nodes=tuple(sorted(nodes, key=lambda n: n.name)))


def _place_spread(group: list[Slot], eligible: list[_Bin], counts: list[int],
                  spread: tuple[str, ...], strategy: Strategy, need: _Amount,
                  per_node: int | None, chosen: dict[Slot, str]) -> Slot | None:
    """Swarm's spread preferences: each slot goes to the group (nodes sharing the first
    label's value, then the second's within it, …) holding the fewest of the service's
    slots, and within it by the strategy. `counts` starts with the kept slots. Returns
    the first slot no node has room for, or None when all are placed."""
    paths = [tuple(spread_value(b.node, label) for label in spread) for b in eligible]
    in_group: Counter[tuple[str | None, ...]] = Counter()
    for path, count in zip(paths, counts, strict=True):
        for depth in range(1, len(spread) + 1):
            in_group[path[:depth]] += count
    for slot in group:
        open_ = [i for i, b in enumerate(eligible)
                 if (per_node is None or counts[i] < per_node) and b.fits(need)]
        if not open_:
            return slot
        i = min(open_, key=lambda i: (
            tuple(in_group[paths[i][:depth]] for depth in range(1, len(spread) + 1)),
            _rank(strategy, eligible[i], counts[i]), i))
        eligible[i].take(need)
        chosen[slot] = eligible[i].name
        counts[i] += 1
        for depth in range(1, len(spread) + 1):
            in_group[paths[i][:depth]] += 1
    return None


def _rank(strategy: Strategy, b: _Bin, count: int) -> tuple[int | float | str, ...]:
    # Smallest rank wins. `eligible` is in name order, so the heap's second field (the
    # index) breaks remaining ties by name.
    if strategy == "spread":
        return (count, b.load, b.held)
    return (-b.load,)


def _cpus(milli: int) -> str:
    return f"{milli / _MILLI:g} CPU" + ("" if milli == _MILLI else "s")


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} B"


def _amount(a: _Amount) -> str:
    return f"{_cpus(a.cpu)}, {_bytes(a.memory)} memory, {a.pids} pids"


def _no_node_matches(service: str, constraints: tuple[Constraint, ...],
                     bins: list[_Bin]) -> UnschedulableError:
    def labels(b: _Bin) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(b.node.labels.items())) or "no labels"

    described = "; ".join(f"{b.name} ({labels(b)})" for b in bins)
    return UnschedulableError(
        f"service {service!r}: no node satisfies its placement constraints "
        f"{' and '.join(map(str, constraints))}; nodes: {described or 'none'}",
        service=service,
        hint=f"label a node to match, or change deploy.placement.constraints of {service!r}",
    )


def _too_big(service: str, need: _Amount, eligible: list[_Bin]) -> UnschedulableError:
    biggest = max(eligible, key=lambda b: (b.cap.cpu, b.cap.memory, b.cap.pids, b.name))
    return UnschedulableError(
        f"service {service!r} needs {_amount(need)} per replica, more than any node "
        f"it may run on has in total (largest: {biggest.name} with {_amount(biggest.cap)})",
        service=service,
        hint=f"lower deploy.resources.reservations (or limits) of {service!r}",
    )


def _capped(service: str, replicas: int, per_node: int,
            eligible: list[_Bin]) -> UnschedulableError:
    return UnschedulableError(
        f"service {service!r} wants {replicas} replicas but may run at most {per_node} per "
        f"node (max_replicas_per_node) on {len(eligible)} eligible "
        f"node{'s' if len(eligible) != 1 else ''} ({', '.join(b.name for b in eligible)})",
        service=service,
        hint=f"lower the replicas of {service!r} or raise its max_replicas_per_node",
    )


def _overcommitted(slot: Slot, replicas: int, need: _Amount, eligible: list[_Bin],
                   all_slots: list[Slot], total_cap: _Amount) -> UnschedulableError:
    total = _Amount(0, 0, 0)
    for s in all_slots:
        total = total + _Amount.of(s.needs)
    free = "; ".join(f"{b.name} has {_amount(b.free())}" for b in eligible)
    return UnschedulableError(
        f"cannot place replica {slot.index} of {replicas} of service {slot.service!r}: it "
        f"needs {_amount(need)} and no node has that free ({free}); the stack reserves "
        f"{_amount(total)} in all, the nodes have {_amount(total_cap)}",
        service=slot.service,
        hint=f"lower the replicas or reservations of {slot.service!r} (or of other "
             "services), or add capacity",
    )
