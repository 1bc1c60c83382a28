"""The socket load balancer on a real host: the host's own connections to a published
port go straight to the container, and nothing else changes."""

from __future__ import annotations

import socket

import pytest
from support.freeaddrs import free_port
from support.networld import World, sh

from stackd.netbridge import PortBinding, socketlb
from stackd.netbridge.firewall import DnatRule
from stackd.netbridge.socketlb import SocketBalancer, endpoint, local_addresses

pytestmark = pytest.mark.root

HTTPD = ("sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www")


def get(host: str, port: int) -> tuple[str, tuple[str, int], str]:
    """(this end's address, the peer getpeername reports, the page) of one request."""
    with socket.create_connection((host, port), timeout=5) as s:
        local, peer = s.getsockname()[0], s.getpeername()
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return local, peer, data.decode().rsplit("\r\n\r\n", 1)[-1]


def host_address() -> str:
    """The host's own address on its uplink (the source of its default route)."""
    out = sh("ip", "-o", "route", "get", "192.0.2.255").stdout.split()
    assert "src" in out, "this host has no route off itself to test with"
    addr = out[out.index("src") + 1]
    assert addr in local_addresses()
    return addr


async def test_a_host_connection_to_a_published_port_is_made_to_the_container(
        world: World) -> None:
    net = await world.network("slb")
    box = await world.box("site", ["slb"], args=HTTPD)
    port = free_port()
    world.nets.sockets = SocketBalancer()
    try:
        await world.nets.publish(box.id, [PortBinding(port, 80)], box.ip)
        # Straight to the container: this end is the bridge's address, as a direct
        # connection's would be (through DNAT it stays 127.0.0.1); the socket still
        # says it is connected where it was asked to.
        assert get("127.0.0.1", port) == (net.gateway, ("127.0.0.1", port), "site\n")
        addr = host_address()
        assert get(addr, port) == (net.gateway, (addr, port), "site\n")
    finally:
        world.nets.sockets.close()
        world.nets.sockets = None
    # Detached (the daemon gone): DNAT alone serves the same port.
    assert get("127.0.0.1", port) == ("127.0.0.1", ("127.0.0.1", port), "site\n")


async def test_a_containers_own_loopback_and_unpublished_ports_are_left_alone(
        world: World) -> None:
    await world.network("own")
    box = await world.box("site", ["own"], args=HTTPD)
    await world.box("neighbour", ["own"])
    port = free_port()
    world.nets.sockets = SocketBalancer()
    try:
        await world.nets.publish(box.id, [PortBinding(port, 80, host_ip="127.0.0.1")],
                                 box.ip)
        assert get("127.0.0.1", port)[2] == "site\n"
        # Inside a container 127.0.0.1 is its own: nothing listens there.
        code, _ = await world.wget("neighbour", f"http://127.0.0.1:{port}/")
        assert code != 0
        # Published on 127.0.0.1 only: the host's other addresses do not answer.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host_address(), port), timeout=5).close()
        await world.nets.unpublish(box.id)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        world.nets.sockets.close()
        world.nets.sockets = None


def test_a_full_map_leaves_the_ports_past_it_to_dnat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socketlb, "_PORTS_MAX", 2)
    balancer = SocketBalancer()
    try:
        rules = [DnatRule("", 40000 + i, "tcp", "10.1.0.2", 80, f"c{i}") for i in range(3)]
        balancer.sync(rules)  # no error: the third port is DNAT's alone
        assert len(balancer.ports.keys()) == 2
        balancer.sync(rules[2:])  # room again: it gets its entry
        assert balancer.ports.keys() == [endpoint("0.0.0.0", 40002)]
    finally:
        balancer.close()
