"""Compose's networking model on real bridges, seen from inside busybox containers."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from ipaddress import IPv4Network

import pytest
import trio
from support.freeaddrs import free_port, free_ports, free_subnet
from support.networld import WORLD_NAME, World, ask, sh

from stackd.errors import ConflictError, NotFoundError, SpecError
from stackd.hostnames import nft_chain_prefix
from stackd.netbridge import (
    Attachment,
    Networks,
    NetworkSpec,
    PortBinding,
    Resolver,
    expand_ports,
)

pytestmark = pytest.mark.root

HTTPD = ("sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www")


async def test_service_names_reach_and_other_networks_cannot(world: World) -> None:
    await world.network("front")
    await world.network("back")
    await world.box("web1", ["front"], service="web", args=HTTPD)
    await world.box("client", ["front"], service="cli")
    await world.box("stranger", ["back"], service="other")
    web_ip = world.boxes["web1"].ip

    code, out = await world.wget("client", "http://web/")
    assert (code, out) == (0, "web1\n")
    code, out = await world.exec("client", "ping", "-c1", "-W2", "web")
    assert code == 0, out
    code, out = await world.wget("client", "http://web1/")  # the container name too
    assert (code, out) == (0, "web1\n")

    assert await world.nslookup("stranger", "web") == []
    assert await world.nslookup("stranger", "web1") == []
    code, _ = await world.wget("stranger", f"http://{web_ip}/", seconds=2)
    assert code != 0
    code, _ = await world.exec("stranger", "ping", "-c1", "-W1", web_ip)
    assert code != 0


async def test_a_subnet_whose_gateway_a_socket_still_holds_is_not_chosen(world: World) -> None:
    """Another root's resolver keeps its gateway bound (IP_FREEBIND) a moment after that
    root's bridge is gone; choosing that unrouted subnet made our DNS fail to listen."""
    from stackd.netbridge import boundaddrs, ipam, links
    from stackd.netbridge.dns import IP_FREEBIND

    def next_choice() -> IPv4Network:
        busy = [*links.routed_subnets(), *boundaddrs.as_networks(boundaddrs.bound_addresses())]
        return ipam.choose_subnet(world.nets.pool, world.nets.prefixlen, busy,
                                  [IPv4Network(n.subnet) for n in world.nets.list()])

    held = next_choice()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other_resolver:
        other_resolver.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        other_resolver.bind((str(ipam.default_gateway(held)), 53))
        assert next_choice() != held
        net = await world.network("front")  # DNS listens on its gateway, or this raises
    assert not IPv4Network(net.subnet).overlaps(held)
    await world.box("web1", ["front"], service="web")
    await world.box("client", ["front"], service="cli")
    assert await world.nslookup("client", "web") == [world.boxes["web1"].ip]


async def network_on_a_free_subnet(world: World, name: str) -> IPv4Network:
    """Network `name` on a /24 with its gateway at .254, on a subnet nothing routes."""
    for _ in range(5):
        subnet = free_subnet(24)
        try:
            await world.network(name, subnet=str(subnet), gateway=str(subnet[254]))
            return subnet
        except ConflictError:
            continue  # another run routed it between our look and our claim
    raise AssertionError("five free subnets in a row were taken before we could use them")


