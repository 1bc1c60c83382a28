"""A node's cluster life: join, keep the lease alive, stand for leader, and lead when
elected. Ends only by cancellation; a lost lease (etcd unreachable past the TTL) is
a rejoin, since the cluster has meanwhile moved this node's slots elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import aclosing

import trio

from stackd.cluster import agent, leader, nodes
from stackd.cluster.agent import Desired
from stackd.cluster.records import NodeRecord
from stackd.cluster.store import Store
from stackd.errors import StackdError

log = logging.getLogger(__name__)

# Seconds between tries when etcd cannot be reached at all.
RETRY = 1.0


async def serve(store: Store, record: NodeRecord, ttl: int, *, reuse: int = 0,
                on_assigned: Callable[[Desired], None] | None = None,
                also: Sequence[Callable[[Store, int], Awaitable[None]]] = (),
                task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Be a member until cancelled; `task_status.started(lease)` once joined.
    `on_assigned` is called with this node's assignments each time they change;
    `reuse` is the lease this node had before a restart (nodes.join); each of `also`
    runs with the store and the lease while this node holds it (status summaries)."""
    started = False
    while True:
        try:
            lease = await nodes.join(store, record, ttl, reuse=0 if started else reuse)
        except StackdError as e:
            if not started:
                raise  # the first join's failure is the caller's (`node join` says why)
            log.warning("cluster: rejoining as %s: %s", record.name, e.message)
            await trio.sleep(RETRY)
            continue
        if not started:
            task_status.started(lease)
            started = True
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stand_for_leader, store, record.name, lease)
            if on_assigned is not None:
                nursery.start_soon(_follow, store, record.name, on_assigned)
            for task in also:
                nursery.start_soon(task, store, lease)
            try:
                await nodes.keep_alive(store, record.name, lease, ttl)
            except nodes.NodeLostError as e:
                log.warning("cluster: %s", e.message)
            nursery.cancel_scope.cancel()


async def _follow(store: Store, name: str, on_assigned: Callable[[Desired], None]) -> None:
    while True:
        try:
            async with aclosing(agent.assigned_to(store, name)) as desired:
                async for d in desired:
                    on_assigned(d)
        except StackdError as e:  # a malformed assignment: read again later
            log.warning("cluster: %s", e.message)
            await trio.sleep(RETRY)


async def _stand_for_leader(store: Store, name: str, lease: int) -> None:
    while True:
        try:
            term = await leader.campaign(store, name, lease)
            log.info("cluster: %s leads (term %d)", name, term)
            await leader.lead(store, term)
        except* leader.LeadershipLostError:
            log.info("cluster: %s no longer leads", name)
        except* StackdError as group:
            # etcd unreachable, or a record this version cannot read: stand again
            # later rather than take the daemon down with the leader loop.
            log.warning("cluster: %s", group.exceptions[0])
            await trio.sleep(RETRY)
