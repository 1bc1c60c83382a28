"""Fixtures for the network tests; the world they build is in tests/support/networld.py."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio
from dnslib import QTYPE, RR, A, DNSRecord
from support.busybox import busybox_available, make_busybox_rootfs
from support.hostpackages import require
from support.networld import WORLD_NAME, World, leftovers, sh

from stackd.netbridge import Networks, Resolver
from stackd.netbridge import netns as netns_files
from stackd.netbridge.socketlb import SocketBalancer
from stackd.roots import Roots
from stackd.runtime import Runtime
from stackd.state.db import StateDB


@pytest.fixture(scope="session")
def busybox_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(busybox_available(), "busybox-static")
    layer = make_busybox_rootfs(tmp_path_factory.mktemp("layers") / "busybox")
    os.chmod(layer.parent, 0o755)
    return layer


async def fake_upstream(*, task_status: trio.TaskStatus[tuple[str, int]]) -> None:
    """The host's "upstream resolver": knows WORLD_NAME, NXDOMAIN for the rest."""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with sock:
        await sock.bind(("127.0.0.1", 0))
        task_status.started(sock.getsockname())
        while True:
            data, addr = await sock.recvfrom(4096)
            q = DNSRecord.parse(data)
            reply = q.reply()
            if str(q.q.qname).rstrip(".") == WORLD_NAME and q.q.qtype == QTYPE.A:
                reply.add_answer(RR(q.q.qname, QTYPE.A, rdata=A("198.51.100.7"), ttl=60))
            elif str(q.q.qname).rstrip(".") != WORLD_NAME:
                reply.header.rcode = 3
            await sock.sendto(reply.pack(), addr)


@pytest.fixture
async def world(roots: Roots, no_leaks: Roots, busybox_layer: Path, tmp_path: Path,
                nursery: trio.Nursery) -> AsyncIterator[World]:
    upstream = await nursery.start(fake_upstream)
    resolver = Resolver(upstreams=[upstream])
    await nursery.start(resolver.serve)
    db = StateDB.open(roots.state / "stackd.db")
    w = World(roots, Networks(roots, db, resolver=resolver), resolver, Runtime(roots),
              busybox_layer, tmp_path)
    try:
        yield w
    finally:
        problems: list[str] = []
        with trio.CancelScope(shield=True):
            for p in w.procs:
                p.kill()
                p.wait()
            for name in list(w.boxes):
                try:  # one failing removal must not keep the rest from being cleaned
                    await w.remove(name)
                except Exception as exc:
                    problems.append(f"removing {name}: {exc!r}")
                    w.boxes.pop(name, None)
            for peer in w.peers:
                sh("ip", "link", "del", peer.host_ifname, check=False)
                netns_files.remove(peer.path)
            try:
                await w.nets.teardown()
            except Exception as exc:
                problems.append(f"teardown: {exc!r}")
            left = leftovers(roots, db)
            db.close()
        assert (problems, left) == ([], []), f"cleanup problems {problems}, left behind {left}"


@pytest.fixture(params=["dnat", "socket-lb"])
def host_path(request: pytest.FixtureRequest, world: World) -> Iterator[str]:
    """A published-port test twice: with DNAT alone (no daemon holds the programs,
    or the kernel lacks them) and with the daemon's socket load balancer attached."""
    if request.param == "socket-lb":
        world.nets.sockets = SocketBalancer()
    try:
        yield request.param
    finally:
        if world.nets.sockets is not None:
            world.nets.sockets.close()
            world.nets.sockets = None