async def test_aliases_static_address_mac_and_second_network(world: World) -> None:
    subnet = await network_on_a_free_subnet(world, "a")
    fixed, legacy, gateway = str(subnet[42]), str(subnet[99]), str(subnet[254])
    await world.network("b")
    box = await world.box("multi", [
        Attachment("t_a", aliases=("db-primary",), ipv4_address=fixed,
                   mac_address="02:00:00:00:07:42"),
        Attachment("t_b")], extra_hosts=[f"legacy-db:{legacy}"])
    await world.box("asker", ["a"])
    assert (box.addresses[0].ifname, box.addresses[0].ip) == ("eth0", fixed)
    assert box.addresses[1].ifname == "eth1"
    assert await world.nslookup("asker", "db-primary") == [fixed]

    _, out = await world.exec("multi", "ip", "-o", "addr")
    assert "eth0" in out and f"{fixed}/24" in out and box.addresses[1].ip in out
    _, out = await world.exec("multi", "ip", "route")
    assert f"default via {gateway} dev eth0" in out
    _, out = await world.exec("multi", "cat", "/sys/class/net/eth0/address",
                                 "/sys/class/net/eth0/mtu", "/sys/class/net/lo/operstate")
    assert out.split() == ["02:00:00:00:07:42", "1500", "unknown"]  # lo up reads "unknown"
    _, out = await world.exec("multi", "cat", "/etc/hosts")
    assert f"{fixed}\tmulti" in out and f"{legacy}\tlegacy-db" in out
    code, out = await world.exec("multi", "ping", "-c1", "-W2", "multi")  # via /etc/hosts
    assert code == 0 and f"({fixed})" in out

    with pytest.raises(ConflictError, match=rf"{re.escape(fixed)} is already used by"):
        await world.box("twin", [Attachment("t_a", ipv4_address=fixed)])
    with pytest.raises(SpecError, match=rf"not a host address of {re.escape(str(subnet))}"):
        await world.box("lost", [Attachment("t_a", ipv4_address="10.1.1.1")])


async def test_published_ports_from_another_host_localhost_and_hairpin(
        world: World, host_path: str) -> None:
    await world.network("pub")
    box = await world.box("site", ["pub"], args=HTTPD)
    await world.box("neighbour", ["pub"])
    binding = PortBinding(host_port=free_ports(3), container_port=80)  # and the next two
    world.nets.check_ports_free([binding])
    await world.nets.publish(box.id, [binding], box.ip)
    client = world.peer("client")
    url = f"http://{client.host_ip}:{binding.host_port}/"

    r = client.run("timeout", "5", "busybox", "wget", "-q", "-O-", url)
    assert (r.returncode, r.stdout) == (0, "site\n"), r.stderr
    r = sh("timeout", "5", "busybox", "wget", "-q", "-O-",
           f"http://127.0.0.1:{binding.host_port}/", check=False)
    assert (r.returncode, r.stdout) == (0, "site\n"), r.stderr
    assert await world.wget("neighbour", url) == (0, "site\n")
    assert await world.wget("site", url) == (0, "site\n")  # hairpin onto itself

    # host_ip and a range: 127.0.0.1:P+1..P+2 → 80..81 answers on loopback only.
    local = expand_ports((binding.host_port + 1, binding.host_port + 2), (80, 81),
                         host_ip="127.0.0.1")
    await world.nets.publish(box.id, [binding, *local], box.ip)
    r = sh("timeout", "5", "busybox", "wget", "-q", "-O-",
           f"http://127.0.0.1:{binding.host_port + 1}/", check=False)
    assert (r.returncode, r.stdout) == (0, "site\n"), r.stderr
    r = client.run("timeout", "2", "busybox", "wget", "-q", "-O-",
                   f"http://{client.host_ip}:{binding.host_port + 1}/")
    assert r.returncode != 0

    await world.nets.unpublish(box.id)
    r = client.run("timeout", "3", "busybox", "wget", "-q", "-O-", url)
    assert r.returncode != 0


async def test_udp_port_is_published(world: World) -> None:
    await world.network("udp")
    box = await world.box("echo", ["udp"])
    # busybox has no UDP server; a host program in the container's netns plays one.
    world.in_box_netns("echo", "python3", "-c",
                       "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                       "s.bind(('0.0.0.0',5353))\n"
                       "while True:\n d,a=s.recvfrom(100); s.sendto(b'echo:'+d,a)")
    port = free_port()
    await world.nets.publish(box.id, [PortBinding(port, 5353, "udp")], box.ip)
    client = world.peer("uclient")
    code = ("import socket,sys,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "s.settimeout(0.5)\n"
            "for _ in range(10):\n"
            f" s.sendto(b'ping',('{client.host_ip}',{port}))\n"
            " try: print(s.recv(100).decode()); break\n"
            " except OSError: time.sleep(0.2)\n")
    r = client.run("python3", "-c", code)
    assert r.stdout.strip() == "echo:ping", r.stderr


