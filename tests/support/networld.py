"""A small world for network tests: busybox containers on stackd networks, plus the
"other host" and "world" namespaces a test builds around the host itself.

Everything a test makes carries its root id: devices `stk<id>t…`, namespaces under
its run dir; a peer's link takes a /24 the host routes nowhere at that moment.
Finalisers remove all of it, then `no_leaks` (and our own stricter look at the state
store) checks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import socket
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
from dnslib import QTYPE, DNSRecord

from stackd.hostnames import device_name, nft_chain_prefix
from stackd.netbridge import (
    Address,
    Attachment,
    Networks,
    NetworkSpec,
    NetworkState,
    Resolver,
    firewall,
    hosts_file_for,
    resolv_conf_for,
)
from stackd.netbridge import netns as netns_files
from stackd.roots import Roots
from stackd.runtime import Runtime
from stackd.runtime.containerspec import ContainerSpec, Namespaces, ProcessSpec
from stackd.state.db import StateDB
from support.freeaddrs import free_subnet

pytestmark = pytest.mark.root

WORLD_NAME = "world.example"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def ask(sock: socket.socket, server: str, name: str) -> list[str]:
    """A-record addresses in the answer to one query (via sock, 1 s timeout)."""
    q = DNSRecord.question(name)
    sock.settimeout(1.0)
    sock.sendto(q.pack(), (server, 53))
    while True:
        reply = DNSRecord.parse(sock.recv(4096))
        if reply.header.id == q.header.id:
            return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]


def sh(*args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=timeout)


@dataclass
class Peer:
    """A namespace joined to the host by a veth: another host, or the outside world."""

    name: str
    path: Path
    host_ifname: str
    host_ip: str  # the host's address on this link
    ip: str  # the peer's own address

    def run(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return sh("nsenter", f"--net={self.path}", *args, check=False, timeout=timeout)

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["nsenter", f"--net={self.path}", *args])


@dataclass
class Box:
    id: str
    name: str
    netns: str
    addresses: list[Address]

    @property
    def ip(self) -> str:
        return self.addresses[0].ip


@dataclass
class World:
    roots: Roots
    nets: Networks
    resolver: Resolver
    runtime: Runtime
    layer: Path
    tmp: Path
    boxes: dict[str, Box] = field(default_factory=dict)
    peers: list[Peer] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    async def network(self, name: str, **kw: object) -> NetworkState:
        return await self.nets.ensure_network(NetworkSpec(key=f"t_{name}", project="t",
                                                          name=name, **kw))  # type: ignore[arg-type]

    async def box(self, name: str, networks: Sequence[str | Attachment], *,
                  service: str | None = None, args: Sequence[str] = ("sleep", "3600"),
                  extra_hosts: Sequence[str] = ()) -> Box:
        """A running busybox container attached to `networks` (first one: default route)."""
        cid = f"{name}-{self.roots.id}"
        path = await self.nets.create_netns(cid)
        atts = [n if isinstance(n, Attachment) else Attachment(f"t_{n}") for n in networks]
        names = [name] + ([service] if service else [])
        try:
            addrs = await self.nets.attach(cid, path, atts, names=names)
        except BaseException:
            await self.nets.remove_netns(cid)
            raise
        box = Box(cid, name, path, addrs)
        self.boxes[name] = box
        files = {"/etc/resolv.conf": resolv_conf_for(addrs[0].gateway),
                 "/etc/hosts": hosts_file_for(name, [a.ip for a in addrs], extra_hosts)}
        spec = ContainerSpec(id=cid, name=name, layers=(str(self.layer),), hostname=name,
                             process=ProcessSpec(args=tuple(args)), files=files,
                             namespaces=Namespaces(net=path), stop_grace=1.0)
        await self.runtime.create(spec)
        await self.runtime.start(cid)
        return box

    async def remove(self, name: str) -> None:
        box = self.boxes.pop(name)
        await self.runtime.delete(box.id, force=True)
        await self.nets.unpublish(box.id)
        await self.nets.detach(box.id)
        await self.nets.remove_netns(box.id)

    async def exec(self, name: str, *args: str, timeout: float = 15) -> tuple[int, str]:
        with trio.fail_after(timeout):
            r = await self.runtime.exec(self.boxes[name].id, list(args))
        return r.exit_code, (r.stdout + r.stderr).decode(errors="replace")

    async def wget(self, name: str, url: str, seconds: int = 3) -> tuple[int, str]:
        return await self.exec(name, "timeout", str(seconds), "wget", "-q", "-O-", url)

    async def nslookup(self, name: str, query: str) -> list[str]:
        """A-record addresses the box's resolver gives for `query` (busybox nslookup)."""
        gw = self.boxes[name].addresses[0].gateway
        code, out = await self.exec(name, "timeout", "3", "nslookup", "-type=a", query, gw)
        if code != 0:
            return []
        lines = out.split("Name:", 1)[-1].splitlines() if "Name:" in out else []
        return [line.split()[-1] for line in lines if line.startswith("Address")]

    def dns_socket(self, name: str) -> socket.socket:
        """A UDP socket living in a box's network namespace, usable from the test.

        A socket belongs to the namespace it was made in, so a short-lived thread
        enters the namespace, makes it and exits; nothing else changes namespace.
        """
        made: list[socket.socket] = []

        def enter_and_make() -> None:
            fd = os.open(self.boxes[name].netns, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
                made.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            finally:
                os.close(fd)

        t = threading.Thread(target=enter_and_make)
        t.start()
        t.join()
        assert made, "could not make a socket in the box's namespace"
        return made[0]

    def in_box_netns(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """A host program in a box's network namespace (what busybox lacks, e.g. a UDP echo)."""
        p = subprocess.Popen(["nsenter", f"--net={self.boxes[name].netns}", *args])
        self.procs.append(p)
        return p

    def peer(self, name: str) -> Peer:
        """A namespace linked to the host over a /24 nothing routes yet: "another host"
        at .2, the host's end at .1."""
        path = self.tmp / f"peer-{name}"
        netns_files.create(path)
        host_if = device_name(self.roots.id, "t", name)
        tmp_if = device_name(self.roots.id, "t", name + "/peer")

        def in_peer(*args: str) -> None:
            r = sh("nsenter", f"--net={path}", *args, check=False)
            assert r.returncode == 0, r.stderr

        # Made inside the peer, then the host end moves out to the host (pid 1's netns).
        in_peer("ip", "link", "add", host_if, "type", "veth", "peer", "name", tmp_if)
        in_peer("ip", "link", "set", host_if, "netns", "1")
        # The subnet is chosen and routed under the lock stackd chooses its networks'
        # subnets under, so neither another test run nor a stackd network takes it too.
        with firewall.host_lock():
            subnet = free_subnet(24)
            p = Peer(name, path, host_if, str(subnet[1]), str(subnet[2]))
            self.peers.append(p)
            sh("ip", "addr", "add", f"{p.host_ip}/24", "dev", host_if)
            sh("ip", "link", "set", host_if, "up")
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "link", "set", tmp_if, "name", "eth0"],
                    ["ip", "addr", "add", f"{p.ip}/24", "dev", "eth0"],
                    ["ip", "link", "set", "eth0", "up"],
                    ["ip", "route", "add", "default", "via", p.host_ip]):
            in_peer(*cmd)
        # The host routes for this peer as for any uplink: forwarding on our own device.
        Path(f"/proc/sys/net/ipv4/conf/{host_if}/forwarding").write_text("1")
        return p

    def spawn_in_peer(self, peer: Peer, *args: str) -> subprocess.Popen[bytes]:
        p = peer.spawn(*args)
        self.procs.append(p)
        return p


def leftovers(roots: Roots, db: StateDB) -> list[str]:
    found = []
    links = sh("ip", "-o", "link", "show").stdout
    found += [f"device {line.split(':')[1].strip()}" for line in links.splitlines()
              if line.split(":")[1].strip().split("@")[0].startswith(f"stk{roots.id}")]
    r = sh("nft", "-j", "list", "table", "inet", "stackd", check=False)
    if r.returncode == 0:
        for o in json.loads(r.stdout)["nftables"]:
            for kind in ("chain", "set", "rule"):
                if kind in o and o[kind].get("name", o[kind].get("chain", "")).startswith(
                        nft_chain_prefix(roots.chain_id)):
                    found.append(f"nft {kind} {o[kind].get('name', o[kind].get('chain'))}")
    for table in ("net_networks", "net_addresses", "net_published"):
        n = db.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if n:
            found.append(f"{n} rows in {table}")
    ns_dir = netns_files.netns_dir(roots.run)
    if ns_dir.exists():
        found += [f"netns {p}" for p in ns_dir.iterdir()]
    return found
