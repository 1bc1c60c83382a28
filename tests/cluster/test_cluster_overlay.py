"""Overlay networks across namespaced nodes: 6 replicas on a stack network, 2 per node,
reach each other by address across nodes over VXLAN; addresses are unique in the
cluster and come from each node's own block; a node whose containers go, or which
goes down, leaves no forwarding entries behind on the others, and `down` leaves no
VXLAN device on any node."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
import trio
from support.clusterworld import NodeNs, World, stack_world
from support.e2e_stop import stop_daemon
from support.etcdcluster import EtcdCluster
from support.freeaddrs import free_port
from support.leakcheck import settle
from support.psrows import ps_rows

from stackd.cluster import ipam, keys, overlay
from stackd.cluster.records import Assignment, OverlayNetwork, StackRecord
from stackd.cluster.store import Store
from stackd.daemon.paths import pid_path
from stackd.daemon.pidfile import read_pid

TTL = 2
IMAGE = "stackd-demo/busybox:latest"
NETWORK = "shop_default"
STACK = f"""
name: shop
services:
  web:
    image: {IMAGE}
    # Each replica answers with its own name (its hostname) on port 8080.
    command: [sh, -c, "hostname > /var/www/index.html && exec httpd -f -p 8080 -h /var/www"]
    stop_signal: SIGKILL
    deploy:
      replicas: 6
      resources: {{reservations: {{cpus: "0.1"}}}}
"""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with stack_world(tmp_path, STACK, IMAGE) as w:
        yield w


def etcd_state(world: World) -> tuple[dict[str, str], dict[IPv4Network, str]]:
    """slot → node, and the network's blocks → node, as etcd has them."""
    assert world.etcd is not None

    async def go() -> tuple[dict[str, str], dict[IPv4Network, str]]:
        async with Store(world.etcd.endpoints, timeout=2.0) as s:
            kvs, _ = await s.range(keys.assignments("shop"))
            blocks = await ipam.blocks(s, NETWORK)
        return ({keys.tail(kv.key, keys.assignments("shop")):
                 Assignment.from_json(kv.key, kv.value).node for kv in kvs}, blocks)
    return world.run_in_switch(go)