def made_on_the_host(world: World) -> tuple[list[str], list[str], list[tuple[str, int]]]:
    """What this root has on the host: its devices, the rules of its own nftables
    chains (as nft prints them, one line each), and its recorded published ports."""
    links = sh("ip", "-o", "link", "show").stdout.splitlines()
    devices = sorted(name for line in links
                     if (name := line.split(":")[1].strip().split("@")[0])
                     .startswith(f"stk{world.roots.id}"))
    prefix = nft_chain_prefix(world.roots.chain_id)
    objects = json.loads(sh("nft", "-j", "list", "table", "inet", "stackd").stdout)["nftables"]
    rules = sorted(json.dumps(o["rule"]["expr"], sort_keys=True) for o in objects
                   if "rule" in o and o["rule"]["chain"].startswith(prefix))
    ports = sorted((p.container_id, p.host_port) for p in world.nets.alloc.ports())
    return devices, rules, ports


async def test_host_port_in_use_is_reported_before_anything_is_made(world: World) -> None:
    await world.network("busy")
    box = await world.box("b1", ["busy"], args=HTTPD)
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    port = listener.getsockname()[1]
    before = made_on_the_host(world)
    with listener:
        with pytest.raises(ConflictError, match=rf"port {port}/tcp is in use by pid \d+"):
            world.nets.check_ports_free([PortBinding(port, 80)])
        with pytest.raises(ConflictError, match=rf"port {port}/tcp is in use by pid \d+"):
            await world.nets.publish(box.id, [PortBinding(port, 80)], box.ip)
        assert made_on_the_host(world) == before
    free = PortBinding(port, 80)  # closed now
    await world.nets.publish(box.id, [free], box.ip)
    published = made_on_the_host(world)
    assert published[1] != before[1] and published[2] == [(box.id, port)]
    other = await world.box("b2", ["busy"])
    before = made_on_the_host(world)
    with pytest.raises(ConflictError, match=f"published by container {box.id}"):
        await world.nets.publish(other.id, [free], other.ip)
    assert made_on_the_host(world) == before


async def test_a_group_shares_a_port_over_its_ready_backends(world: World, host_path: str) -> None:
    await world.network("lb")
    a = await world.box("a", ["lb"], args=HTTPD)
    b = await world.box("b", ["lb"], args=HTTPD)
    stranger = await world.box("c", ["lb"], args=HTTPD)
    binding = PortBinding(host_port=free_port(), container_port=80)
    await world.nets.publish(a.id, [binding], a.ip, group="p/web")
    await world.nets.publish(b.id, [binding], b.ip, group="p/web")
    with pytest.raises(ConflictError, match=f"published by container {a.id}"):
        await world.nets.publish(stranger.id, [binding], stranger.ip, group="p/other")
    url = f"http://127.0.0.1:{binding.host_port}/"

    def answers(n: int) -> set[str]:
        out = set()
        for _ in range(n):
            r = sh("timeout", "5", "busybox", "wget", "-q", "-O-", url, check=False)
            assert r.returncode == 0, r.stderr
            out.add(r.stdout.strip())
        return out

    assert answers(4) == {"a", "b"}  # none ready yet: all of them
    await world.nets.set_port_ready(a.id, True)
    assert answers(4) == {"a"}  # only the ready one
    await world.nets.set_port_ready(b.id, True)
    assert answers(4) == {"a", "b"}
    await world.nets.set_port_ready(a.id, False)
    assert answers(4) == {"b"}
    await world.nets.unpublish(b.id)
    assert answers(2) == {"a"}  # the last backend, though unready


