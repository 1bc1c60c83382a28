"""An overlay network's VXLAN device and its forwarding entries, through netlink.

Blocking, like links.py: callers run these in `trio.to_thread.run_sync`. Only devices
named stk… are touched; each one's ifalias is its root's owner id (leak checks).
"""

from __future__ import annotations

import errno

from pyroute2.netlink.exceptions import NetlinkError

from stackd.errors import HostError
from stackd.netbridge.links import _netlink, if_index
from stackd.netbridge.overlayplan import Changes, Fdb, Forwarding, Neigh

NTF_SELF = 0x02  # the VXLAN device's own table, not its bridge's
NUD_PERMANENT = 0x80
AF_INET = 2
VXLAN_OVERHEAD = 50  # outer Ethernet, IPv4, UDP and VXLAN headers


def underlay_mtu(local: str) -> int | None:
    """The MTU of the device holding the underlay address `local`; None if none does."""
    with _netlink("reading the underlay address") as ipr:
        for a in ipr.get_addr(family=AF_INET):
            if a.get("IFA_ADDRESS") == local:
                link = ipr.get_links(a["index"])[0]
                return int(link.get("IFLA_MTU"))
    return None


def ensure_vxlan(name: str, *, bridge: str, vni: int, local: str, port: int, mtu: int,
                 owner: str = "") -> None:
    """The VXLAN device `name` on `bridge`: learning off (entries come from the store),
    ARP answered from its neighbour table (proxy), `local` as its source. One made with
    other parameters (a network made again) is replaced."""
    br = if_index(bridge)
    if br is None:
        raise HostError(f"bridge {bridge} is missing",
                        hint="the network was removed behind stackd's back; re-apply the stack")
    with _netlink(f"creating VXLAN device {name}") as ipr:
        idx = if_index(name)
        if idx is not None and not _same(ipr, idx, vni, local, port):
            ipr.link("del", index=idx)
            idx = None
        if idx is None:
            try:
                ipr.link("add", ifname=name, kind="vxlan", vxlan_id=vni, vxlan_local=local,
                         vxlan_port=port, vxlan_learning=0, vxlan_proxy=1, mtu=mtu)
            except NetlinkError as exc:
                if exc.code == errno.EEXIST:
                    raise HostError(
                        f"VXLAN device {name}: VNI {vni} on UDP port {port} is already "
                        "used by another device of this host",
                        hint="join the cluster with another --vxlan-port") from None
                raise
            idx = if_index(name)
            if idx is None:
                raise HostError(f"VXLAN device {name} vanished as it was made")
        ipr.link("set", index=idx, master=br, mtu=mtu, ifalias=owner, state="up")


def _same(ipr: object, idx: int, vni: int, local: str, port: int) -> bool:
    link = ipr.get_links(idx)[0]  # type: ignore[attr-defined]
    info = link.get_attr("IFLA_LINKINFO")
    if info is None or info.get_attr("IFLA_INFO_KIND") != "vxlan":
        return False
    data = info.get_attr("IFLA_INFO_DATA")
    return bool(data is not None and data.get_attr("IFLA_VXLAN_ID") == vni
                and data.get_attr("IFLA_VXLAN_LOCAL") == local
                and data.get_attr("IFLA_VXLAN_PORT") == port)


def read(name: str) -> Forwarding | None:
    """The device's own FDB entries (with a remote VTEP) and permanent neighbours;
    None if there is no such device."""
    idx = if_index(name)
    if idx is None:
        return None
    with _netlink(f"reading {name}'s forwarding entries") as ipr:
        fdb = set()
        for e in ipr.fdb("dump", ifindex=idx):
            dst = e.get("NDA_DST")
            if e["ifindex"] == idx and e["flags"] & NTF_SELF and dst:
                fdb.add(Fdb(str(e.get("NDA_LLADDR")).lower(), str(dst)))
        neigh = set()
        for n in ipr.get_neighbours(ifindex=idx, family=AF_INET):
            mac = n.get("NDA_LLADDR")
            if n["ifindex"] == idx and n["state"] & NUD_PERMANENT and mac:
                neigh.add(Neigh(str(n.get("NDA_DST")), str(mac).lower()))
    return Forwarding(frozenset(fdb), frozenset(neigh))


def apply(name: str, changes: Changes) -> None:
    """Carry out `changes` on the device; an entry already gone is fine."""
    idx = if_index(name)
    if idx is None or not changes:
        return
    with _netlink(f"programming {name}'s forwarding entries") as ipr:
        for f in changes.fdb_remove:
            _quiet(ipr.fdb, "del", ifindex=idx, lladdr=f.mac, dst=f.vtep, flags=NTF_SELF)
        for n in changes.neigh_remove:
            _quiet(ipr.neigh, "del", ifindex=idx, dst=n.ip, lladdr=n.mac)
        for f in changes.fdb_add:
            # The all-zero MAC holds one entry per VTEP (append); any other MAC one.
            op = "append" if f.mac == "00:00:00:00:00:00" else "replace"
            ipr.fdb(op, ifindex=idx, lladdr=f.mac, dst=f.vtep, flags=NTF_SELF,
                    state=NUD_PERMANENT)
        for n in changes.neigh_add:
            ipr.neigh("replace", ifindex=idx, dst=n.ip, lladdr=n.mac, state=NUD_PERMANENT)


def _quiet(call: object, *args: object, **kwargs: object) -> None:
    try:
        call(*args, **kwargs)  # type: ignore[operator]
    except NetlinkError as exc:
        if exc.code not in (errno.ENOENT, errno.ENODEV, errno.ESRCH):
            raise
