"""DNS across the cluster, on real daemons: 3 nodes, each in its own network namespace
with its own state root, one etcd member. `up` on one node runs 3 replicas, one per
node, each on the stack's network of its own node. Every node's summaries are in
etcd, bound to its lease; every node's DNS answers the service name with the ready
replicas of all nodes, exactly as the summaries say; a replica made unready (its
health check failing) leaves the answers on every node; and each node's routing mesh
rules name the ready replicas of all nodes. (Connections to another node's replica
need the overlay: tests/cluster/test_cluster_mesh.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.busybox import busybox_available
from support.clusternet import NetNode
from support.clustershop import (
    NETWORK,
    Shop,
    fetch,
    mesh_backends,
    resolve,
    shop_up,
    until,
)
from support.psrows import ps_rows

from stackd.cli.client import Client


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    if not busybox_available():
        pytest.skip("busybox-static is not installed")
    with shop_up(tmp_path) as s:
        yield s


def test_every_node_answers_with_the_ready_replicas_of_all_nodes(shop: Shop) -> None:
    nodes = shop.nodes
    statuses = shop.statuses()
    # One summary per slot, by the node that runs it, bound to that node's lease.
    info_assigned = {}
    for n in nodes:
        with Client(n.node.roots, autostart=False) as c:
            info = c.get("/v1/cluster")
        info_assigned[n.name] = info["assigned"].get("shop", [])
        assert len(info_assigned[n.name]) == 1
        for slot in info["assigned"].get("shop", []):
            record, lease = statuses[slot]
            assert (record.node, record.container, record.state) == \
                (n.name, f"shop-{slot}", "running")
            assert lease == info["lease"] and lease != 0
            assert set(record.addresses) == {NETWORK}
            assert [(p.host_port, p.container_port) for p in record.ports] == \
                [(shop.port, 80)]
    # Each daemon shows every node's summaries (GET /v1/cluster), as etcd has them.
    rows = sorted((r.node, r.container, r.ready) for r, _ in statuses.values())
    for n in nodes:
        def shown(n: NetNode = n) -> list[tuple[str, str, bool]]:
            with Client(n.node.roots, autostart=False) as c:
                slots = c.get("/v1/cluster")["slots"]
            return sorted((r["node"], r["container"], r["ready"]) for r in slots)
        until(f"{n.name} to show every slot", lambda shown=shown: shown() == rows, 10)
    want = shop.ready_ips()
    assert len(want) == 3
    for n in nodes:
        until(f"{n.name}'s DNS to list all 3", lambda n=n: resolve(n, "web") == want, 10)
        until(f"{n.name}'s mesh to name all 3",
              lambda n=n: mesh_backends(n, shop.port) == want, 10)
    # The published port answers on every node's underlay address, with its own
    # replica among the backends its connections are balanced over (round robin: one
    # of as many connections as there are backends reaches it).
    for n in nodes:
        local = {f"shop-{s}" for s in info_assigned[n.name]}
        bodies = [fetch(shop.world, n.node.address, shop.port) for _ in want]
        assert local & set(bodies), (n.name, bodies)

    # `ps --cluster` on any node: every node's replica, each with its node.
    for n in nodes:
        rows = ps_rows(n.stackd("-p", "shop", "ps", "--cluster", "--format",
                                "json").stdout)
        assert sorted((r["name"], r["node"], r["state"]) for r in rows) == sorted(
            (f"shop-{slot}", m.name, "running") for m in nodes
            for slot in info_assigned[m.name]), (n.name, rows)
        table = n.stackd("-p", "shop", "ps", "--cluster").stdout
        assert table.splitlines()[0].split()[:3] == ["NAME", "SERVICE", "NODE"], table
        assert all(m.name in table for m in nodes), table

    # A replica made unready (its health check fails): gone from every node's answers
    # and rules, and its summary says so.
    victim = sorted(statuses)[0]
    shop.set_healthy(f"shop-{victim}", False)
    until("the summary to say unready", lambda: not shop.statuses()[victim][0].ready, 15)
    left = shop.ready_ips()
    assert len(left) == 2
    for n in nodes:
        until(f"{n.name}'s DNS to drop it", lambda n=n: resolve(n, "web") == left, 10)
        until(f"{n.name}'s mesh to drop it",
              lambda n=n: mesh_backends(n, shop.port) == left, 10)
    # Healthy again: back everywhere.
    shop.set_healthy(f"shop-{victim}", True)
    for n in nodes:
        until(f"{n.name}'s DNS to list it again",
              lambda n=n: resolve(n, "web") == shop.ready_ips() and len(shop.ready_ips()) == 3,
              15)
