"""The single scheduler: one node wins an election and places every stack.

Election (etcd's concurrency.Election, reduced to what one leader needs): create
`leader` bound to the node's own lease, only if it does not exist (create_revision
== 0). That key's create_revision is the leader's *term*. Every assignment write is
a transaction conditioned on `leader` still having that create_revision, so a leader
that lost its lease (killed, partitioned) can never write again, even if it does not
know yet; and on each assignment key's mod_revision as read, so a slot is never
placed twice. A leader killed between two stacks' transactions leaves a consistent
store: its successor reads it and places only what is still unplaced.

The leader re-places on every change of nodes, liveness and stacks (a watch), so a
node whose lease expired has its slots moved as soon as etcd deletes `alive/<node>`:
one snapshot read and one transaction per stack later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TypeVar

import trio

from stackd.cluster import assign, keys
from stackd.cluster.records import (
    Assignment,
    NodeRecord,
    StackRecord,
    StoreRecordError,
    Unplaced,
    VolumeRecord,
)
from stackd.cluster.store import KV, Compare, Delete, Event, Get, Put, Store
from stackd.errors import UnavailableError
from stackd.scheduler import Node

log = logging.getLogger(__name__)
R = TypeVar("R")

# After a change wakes the leader, more changes within this window join the same pass
# (a node going down deletes one key, but a stack update may come with others).
SETTLE = 0.05


class LeadershipLostError(UnavailableError):
    """This node's leader key is gone: another node leads now."""


@dataclass(slots=True)
class Snapshot:
    """Everything placement reads, at one revision. The leader reads it once, then
    keeps it current from its watch (`apply`), as an informer does: a pass reads
    nothing from etcd, whatever the cluster's size."""

    revision: int
    nodes: list[NodeRecord]
    up: set[str]
    stacks: list[StackRecord]
    # project → slot name → (assignment, its key's mod_revision)
    assigned: dict[str, dict[str, tuple[Assignment, int]]]
    # project → volume → the node holding it
    volumes: dict[str, dict[str, str]] = field(default_factory=dict)
    # project → (why it cannot be placed, as recorded; its key's mod_revision)
    unplaced: dict[str, tuple[str, int]] = field(default_factory=dict)

    def copy(self) -> Snapshot:
        return Snapshot(self.revision, list(self.nodes), set(self.up), list(self.stacks),
                        {p: dict(slots) for p, slots in self.assigned.items()},
                        {p: dict(v) for p, v in self.volumes.items()}, dict(self.unplaced))

    def usable(self) -> list[Node]:
        return [Node(n.name, n.cpus, n.memory, n.pids, n.labels, arch=n.arch)
                for n in self.nodes if n.name in self.up and n.availability == "active"]

    def apply(self, ev: Event) -> None:
        """One watched change, in revision order."""
        key, gone = ev.kv.key, ev.type == "DELETE"
        self.revision = max(self.revision, ev.kv.mod_revision)
        if key.startswith(keys.ASSIGN):
            project, _, slot = keys.tail(key, keys.ASSIGN).partition("/")
            slots = self.assigned.setdefault(project, {})
            if gone:
                slots.pop(slot, None)
                if not slots:
                    del self.assigned[project]
            else:
                slots[slot] = (Assignment.from_json(key, ev.kv.value), ev.kv.mod_revision)
        elif key.startswith(keys.VOLUMES):
            project, _, name = keys.tail(key, keys.VOLUMES).partition("/")
            held = self.volumes.setdefault(project, {})
            record = None if gone else _readable(VolumeRecord.from_json, [ev.kv])
            if record:
                held[name] = record[0].node
            else:
                held.pop(name, None)
            if not held:
                del self.volumes[project]
        elif key.startswith(keys.UNPLACED):
            project = keys.tail(key, keys.UNPLACED)
            why = None if gone else _readable(Unplaced.from_json, [ev.kv])
            if why:
                self.unplaced[project] = (why[0].reason, ev.kv.mod_revision)
            else:
                self.unplaced.pop(project, None)
        elif key.startswith(keys.ALIVE):
            name = keys.tail(key, keys.ALIVE)
            (self.up.discard if gone else self.up.add)(name)
        elif key.startswith(keys.NODES):
            name = keys.tail(key, keys.NODES)
            self.nodes = [n for n in self.nodes if n.name != name]
            if not gone:
                self.nodes += _readable(NodeRecord.from_json, [ev.kv])
                self.nodes.sort(key=lambda n: n.name)
        elif key.startswith(keys.STACKS):
            project = keys.tail(key, keys.STACKS)
            self.stacks = [st for st in self.stacks if st.project != project]
            if not gone:
                self.stacks += _readable(StackRecord.from_json, [ev.kv])
                self.stacks.sort(key=lambda st: st.project)


