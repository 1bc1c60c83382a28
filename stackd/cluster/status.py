"""Status summaries: each node's agent writes, for every slot it runs, what the rest of
the cluster needs to know of it (`status/<project>/<slot>`, a `SlotStatus` bound to
the node's lease, so a dead node's summaries vanish with it): its state, whether it
is ready, its address on each network and its published ports. DNS on every node
(`statusdns`) and the routing mesh (`mesh`) are fed from them (`StatusView`).

Writes are level-triggered and debounced: after any change of the local facts (or
every `RESYNC` seconds) the summaries are computed afresh and only the keys whose
value changed are written; a key of a slot no longer run here is deleted only while
it is still this node's (its lease), so a slot that moved on is never erased under
its new node.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import aclosing

import trio

from stackd.cluster import keys
from stackd.cluster.records import SlotStatus
from stackd.cluster.store import Compare, Delete, Store
from stackd.errors import StackdError

log = logging.getLogger(__name__)

DEBOUNCE = 0.05  # seconds: a burst of changes (a scale, a restart) is one pass
RESYNC = 2.0  # seconds: a pass even without a change (a write that failed, a missed one)

# The local facts of every slot this node runs, and an awaitable that returns at the
# next change of them (or may return early: passes are level-triggered).
Facts = Callable[[], Iterable[SlotStatus]]
Changed = Callable[[], Awaitable[None]]


def summaries(facts: Iterable[SlotStatus], assigned: Mapping[str, Iterable[str]]
              ) -> dict[str, SlotStatus]:
    """key → record of the slots this node both runs and is assigned. A slot run by
    two containers a moment (a recreate) is summarised by the readier one."""
    mine = {p: set(slots) for p, slots in assigned.items()}
    out: dict[str, SlotStatus] = {}
    for s in facts:
        if s.slot not in mine.get(s.project, ()):
            continue  # moved away and being stopped: its new node says
        key = keys.status(s.project, s.slot)
        other = out.get(key)
        if other is None or (s.ready, s.state == "running", s.container) > \
                (other.ready, other.state == "running", other.container):
            out[key] = s
    return out


async def publish(store: Store, lease: int, facts: Facts, changed: Changed,
                  assigned: Callable[[], Mapping[str, Iterable[str]]]) -> None:
    """Keep this node's summaries in the store until cancelled."""
    written = await _already_written(store, lease)
    while True:
        want = {k: v.to_json() for k, v in summaries(facts(), assigned()).items()}
        try:
            for key, value in sorted(want.items()):
                if written.get(key) != value:
                    await store.put(key, value, lease)
                    written[key] = value
            for key in sorted(set(written) - set(want)):
                await store.txn([Compare(key, "LEASE", "EQUAL", lease)], [Delete(key)])
                del written[key]
        except StackdError as e:  # etcd away, or refusing: the next pass writes it
            log.warning("cluster: status not written yet: %s", e.message)
        with trio.move_on_after(RESYNC):
            await changed()
            await trio.sleep(DEBOUNCE)


async def _already_written(store: Store, lease: int) -> dict[str, bytes]:
    """Keys bound to `lease` before this run (a daemon restarted within its TTL keeps
    its lease): the first pass rewrites or deletes them like its own."""
    while True:
        try:
            kvs, _ = await store.range(keys.STATUS)
            return {kv.key: kv.value for kv in kvs if kv.lease == lease}
        except StackdError as e:
            log.warning("cluster: status not read yet: %s", e.message)
            await trio.sleep(RESYNC)


class StatusView:
    """Every node's summaries as the store has them, kept current by a watch (read,
    then watch from the next revision; a broken watch is read again). `changed` is
    set after each change; `current` is key → record."""

    def __init__(self) -> None:
        self.current: dict[str, SlotStatus] = {}
        self.changed = trio.Event()
        self.loaded = False

    def _set(self, key: str, value: bytes | None) -> None:
        if value is None:
            self.current.pop(key, None)
        else:
            try:
                record = SlotStatus.from_json(key, value)
            except StackdError as e:  # another writer's mistake: left out, not fatal
                log.warning("cluster: %s", e.message)
                self.current.pop(key, None)
                return
            if keys.status(record.project, record.slot) != key:
                log.warning("cluster: status %r names another slot; left out", key)
                self.current.pop(key, None)
                return
            self.current[key] = record
        self.changed.set()

    async def run(self, store: Store) -> None:
        while True:
            try:
                kvs, revision = await store.range(keys.STATUS)
                self.current = {}
                for kv in kvs:
                    self._set(kv.key, kv.value)
                self.loaded = True
                self.changed.set()
                async with aclosing(store.watch(keys.STATUS, revision + 1)) as events:
                    async for ev in events:
                        self._set(ev.kv.key, None if ev.type == "DELETE" else ev.kv.value)
            except StackdError as e:  # etcd away: read again
                log.warning("cluster: status watch: %s", e.message)
                await trio.sleep(1.0)

    async def follow(self, apply: Callable[[list[SlotStatus]], Awaitable[None]]) -> None:
        """Call `apply` with every summary after each change (debounced), and every
        `RESYNC` seconds once read (what it is applied to may change meanwhile: a
        network made here)."""
        while True:
            with trio.move_on_after(RESYNC if self.loaded else math.inf):
                await self.changed.wait()
            await trio.sleep(DEBOUNCE)
            self.changed = trio.Event()
            try:
                await apply(sorted(self.current.values(),
                                   key=lambda s: (s.project, s.service, s.index, s.node)))
            except StackdError as e:
                log.warning("cluster: applying status: %s", e.message)
                self.changed.set()
                await trio.sleep(1.0)
