"""Membership: a node joins with a lease, stays up by keeping it alive, is down when
it expires (Kubernetes' node leases; etcd's concurrency.Session).

A node's record (`nodes/<name>`) outlives it, so `node ls` shows a down node and its
labels until `node rm`; its liveness is `alive/<name>`, bound to its lease. Drain is
the record's availability, written by anyone with a read-modify-write on its revision.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import trio

from stackd.cluster import keys
from stackd.cluster.records import Availability, NodeRecord
from stackd.cluster.store import Compare, Delete, Put, Store, StoreError
from stackd.errors import AlreadyExistsError, ConflictError, NotFoundError, UnavailableError


class NodeLostError(UnavailableError):
    """This node's lease expired: the cluster has counted it down and moved its slots."""


@dataclass(frozen=True, slots=True)
class Member:
    record: NodeRecord
    up: bool
    lease: int  # 0 when down

    @property
    def status(self) -> str:
        return "up" if self.up else "down"


async def join(store: Store, record: NodeRecord, ttl: int, reuse: int = 0) -> int:
    """Make `record` a member that is up; its lease id. A record already there keeps
    its availability (a drained node that restarts stays drained); a node of the same
    name that is up refuses the join — unless it is this node's own lease `reuse`,
    still alive: a daemon restarted within its TTL carries on as the node it was, so
    its slots are not moved away for a restart."""
    key, alive = keys.node(record.name), keys.alive(record.name)
    if reuse and await _adopt(store, record, reuse):
        return reuse
    lease = await store.grant(ttl)
    for _ in range(10):
        old = await store.get(key)
        if old is not None:
            record = replace(record, availability=NodeRecord.from_json(key, old.value)
                             .availability)
        result = await store.txn(
            [Compare(alive, "CREATE", "EQUAL", 0),
             Compare(key, "MOD", "EQUAL", old.mod_revision if old else 0)],
            [Put(key, record.to_json()), Put(alive, b"", lease)])
        if result.succeeded:
            return lease
        if await store.get(alive) is not None:
            await store.revoke(lease)
            raise AlreadyExistsError(
                f"node {record.name!r} is already up in the cluster",
                hint="stop the other daemon of that name, or join with another --name")
    await store.revoke(lease)
    raise ConflictError(f"node {record.name!r}: its record kept changing while joining",
                        hint="try again")


async def _adopt(store: Store, record: NodeRecord, lease: int) -> bool:
    key, alive = keys.node(record.name), keys.alive(record.name)
    try:
        if await store.keepalive(lease) <= 0:
            return False
    except StoreError:  # not a lease etcd knows (any more)
        return False
    old = await store.get(key)
    if old is not None:
        record = replace(record, availability=NodeRecord.from_json(key, old.value)
                         .availability)
    result = await store.txn([Compare(alive, "LEASE", "EQUAL", lease),
                              Compare(key, "MOD", "EQUAL", old.mod_revision if old else 0)],
                             [Put(key, record.to_json())])
    return result.succeeded


async def keep_alive(store: Store, name: str, lease: int, ttl: int) -> None:
    """Renew `lease` three times a TTL, forever; NodeLostError once it has expired.

    A renewal that fails because etcd is unreachable is retried until the TTL has
    passed: the node keeps its containers meanwhile (docs/cluster.md, partitions)."""
    while True:
        await trio.sleep(ttl / 3)
        try:
            left = await store.keepalive(lease)
        except UnavailableError:
            continue
        if left <= 0:
            raise NodeLostError(f"node {name!r} lost its lease: the cluster counts it down",
                                hint="its slots were moved; rejoin with `stackd node join`")


async def leave(store: Store, lease: int) -> None:
    """Down now, not after the TTL: revoking the lease deletes `alive/` (and `leader`)."""
    await store.revoke(lease)


async def members(store: Store) -> list[Member]:
    """Every node with a record, in name order, up or down."""
    records, _ = await store.range(keys.NODES)
    alive, _ = await store.range(keys.ALIVE)
    leases = {keys.tail(kv.key, keys.ALIVE): kv.lease for kv in alive}
    out = []
    for kv in records:
        rec = NodeRecord.from_json(kv.key, kv.value)
        lease = leases.get(rec.name, 0)
        out.append(Member(rec, lease != 0, lease))
    return out


async def member(store: Store, name: str) -> Member:
    for m in await members(store):
        if m.record.name == name:
            return m
    raise NotFoundError(f"no node {name!r} in the cluster", hint="see `stackd node ls`")


async def set_availability(store: Store, name: str, availability: Availability) -> None:
    """Drain a node (its slots move, it takes no new ones) or make it active again."""
    key = keys.node(name)
    for _ in range(10):
        kv = await store.get(key)
        if kv is None:
            raise NotFoundError(f"no node {name!r} in the cluster", hint="see `stackd node ls`")
        record = replace(NodeRecord.from_json(key, kv.value), availability=availability)
        if await store.put_if(key, record.to_json(), kv.mod_revision):
            return
    raise ConflictError(f"node {name!r}: its record kept changing", hint="try again")


async def remove(store: Store, name: str) -> None:
    """Forget a node that is down. An up node is refused: it would rejoin at once."""
    key, alive = keys.node(name), keys.alive(name)
    kv = await store.get(key)
    if kv is None:
        raise NotFoundError(f"no node {name!r} in the cluster", hint="see `stackd node ls`")
    result = await store.txn([Compare(alive, "CREATE", "EQUAL", 0),
                              Compare(key, "MOD", "EQUAL", kv.mod_revision)], [Delete(key)])
    if not result.succeeded:
        if await store.get(alive) is not None:
            raise ConflictError(f"node {name!r} is up: it cannot be removed",
                                hint=f"stop its daemon first (or `stackd node drain {name}` "
                                     "to move its slots away)")
        raise ConflictError(f"node {name!r}: its record changed meanwhile", hint="try again")
