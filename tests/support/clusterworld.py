"""A cluster on one machine without touching the host's network: a "switch" network
namespace holding the underlay bridge and the etcd members, and one namespace per
node, each joined to the bridge by a veth pair created directly in the namespaces
(no end ever exists in the host's). Every name is stk…; teardown stops the daemons
and etcd by PID and deletes the namespaces, which deletes every device in them.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import trio

from stackd.roots import Roots
from support.etcdcluster import EtcdCluster, start_etcd
from support.freeaddrs import free_subnet

T = TypeVar("T")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass
class NodeNs:
    name: str
    netns: str
    link: str  # its end of the veth pair, inside its namespace
    address: str
    roots: Roots

    def env(self) -> dict[str, str]:
        return {**os.environ, "STACKD_ROOT": str(self.roots.state),
                "STACKD_RUN": str(self.roots.run)}

    def stackd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # nsenter, not `ip netns exec`: that one remounts /sys in a mount namespace of
        # its own, hiding /sys/fs/cgroup from the daemon (no container could start),
        # and the daemon's mounts (containers' roots) belong in the host's.
        r = subprocess.run(["nsenter", f"--net=/run/netns/{self.netns}", sys.executable,
                            "-m", "stackd", *args], env=self.env(), capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL)
        if check and r.returncode:
            raise AssertionError(f"stackd {' '.join(args)} on {self.name} exited "
                                 f"{r.returncode}:\n{r.stdout}\n{r.stderr}")
        return r


@dataclass
class World:
    tag: str
    switch: str
    nodes: list[NodeNs] = field(default_factory=list)
    etcd: EtcdCluster | None = None
    namespaces: list[str] = field(default_factory=list)

    def run_in_switch(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """trio.run(fn) in a thread inside the switch namespace (where etcd is)."""
        from stackd.netbridge.netns import entered

        out: list[T] = []
        errors: list[BaseException] = []

        def body() -> None:
            try:
                with entered(f"/run/netns/{self.switch}"):
                    out.append(trio.run(fn, *args))
            except BaseException as e:  # handed to the caller's thread
                errors.append(e)

        t = threading.Thread(target=body)
        t.start()
        t.join()
        if errors:
            raise errors[0]
        return out[0]

    def close(self) -> None:
        from support.e2e_stop import stop_daemon

        for n in self.nodes:
            stop_daemon(n.roots)
        if self.etcd is not None:
            self.etcd.stop()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def build(tmp: Path, nodes: int = 3, etcd_members: int = 3) -> World:
    tag = secrets.token_hex(2)
    world = World(tag=tag, switch=f"stkc{tag}s")
    subnet = free_subnet(24)
    hosts = list(subnet.hosts())
    bridge = f"stkc{tag}br"
    try:
        ip("netns", "add", world.switch)
        world.namespaces.append(world.switch)
        ip("-n", world.switch, "link", "set", "lo", "up")
        ip("-n", world.switch, "link", "add", bridge, "type", "bridge")
        ip("-n", world.switch, "addr", "add", f"{hosts[0]}/{subnet.prefixlen}", "dev", bridge)
        ip("-n", world.switch, "link", "set", bridge, "up")
        for i in range(nodes):
            ns = f"stkc{tag}n{i}"
            ip("netns", "add", ns)
            world.namespaces.append(ns)
            port, link = f"stkc{tag}p{i}", f"stkc{tag}u{i}"
            ip("link", "add", port, "netns", world.switch, "type", "veth",
               "peer", "name", link, "netns", ns)
            ip("-n", world.switch, "link", "set", port, "master", bridge, "up")
            address = str(hosts[10 + i])
            ip("-n", ns, "addr", "add", f"{address}/{subnet.prefixlen}", "dev", link)
            ip("-n", ns, "link", "set", link, "up")
            ip("-n", ns, "link", "set", "lo", "up")
            # The node's uplink forwards, as docs/networking.md asks of a host: the mesh
            # sends a published port's connection on to a replica of another node out
            # of it. A new namespace copies the host's settings, which may not.
            subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "sysctl", "-qw",
                            f"net.ipv4.conf.{link}.forwarding=1"], check=True, timeout=30)
            roots = Roots(state=tmp / f"node{i}" / "state",
                          run=tmp / f"node{i}" / "run").ensure()
            world.nodes.append(NodeNs(f"node{i}", ns, link, address, roots))
        world.etcd = start_etcd(tmp, etcd_members, host=str(hosts[0]), netns=world.switch)
    except BaseException:
        world.close()
        raise
    return world


@contextmanager
def stack_world(tmp: Path, stack: str, image: str, *, etcd_members: int = 3,
                down: tuple[str, ...] = ("-t", "0")) -> Iterator[World]:
    """A world whose every node has busybox as `image` in its own store (each "host"
    its own), with `stack` in tmp/compose.yaml. On leaving, even after a failure:
    each node leaves the cluster (its daemon stopped, its membership forgotten), then
    a plain daemon on its root runs `down` with `down`'s flags, killed leader
    included, and the world is closed."""
    import pytest

    from stackd.images import ImageStore
    from support.busybox import busybox_available, make_busybox_tar
    from support.e2e_stop import stop_daemon

    if not busybox_available():
        pytest.skip("busybox-static is not installed")
    world = build(tmp, etcd_members=etcd_members)
    try:
        tar = make_busybox_tar(tmp / "busybox.tar", tmp)
        for n in world.nodes:
            ImageStore(n.roots).import_rootfs(tar, ref=image)
        (tmp / "compose.yaml").write_text(stack)
        yield world
    finally:
        for n in world.nodes:
            stop_daemon(n.roots)
            (n.roots.state / "cluster.json").unlink(missing_ok=True)
        for n in world.nodes:
            n.stackd("-f", str(tmp / "compose.yaml"), "down", *down, check=False)
        world.close()