@dataclass(slots=True)
class PassStats:
    """What one placement pass did: transactions sent, keys written, stacks refused."""

    revision: int = 0  # of the snapshot it placed from
    written: int = 0  # the revision of its last write, 0 if none
    conflicts: int = 0  # transactions refused because a slot changed under the pass
    txns: int = 0
    writes: int = 0
    unschedulable: dict[str, str] = field(default_factory=dict)


async def campaign(store: Store, name: str, lease: int) -> int:
    """Wait until this node leads; its term. Its lease ending ends the term."""
    while True:
        result = await store.txn([Compare(keys.LEADER, "CREATE", "EQUAL", 0)],
                                 [Put(keys.LEADER, name.encode(), lease), Get(keys.LEADER)],
                                 [Get(keys.LEADER)])
        current = result.reads[0][0] if result.reads and result.reads[0] else None
        if result.succeeded and current is not None:
            return current.create_revision
        if current is not None and current.lease == lease:
            return current.create_revision  # already ours (a restarted loop)
        # Another node leads: wait for its key to go, then try again.
        async with aclosing(store.watch(keys.LEADER, result.revision + 1)) as events:
            async for ev in events:
                if ev.kv.key == keys.LEADER and ev.type == "DELETE":
                    break


async def snapshot(store: Store) -> Snapshot:
    """One consistent read of nodes, liveness, stacks and assignments (one txn)."""
    result = await store.txn([], [Get(keys.NODES, prefix=True), Get(keys.ALIVE, prefix=True),
                                  Get(keys.STACKS, prefix=True), Get(keys.ASSIGN, prefix=True),
                                  Get(keys.VOLUMES, prefix=True),
                                  Get(keys.UNPLACED, prefix=True)])
    nodes_kv, alive_kv, stacks_kv, assign_kv, volumes_kv, unplaced_kv = result.reads
    assigned: dict[str, dict[str, tuple[Assignment, int]]] = {}
    for kv in assign_kv:
        project, _, slot = keys.tail(kv.key, keys.ASSIGN).partition("/")
        assigned.setdefault(project, {})[slot] = (Assignment.from_json(kv.key, kv.value),
                                                  kv.mod_revision)
    volumes: dict[str, dict[str, str]] = {}
    for kv in volumes_kv:
        project, _, name = keys.tail(kv.key, keys.VOLUMES).partition("/")
        for record in _readable(VolumeRecord.from_json, [kv]):
            volumes.setdefault(project, {})[name] = record.node
    unplaced = {keys.tail(kv.key, keys.UNPLACED): (why.reason, kv.mod_revision)
                for kv in unplaced_kv for why in _readable(Unplaced.from_json, [kv])}
    return Snapshot(
        revision=result.revision,
        nodes=_readable(NodeRecord.from_json, nodes_kv),
        up={keys.tail(kv.key, keys.ALIVE) for kv in alive_kv},
        stacks=_readable(StackRecord.from_json, stacks_kv),
        assigned=assigned, volumes=volumes, unplaced=unplaced)


def _readable(parse: Callable[[str, bytes], R], kvs: list[KV]) -> list[R]:
    """The records that parse; one malformed record must not stop the whole cluster's
    placement, so it is logged and left out (its stack or node is not placed on)."""
    out = []
    for kv in kvs:
        try:
            out.append(parse(kv.key, kv.value))
        except StoreRecordError as e:
            log.warning("cluster: %s", e.message)
    return out


async def place_all(store: Store, term: int, snap: Snapshot | None = None) -> PassStats:
    """One placement pass over every stack, as the leader of `term`, from `snap` (or
    from a fresh read).

    Raises LeadershipLostError if the term ended. A stack whose assignments changed
    under the pass (an operator's edit) is counted in `conflicts`; the caller passes
    again once its view has caught up."""
    if snap is None:
        snap = await snapshot(store)
    # The watch updates `snap` while this pass awaits its writes: plan and compare
    # against one copy, taken before the first await.
    snap = snap.copy()
    stats = PassStats(revision=snap.revision)
    current = {p: {slot: a.node for slot, (a, _) in slots.items()}
               for p, slots in snap.assigned.items()}
    changes, stats.unschedulable = assign.plan_all(snap.stacks, snap.usable(), current,
                                                   snap.volumes)
    for project, why in sorted(stats.unschedulable.items()):
        log.warning("cluster: stack %s cannot be placed: %s", project, why)
    await _say_unplaced(store, term, snap.unplaced, stats)
    for project, change in sorted(changes.items()):
        await _write(store, term, project, change, snap.assigned.get(project, {}), stats)
    # Assignments of a stack that was removed.
    projects = {s.project for s in snap.stacks}
    for project, slots in sorted(snap.assigned.items()):
        if project not in projects:
            await _write(store, term, project, assign.Change({}, tuple(sorted(slots))),
                         slots, stats)
    return stats