def until(what: str, pred, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def in_ns(node: NodeNs, *args: str) -> str:
    return subprocess.run(["ip", "netns", "exec", node.netns, *args], check=True,
                          capture_output=True, text=True, timeout=30).stdout


def vxlans(node: NodeNs) -> list[str]:
    """The VXLAN devices in the node's namespace (every one stackd's: the namespace
    is the test's)."""
    return [link["ifname"] for link in
            json.loads(in_ns(node, "ip", "-j", "-d", "link", "show", "type", "vxlan") or "[]")]


def forwarding(node: NodeNs) -> tuple[set[str], set[str]]:
    """The VTEPs the node's VXLAN devices forward to, and the addresses they answer
    ARP for."""
    vteps, ips = set(), set()
    for dev in vxlans(node):
        try:
            fdb = in_ns(node, "bridge", "-j", "fdb", "show", "dev", dev)
            neigh = in_ns(node, "ip", "-j", "neigh", "show", "dev", dev)
        except subprocess.CalledProcessError:
            # Removed since it was listed (a network going away): it forwards nothing.
            if dev in vxlans(node):
                raise
            continue
        vteps.update(e["dst"] for e in json.loads(fdb or "[]") if e.get("dst"))
        ips.update(n["dst"] for n in json.loads(neigh or "[]"))
    return vteps, ips


def running(node: NodeNs) -> list[int]:
    rows = ps_rows(node.stackd("ps", "--all-projects", "--format", "json").stdout)
    return sorted(r["index"] for r in rows
                  if r.get("project") == "shop" and r.get("state") == "running")


def exec_in(node: NodeNs, compose: Path, index: int, *cmd: str, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
    return node.stackd("-f", str(compose), "exec", "-T", "--index", str(index), "web", *cmd,
                       check=check)


def address_of(node: NodeNs, index: int) -> IPv4Address:
    """Replica `index`'s eth0 address, read in its network namespace (the file the
    node's daemon keeps for it) with the host's `ip`: no CLI process per look."""
    [ns] = (node.roots.run / "netns").glob(f"shop-web-{index}-*")
    out = subprocess.run(["nsenter", f"--net={ns}", "ip", "-o", "-4", "addr", "show", "dev",
                          "eth0"], check=True, capture_output=True, text=True, timeout=30).stdout
    return IPv4Address(out.split()[3].split("/")[0])


def fetch(node: NodeNs, compose: Path, index: int, ip: IPv4Address) -> str:
    """The body `http://ip:8080/` answers to replica `index` on `node` (busybox's static
    wget crashes in its name service code, so HTTP by hand over nc)."""
    r = exec_in(node, compose, index, "sh", "-c",
                f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 8080", check=False)
    return r.stdout.strip().splitlines()[-1] if r.returncode == 0 and r.stdout.strip() else ""


def test_replicas_reach_each_other_across_nodes_over_vxlan(world: World, tmp_path: Path
                                                            ) -> None:
    assert world.etcd is not None
    compose = tmp_path / "compose.yaml"
    port = free_port()  # the VXLAN UDP port: any run's, chosen free
    for n in world.nodes:
        n.stackd("node", "join", "--etcd", *world.etcd.endpoints, "--name", n.name,
                 "--ttl", str(TTL), "--address", n.address, "--vxlan-port", str(port))
    world.nodes[0].stackd("-f", str(compose), "up", "-d")

    def placed() -> dict[str, str]:
        return etcd_state(world)[0]
    until("6 slots placed", lambda: len(placed()) == 6, 20)
    where = placed()
    assert Counter(where.values()) == {n.name: 2 for n in world.nodes}
    held = {n.name: sorted(int(s.rsplit("-", 1)[1]) for s, m in where.items() if m == n.name)
            for n in world.nodes}
    for n in world.nodes:
        until(f"{n.name} running its slots", lambda n=n: running(n) == held[n.name], 30)

    # Every address is unique in the cluster and inside its own node's block.
    _, blocks = etcd_state(world)
    block_of = {node: block for block, node in blocks.items()}
    assert sorted(block_of) == sorted(n.name for n in world.nodes)
    addresses = {}
    for n in world.nodes:
        for i in held[n.name]:
            ip = address_of(n, i)
            assert ip in block_of[n.name], (n.name, i, ip, block_of[n.name])
            addresses[i] = ip
    assert len(set(addresses.values())) == 6
    assert len({b.supernet(new_prefix=16) for b in blocks}) == 1  # one subnet, three blocks

    # A replica on node 0 reaches every replica on nodes 1 and 2 by address.
    a, b, c = world.nodes
    src = held[a.name][0]
    for other in (b, c):
        for i in held[other.name]:
            until(f"{a.name} reaching shop-web-{i} on {other.name}",
                  lambda i=i: fetch(a, compose, src, addresses[i]) == f"shop-web-{i}", 15)
    vteps, ips = forwarding(a)
    assert vteps == {b.address, c.address}
    # Each remote replica, and each remote node's bridge (its block's first address:
    # the address the routing mesh masquerades behind, which replies must find).
    gateways = {str(block_of[n.name].network_address + 1) for n in (b, c)}
    assert ips == {str(addresses[i]) for i in held[b.name] + held[c.name]} | gateways

    # Node 0's VXLAN device deleted by hand: made again, its entries programmed again.
    [device] = vxlans(a)
    in_ns(a, "ip", "link", "del", device)
    far = held[b.name][0]
    until(f"{a.name}'s VXLAN device healed",
          lambda: fetch(a, compose, src, addresses[far]) == f"shop-web-{far}", 15)
    assert forwarding(a) == (vteps, ips)

    # Node 2's containers go (`down` there): every other node forgets them, and node 2
    # has no VXLAN device left.
    c.stackd("-f", str(compose), "down", "-t", "0")
    assert vxlans(c) == []
    for n in (a, b):
        until(f"{n.name} forgetting {c.name}'s containers",
              lambda n=n: c.address not in forwarding(n)[0] and
              not {str(addresses[i]) for i in held[c.name]} & forwarding(n)[1], 10)

    # Node 1 goes down (its daemon killed): once its lease is gone, node 0 forwards
    # nothing to it any more.
    pid = read_pid(pid_path(b.roots))
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    until(f"{a.name} forgetting {b.name}", lambda: b.address not in forwarding(a)[0] and
          not {str(addresses[i]) for i in held[b.name]} & forwarding(a)[1], TTL + 10)

    # Every node leaves (daemon stopped, membership forgotten) and takes the stack down:
    # no VXLAN device, so no forwarding entry, is left anywhere.
    for n in world.nodes:
        stop_daemon(n.roots)
        (n.roots.state / "cluster.json").unlink()
        n.stackd("-f", str(compose), "down", "-t", "0")
        assert vxlans(n) == []
        assert forwarding(n) == (set(), set())
        leftover = in_ns(n, "ip", "-o", "link", "show")
        assert f"stk{n.roots.id}" not in leftover, leftover
        stop_daemon(n.roots)
        assert settle(n.roots) == []  # no cgroup, process or mount of the node's root


async def test_racing_nodes_agree_on_each_network_and_no_two_networks_share_subnet_or_vni(
        etcd1: EtcdCluster) -> None:
    stores = [Store(etcd1.endpoints, prefix="/o/") for _ in range(6)]
    got: dict[tuple[str, int], OverlayNetwork] = {}

    async def node(i: int, network: str) -> None:
        got[(network, i)] = await overlay.allocate(stores[i], network, None, 4789)

    async with trio.open_nursery() as n:  # 6 nodes make 3 networks at once
        for i in range(6):
            for network in ("p_a", "p_b", "p_c"):
                n.start_soon(node, i, network)
    records = {net: {got[(net, i)] for i in range(6)} for net in ("p_a", "p_b", "p_c")}
    assert all(len(r) == 1 for r in records.values()), records
    chosen = [r.pop() for r in records.values()]
    assert len({r.subnet for r in chosen}) == 3 and len({r.vni for r in chosen}) == 3
    assert all(r.port == 4789 and r.block == 24 for r in chosen)

    s = stores[0]
    a = next(r for r in chosen if r.network == "p_a")
    # The record goes only once no node holds a block and the stack is gone.
    await ipam.claim(s, "p_a", "n0", a.subnet, a.block)
    await s.put(keys.stack("p"), StackRecord("p", ()).to_json())
    assert not await overlay.forget(s, "p_a", "p")
    await ipam.release(s, "p_a", "n0")
    assert not await overlay.forget(s, "p_a", "p")
    await s.delete(keys.stack("p"))
    assert await overlay.forget(s, "p_a", "p")
    assert await s.get(keys.overlay_network("p_a")) is None
    for st in stores:
        await st.aclose()
