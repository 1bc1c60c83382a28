"""Who sees which name, and the wire answers, without sockets (Records, Resolver.answer)."""

from __future__ import annotations

from collections.abc import Awaitable

import trio
from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from support.freeaddrs import free_port

from stackd.netbridge.dns import Records, Resolver, upstreams_from_resolv_conf


def two_networks() -> Records:
    r = Records()
    r.add("p_front", "web-1", "10.0.0.2", ["p-web-1", "web"])
    r.add("p_front", "web-2", "10.0.0.3", ["p-web-2", "web"])
    r.add("p_front", "cli-1", "10.0.0.4", ["p-cli-1", "cli", "Client-Alias"])
    r.add("p_back", "db-1", "10.0.1.2", ["p-db-1", "db"])
    r.add("p_back", "cli-1", "10.0.1.3", ["p-cli-1", "cli"])
    return r


def test_names_are_seen_only_by_containers_sharing_a_network() -> None:
    r = two_networks()
    assert r.lookup("10.0.0.4", "db") == ["10.0.1.2"]  # cli is on both networks
    assert r.lookup("10.0.0.2", "db") is None  # web is not on back: not ours, forwarded
    assert r.lookup("10.0.1.2", "web") is None
    assert r.lookup("10.9.9.9", "web") is None  # unknown source: no stack names at all
    assert r.lookup("10.0.1.2", "CLI.") == ["10.0.1.3"]  # its address on the shared network
    assert r.lookup("10.0.0.2", "client-alias") == ["10.0.0.4"]


def test_a_links_alias_is_answered_to_the_linking_container_alone() -> None:
    """`app: {links: [postgres:db]}` beside a service named `db`: to app, `db` is
    postgres (Docker's: a link's alias is the linking endpoint's); to every other
    container `db` stays the db service. The alias was once a name of postgres on the
    whole network, so `worker` got both services' addresses for `db`, taking turns."""
    r = Records()
    r.add("n", "pg-1", "10.0.0.2", ["p-postgres-1", "postgres"])
    r.add("n", "db-1", "10.0.0.3", ["p-db-1", "db"])
    r.add("n", "app-1", "10.0.0.4", ["p-app-1", "app"], {"db": "postgres", "Store": "pg"})
    r.add("n", "worker-1", "10.0.0.5", ["p-worker-1", "worker"])
    for _ in range(2):  # not a turn of a rotation
        assert r.lookup("10.0.0.4", "db") == ["10.0.0.2"]
        assert r.lookup("10.0.0.5", "db") == ["10.0.0.3"]
    assert r.lookup("10.0.0.4", "postgres") == ["10.0.0.2"]
    assert r.lookup("10.0.0.4", "store") is None  # an alias of a name nobody has
    r.add("n", "pg-x", "10.0.0.6", ["pg"])
    assert r.lookup("10.0.0.4", "STORE.") == ["10.0.0.6"]
    assert r.lookup("10.0.0.5", "store") is None
    r.remove("app-1")
    r.add("n", "app-1", "10.0.0.4", ["p-app-1", "app"])  # recreated without its link
    assert r.lookup("10.0.0.4", "db") == ["10.0.0.3"]


def test_replicas_rotate_and_follow_scale_at_once() -> None:
    r = two_networks()
    firsts = [r.lookup("10.0.0.4", "web")[0] for _ in range(4)]  # type: ignore[index]
    assert firsts == ["10.0.0.2", "10.0.0.3", "10.0.0.2", "10.0.0.3"]
    r.add("p_front", "web-3", "10.0.0.5", ["web"])
    assert sorted(r.lookup("10.0.0.4", "web") or []) == ["10.0.0.2", "10.0.0.3", "10.0.0.5"]
    r.remove("web-2")
    r.remove("web-3")
    assert r.lookup("10.0.0.4", "web") == ["10.0.0.2"]
    r.remove("web-1")
    assert r.lookup("10.0.0.4", "web") is None


