"""Overlay networks across the cluster's nodes (docs/cluster.md, "Overlay networks").

A stack network of a cluster node is an overlay: its subnet, VXLAN VNI and UDP port
are allocated once for the whole cluster (`overlay/networks/<network>`, created only
if absent and only if no other network was allocated since the read, so every node
agrees and no two networks share a subnet or a VNI); each node claims its own block of
the subnet (cluster/ipam.py) and hands out addresses from it alone.

`OverlayAgent` is netbridge's `OverlayProvider` on a member. It publishes this node's
containers on overlay networks as endpoints (`overlay/endpoints/<network>/<node>/<ip>`,
bound to the node's lease, so a node that goes down takes its endpoints with it), and
follows every node's endpoints through a watch, programming each local VXLAN device
with the others' (FDB and neighbour entries: netbridge/overlayplan.py). Both are
level-triggered: after any change, and every RESYNC seconds, what is published is made
to match this node's containers and each device to match what is published.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from ipaddress import IPv4Network
from typing import Protocol

import trio

from stackd.cluster import ipam, keys
from stackd.cluster.records import Endpoint, OverlayNetwork, StoreRecordError
from stackd.cluster.store import KV, Compare, Delete, Put, Store
from stackd.errors import ConflictError, SpecError, StackdError, UnavailableError
from stackd.netbridge.model import NetworkSpec
from stackd.netbridge.overlayplan import OverlayLease, Peer

log = logging.getLogger(__name__)

# Overlay subnets come from a pool of their own, apart from one host's networks
# (netbridge's 10.192.0.0/12) and the tests' (10.208.0.0/15): 32 networks of a /16.
DEFAULT_POOL = IPv4Network("10.224.0.0/11")
DEFAULT_PREFIXLEN = 16
BLOCK_PREFIXLEN = 24  # each node's block of a /16: 256 nodes of 253 containers
VNI_FIRST = 4096  # below: left to VLAN-mapped VNIs people configure by hand
RESYNC = 5.0  # seconds between passes when nothing wakes the agent
SETTLE = 0.05  # a burst of changes (a scale-up's attaches) is one pass
BATCH = 100  # endpoint writes per transaction


def block_prefixlen(subnet: IPv4Network) -> int:
    """Each node's block: a /24 of a /20 or larger, else 16 blocks of the subnet."""
    return min(max(BLOCK_PREFIXLEN, subnet.prefixlen + 4), 30)


def choose(network: str, want: IPv4Network | None, taken: Iterable[OverlayNetwork],
           routed: Iterable[IPv4Network], pool: IPv4Network = DEFAULT_POOL,
           prefixlen: int = DEFAULT_PREFIXLEN) -> tuple[IPv4Network, int]:
    """A new overlay network's subnet (`want`, or the pool's first free /prefixlen)
    and VNI (the lowest free one), given the other networks and what this node routes."""
    others = sorted(taken, key=lambda r: r.network)
    if want is not None:
        for o in others:
            if want.overlaps(o.subnet):
                raise ConflictError(f"network {network}: subnet {want} overlaps {o.subnet} "
                                    f"of the cluster's network {o.network}",
                                    hint="choose another ipam subnet")
        subnet = want
    else:
        busy = [*(o.subnet for o in others), *routed]
        free = (c for c in pool.subnets(new_prefix=prefixlen)
                if not any(c.overlaps(b) for b in busy))
        found = next(free, None)
        if found is None:
            raise UnavailableError(f"network {network}: no free /{prefixlen} left in the "
                                   f"cluster's overlay pool {pool}",
                                   hint="remove stacks the cluster no longer runs, or give "
                                        "the network an ipam subnet")
        subnet = found
    used = {o.vni for o in others}
    vni = next(v for v in range(VNI_FIRST, VNI_FIRST + len(used) + 1) if v not in used)
    return subnet, vni


