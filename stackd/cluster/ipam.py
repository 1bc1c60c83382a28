"""Cluster IPAM: each node takes its own block of an overlay network's subnet, so it
hands out addresses from it alone and two nodes never give out the same one.

A block is claimed by creating `ipam/<network>/<block>` (create_revision == 0), so
two nodes racing for the same block cannot both have it: the loser reads again and
takes the next free one. A node keeps its block while its record exists (`release`
when it is removed).
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Network

from stackd.cluster import keys
from stackd.cluster.store import Store
from stackd.errors import ConflictError


def _prefix(network: str) -> str:
    return f"{keys.IPAM}{keys.check_name('network', network)}/"


def _segment(block: IPv4Network) -> str:
    return str(block).replace("/", "_")  # a key segment has no "/"


def _block(segment: str) -> IPv4Network:
    return IPv4Network(segment.replace("_", "/"))


def first_free(subnet: IPv4Network, prefixlen: int, taken: Iterable[IPv4Network]
               ) -> IPv4Network | None:
    """The lowest /prefixlen of `subnet` that overlaps none of `taken`."""
    held = list(taken)
    for block in subnet.subnets(new_prefix=prefixlen):
        if not any(block.overlaps(t) for t in held):
            return block
    return None


async def blocks(store: Store, network: str) -> dict[IPv4Network, str]:
    """Every claimed block of `network` → the node holding it."""
    kvs, _ = await store.range(_prefix(network))
    return {_block(keys.tail(kv.key, _prefix(network))): kv.value.decode() for kv in kvs}


async def claim(store: Store, network: str, node: str, subnet: IPv4Network,
                prefixlen: int = 24) -> IPv4Network:
    """This node's block of `network` (the one it has, or a new one)."""
    keys.check_name("node", node)
    for _ in range(100):
        held = await blocks(store, network)
        for block, owner in sorted(held.items()):
            if owner == node:
                return block
        free = first_free(subnet, prefixlen, held)
        if free is None:
            raise ConflictError(
                f"network {network!r}: every /{prefixlen} block of {subnet} is held by a "
                f"node ({len(held)} nodes)",
                hint="give the network a larger subnet, or remove nodes that are gone "
                     "(`stackd node rm`)")
        if await store.create(_prefix(network) + _segment(free), node.encode()):
            return free
    raise ConflictError(f"network {network!r}: blocks kept changing while claiming one",
                        hint="try again")


async def release(store: Store, network: str, node: str) -> int:
    """Give back the blocks `node` holds of `network`; how many."""
    released = 0
    for block, owner in (await blocks(store, network)).items():
        if owner == node:
            kv = await store.get(_prefix(network) + _segment(block))
            if kv is not None and kv.value.decode() == node and \
                    await store.delete_if(kv.key, kv.mod_revision):
                released += 1
    return released
