"""A node's cluster life: join, keep the lease alive, stand for leader, and lead when
elected. Ends only by cancellation; a lost lease (etcd unreachable past the TTL) is
a rejoin, since the cluster has meanwhile moved this node's slots elsewhere.
"""

from __future__ import annotations

import logging

import trio

from stackd.cluster import leader, nodes
from stackd.cluster.records import NodeRecord
from stackd.cluster.store import Store
from stackd.errors import StackdError

log = logging.getLogger(__name__)

# Seconds between tries when etcd cannot be reached at all.
RETRY = 1.0


async def serve(store: Store, record: NodeRecord, ttl: int, *,
                task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Be a member until cancelled; `task_status.started(lease)` once joined."""
    started = False
    while True:
        try:
            lease = await nodes.join(store, record, ttl)
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
            try:
                await nodes.keep_alive(store, record.name, lease, ttl)
            except nodes.NodeLostError as e:
                log.warning("cluster: %s", e.message)
            nursery.cancel_scope.cancel()


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