async def allocate(store: Store, network: str, want: IPv4Network | None, port: int,
                   routed: Iterable[IPv4Network] = ()) -> OverlayNetwork:
    """The network's cluster-wide record: the one there is, or a new one written only
    if the key is absent and no network was allocated since the read (a transaction on
    the revision of the whole prefix), so racing nodes end up with the same record."""
    key = keys.overlay_network(network)
    for _ in range(100):
        kvs, revision = await store.range(keys.OVERLAY_NETWORKS)
        records = {}
        for kv in kvs:
            try:
                records[kv.key] = OverlayNetwork.from_json(kv.key, kv.value)
            except StoreRecordError as e:
                if kv.key == key:
                    raise
                log.warning("cluster: %s", e.message)
        if key in records:
            have = records[key]
            if want is not None and have.subnet != want:
                raise ConflictError(
                    f"network {network} exists in the cluster with subnet {have.subnet}, "
                    f"not {want}", hint="take the stack down on every node to change it")
            return have
        subnet, vni = choose(network, want, records.values(), routed)
        record = OverlayNetwork(network, subnet, vni, port, block_prefixlen(subnet))
        result = await store.txn(
            [Compare(key, "CREATE", "EQUAL", 0),
             Compare(keys.OVERLAY_NETWORKS, "MOD", "LESS", revision + 1, prefix=True)],
            [Put(key, record.to_json())])
        if result.succeeded:
            return record
    raise ConflictError(f"network {network}: the cluster's networks kept changing while "
                        "allocating it", hint="try again")


async def forget(store: Store, network: str, project: str) -> bool:
    """Delete the network's record once no node holds a block of it and its stack is
    gone from the cluster; whether it was deleted."""
    result = await store.txn(
        [Compare(f"{keys.IPAM}{network}/", "CREATE", "EQUAL", 0, prefix=True),
         Compare(keys.stack(project), "CREATE", "EQUAL", 0)],
        [Delete(keys.overlay_network(network))])
    return result.succeeded


class LocalOverlays(Protocol):
    """What the agent needs of this node's netbridge (`Networks`)."""

    def overlay_endpoints(self) -> list[tuple[str, str, str, str, str]]: ...

    def overlay_networks(self) -> Mapping[str, OverlayLease]: ...

    async def program_overlay(self, network_key: str, peers: Sequence[Peer]) -> bool: ...


def desired_endpoints(node: str, local: Iterable[tuple[str, str, str, str, str]]
                      ) -> dict[str, Endpoint]:
    """This node's containers on overlay networks as the endpoint records to publish."""
    return {keys.overlay_endpoint(net, node, ip): Endpoint(net, node, ip, mac, vtep, cid)
            for net, ip, mac, cid, vtep in local}


def peers_of(network: str, node: str, published: Iterable[Endpoint]) -> list[Peer]:
    """The network's containers on other nodes, as its VXLAN device needs them."""
    return sorted(Peer(e.ip, e.mac, e.vtep) for e in published
                  if e.network == network and e.node != node)


