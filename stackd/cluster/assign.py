"""The pure part of cluster placement: given a stack, the usable nodes and where its
slots are now, which assignments to write and which to delete.

A slot stays on its node while that node is up and active (nothing moves for no
reason); slots on a node that is down or drained, and new slots, are placed around
the kept ones with the scheduler. Slots no longer desired (scaled down) are deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stackd.cluster.records import StackRecord
from stackd.scheduler import Node, place


@dataclass(frozen=True, slots=True)
class Change:
    put: dict[str, str]  # slot name (<service>-<index>) → node
    delete: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.put or self.delete)


def plan(stack: StackRecord, usable: Sequence[Node], current: Mapping[str, str]) -> Change:
    """What to write so that every slot of `stack` has a usable node. Raises the
    scheduler's UnschedulableError when the usable nodes cannot hold it."""
    desired = stack.slots()
    names = {n.name for n in usable}
    by_name = {str(s): s for s in desired}
    kept = {s: current[str(s)] for s in desired if current.get(str(s)) in names}
    placed = place(desired, usable, stack.strategy, kept=kept).assignments
    return Change(put={str(s): n for s, n in placed.items() if current.get(str(s)) != n},
                  delete=tuple(sorted(k for k in current if k not in by_name)))
