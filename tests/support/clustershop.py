"""A 3-node cluster on one machine (tests/support/clusterworld.py), with nodes that
can run stack networks (clusternet.py), and a stack up on it: `web`, one replica per
node, an HTTP server answering its own container name on a published port, healthy
while a file named after it exists in a host directory the test controls."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from stackd.cluster import keys
from stackd.cluster.records import SlotStatus
from stackd.cluster.store import Store
from stackd.images import ImageStore
from support.busybox import make_busybox_tar
from support.clusternet import NetNode
from support.clusterworld import World, build
from support.freeaddrs import free_port

REPLICAS = 3
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
      replicas: {REPLICAS}
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
    """The A records the node's DNS gives its own replica (its first, if it runs
    several) for `name`, sorted."""
    found = sorted(p.name for p in (node.node.roots.run / "netns").glob("shop-web-*"))
    assert found, f"no replica on {node.name}"
    nets = json.loads(node.stackd("network", "inspect", NETWORK).stdout)
    net = nets[0] if isinstance(nets, list) else nets
    out = node.in_container(found[0], DIG, str(net["gateway"]), name)
    assert isinstance(out, list)
    return out


def mesh_backends(node: NetNode, port: int) -> list[str]:
    """The backends (ip) of the node's rule for `port`, as nft lists its table."""

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


@contextmanager
def shop_up(tmp_path: Path, etcd_members: int = 1) -> Iterator[Shop]:
    """3 joined nodes and the stack up on them, one replica each, all ready; all of it
    stopped and removed after. The nodes join with every etcd member's endpoint."""
    from support.e2e_stop import stop_daemon

    w = build(tmp_path, nodes=3, etcd_members=etcd_members)
    compose = tmp_path / "compose.yaml"
    nodes: list[NetNode] = []
    try:
        nodes += [NetNode(n, tmp_path) for n in w.nodes]
        tar = make_busybox_tar(tmp_path / "busybox.tar", tmp_path)
        for n in w.nodes:
            ImageStore(n.roots).import_rootfs(tar, ref=IMAGE)
        health = tmp_path / "health"
        health.mkdir()
        for i in range(1, REPLICAS + 1):
            (health / f"shop-web-{i}").touch()
        port = free_port()
        compose.write_text(stack(port, health))
        assert w.etcd is not None
        for n in nodes:
            n.stackd("node", "join", "--etcd", *w.etcd.endpoints, "--name", n.name,
                     "--ttl", str(TTL), "--address", n.node.address)
        nodes[0].stackd("-f", str(compose), "up", "-d")
        s = Shop(w, nodes, port, health)
        until_or_dump(nodes, "every replica ready in etcd, one per node",
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




GET = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2.0) as s:
        s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    print(data.partition(b"\\r\\n\\r\\n")[2].decode().strip())
except OSError as e:
    print(f"! {e}")
"""


def fetch(world: World, address: str, port: int) -> str:
    """The body an HTTP GET of address:port gets from the switch's namespace (another
    host on the underlay); "! <error>" if it fails."""
    r = subprocess.run(["nsenter", f"--net=/run/netns/{world.switch}", sys.executable,
                        "-c", GET, address, str(port)], capture_output=True, text=True,
                       timeout=30, check=True)
    return r.stdout.strip()
