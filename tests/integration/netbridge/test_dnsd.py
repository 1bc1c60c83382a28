"""The resolver process (stackd/netbridge/dnsd.py) fed by a `DnsFeed`, as the daemon
feeds it: started on the first network, answering from its own session whatever
the feed wrote, re-adopted by a second feed (a new daemon), made good after a
SIGKILL, keeping its table over a damaged file, gone after the last network.

Its "gateway" is a loopback address of the test's own (127.<id>.1), where a DNS
answer goes back to the querying socket's address (127.<id>.2…): no bridge needed.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from dnslib import QTYPE, DNSRecord

from stackd.leaks import find_leaks
from stackd.netbridge import DnsFeed, resolver_pid
from stackd.netbridge.dnsfiles import DnsPaths
from stackd.roots import Roots

pytestmark = pytest.mark.root


def net(roots: Roots) -> str:
    """127.a.b: a /24 of loopback of this root's own (its id's 16 bits)."""
    rid = int(roots.id, 16)
    return f"127.{rid >> 8}.{rid & 0xff}"


def ask(source: str, gateway: str, name: str) -> list[str]:
    """A records for `name`, asked from `source` (which container asks)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.bind((source, 0))
        sock.settimeout(2)
        sock.sendto(DNSRecord.question(name).pack(), (gateway, 53))
        reply = DNSRecord.parse(sock.recv(4096))
    return sorted(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A)


def gone(pid: int, seconds: float = 5) -> bool:
    """Exited (a zombie waiting for whichever reaper it was handed to counts)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            return True
        if fields[0] == "Z":
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def resolver_root(roots: Roots, no_leaks: Roots) -> Iterator[Roots]:
    yield roots
    pid = resolver_pid(roots)
    if pid is not None:  # a failed test: stop it so no_leaks judges the rest
        os.kill(pid, signal.SIGKILL)
        gone(pid)


def feed_with_two(roots: Roots) -> tuple[DnsFeed, str]:
    prefix = net(roots)
    feed = DnsFeed(roots)
    feed.add("t_a", "c1", f"{prefix}.2", ["c1", "api"])
    feed.add("t_a", "c2", f"{prefix}.3", ["c2", "api"])
    return feed, prefix


async def test_fed_records_are_answered_by_a_process_that_outlives_its_feeder(
        resolver_root: Roots) -> None:
    roots = resolver_root
    feed, prefix = feed_with_two(roots)
    gateway = f"{prefix}.1"
    await feed.listen("t_a", gateway)
    await feed.flush()
    pid = resolver_pid(roots)
    assert pid is not None
    assert await trio.to_thread.run_sync(ask, f"{prefix}.2", gateway, "api") == \
        [f"{prefix}.2", f"{prefix}.3"]
    paths = DnsPaths(roots.run)
    for f in (paths.records, paths.socket, paths.pidfile, paths.lock, paths.log):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f  # root-only: names and addresses
    # its own session: not in the test's process group, so no group signal reaches it
    assert os.getsid(pid) == pid != os.getpgrp()

    feed.set_ready("c2", False)  # a failing health check
    await feed.flush()
    assert await trio.to_thread.run_sync(ask, f"{prefix}.2", gateway, "api") == [f"{prefix}.2"]

    # A new daemon: a new feed over the same run dir. It carries the unready set on
    # and reaches the same process (no second one).
    again = DnsFeed(roots)
    await again.listen("t_a", gateway)
    again.add("t_a", "c1", f"{prefix}.2", ["c1", "api"])
    again.add("t_a", "c2", f"{prefix}.3", ["c2", "api"])
    again.add("t_a", "c3", f"{prefix}.4", ["c3", "api"])
    await again.flush()
    assert resolver_pid(roots) == pid
    assert await trio.to_thread.run_sync(ask, f"{prefix}.2", gateway, "api") == \
        [f"{prefix}.2", f"{prefix}.4"]
    assert [leak.kind for leak in find_leaks(roots.id, [roots])] == ["resolver"]

    # The last network goes: so does the process, before flush returns.
    await again.unlisten("t_a")
    await again.flush()
    assert resolver_pid(roots) is None
    assert gone(pid, 0.1)


async def test_a_killed_resolver_is_started_again_and_a_damaged_file_is_refused(
        resolver_root: Roots) -> None:
    roots = resolver_root
    feed, prefix = feed_with_two(roots)
    gateway = f"{prefix}.1"
    await feed.listen("t_a", gateway)
    await feed.flush()
    pid = resolver_pid(roots)
    assert pid is not None

    problems: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed.keep, problems.append)
        os.kill(pid, signal.SIGKILL)
        assert gone(pid)
        with trio.fail_after(5):
            while resolver_pid(roots) in (None, pid):
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert await trio.to_thread.run_sync(ask, f"{prefix}.2", gateway, "api") == \
        [f"{prefix}.2", f"{prefix}.3"]

    DnsPaths(roots.run).records.write_text('{"version": 1, "networks": [')
    feed.remove("c2")
    reply = await feed._ask({"op": "reload"})  # as a flush would, of the file as it is
    assert reply is not None and reply["ok"] is False and "not JSON" in reply["error"]
    # still serving the table it had
    assert await trio.to_thread.run_sync(ask, f"{prefix}.2", gateway, "api") == \
        [f"{prefix}.2", f"{prefix}.3"]
    await feed.flush()  # the feed's own write replaces the damage
    assert await trio.to_thread.run_sync(ask, f"{prefix}.2", gateway, "api") == [f"{prefix}.2"]

    await feed.unlisten("t_a")
    await feed.flush()
    assert resolver_pid(roots) is None


async def test_network_rm_without_a_daemon_ends_the_resolver(resolver_root: Roots) -> None:
    """`stackd network rm` works on the store with no daemon: it tells the resolver too,
    which exits with the root's last network instead of serving a removed one."""
    from stackd.netbridge import Networks, NetworkSpec
    from stackd.state.db import StateDB

    roots = resolver_root
    db = StateDB.open(roots.state / "stackd.db")
    try:
        nets = Networks(roots, db, resolver=DnsFeed(roots))
        state = await nets.ensure_network(NetworkSpec("t_solo", "t", "solo"))
        pid = resolver_pid(roots)
        assert pid is not None
        env = dict(os.environ, STACKD_ROOT=str(roots.state), STACKD_RUN=str(roots.run))
        r = await trio.run_process([sys.executable, "-m", "stackd", "network", "rm", "t_solo"],
                                   env=env, capture_stdout=True, capture_stderr=True,
                                   check=False)
        assert r.returncode == 0, r.stderr
        assert resolver_pid(roots) is None
        assert gone(pid)
        assert not Path("/sys/class/net", state.bridge).exists()
    finally:
        await Networks(roots, db).teardown()
        db.close()