class OverlayAgent:
    """A member's overlay networks: netbridge's OverlayProvider, and the loop that keeps
    endpoints published and devices programmed (`run`, while connected to etcd)."""

    def __init__(self, node: str, vtep: str, port: int,
                 local: Callable[[], LocalOverlays | None],
                 routed: Callable[[], list[IPv4Network]] = list) -> None:
        self.node = node
        self.vtep = vtep
        self.port = port
        self.local = local
        self.routed = routed
        self.store: Store | None = None
        self._wake = trio.Event()
        self._published: dict[str, tuple[KV, Endpoint]] = {}  # the watch's view
        self._listed = False

    # -- OverlayProvider -----------------------------------------------------------

    def _connected(self, what: str) -> Store:
        if self.store is None:
            raise UnavailableError(f"{what}: node {self.node!r} is not connected to its "
                                   "cluster's etcd", hint="it retries once etcd answers")
        return self.store

    async def lease(self, network: NetworkSpec) -> OverlayLease:
        store = self._connected(f"overlay network {network.key}")
        if not self.vtep:
            raise UnavailableError(f"overlay network {network.key}: node {self.node!r} has "
                                   "no underlay address",
                                   hint="rejoin with `stackd node join --address ADDR`")
        want = None
        if network.subnet:
            try:
                want = IPv4Network(network.subnet)
            except ValueError:
                raise SpecError(f"network {network.name}: {network.subnet!r} is not a "
                                "subnet", hint="write e.g. 10.1.0.0/16") from None
        routed = await trio.to_thread.run_sync(self.routed)
        record = await allocate(store, network.key, want, self.port, routed)
        block = await ipam.claim(store, network.key, self.node, record.subnet, record.block)
        return OverlayLease(str(record.subnet), str(block), record.vni, record.port, self.vtep)

    async def release(self, network_key: str, project: str) -> None:
        store = self.store
        if store is None:
            log.warning("cluster: network %s removed while etcd is unreachable: its block "
                        "stays claimed by %s", network_key, self.node)
            return
        try:
            await store.delete(keys.overlay_endpoints(network_key, self.node), prefix=True)
            await ipam.release(store, network_key, self.node)
            await forget(store, network_key, project)
        except StackdError as e:
            log.warning("cluster: releasing network %s: %s", network_key, e.message)

    def changed(self) -> None:
        self._wake.set()

    # -- the loop --------------------------------------------------------------------

    async def run(self, store: Store) -> None:
        """Follow the published endpoints and keep this node's part in step, until
        cancelled."""
        self.store = store
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._follow, store)
                await self._passes(store)
        finally:
            self.store = None
            self._listed = False

    async def _follow(self, store: Store) -> None:
        """The endpoints of every node, as a watch keeps them (an informer)."""
        while True:
            try:
                kvs, revision = await store.range(keys.OVERLAY_ENDPOINTS)
                self._published = {}
                for kv in kvs:
                    self._put(kv)
                self._listed = True
                self._wake.set()
                async with aclosing(store.watch(keys.OVERLAY_ENDPOINTS, revision + 1)) as evs:
                    async for ev in evs:
                        if ev.type == "DELETE":
                            self._published.pop(ev.kv.key, None)
                        else:
                            self._put(ev.kv)
                        self._wake.set()
            except StackdError as e:  # etcd away, or an answer it should not give: relist
                log.info("cluster: overlay endpoints: %s", e.message)
                await trio.sleep(1.0)

    def _put(self, kv: KV) -> None:
        try:
            self._published[kv.key] = (kv, Endpoint.from_json(kv.key, kv.value))
        except StoreRecordError as e:
            log.warning("cluster: %s", e.message)
            self._published.pop(kv.key, None)

    async def _passes(self, store: Store) -> None:
        while True:
            with trio.move_on_after(RESYNC):
                await self._wake.wait()
            self._wake = trio.Event()
            await trio.sleep(SETTLE)
            try:
                await self.sync(store)
            except UnavailableError as e:  # etcd slow, or this node between leases
                log.info("cluster: overlay networks: %s", e.message)
                await trio.sleep(1.0)
                self._wake.set()
            except StackdError as e:
                log.warning("cluster: overlay networks: %s", e.message)
                await trio.sleep(1.0)
                self._wake.set()

    async def sync(self, store: Store) -> None:
        """One pass: publish this node's endpoints as they are, then program each local
        VXLAN device with the other nodes' endpoints."""
        local = self.local()
        if local is None or not self._listed:
            return
        want = desired_endpoints(self.node, local.overlay_endpoints())
        mine = {k: kv for k, (kv, e) in self._published.items() if e.node == self.node}
        if any(k not in mine or mine[k].value != e.to_json() for k, e in want.items()) or \
                any(k not in want for k in mine):
            alive = await store.get(keys.alive(self.node))
            if alive is None or not alive.lease:
                raise UnavailableError(f"node {self.node!r} is not up in the cluster yet: "
                                       "its endpoints are published once it is")
            ops: list[Put | Delete] = [
                Put(k, e.to_json(), alive.lease) for k, e in sorted(want.items())
                if k not in mine or mine[k].value != e.to_json() or mine[k].lease != alive.lease]
            ops += [Delete(k) for k in sorted(mine) if k not in want]
            for i in range(0, len(ops), BATCH):  # etcd takes at most 128 operations a txn
                await store.txn([], ops[i:i + BATCH])
        published = [e for _, e in self._published.values()]
        for network in sorted(local.overlay_networks()):
            await local.program_overlay(network, peers_of(network, self.node, published))
