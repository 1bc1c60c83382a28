"""DNS across the cluster, on real daemons: 3 nodes, each in its own network namespace
with its own state root, one etcd member. `up` on one node runs 3 replicas, one per
node, each on the stack's network of its own node. Every node's summaries are in
etcd, bound to its lease; every node's DNS answers the service name with the ready
replicas of all nodes, exactly as the summaries say; a replica made unready (its
health check failing) leaves the answers on every node; and each node's routing mesh
rules name the ready replicas of all nodes. (Connections to another node's replica
need the overlay: tests/cluster/test_cluster_mesh.py.)"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.busybox import busybox_available, make_busybox_tar
from support.clusternet import NetNode
from support.clusterworld import World, build
from support.freeaddrs import free_port

from stackd.cli.client import Client
from stackd.cluster import keys
from stackd.cluster.records import SlotStatus
from stackd.cluster.store import Store
from stackd.images import ImageStore

TTL = 5
IMAGE = "stackd-demo/busybox:latest"
NETWORK = "shop_default"


def stack(port: int, health: Path) -> str:
    return f"""
name: shop
services:
  web:
    image: {IMAGE}
    command: [sh, -c, "hostname > /tmp/index.html; exec httpd -f -p 80 -h /tmp"]
    stop_signal: SIGKILL
    ports: ["{port}:80"]
    volumes: ["{health}:/health:ro"]
    healthcheck:
      test: [CMD-SHELL, "test -e /health/$$(hostname)"]
      interval: 1s
      timeout: 1s
      retries: 1
    x-stackd: {{restart_on_unhealthy: false}}
    deploy:
      replicas: 3
      resources: {{reservations: {{cpus: "0.1"}}}}
"""


class Shop:
    """The cluster and its stack, up: every replica ready."""

    def __init__(self, world: World, nodes: list[NetNode], port: int, health: Path) -> None:
        self.world, self.nodes, self.port, self.health = world, nodes, port, health

    def statuses(self) -> dict[str, tuple[SlotStatus, int]]:
        """slot → (its summary, the lease it is bound to), as etcd has them."""
        assert self.world.etcd is not None
        endpoints = self.world.etcd.endpoints

        async def go() -> dict[str, tuple[SlotStatus, int]]:
            async with Store(endpoints, timeout=2.0) as s:
                kvs, _ = await s.range(keys.statuses("shop"))
            return {keys.tail(kv.key, keys.statuses("shop")):
                    (SlotStatus.from_json(kv.key, kv.value), kv.lease) for kv in kvs}
        return self.world.run_in_switch(go)

    def ready_ips(self) -> list[str]:
        return sorted(s.addresses[NETWORK] for s, _ in self.statuses().values() if s.ready)

    def set_healthy(self, container: str, healthy: bool) -> None:
        flag = self.health / container
        if healthy:
            flag.touch()
        else:
            flag.unlink()


DIG = """
import json, socket, sys
import dnslib
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2.0)
s.sendto(dnslib.DNSRecord.question(sys.argv[2], "A").pack(), (sys.argv[1], 53))
reply = dnslib.DNSRecord.parse(s.recv(4096))
print(json.dumps(sorted(str(rr.rdata) for rr in reply.rr if rr.rtype == dnslib.QTYPE.A)))
"""


def resolve(node: NetNode, name: str) -> list[str]:
    """The A records the node's DNS gives its own replica for `name`, sorted."""
    found = sorted(p.name for p in (node.node.roots.run / "netns").glob("shop-web-*"))
    assert len(found) == 1, found
    nets = json.loads(node.stackd("network", "inspect", NETWORK).stdout)
    net = nets[0] if isinstance(nets, list) else nets
    out = node.in_container(found[0], DIG, str(net["gateway"]), name)
    assert isinstance(out, list)
    return out


def mesh_backends(node: NetNode, port: int) -> list[str]:
    """The backends (ip) of the node's rule for `port`, as nft lists its table."""
    import subprocess

    text = subprocess.run(["nsenter", f"--net=/run/netns/{node.node.netns}", "nft", "list",
                           "table", "inet", "stackd"], capture_output=True, text=True,
                          check=True, timeout=30).stdout
    line = next(x for x in text.splitlines() if f"dport {port} dnat" in x)
    if "numgen" in line:
        return sorted(re.findall(r"\d+ : ([\d.]+) \. \d+", line))
    return re.findall(r"dnat ip to ([\d.]+):", line)


def until(what: str, pred: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def until_or_dump(nodes: list[NetNode], what: str, pred: Callable[[], bool],
                  timeout: float) -> None:
    """until(), and on a timeout what each node runs and logged (a CI failure's story)."""
    try:
        until(what, pred, timeout)
    except AssertionError:
        from stackd.daemon.paths import log_path

        for n in nodes:
            print(f"--- {n.name}: ps", n.stackd("ps", "--all-projects", check=False).stdout)
            log = log_path(n.node.roots)
            print(f"--- {n.name}: daemon log tail",
                  log.read_text()[-3000:] if log.exists() else "(none)")
        raise


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    if not busybox_available():
        pytest.skip("busybox-static is not installed")
    from support.e2e_stop import stop_daemon

    w = build(tmp_path, nodes=3, etcd_members=1)
    compose = tmp_path / "compose.yaml"
    nodes: list[NetNode] = []
    try:
        nodes += [NetNode(n, tmp_path) for n in w.nodes]
        tar = make_busybox_tar(tmp_path / "busybox.tar", tmp_path)
        for n in w.nodes:
            ImageStore(n.roots).import_rootfs(tar, ref=IMAGE)
        health = tmp_path / "health"
        health.mkdir()
        for i in range(1, 4):
            (health / f"shop-web-{i}").touch()
        port = free_port()
        compose.write_text(stack(port, health))
        assert w.etcd is not None
        for n in nodes:
            n.stackd("node", "join", "--etcd", *w.etcd.endpoints, "--name", n.name,
                     "--ttl", str(TTL), "--address", n.node.address)
        nodes[0].stackd("-f", str(compose), "up", "-d")
        s = Shop(w, nodes, port, health)
        until_or_dump(nodes, "3 ready replicas in etcd, one per node",
              lambda: sorted((st.node, st.ready) for st, _ in s.statuses().values())
              == [(n.name, True) for n in w.nodes], 60)
        yield s
    finally:
        for n in w.nodes:
            stop_daemon(n.roots)
            (n.roots.state / "cluster.json").unlink(missing_ok=True)
        for n in nodes:
            n.stackd("-f", str(compose), "down", "-t", "0", check=False)
            n.close()
        w.close()


def test_every_node_answers_with_the_ready_replicas_of_all_nodes(shop: Shop) -> None:
    nodes = shop.nodes
    statuses = shop.statuses()
    # One summary per slot, by the node that runs it, bound to that node's lease.
    for n in nodes:
        with Client(n.node.roots, autostart=False) as c:
            info = c.get("/v1/cluster")
        for slot in info["assigned"].get("shop", []):
            record, lease = statuses[slot]
            assert (record.node, record.container, record.state) == \
                (n.name, f"shop-{slot}", "running")
            assert lease == info["lease"] and lease != 0
            assert set(record.addresses) == {NETWORK}
            assert [(p.host_port, p.container_port) for p in record.ports] == \
                [(shop.port, 80)]
    want = shop.ready_ips()
    assert len(want) == 3
    for n in nodes:
        until(f"{n.name}'s DNS to list all 3", lambda n=n: resolve(n, "web") == want, 10)
        until(f"{n.name}'s mesh to name all 3",
              lambda n=n: mesh_backends(n, shop.port) == want, 10)

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
