"""Bridges, veth pairs, addresses and routes through netlink (pyroute2).

Every function here blocks, so callers run these in `trio.to_thread.run_sync`. What is
done once per container (lo up, a veth pair and its address, deleting devices) goes
through rtnl.py's hand-packed requests on a socket per thread; the rest (bridges, route
dumps: once per network) through pyroute2, whose synchronous API runs an asyncio loop of
its own, so each of those calls opens (and closes) its own IPRoute handle, never shared
between threads. NetlinkError, RtnlError and OSError are translated into `HostError`
here, once.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Network

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from stackd.errors import HostError
from stackd.netbridge import netns as namespaces
from stackd.netbridge import rtnl
from stackd.netbridge.rtnl import RtnlError


@contextmanager
def _netlink(what: str, netns: str | None = None) -> Iterator[IPRoute]:
    try:
        if netns:
            # Not IPRoute(netns=…): that forks a child from this threaded process.
            with namespaces.entered(netns):
                ipr = IPRoute()
        else:
            ipr = IPRoute()
    except (OSError, NetlinkError) as exc:
        raise HostError(f"{what}: cannot open netlink"
                        + (f" in {netns}" if netns else "") + f": {exc}") from None
    try:
        yield ipr
    except NetlinkError as exc:
        raise HostError(f"{what}: the kernel refused: {os.strerror(exc.code)}") from None
    finally:
        ipr.close()


@contextmanager
def _rtnl(what: str, netns: str | None = None) -> Iterator[None]:
    """The kernel's refusals of rtnl.py's requests as HostError, worded as `_netlink`'s."""
    try:
        yield
    except RtnlError as exc:
        raise HostError(f"{what}: the kernel refused: {exc.strerror}") from None
    except OSError as exc:  # the socket itself
        raise HostError(f"{what}: netlink failed"
                        + (f" in {netns}" if netns else "") + f": {exc}") from None


LOOPBACK_INDEX = 1  # lo is the first device of every network namespace


def if_index(ifname: str) -> int | None:
    """A host device's index without a netlink dump (an ioctl); None if none."""
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        return None


def routed_subnets() -> list[IPv4Network]:
    """IPv4 destinations the host routes anywhere (any table), the default route aside."""
    with _netlink("reading routes") as ipr:
        found = set()
        for r in ipr.get_routes(family=2):  # every table; table=0 filters all out
            dst, plen = r.get("RTA_DST"), r["dst_len"]
            if dst is None or plen == 0 or r.get("RTA_TABLE") == 255:  # 255: local table
                continue
            found.add(IPv4Network(f"{dst}/{plen}", strict=False))
        return sorted(found)


def uplinks_not_forwarding() -> list[str]:
    """Devices of the host's default routes whose IPv4 forwarding is off."""
    with _netlink("reading routes") as ipr:
        devs = {r.get("RTA_OIF") for r in ipr.get_routes(family=2)
                if r["dst_len"] == 0 and r.get("RTA_TABLE") == 254}
        names = [ipr.get_links(i)[0].get("IFLA_IFNAME") for i in devs if i is not None]
    return sorted(n for n in names
                  if n and read_sysctl(f"net.ipv4.conf.{n}.forwarding") == "0")


def write_sysctl(name: str, value: str) -> None:
    path = "/proc/sys/" + name.replace(".", "/")
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        raise HostError(f"setting {name}={value} failed: {exc.strerror}") from None


def read_sysctl(name: str) -> str:
    with open("/proc/sys/" + name.replace(".", "/")) as f:
        return f.read().strip()