async def test_a_gateway_it_cannot_listen_on_is_said_and_tried_again(
        resolver_root: Roots) -> None:
    """Another DNS server on one gateway's port 53: the other networks are served, the
    feed says which could not be, and `keep` serves it once the port is free."""
    roots = resolver_root
    feed, prefix = feed_with_two(roots)
    await feed.listen("t_a", f"{prefix}.1")
    await feed.listen("t_b", f"{prefix}.9")
    feed.add("t_b", "c4", f"{prefix}.10", ["c4", "db"])
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind((f"{prefix}.9", 53))
    with squatter:
        await feed.flush()
        assert feed.problem is not None
        assert f"DNS cannot listen on {prefix}.9:53" in feed.problem
        assert await trio.to_thread.run_sync(ask, f"{prefix}.2", f"{prefix}.1", "api") == \
            [f"{prefix}.2", f"{prefix}.3"]
    reported: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed.keep, reported.append)
        with trio.fail_after(5):
            while feed.problem is not None:
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert reported and "t_b" in reported[0]
    assert await trio.to_thread.run_sync(ask, f"{prefix}.10", f"{prefix}.9", "db") == \
        [f"{prefix}.10"]
    await feed.unlisten("t_a")
    await feed.unlisten("t_b")
    await feed.flush()
    assert resolver_pid(roots) is None


async def test_two_feeds_starting_at_once_get_one_resolver(resolver_root: Roots) -> None:
    roots = resolver_root
    prefix = net(roots)
    feeds = []
    for _ in range(3):
        feed = DnsFeed(roots)
        await feed.listen("t_a", f"{prefix}.1")
        feed.add("t_a", "c1", f"{prefix}.2", ["c1", "api"])
        feeds.append(feed)
    async with trio.open_nursery() as nursery:
        for feed in feeds:
            nursery.start_soon(feed.flush)
    assert [f.problem for f in feeds] == [None, None, None]
    assert len([leak for leak in find_leaks(roots.id, [roots]) if leak.kind == "resolver"]) == 1
    assert await trio.to_thread.run_sync(ask, f"{prefix}.2", f"{prefix}.1", "api") == \
        [f"{prefix}.2"]
    await feeds[0].unlisten("t_a")
    await feeds[0].flush()
    assert resolver_pid(roots) is None
