"""What an overlay network's VXLAN device should forward, and how to get there: pure.

Every node's VXLAN device (learning off, ARP answered from its neighbour table) is
told by the others' published endpoints where each remote container is:

- one all-zero FDB entry per remote node: broadcasts and multicast (BUM) are copied to
  each node that has a container on the network (head-end replication);
- one FDB entry per remote container: its MAC lives behind its node's VTEP;
- one permanent neighbour entry per remote container: its IP has that MAC, so the
  device answers ARP for it locally and no ARP ever crosses the underlay.

`desired` builds that set from the endpoints, `diff` compares it with what the device
has (`overlaylinks.read`), and `overlaylinks.apply` carries out the difference.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from stackd.hostnames import device_name
from stackd.netbridge.model import NetworkSpec

ZERO_MAC = "00:00:00:00:00:00"


@dataclass(frozen=True, slots=True, order=True)
class Peer:
    """A container on another node: its address, MAC and that node's VTEP."""

    ip: str
    mac: str
    vtep: str


@dataclass(frozen=True, slots=True, order=True)
class Fdb:
    mac: str
    vtep: str


@dataclass(frozen=True, slots=True, order=True)
class Neigh:
    ip: str
    mac: str


@dataclass(frozen=True, slots=True)
class Forwarding:
    fdb: frozenset[Fdb] = field(default_factory=frozenset)
    neigh: frozenset[Neigh] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Changes:
    """Removals first (a MAC that moved frees its old entry), then additions."""

    fdb_remove: tuple[Fdb, ...] = ()
    fdb_add: tuple[Fdb, ...] = ()
    neigh_remove: tuple[Neigh, ...] = ()
    neigh_add: tuple[Neigh, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.fdb_remove or self.fdb_add or self.neigh_remove or self.neigh_add)


def desired(peers: Iterable[Peer], local_vtep: str) -> Forwarding:
    """The entries a device on the node with `local_vtep` needs for `peers` (its own
    containers among them are left out: the bridge reaches those directly)."""
    fdb: dict[str, str] = {}
    vteps: set[str] = set()
    neigh: dict[str, str] = {}
    for p in sorted(peers):
        if p.vtep == local_vtep or p.mac == ZERO_MAC:
            continue
        vteps.add(p.vtep)
        fdb.setdefault(p.mac.lower(), p.vtep)  # a MAC lives in one place: the first seen
        neigh.setdefault(p.ip, p.mac.lower())
    return Forwarding(
        frozenset({Fdb(ZERO_MAC, v) for v in vteps} | {Fdb(m, v) for m, v in fdb.items()}),
        frozenset(Neigh(i, m) for i, m in neigh.items()))


def diff(want: Forwarding, have: Forwarding) -> Changes:
    """What to remove from and add to a device that has `have` so that it has `want`."""
    return Changes(fdb_remove=tuple(sorted(have.fdb - want.fdb)),
                   fdb_add=tuple(sorted(want.fdb - have.fdb)),
                   neigh_remove=tuple(sorted(have.neigh - want.neigh)),
                   neigh_add=tuple(sorted(want.neigh - have.neigh)))


# -- what crosses between netbridge and the cluster ------------------------------------


def vxlan_name(root_id: str, network_key: str) -> str:
    """An overlay network's VXLAN device on this root (stk…, like its bridge)."""
    return device_name(root_id, "x", network_key)


# On an overlay network's stored labels: its OverlayLease as JSON, so the device can be
# made again (daemon restart, a deleted device) without asking the cluster.
LABEL_OVERLAY = "io.stackd.overlay"


@dataclass(frozen=True, slots=True)
class OverlayLease:
    """What one node needs to make its part of an overlay network: the cluster-wide
    subnet, VNI and UDP port, this node's block of the subnet and its underlay address."""

    subnet: str
    block: str
    vni: int
    port: int
    local: str

    def to_label(self) -> str:
        return json.dumps({"subnet": self.subnet, "block": self.block, "vni": self.vni,
                           "port": self.port, "local": self.local}, sort_keys=True)

    @classmethod
    def from_label(cls, text: str) -> OverlayLease:
        d = json.loads(text)
        return cls(str(d["subnet"]), str(d["block"]), int(d["vni"]), int(d["port"]),
                   str(d["local"]))


class OverlayProvider(Protocol):
    """The cluster side of overlay networks (stackd/cluster/overlay.py)."""

    async def lease(self, network: NetworkSpec) -> OverlayLease:
        """The network's cluster-wide allocation and this node's block of it."""

    async def release(self, network_key: str, project: str) -> None:
        """This node no longer has the network: its block goes back."""

    def changed(self) -> None:
        """This node's overlay networks or their containers changed: publish them and
        program the devices again (soon, not now)."""