async def test_a_backend_taken_out_keeps_its_established_connections(
        world: World, host_path: str) -> None:
    # Each backend runs a shell per connection: "hostname" on a connection says which
    # backend holds it, for as long as it stays open.
    shell = ("nc", "-ll", "-p", "80", "-e", "sh")
    await world.network("drain")
    a = await world.box("a", ["drain"], args=shell)
    b = await world.box("b", ["drain"], args=shell)
    binding = PortBinding(host_port=free_port(), container_port=80)
    for box in (a, b):
        await world.nets.publish(box.id, [binding], box.ip, group="p/web")
    await world.nets.set_port_ready(a.id, True)

    def holder(conn: socket.socket) -> str:
        conn.sendall(b"hostname\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(100)
            assert chunk, "the connection was closed"
            data += chunk
        return data.decode().strip()

    def connect() -> socket.socket:
        deadline = time.monotonic() + 5
        while True:  # nc may not listen yet
            try:
                return socket.create_connection(("127.0.0.1", binding.host_port), timeout=5)
            except ConnectionRefusedError:
                assert time.monotonic() < deadline
                time.sleep(0.1)

    with connect() as old:
        assert holder(old) == "a"
        await world.nets.set_port_ready(b.id, True)
        await world.nets.set_port_ready(a.id, False)  # a leaves: new connections go to b
        with connect() as new:
            assert holder(new) == "b"
        assert holder(old) == "a"  # while the one a held goes on with a


async def test_egress_to_the_world_and_internal_blocks_it(world: World) -> None:
    far = world.peer("world")
    (world.tmp / "www").mkdir()
    (world.tmp / "www" / "index.html").write_text("the world\n")
    world.spawn_in_peer(far, "busybox", "httpd", "-f", "-p", "80", "-h", str(world.tmp / "www"))
    await world.network("open")
    await world.network("closed", internal=True)
    await world.box("out", ["open"])
    await world.box("in", ["closed"])
    url = f"http://{far.ip}/"
    deadline = time.monotonic() + 5
    while True:
        code, out = await world.wget("out", url)
        if code == 0 or time.monotonic() > deadline:
            break
        await trio.sleep(0.1)  # httpd starting
    assert (code, out) == (0, "the world\n")
    code, _ = await world.wget("in", url, seconds=2)
    assert code != 0
    # Names the resolver does not own go upstream (the test's fake upstream here).
    assert await world.nslookup("out", WORLD_NAME) == ["198.51.100.7"]


async def test_dns_follows_scale_one_three_one(world: World) -> None:
    await world.network("scale")
    probe = await world.box("probe", ["scale"])
    gateway = probe.addresses[0].gateway
    sock = world.dns_socket("probe")  # queries from the probe's address, timed precisely

    def expected(n: int) -> set[str]:
        return {world.boxes[f"api{i}"].ip for i in range(1, n + 1)}

    async def seen_within_a_second(n: int, changed_at: float) -> None:
        while (have := set(await trio.to_thread.run_sync(ask, sock, gateway, "api"))) \
                != expected(n):
            assert time.monotonic() - changed_at < 1.0, f"{have} a second after scaling to {n}"
            await trio.sleep(0.01)
        # and the container's own resolver agrees
        assert set(await world.nslookup("probe", "api")) == expected(n)

    with sock:
        await world.box("api1", ["scale"], service="api")
        await seen_within_a_second(1, time.monotonic())
        await world.box("api2", ["scale"], service="api")
        await world.box("api3", ["scale"], service="api")
        await seen_within_a_second(3, time.monotonic())
        firsts = {(await trio.to_thread.run_sync(ask, sock, gateway, "api"))[0]
                  for _ in range(6)}
        assert len(firsts) > 1  # rotated
        await world.remove("api3")
        changed = time.monotonic()
        await world.remove("api2")
        await seen_within_a_second(1, changed)


async def test_allocations_survive_a_restart_and_refusals_are_typed(world: World) -> None:
    state = await world.network("keep")
    box = await world.box("k1", ["keep"])
    other = await world.box("k2", ["keep"], service="kv")
    # `links: [kv:store]`: the alias is k3's alone, before a restart and after.
    await world.box("k3", [Attachment("t_keep", links=(("store", "kv"),))])
    assert await world.nslookup("k3", "store") == [other.ip]
    assert await world.nslookup("k1", "store") == []
    await world.resolver.unlisten("t_keep")  # the old daemon is gone, and its DNS with it
    assert await world.nslookup("k1", "kv") == []

    fresh = Resolver(upstreams=[])  # a restarted daemon: new objects, the same store
    async with trio.open_nursery() as nursery:
        await nursery.start(fresh.serve)
        again = Networks(world.roots, world.nets.alloc.db, resolver=fresh)
        await again.restore()
        assert again.inspect("t_keep") == state
        assert [a.ip for a in again.addresses(box.id)] == [box.ip]
        assert await world.nslookup("k1", "kv") == [other.ip]
        assert await world.nslookup("k3", "store") == [other.ip]
        assert await world.nslookup("k1", "store") == []
        assert (await again.ensure_network(NetworkSpec("t_keep", "t", "keep"))).subnet == \
            state.subnet
        await fresh.unlisten("t_keep")
        nursery.cancel_scope.cancel()

    with pytest.raises(SpecError, match="driver 'macvlan' is not supported"):
        await world.nets.ensure_network(NetworkSpec("t_x", "t", "x", driver="macvlan"))
    with pytest.raises(SpecError, match="driver 'overlay' needs this host to be a cluster node"):
        await world.nets.ensure_network(NetworkSpec("t_x", "t", "x", driver="overlay"))
    with pytest.raises(SpecError, match="enable_icc false is not supported on a cluster's"):
        await world.nets.ensure_network(NetworkSpec("t_x", "t", "x", driver="overlay",
                                                    isolated=True))
    with pytest.raises(NotFoundError, match="external network t_gone does not exist"):
        await world.nets.ensure_network(NetworkSpec("t_gone", "t", "gone", external=True))
    ext = await world.nets.ensure_network(NetworkSpec("t_keep", "u", "keep", external=True))
    assert ext.bridge == state.bridge
    with pytest.raises(ConflictError, match="in use by"):
        await world.nets.remove_network("t_keep")
    assert subprocess.run(["ip", "link", "show", state.bridge]).returncode == 0


async def test_teardown_leaves_nothing_of_the_root(world: World) -> None:
    from support.networld import leftovers

    from stackd.hostnames import nft_chain_prefix

    await world.network("t1")
    await world.network("t2", internal=True)
    box = await world.box("gone", ["t1", "t2"], args=HTTPD)
    await world.nets.publish(box.id, [PortBinding(free_port(), 80)], box.ip)
    assert nft_chain_prefix(world.roots.chain_id) in sh("nft", "list", "ruleset").stdout
    await world.runtime.delete(box.id, force=True)
    del world.boxes["gone"]
    await world.nets.teardown()

    assert leftovers(world.roots, world.nets.alloc.db) == []
    assert f"stk{world.roots.id}" not in sh("ip", "link").stdout
    assert nft_chain_prefix(world.roots.chain_id) not in sh("nft", "list", "ruleset").stdout


async def test_many_containers_attach_at_once_with_distinct_addresses(world: World) -> None:
    # Addresses are chosen under the lock, devices made outside it: concurrent attaches
    # must still never share an address, and each box must reach the others.
    await world.network("crowd")
    names = [f"c{i}" for i in range(8)]
    async with trio.open_nursery() as nursery:
        for name in names:
            nursery.start_soon(world.box, name, ["crowd"])
    ips = [world.boxes[n].addresses[0].ip for n in names]
    assert len(set(ips)) == len(ips)
    code, out = await world.exec("c0", "ping", "-c", "1", "-W", "2", ips[-1])
    assert code == 0, out
    await world.remove("c3")
    await world.box("c3b", ["crowd"])  # an address freed by detach is usable again
    assert world.boxes["c3b"].addresses[0].ip not in set(ips) - {ips[3]}


async def test_a_network_removed_while_another_process_restores_leaves_no_bridge(
        world: World) -> None:
    """`network rm` from the command line while a daemon runs: the daemon's bridge
    check saw the bridge gone, found the row still there and made the bridge again;
    the row then went, and the bridge was left to no one (found by a leak check)."""
    from stackd.netbridge import links
    from stackd.state.db import StateDB

    other_db = StateDB.open(world.nets.alloc.db.path)  # the daemon's own connection
    daemon = Networks(world.roots, other_db)
    try:
        for round_ in range(8):
            state = await world.network(f"race{round_}")
            done = trio.Event()

            async def restore_until_done(done: trio.Event = done) -> None:
                while not done.is_set():
                    await daemon.restore()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(restore_until_done)
                await trio.sleep(0.01)
                await world.nets.remove_network(f"t_race{round_}")
                await trio.sleep(0.05)
                done.set()
            assert links.if_index(state.bridge) is None, f"round {round_}: bridge left"
    finally:
        other_db.close()
