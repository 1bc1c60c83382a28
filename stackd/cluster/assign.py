"""The pure part of cluster placement: given the stacks, the usable nodes and where
slots are now, which assignments to write and which to delete.

A slot stays on its node while that node is up and active (nothing moves for no
reason); slots on a node that is down or drained, and new slots, are placed around
the kept ones with the scheduler. Slots no longer desired (scaled down) are deleted.
Stacks are placed one at a time in project order, each seeing what the others hold
on every node, so the cluster as a whole is spread (or packed), not each stack alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stackd.cluster.records import StackRecord
from stackd.errors import StackdError
from stackd.scheduler import Node, Resources, place


@dataclass(frozen=True, slots=True)
class Change:
    put: dict[str, str]  # slot name (<service>-<index>) → node
    delete: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.put or self.delete)


def plan(stack: StackRecord, usable: Sequence[Node], current: Mapping[str, str],
         reserved: Mapping[str, tuple[Resources, int]] | None = None) -> Change:
    """What to write so that every slot of `stack` has a usable node. `reserved`: what
    other stacks hold per node. Raises the scheduler's UnschedulableError when the
    usable nodes cannot hold it."""
    desired = stack.slots()
    names = {n.name for n in usable}
    by_name = {str(s): s for s in desired}
    kept = {s: current[str(s)] for s in desired if current.get(str(s)) in names}
    placed = place(desired, usable, stack.strategy, kept=kept, reserved=reserved).assignments
    return Change(put={str(s): n for s, n in placed.items() if current.get(str(s)) != n},
                  delete=tuple(sorted(k for k in current if k not in by_name)))


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


def plan_all(stacks: Sequence[StackRecord], usable: Sequence[Node],
             current: Mapping[str, Mapping[str, str]]
             ) -> tuple[dict[str, Change], dict[str, str]]:
    """Every stack's change, and the stacks that cannot be placed now (project → why).
    `current` maps project → slot name → node."""
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
        if now.keys() == needs[s.project].keys() and all(n in names for n in now.values()):
            continue  # every slot placed, every one on a usable node: nothing to place
        try:
            change = plan(s, usable, now, total.minus(own[s.project]))
        except StackdError as e:
            refused[s.project] = e.message
            continue
        for slot, node in change.put.items():
            old = now.get(slot)
            if old in names:
                total.add(old, needs[s.project][slot], -1)
            total.add(node, needs[s.project][slot])
        if change:
            changes[s.project] = change
    return changes, refused