def ensure_bridge(name: str, gateway: str, prefixlen: int, mtu: int, owner: str = "") -> None:
    """The bridge, up, holding the gateway address; per-bridge sysctls only. `owner`
    (`Roots.owner_id`) goes in its ifalias, so a leak check can tell whose it is.

    forwarding=1 lets packets that arrive from the bridge be routed (IPv4 checks only
    the input device), route_localnet=1 lets 127.0.0.1 connections DNAT'ed to a
    container leave through it; neither touches the host's global settings.
    """
    with _netlink(f"creating bridge {name}") as ipr:
        idx = if_index(name)
        if idx is None:
            ipr.link("add", ifname=name, kind="bridge")
            idx = if_index(name)
            if idx is None:
                raise HostError(f"bridge {name} vanished as it was made")
        # A bridge without a MAC of its own takes its lowest port's, so it would change
        # as containers come and go, and containers' ARP entries for the gateway go stale.
        ipr.link("set", index=idx, mtu=mtu, address=bridge_mac(name), ifalias=owner)
        have = {(a.get("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx, family=2)}
        if (gateway, prefixlen) not in have:
            ipr.addr("add", index=idx, address=gateway, prefixlen=prefixlen)
        ipr.link("set", index=idx, state="up")
    write_sysctl(f"net.ipv4.conf.{name}.forwarding", "1")
    write_sysctl(f"net.ipv4.conf.{name}.route_localnet", "1")
    try:  # IPv4 only: keep the kernel from giving the bridge a link-local v6 address
        write_sysctl(f"net.ipv6.conf.{name}.disable_ipv6", "1")
    except HostError:
        pass


def bridge_mac(name: str) -> str:
    """A fixed, locally administered unicast MAC derived from the bridge's name."""
    digest = hashlib.sha256(name.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def delete_link(name: str) -> None:
    """Delete a device if it exists (deleting a veth end deletes its peer too)."""
    delete_links([name])


def delete_links(names: list[str]) -> None:
    """Delete each device that exists, through this thread's netlink socket."""
    present = [idx for name in names if (idx := if_index(name)) is not None]
    if not present:
        return
    with _rtnl(f"deleting {', '.join(names)}"):
        sock = rtnl.host()
        for idx in present:
            try:
                sock.delete_link(idx)
            except RtnlError as exc:
                if exc.errno != errno.ENODEV:
                    raise


def lo_up(netns: str) -> None:
    with _rtnl("bringing lo up", netns), namespaces.entered(netns), rtnl.Socket() as ns:
        ns.set_link(LOOPBACK_INDEX, up=True)


def add_veth(*, host_ifname: str, peer_ifname: str, bridge: str, mtu: int, netns: str,
             ifname: str, ip: str, prefixlen: int, mac: str, gateway: str | None,
             owner: str = "", isolated: bool = False) -> None:
    """A veth pair: the host end on the bridge, the other end as `ifname` in `netns`.
    The host end's ifalias is `owner` (`Roots.owner_id`).

    gateway: when given, the namespace's default route goes through it.
    isolated: the host end is an isolated bridge port (it reaches the bridge itself,
    not the other isolated ports: Docker's enable_icc false).
    peer_ifname: the name an older stackd gave the inner end while it was still on the
    host; only cleaned up here. The inner end is now born in the namespace, named
    `ifname`, with its MAC and MTU, in the one request that makes the pair: each
    netlink round trip and each lookup by name (a dump of every link on a host with
    hundreds of veths) costs more than the kernel's work.
    """
    br = if_index(bridge)
    if br is None:
        raise HostError(f"bridge {bridge} is missing",
                        hint="the network was removed behind stackd's back; re-apply the stack")
    with _rtnl(f"attaching {ifname} to {bridge}"):
        sock = rtnl.host()
        for stale in (host_ifname, peer_ifname):  # left over from an interrupted attach
            idx = if_index(stale)
            if idx is not None:
                sock.delete_link(idx)
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            sock.add_veth(ifname=host_ifname, mtu=mtu, master=br, peer_ifname=ifname,
                          peer_mac=mac, peer_netns_fd=fd)
        finally:
            os.close(fd)
        host_idx = if_index(host_ifname)
        if host_idx is None:
            raise HostError(f"veth {host_ifname} vanished as it was made")
        # With br_netfilter loaded, a container reaching its own published port through
        # a host address is DNAT'ed inside the bridge and must leave by the port it came
        # in: hairpin mode.
        sock.set_link(host_idx, up=True, alias=owner, hairpin=True, isolated=isolated)
    with _rtnl(f"configuring {ifname}", netns), namespaces.entered(netns), \
            rtnl.Socket() as ns:
        idx = if_index(ifname)  # an ioctl in the namespace this thread is in
        if idx is None:
            raise HostError(f"{ifname} did not appear in {netns}")
        ns.add_address(idx, ip, prefixlen)
        ns.set_link(idx, up=True)  # lo came up with the namespace (lo_up)
        if gateway is not None:
            ns.replace_default_route(gateway)