def test_unready_containers_leave_the_answers() -> None:
    r = two_networks()
    r.set_ready("web-1", False)
    assert r.lookup("10.0.0.4", "web") == ["10.0.0.3"]
    r.set_ready("web-1", True)
    assert sorted(r.lookup("10.0.0.4", "web") or []) == ["10.0.0.2", "10.0.0.3"]


def test_a_running_unready_container_answers_only_for_names_no_ready_one_has() -> None:
    """As Docker's DNS, every running container is found; readiness only steers a name
    to its ready containers. Leaving a starting one out made a name vanish until it
    was healthy: peers forming a cluster never found each other."""
    r = two_networks()
    r.set_ready("web-1", False, running=True)  # its health check is starting
    assert r.lookup("10.0.0.4", "web") == ["10.0.0.3"]
    assert r.lookup("10.0.0.4", "p-web-1") == ["10.0.0.2"]  # no ready one has the name
    r.set_ready("db-1", False, running=True)
    assert r.lookup("10.0.0.4", "db") == ["10.0.1.2"]
    r.set_ready("web-2", False, running=True)
    assert sorted(r.lookup("10.0.0.4", "web") or []) == ["10.0.0.2", "10.0.0.3"]
    r.set_ready("web-2", False)  # exited, or being stopped: never answered
    assert r.lookup("10.0.0.4", "web") == ["10.0.0.2"]
    r.set_ready("web-1", False)
    assert r.lookup("10.0.0.4", "web") is None
    assert r.lookup("10.0.0.4", "p-web-1") is None
    r.set_ready("web-1", True)
    assert r.lookup("10.0.0.4", "web") == ["10.0.0.2"]
    # Another node's ready replica (a static record) is a ready answer too.
    r.set_ready("web-1", False, running=True)
    r.set_records("p_front", "web", ["10.0.9.9"])
    assert r.lookup("10.0.0.4", "web") == ["10.0.9.9"]


def test_static_records_and_forgetting_a_network() -> None:
    r = two_networks()
    r.set_records("p_front", "legacy", ["192.0.2.10"])
    assert r.lookup("10.0.0.2", "legacy") == ["192.0.2.10"]
    r.forget_network("p_front")
    assert r.lookup("10.0.0.2", "legacy") is None
    assert r.lookup("10.0.1.3", "db") == ["10.0.1.2"]


def test_answer_on_the_wire() -> None:
    res = Resolver(upstreams=[])
    res.add("n", "a", "10.0.0.2", ["a", "svc"])
    res.add("n", "b", "10.0.0.3", ["svc"])
    reply = DNSRecord.parse(res.answer(DNSRecord.question("svc").pack(), "10.0.0.2") or b"")
    assert sorted(str(rr.rdata) for rr in reply.rr) == ["10.0.0.2", "10.0.0.3"]
    assert all(rr.ttl == 0 for rr in reply.rr)
    # A known name with no record of the asked type: NOERROR, empty (no upstream detour).
    aaaa = DNSRecord.parse(res.answer(DNSRecord.question("svc", "AAAA").pack(), "10.0.0.2")
                           or b"")
    assert (aaaa.header.rcode, aaaa.rr) == (RCODE.NOERROR, [])
    assert res.answer(DNSRecord.question("example.org").pack(), "10.0.0.2") is None
    assert res.answer(b"\x00garbage", "10.0.0.2") == b""


async def test_no_upstream_gives_servfail() -> None:
    res = Resolver(upstreams=[])
    q = DNSRecord.question("example.org", "A")
    with trio.fail_after(1):
        reply = DNSRecord.parse(await res.forward(q.pack()))
    assert reply.header.rcode == RCODE.SERVFAIL and reply.header.id == q.header.id
    assert QTYPE[reply.q.qtype] == "A"


