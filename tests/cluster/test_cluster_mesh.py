"""The routing mesh on the real kernel.

A node's published port balanced to a replica on another node: the rule the mesh
adds (`DnatRule(remote=True)`, from the replica's status summary) applied with nft in
a node's namespace, the remote replica in a namespace reached over a routed link that
stands in for the overlay (it has no route back to the client, as a replica on
another node has none to the client that reached this node): the connection is
DNAT'ed there and its replies come back through the node (masqueraded).

The same through real daemons, from a node whose own replica is out, to the replicas
of the other nodes over the overlay (cluster-unique, routed replica addresses).
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.busybox import busybox_available
from support.clustershop import GET, Shop, fetch, mesh_backends, resolve, shop_up, until
from support.freeaddrs import free_port, free_ports, free_subnet

from stackd.errors import ConflictError
from stackd.netbridge.firewall import DnatRule
from stackd.roots import Roots

SERVE = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\nremote replica\\n")
    c.close()
"""

APPLY = """
import sys
from stackd.netbridge import firewall
from stackd.netbridge.firewall import DnatRule
chain, ip, port, cport, remote = sys.argv[1:]
firewall.apply(chain, [], [DnatRule("", int(port), "tcp", ip, int(cport), "shop-web-2",
                                    "shop/web", True, remote=remote == "1")])
"""


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True,
                          timeout=30).stdout


class Triangle:
    """client ── node ── remote: three namespaces, two links, no route from the
    remote to the client."""

    def __init__(self) -> None:
        tag = secrets.token_hex(2)
        self.client, self.node, self.remote = (f"stkm{tag}{x}" for x in "cnr")
        self.namespaces: list[str] = []
        self.server: subprocess.Popen[str] | None = None
        front, back = free_subnet(24), free_subnet(24)
        while back == front:
            back = free_subnet(24)
        f, b = list(front.hosts()), list(back.hosts())
        self.client_ip, self.node_ip = str(f[1]), str(f[0])
        self.node_back_ip, self.remote_ip = str(b[0]), str(b[1])
        for ns in (self.client, self.node, self.remote):
            sh("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for (a, a_ip), (z, z_ip), n, name in (
                ((self.client, self.client_ip), (self.node, self.node_ip), 24, "f"),
                ((self.remote, self.remote_ip), (self.node, self.node_back_ip), 24, "b")):
            la, lz = f"stkm{tag}{name}a", f"stkm{tag}{name}z"
            sh("ip", "link", "add", la, "netns", a, "type", "veth", "peer", "name", lz,
               "netns", z)
            for ns, link, addr in ((a, la, a_ip), (z, lz, z_ip)):
                sh("ip", "-n", ns, "addr", "add", f"{addr}/{n}", "dev", link)
                sh("ip", "-n", ns, "link", "set", link, "up")
        sh("nsenter", f"--net=/run/netns/{self.node}", "sysctl", "-qw",
           "net.ipv4.ip_forward=1")

    def serve(self, port: int) -> None:
        self.server = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.remote}", sys.executable, "-c", SERVE,
             self.remote_ip, str(port)], stdout=subprocess.PIPE, text=True)
        assert self.server.stdout is not None
        assert self.server.stdout.readline().strip() == "ready"

    def publish(self, port: int, backend_port: int, *, remote: bool) -> None:
        sh("nsenter", f"--net=/run/netns/{self.node}", sys.executable, "-c", APPLY,
           secrets.token_hex(6), self.remote_ip, str(port), str(backend_port),
           "1" if remote else "0")

    def get(self, port: int) -> str:
        return sh("nsenter", f"--net=/run/netns/{self.client}", sys.executable, "-c", GET,
                  self.node_ip, str(port)).strip()

    def close(self) -> None:
        if self.server is not None:
            self.server.kill()
            self.server.wait()
        for ns in reversed(self.namespaces):  # their nft tables and links go with them
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


@pytest.fixture
def triangle() -> Iterator[Triangle]:
    t = Triangle()
    try:
        yield t
    finally:
        t.close()


def test_a_published_port_reaches_a_replica_on_another_node_and_its_replies_return(
        triangle: Triangle) -> None:
    backend = free_ports(2)  # two calls of free_port() may pick the same one
    port = backend + 1
    triangle.serve(backend)
    # As a local backend (no masquerade) the remote replica's replies have no way
    # back to the client: the connection fails.
    triangle.publish(port, backend, remote=False)
    assert triangle.get(port).startswith("!")
    # As the mesh writes it: DNAT'ed there, masqueraded, its replies come back.
    triangle.publish(port, backend, remote=True)
    assert triangle.get(port) == "remote replica"


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    if not busybox_available():
        pytest.skip("busybox-static is not installed")
    with shop_up(tmp_path) as s:
        yield s


def test_a_node_whose_replica_is_out_serves_its_port_and_names_from_the_others(
        shop: Shop) -> None:
    statuses = shop.statuses()
    first = shop.nodes[0]
    own = next(s for s, _ in statuses.values() if s.node == first.name)
    others = sorted(s.container for s, _ in statuses.values() if s.node != first.name)
    shop.set_healthy(own.container, False)
    until("its replica to be out", lambda: not shop.statuses()[own.slot][0].ready, 15)
    until("the mesh to hold only the others' replicas",
          lambda: len(mesh_backends(first, shop.port)) == 2, 10)
    # Connections to this node's port are balanced over the other nodes' replicas.
    deadline = time.monotonic() + 10
    seen: set[str] = set()
    while seen != set(others):
        assert time.monotonic() < deadline, seen
        body = fetch(shop.world, first.node.address, shop.port)
        assert body in others, body  # never its own (out) replica, never a failure
        seen.add(body)
    # And from this node's own container, the service name gives only theirs.
    answers = resolve(first, "web")
    assert sorted(answers) == shop.ready_ips()


def test_a_port_the_mesh_holds_for_a_service_is_refused_to_another(roots: Roots) -> None:
    from stackd.netbridge import Networks, PortBinding
    from stackd.state.db import StateDB

    nets = Networks(roots, StateDB.open(roots.state / "stackd.db"))
    port = free_port()
    nets.mesh = (DnatRule("", port, "tcp", "10.192.0.2", 80, "shop-web-2", "shop/web",
                          True, remote=True),)
    with pytest.raises(ConflictError, match=f"{port}/tcp .* by service shop/web"):
        nets.check_ports_free([PortBinding(port, 80, "tcp")], container_id="other-1",
                              group="other/api")
    # Its own replicas here share it, as replicas do.
    nets.check_ports_free([PortBinding(port, 80, "tcp")], container_id="shop-web-1-x",
                          group="shop/web")