async def _say_unplaced(store: Store, term: int, recorded: Mapping[str, tuple[str, int]],
                        stats: PassStats) -> None:
    """`unplaced/<project>` holds why a stack cannot be placed while that lasts, so
    the user sees it (GET /v1/cluster, `node ls`), not only the leader's log."""
    writes: list[tuple[Compare | None, Put | Delete]] = []
    for project, why in sorted(stats.unschedulable.items()):
        if recorded.get(project, ("", 0))[0] != why:
            writes.append((None, Put(keys.unplaced(project), Unplaced(why, term).to_json())))
    for project, (_, rev) in sorted(recorded.items()):
        if project not in stats.unschedulable:
            key = keys.UNPLACED + project
            writes.append((Compare(key, "MOD", "EQUAL", rev), Delete(key)))
    for compare, op in writes:  # one each: a stale one must not hold back the others
        result = await store.txn([Compare(keys.LEADER, "CREATE", "EQUAL", term),
                                  *([compare] if compare else [])], [op], [Get(keys.LEADER)])
        stats.txns += 1
        if result.succeeded:
            stats.written = result.revision
            continue
        leader = result.reads[0][0] if result.reads and result.reads[0] else None
        if leader is None or leader.create_revision != term:
            raise LeadershipLostError(f"leadership of term {term} ended")


# etcd refuses a transaction of more than --max-txn-ops (default 128) compares or
# operations; one slot is one compare and one operation, plus the term's compare.
CHUNK = 100


async def _write(store: Store, term: int, project: str, change: assign.Change,
                 current: Mapping[str, tuple[Assignment, int]], stats: PassStats) -> None:
    """Write a stack's change in transactions of at most CHUNK slots. Each slot is
    conditioned on its own revision and every transaction on the term, so a stack
    split over several stays correct: a chunk that did not land is the next pass's."""
    writes: list[tuple[Compare, Put | Delete]] = []
    for name, node in sorted(change.volumes.items()):
        # Create-only: a volume's node, once recorded, is changed by no pass.
        key = keys.volume(project, name)
        writes.append((Compare(key, "CREATE", "EQUAL", 0), Put(key, VolumeRecord(node).to_json())))
    for slot, node in sorted(change.put.items()):
        key = keys.assignment(project, slot)
        rev = current[slot][1] if slot in current else 0
        writes.append((Compare(key, "MOD", "EQUAL", rev) if rev
                       else Compare(key, "CREATE", "EQUAL", 0),
                       Put(key, Assignment(node, term).to_json())))
    for slot in change.delete:
        key = keys.assignment(project, slot)
        writes.append((Compare(key, "MOD", "EQUAL", current[slot][1]), Delete(key)))
    for i in range(0, len(writes), CHUNK):
        chunk = writes[i:i + CHUNK]
        result = await store.txn([Compare(keys.LEADER, "CREATE", "EQUAL", term),
                                  *(c for c, _ in chunk)],
                                 [op for _, op in chunk], [Get(keys.LEADER)])
        stats.txns += 1
        if result.succeeded:
            stats.writes += len(chunk)
            stats.written = result.revision
            continue
        leader = result.reads[0][0] if result.reads and result.reads[0] else None
        if leader is None or leader.create_revision != term:
            raise LeadershipLostError(f"leadership of term {term} ended")
        stats.conflicts += 1
        return  # a slot changed under this pass: the next pass sees it


async def lead(store: Store, term: int) -> None:
    """Place now and after every relevant change, until the term ends
    (LeadershipLostError). One read at the start; after it, the watch keeps the
    snapshot current and each pass waits for its own previous writes to show in it."""
    snap = await snapshot(store)
    changed = trio.Event()
    caught_up = trio.Condition()
    ended = False

    async def follow() -> None:
        nonlocal changed, ended
        async with aclosing(store.watch("", snap.revision + 1)) as events:
            async for ev in events:
                if ev.kv.key == keys.LEADER:
                    if ev.type == "DELETE" or ev.kv.create_revision != term:
                        ended = True
                        changed.set()
                        async with caught_up:
                            caught_up.notify_all()
                        return
                    continue
                snap.apply(ev)
                if ev.kv.key.startswith((keys.NODES, keys.ALIVE, keys.STACKS)):
                    changed.set()
                async with caught_up:
                    caught_up.notify_all()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow)
        stats = await place_all(store, term, snap)
        while True:
            # The view must hold this pass's own writes before the next one plans.
            async with caught_up:
                while snap.revision < stats.written and not ended:
                    await caught_up.wait()
            if not stats.conflicts:
                await changed.wait()
                if ended:
                    raise LeadershipLostError(f"leadership of term {term} ended")
            # After a conflict too: the change that caused it is still on its way.
            await trio.sleep(SETTLE)
            changed = trio.Event()
            stats = await place_all(store, term, snap)