def test_upstreams_from_resolv_conf() -> None:
    text = "# comment\nnameserver 127.0.0.53\nnameserver 10.7.7.1\nnameserver fe80::1\n" \
           "search lan\n"
    assert upstreams_from_resolv_conf(text, exclude=["10.7.7.1"]) == [("127.0.0.53", 53)]


async def test_udp_and_tcp_on_a_listener(nursery: trio.Nursery) -> None:
    """127.0.0.1 plays a gateway; the querying "container" is 127.0.0.1 as well."""
    port = free_port()
    res = Resolver(upstreams=[], port=port)
    await nursery.start(res.serve)
    await res.listen("n", "127.0.0.1")
    res.add("n", "me", "127.0.0.1", ["me"])
    res.add("n", "db-1", "10.0.0.9", ["db"])
    q = DNSRecord.question("db")

    udp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with udp, trio.fail_after(2):
        await udp.sendto(q.pack(), ("127.0.0.1", port))
        reply = DNSRecord.parse(await udp.recv(4096))
    assert [str(rr.rdata) for rr in reply.rr] == ["10.0.0.9"]

    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        with trio.fail_after(2):
            wire = q.pack()
            await stream.send_all(len(wire).to_bytes(2, "big") + wire)
            data = b""
            while len(data) < 2 or len(data) < 2 + int.from_bytes(data[:2], "big"):
                data += await stream.receive_some(4096)
    assert [str(rr.rdata) for rr in DNSRecord.parse(data[2:]).rr] == ["10.0.0.9"]

    await res.unlisten("n")
    assert res.records.lookup("127.0.0.1", "db") is None


async def test_many_listeners_all_answer_and_each_ends_with_its_network(
        nursery: trio.Nursery) -> None:
    """Each network's UDP is served by a thread blocked in its socket. 45 networks,
    more than trio's default 40 worker threads: every one answers, upstream included
    (handed back to trio), and unlistening ends its thread and closes its socket at
    once (shut down, so the thread wakes and returns)."""
    port = free_port()
    upstream = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await upstream.bind(("127.0.0.1", 0))
    res = Resolver(upstreams=[upstream.getsockname()], port=port)
    await nursery.start(res.serve)
    gateways = [f"127.88.0.{i}" for i in range(1, 46)]
    for i, gw in enumerate(gateways):
        await res.listen(f"n{i}", gw)
        res.add(f"n{i}", "me", "127.0.0.1", ["me"])  # the asker, on every network
        res.add(f"n{i}", f"c{i}", f"10.0.{i}.2", [f"svc{i}"])

    async def ask(gw: str, name: str) -> list[str]:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock, trio.fail_after(2):
            await sock.sendto(DNSRecord.question(name).pack(), (gw, port))
            return [str(rr.rdata) for rr in DNSRecord.parse(await sock.recv(4096)).rr]

    for i, gw in enumerate(gateways):
        assert await ask(gw, f"svc{i}") == [f"10.0.{i}.2"], gw
    # Not ours: forwarded upstream from the listener's thread by way of trio.
    with upstream:
        async with trio.open_nursery() as inner:
            answered: list[list[str]] = []
            inner.start_soon(lambda: _append(answered, ask(gateways[-1], "example.test")))
            with trio.fail_after(2):
                query, client = await upstream.recvfrom(4096)
            reply = DNSRecord.parse(query).reply()
            reply.add_answer(RR("example.test", QTYPE.A, rdata=A("192.0.2.7")))
            await upstream.sendto(reply.pack(), client)
    assert answered == [["192.0.2.7"]]

    for i in range(len(gateways)):
        await res.unlisten(f"n{i}")
    again = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with again, trio.fail_after(2):
        while True:  # its socket closed, not only idle: the address is free again
            try:
                await again.bind((gateways[0], port))
                break
            except OSError:
                await trio.sleep(0.01)


async def _append(into: list[list[str]], answer: Awaitable[list[str]]) -> None:
    into.append(await answer)
