"""Per-node address blocks of an overlay network, claimed in etcd by racing nodes."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest
import trio
from support.etcdcluster import EtcdCluster

from stackd.cluster import ipam
from stackd.cluster.store import Store
from stackd.errors import ConflictError


def test_first_free_skips_what_overlaps() -> None:
    net = IPv4Network("10.9.0.0/22")
    assert ipam.first_free(net, 24, []) == IPv4Network("10.9.0.0/24")
    assert ipam.first_free(net, 24, [IPv4Network("10.9.0.0/23")]) == \
        IPv4Network("10.9.2.0/24")
    assert ipam.first_free(net, 24, list(net.subnets(new_prefix=24))) is None


async def test_racing_nodes_each_get_one_block_and_no_two_the_same(
        etcd1: EtcdCluster) -> None:
    subnet = IPv4Network("10.9.0.0/20")  # 16 blocks of /24
    got: dict[str, list[IPv4Network]] = {}
    stores = [Store(etcd1.endpoints, prefix="/i/") for _ in range(12)]

    async def node(i: int) -> None:
        # Each node asks twice at once: still one block per node.
        name = f"n{i:02}"
        async with trio.open_nursery() as n:
            for _ in range(2):
                n.start_soon(lambda: _claim(stores[i], name))

    async def _claim(store: Store, name: str) -> None:
        got.setdefault(name, []).append(await ipam.claim(store, "front", name, subnet))

    async with trio.open_nursery() as n:
        for i in range(12):
            n.start_soon(node, i)
    assert all(len(set(blocks)) == 1 for blocks in got.values())
    mine = {name: blocks[0] for name, blocks in got.items()}
    assert len(set(mine.values())) == 12
    async with Store(etcd1.endpoints, prefix="/i/") as s:
        assert {b: n for n, b in mine.items()} == await ipam.blocks(s, "front")
        # 4 blocks left; 5 more nodes: the fifth is refused with the numbers.
        for i in range(4):
            await ipam.claim(s, "front", f"m{i}", subnet)
        with pytest.raises(ConflictError, match=r"every /24 block of 10.9.0.0/20"):
            await ipam.claim(s, "front", "late", subnet)
        assert await ipam.release(s, "front", "n00") == 1
        assert await ipam.claim(s, "front", "late", subnet) == mine["n00"]
    for st in stores:
        await st.aclose()
