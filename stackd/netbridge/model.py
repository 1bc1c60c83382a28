"""The values that cross netbridge's boundary: what the reconciler asks for, what it gets back.

Plain frozen dataclasses: the reconciler builds them from a `Stack`, netbridge never
sees a `Stack`. Addresses are strings in dotted-quad form so they print and persist
as users write them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Address

from stackd.errors import SpecError

# How a published port bound to no one address is written (rows, rules, Compose).
ANY_ADDRESS = ("", "0.0.0.0", "::")

# "overlay": a cluster node's networks (netbridge/overlayplan.py, docs/cluster.md).
SUPPORTED_DRIVERS = ("bridge", "overlay")
MTU_OPTION = "com.docker.network.driver.mtu"
# On a network's stored labels: `network_hash` of the spec it was made from.
LABEL_NETWORK_HASH = "io.stackd.config-hash"
# …and the ipam pool's ip_range and aux_addresses, which the address choice reads.
LABEL_IP_RANGE = "io.stackd.ip-range"
LABEL_RESERVED = "io.stackd.reserved"
# On a network whose containers' bridge ports are isolated (NetworkSpec.isolated).
LABEL_ISOLATED = "io.stackd.isolated"
_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    """One stack network. `key` is its host-wide name (`<project>_<name>` as Compose names it)."""

    key: str
    project: str
    name: str
    subnet: str | None = None
    gateway: str | None = None
    internal: bool = False
    # Docker's enable_icc false: its containers' ports on the bridge are isolated from
    # one another (each reaches the gateway, DNS and published ports, no other).
    isolated: bool = False
    # An external network must exist already (made by another stack); it is never
    # created nor removed on this spec's behalf.
    external: bool = False
    driver: str = "bridge"
    labels: dict[str, str] = field(default_factory=dict)
    driver_opts: dict[str, str] = field(default_factory=dict)
    # ipam: the addresses handed out come from ip_range (a part of the subnet); the
    # reserved ones (aux_addresses) are never handed out.
    ip_range: str | None = None
    reserved: tuple[str, ...] = ()

    def mtu(self, default: int) -> int:
        raw = self.driver_opts.get(MTU_OPTION)
        if raw is None:
            return default
        try:
            mtu = int(raw)
        except ValueError:
            raise SpecError(f"network {self.name!r}: {MTU_OPTION} must be a number, got {raw!r}",
                            hint="write e.g. 1450") from None
        if not 576 <= mtu <= 65535:
            raise SpecError(f"network {self.name!r}: MTU {mtu} is out of range 576-65535")
        return mtu


# NetworkSpec fields a network's hash leaves out, and why; every other field (subnet,
# gateway, internal, driver, labels, driver_opts, and any added later) counts.
NETWORK_HASH_EXCLUDED: dict[str, str] = {
    "key": "the network's identity, not its configuration",
    "project": "the network's identity",
    "name": "the network's identity",
    "external": "an external network is never made or changed by the stack",
}


# Fields added after networks were made: left out while unset, so the networks made
# before them keep their digest (a changed one means a network made again).
_HASHED_WHEN_SET = ("ip_range", "reserved", "isolated")


def network_hash(spec: NetworkSpec) -> str:
    """A digest of what the network was made from: when it differs from the one stored
    on the existing network, that network has to be made again."""
    doc = {k: v for k, v in asdict(spec).items() if k not in NETWORK_HASH_EXCLUDED
           and not (k in _HASHED_WHEN_SET and not v)}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NetworkState:
    """A network as it exists on the host."""

    key: str
    project: str
    name: str
    bridge: str
    subnet: str
    gateway: str
    internal: bool
    external: bool
    mtu: int
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Attachment:
    """One network a container joins; the first one given carries the default route."""

    network_key: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None
    mac_address: str | None = None
    interface_name: str | None = None  # inside the container; None: eth<index>
    # `links: [db:database]`: (alias, service) — the alias is answered in DNS on this
    # network as the service's name, to this container alone (Docker's: a link's alias
    # belongs to the linking container's endpoint, not to the network).
    links: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        mac = self.mac_address
        if mac is not None and (not _MAC.fullmatch(mac) or int(mac[:2], 16) & 1):
            raise SpecError(f"mac_address {mac!r} is not a unicast MAC address",
                            hint="write six hex pairs, e.g. 02:42:ac:11:00:02")


def check_interface_names(service: str, attachments: Sequence[Attachment]) -> None:
    """Refuse two networks of one container under one interface name (eth<i> included)."""
    names = [a.interface_name or f"eth{i}" for i, a in enumerate(attachments)]
    for name in names:
        if names.count(name) > 1:
            raise SpecError(f"service {service!r}: two of its networks would both be the "
                            f"interface {name!r}",
                            hint="give each network its own interface_name")


@dataclass(frozen=True, slots=True)
class Address:
    """What a container got on one network."""

    network_key: str
    ifname: str  # inside the container: eth0, eth1, …
    host_ifname: str  # the veth end on the host, on the bridge
    ip: str
    prefixlen: int
    gateway: str
    mac: str


@dataclass(frozen=True, slots=True)
class PortBinding:
    """host_ip:host_port → container_port/protocol. Ranges are expanded by `expand_ports`.
    host_port 0: a free host port, chosen when it is published (Compose's `- "80"`,
    docker run's `-p 80`), as the kernel picks an ephemeral one."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""  # "" or 0.0.0.0: every host address
    # A cluster's routing mesh answers for it on every node (Compose's `mode: ingress`);
    # False: only on the node that runs the replica (`mode: host`).
    meshed: bool = True

    def __post_init__(self) -> None:
        if self.protocol not in ("tcp", "udp"):
            raise SpecError(f"port {self.host_port}: protocol {self.protocol!r} is not supported",
                            hint="use tcp or udp")
        for port in (self.host_port or 1, self.container_port):
            if not 1 <= port <= 65535:
                raise SpecError(f"port {port} is out of range 1-65535")
        if not self.any_address:
            try:
                IPv4Address(self.host_ip)
            except ValueError:
                raise SpecError(f"port {self.host_port}: host_ip {self.host_ip!r} is not an "
                                "IPv4 address", hint="stackd publishes on IPv4 addresses; "
                                "leave host_ip out to publish on all of them") from None

    @property
    def any_address(self) -> bool:
        return self.host_ip in ANY_ADDRESS

    def overlaps(self, other: PortBinding) -> bool:
        """Whether both claim one host port: the same port and protocol, on addresses
        that meet (every address meets each one)."""
        return (self.host_port == other.host_port and self.protocol == other.protocol
                and not self.ephemeral
                and (self.any_address or other.any_address or self.host_ip == other.host_ip))

    @property
    def ephemeral(self) -> bool:
        """A host port to be chosen when published (none named)."""
        return self.host_port == 0

    def __str__(self) -> str:
        host = f"{self.host_ip}:" if not self.any_address else ""
        port = self.host_port if not self.ephemeral else "(any)"
        return f"{host}{port}->{self.container_port}/{self.protocol}"


def expand_ports(host: tuple[int, int], container: tuple[int, int], protocol: str = "tcp",
                 host_ip: str = "") -> list[PortBinding]:
    """Compose's `8000-8002:80-82` as one binding per port; both ranges must be as long."""
    h0, h1 = host
    c0, c1 = container
    if h1 < h0 or c1 < c0 or h1 - h0 != c1 - c0:
        raise SpecError(f"ports {h0}-{h1}:{c0}-{c1}: the host and container ranges differ "
                        "in length", hint=f"write {h0}-{h1}:{c0}-{c0 + max(h1 - h0, 0)}")
    return [PortBinding(host_port=h0 + i, container_port=c0 + i, protocol=protocol,
                        host_ip=host_ip) for i in range(h1 - h0 + 1)]
