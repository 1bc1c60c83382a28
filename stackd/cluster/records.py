"""The values stored under the cluster's keys, and their JSON forms.

A record read from the store is hostile like any input (another version, another
writer): `from_json` checks every field and raises StoreRecordError naming the key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType
from typing import Any, Literal

from stackd.errors import StackdError
from stackd.scheduler import Resources, ServiceNode, Slot, Strategy, slots
from stackd.scheduler.placement import STRATEGIES

Availability = Literal["active", "drain"]
_VOLUME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


class StoreRecordError(StackdError):
    """A value in the cluster store is not what this stackd writes."""


def _bad(key: str, what: str) -> StoreRecordError:
    return StoreRecordError(f"cluster record {key!r} is malformed: {what}",
                            hint="another stackd version wrote it, or it was edited by "
                                 "hand; remove it with etcdctl and let its writer rewrite it")


def _load(key: str, value: bytes) -> dict[str, Any]:
    try:
        data = json.loads(value)
    except ValueError as e:
        raise _bad(key, f"not JSON ({e})") from e
    if not isinstance(data, dict):
        raise _bad(key, "not a JSON object")
    return data


def _typed(key: str, data: Mapping[str, Any], name: str, kind: type | tuple[type, ...],
           default: Any = ...) -> Any:
    if name not in data:
        if default is ...:
            raise _bad(key, f"no {name!r}")
        return default
    value = data[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _bad(key, f"{name!r} is {type(value).__name__}")
    return value


def _dump(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """A member: what the scheduler needs of it, and whether it takes new slots."""

    name: str
    cpus: float
    memory: int
    pids: int
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    arch: str = ""
    availability: Availability = "active"
    address: str = ""  # its underlay address, for overlays and the routing mesh

    def to_json(self) -> bytes:
        return _dump({"name": self.name, "cpus": self.cpus, "memory": self.memory,
                      "pids": self.pids, "labels": dict(self.labels), "arch": self.arch,
                      "availability": self.availability, "address": self.address})

    @classmethod
    def from_json(cls, key: str, value: bytes) -> NodeRecord:
        d = _load(key, value)
        labels = _typed(key, d, "labels", dict, {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            raise _bad(key, "labels must map strings to strings")
        availability = _typed(key, d, "availability", str, "active")
        if availability not in ("active", "drain"):
            raise _bad(key, f"availability {availability!r}")
        return cls(name=_typed(key, d, "name", str), cpus=float(_typed(key, d, "cpus",
                                                                        (int, float))),
                   memory=_typed(key, d, "memory", int), pids=_typed(key, d, "pids", int),
                   labels=MappingProxyType(labels), arch=_typed(key, d, "arch", str, ""),
                   availability=availability, address=_typed(key, d, "address", str, ""))


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """What placement needs of one service."""

    name: str
    replicas: int
    needs: Resources = field(default_factory=Resources)
    constraints: tuple[str, ...] = ()
    max_per_node: int | None = None
    preferences: tuple[tuple[str, str], ...] = ()  # ("spread", "node.labels.zone")
    mode: Literal["replicated", "global"] = "replicated"  # global: one per usable node
    # The stack's named volumes it mounts that hold data on one node (not declared
    # shared): its slots run where those volumes are (assign.py).
    volumes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StackRecord:
    """A stack to run on the cluster: its services as placement needs them."""

    project: str
    services: tuple[ServiceRecord, ...]
    strategy: Strategy = "spread"
    # The resolved stack as JSON (daemon/revision.stack_json), as `up` captured it:
    # what each node's agent runs its slots of. "" for a placement-only record.
    stack: str = ""

    @classmethod
    def of(cls, project: str, services: list[ServiceNode],
           strategy: Strategy = "spread", stack: str = "",
           volumes: Mapping[str, tuple[str, ...]] | None = None) -> StackRecord:
        """`volumes`: service → the node-local named volumes it mounts."""
        return cls(project, tuple(
            ServiceRecord(s.name, s.replicas, s.needs, s.constraints, s.max_per_node,
                          s.preferences, s.mode, tuple(sorted((volumes or {}).get(s.name, ()))))
            for s in sorted(services, key=lambda s: s.name)), strategy, stack)

    def slots(self) -> list[Slot]:
        return slots([ServiceNode(s.name, replicas=s.replicas, reservations=s.needs,
                                  constraints=s.constraints, max_per_node=s.max_per_node,
                                  preferences=s.preferences)
                       for s in self.services])

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "project": self.project, "strategy": self.strategy, "services": [
                {"name": s.name, "replicas": s.replicas, "cpus": s.needs.cpus,
                 "memory": s.needs.memory, "pids": s.needs.pids,
                 "constraints": list(s.constraints), "max_per_node": s.max_per_node,
                 **({"preferences": [list(p) for p in s.preferences]} if s.preferences
                    else {}),
                 **({"mode": s.mode} if s.mode != "replicated" else {}),
                 **({"volumes": list(s.volumes)} if s.volumes else {})}
                for s in self.services]}
        if self.stack:
            data["stack"] = self.stack
        return _dump(data)

    @classmethod
    def from_json(cls, key: str, value: bytes) -> StackRecord:
        d = _load(key, value)
        strategy = _typed(key, d, "strategy", str, "spread")
        if strategy not in STRATEGIES:
            raise _bad(key, f"strategy {strategy!r}")
        services = []
        for raw in _typed(key, d, "services", list):
            if not isinstance(raw, dict):
                raise _bad(key, "a service is not an object")
            constraints = _typed(key, raw, "constraints", list, [])
            if not all(isinstance(c, str) for c in constraints):
                raise _bad(key, "constraints must be strings")
            preferences = _typed(key, raw, "preferences", list, [])
            if not all(isinstance(p, list) and len(p) == 2
                       and all(isinstance(x, str) for x in p) for p in preferences):
                raise _bad(key, "preferences must be [kind, descriptor] pairs")
            volumes = _typed(key, raw, "volumes", list, [])
            if not all(isinstance(v, str) and _VOLUME.fullmatch(v) for v in volumes):
                raise _bad(key, "volumes must be volume names")
            services.append(ServiceRecord(
                name=_typed(key, raw, "name", str), replicas=_typed(key, raw, "replicas", int),
                needs=Resources(cpus=_typed(key, raw, "cpus", (int, float, type(None)), None),
                                memory=_typed(key, raw, "memory", (int, type(None)), None),
                                pids=_typed(key, raw, "pids", (int, type(None)), None)),
                constraints=tuple(constraints),
                max_per_node=_typed(key, raw, "max_per_node", (int, type(None)), None),
                preferences=tuple((p[0], p[1]) for p in preferences),
                mode=_mode(key, raw),
                volumes=tuple(volumes)))
        return cls(_typed(key, d, "project", str), tuple(services), strategy,
                   _typed(key, d, "stack", str, ""))


@dataclass(frozen=True, slots=True)
class VolumeRecord:
    """The node a named volume's data lives on, chosen by the first placement of a
    service mounting it; every later placement keeps that service there."""

    node: str

    def to_json(self) -> bytes:
        return _dump({"node": self.node})

    @classmethod
    def from_json(cls, key: str, value: bytes) -> VolumeRecord:
        return cls(_typed(key, _load(key, value), "node", str))


@dataclass(frozen=True, slots=True)
class Unplaced:
    """Why the leader could not place a stack (written by the leader, removed once it
    places it): what `GET /v1/cluster` and `node ls` tell the user."""

    reason: str
    term: int

    def to_json(self) -> bytes:
        return _dump({"reason": self.reason, "term": self.term})

    @classmethod
    def from_json(cls, key: str, value: bytes) -> Unplaced:
        d = _load(key, value)
        return cls(_typed(key, d, "reason", str), _typed(key, d, "term", int))


@dataclass(frozen=True, slots=True)
class Assignment:
    """One slot's node, and the leader term (its election key's revision) that chose it."""

    node: str
    term: int

    def to_json(self) -> bytes:
        return _dump({"node": self.node, "term": self.term})

    @classmethod
    def from_json(cls, key: str, value: bytes) -> Assignment:
        d = _load(key, value)
        return cls(_typed(key, d, "node", str), _typed(key, d, "term", int))


SlotState = Literal["running", "exited"]


@dataclass(frozen=True, slots=True)
class PublishedPort:
    """A host port published to one replica: `ip` is the replica's address it is
    DNAT'ed to (its first network's), `host_ip` "" for every address of the host."""

    host_port: int
    protocol: str
    container_port: int
    ip: str
    host_ip: str = ""
    meshed: bool = True  # False: `mode: host`, answered on its own node only


@dataclass(frozen=True, slots=True)
class SlotStatus:
    """What one node says of one slot it runs (`status/<project>/<slot>`, bound to the
    node's lease). `ready` is the supervisor's rule (`Watch.ready`: running, and
    healthy if it has a healthcheck), the one local DNS and port balancing follow."""

    node: str
    project: str
    service: str
    index: int
    container: str
    state: SlotState
    ready: bool
    addresses: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    ports: tuple[PublishedPort, ...] = ()

    @property
    def slot(self) -> str:
        return f"{self.service}-{self.index}"

    def to_json(self) -> bytes:
        return _dump({"node": self.node, "project": self.project, "service": self.service,
                      "index": self.index, "container": self.container, "state": self.state,
                      "ready": self.ready, "addresses": dict(self.addresses),
                      "ports": [[p.host_port, p.protocol, p.container_port, p.ip, p.host_ip,
                                 *(() if p.meshed else (False,))] for p in self.ports]})

    @classmethod
    def from_json(cls, key: str, value: bytes) -> SlotStatus:
        d = _load(key, value)
        state = _typed(key, d, "state", str)
        if state not in ("running", "exited"):
            raise _bad(key, f"state {state!r}")
        addresses = _typed(key, d, "addresses", dict, {})
        if not all(isinstance(k, str) and isinstance(v, str) and _is_ipv4(v)
                   for k, v in addresses.items()):
            raise _bad(key, "addresses must map network keys to IPv4 addresses")
        ports = []
        for raw in _typed(key, d, "ports", list, []):
            if not (isinstance(raw, list) and (len(raw) == 5 or (len(raw) == 6
                                                                 and raw[5] is False))
                    and all(_is_port(raw[i]) for i in (0, 2))
                    and raw[1] in ("tcp", "udp") and isinstance(raw[3], str)
                    and _is_ipv4(raw[3]) and isinstance(raw[4], str)
                    and (raw[4] == "" or _is_ipv4(raw[4]))):
                raise _bad(key, f"a port is not [host_port, tcp|udp, container_port, ip, "
                                f"host_ip(, false)]: {str(raw)[:80]}")
            ports.append(PublishedPort(raw[0], raw[1], raw[2], raw[3], raw[4], len(raw) == 5))
        index = _typed(key, d, "index", int)
        if index < 0:
            raise _bad(key, f"index {index}")
        # Names become DNS names and nft comments: only what a stack's names may be.
        names = {n: _typed(key, d, n, str) for n in ("node", "project", "service",
                                                     "container")}
        for n, v in names.items():
            if not _NAME.fullmatch(v):
                raise _bad(key, f"{n} {v[:80]!r} is not a name")
        return cls(**names, index=index, state=state,
                   ready=_typed(key, d, "ready", bool),
                   addresses=MappingProxyType(dict(sorted(addresses.items()))),
                   ports=tuple(ports))


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _is_port(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def _is_ipv4(text: str) -> bool:
    # Addresses from the store become nft rules and DNS answers: only dotted quads.
    try:
        return str(IPv4Address(text)) == text
    except ValueError:
        return False
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
VNI_MAX = (1 << 24) - 1


def _ipv4(key: str, data: Mapping[str, Any], name: str) -> str:
    text = _typed(key, data, name, str)
    try:
        return str(IPv4Address(text))
    except ValueError:
        raise _bad(key, f"{name!r} {text!r} is not an IPv4 address") from None


@dataclass(frozen=True, slots=True)
class OverlayNetwork:
    """An overlay network as the whole cluster has it: every node's bridge carries this
    subnet (each node hands out addresses from its own block of it, cluster/ipam.py),
    and its VXLAN device this VNI on this UDP port."""

    network: str
    subnet: IPv4Network
    vni: int
    port: int
    block: int = 24  # the prefix length of each node's block

    def to_json(self) -> bytes:
        return _dump({"network": self.network, "subnet": str(self.subnet), "vni": self.vni,
                      "port": self.port, "block": self.block})

    @classmethod
    def from_json(cls, key: str, value: bytes) -> OverlayNetwork:
        d = _load(key, value)
        text = _typed(key, d, "subnet", str)
        try:
            subnet = IPv4Network(text)
        except ValueError:
            raise _bad(key, f"subnet {text!r} is not an IPv4 network") from None
        vni, port = _typed(key, d, "vni", int), _typed(key, d, "port", int)
        block = _typed(key, d, "block", int, 24)
        if not 1 <= vni <= VNI_MAX:
            raise _bad(key, f"vni {vni} is out of range 1-{VNI_MAX}")
        if not 1 <= port <= 65535:
            raise _bad(key, f"port {port} is out of range 1-65535")
        if not subnet.prefixlen <= block <= 30:
            raise _bad(key, f"block /{block} does not fit subnet {subnet}")
        return cls(_typed(key, d, "network", str), subnet, vni, port, block)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One container's address on an overlay network, published by the node it runs on:
    what every other node needs to reach it (its MAC behind that node's VTEP)."""

    network: str
    node: str
    ip: str
    mac: str
    vtep: str  # the node's underlay address
    container: str = ""

    def to_json(self) -> bytes:
        return _dump({"network": self.network, "node": self.node, "ip": self.ip,
                      "mac": self.mac, "vtep": self.vtep, "container": self.container})

    @classmethod
    def from_json(cls, key: str, value: bytes) -> Endpoint:
        d = _load(key, value)
        mac = _typed(key, d, "mac", str).lower()
        if not _MAC.fullmatch(mac) or int(mac[:2], 16) & 1:
            raise _bad(key, f"mac {mac!r} is not a unicast MAC address")
        return cls(_typed(key, d, "network", str), _typed(key, d, "node", str),
                   _ipv4(key, d, "ip"), mac, _ipv4(key, d, "vtep"),
                   _typed(key, d, "container", str, ""))


def _mode(key: str, raw: dict[str, Any]) -> Literal["replicated", "global"]:
    mode = _typed(key, raw, "mode", str, "replicated")
    if mode == "global":
        return "global"
    if mode != "replicated":
        raise _bad(key, f"mode {mode!r}")
    return "replicated"
