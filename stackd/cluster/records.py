"""The values stored under the cluster's keys, and their JSON forms.

A record read from the store is hostile like any input (another version, another
writer): `from_json` checks every field and raises StoreRecordError naming the key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
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
                          tuple(sorted((volumes or {}).get(s.name, ()))))
            for s in sorted(services, key=lambda s: s.name)), strategy, stack)

    def slots(self) -> list[Slot]:
        return slots([ServiceNode(s.name, replicas=s.replicas, reservations=s.needs,
                                  constraints=s.constraints, max_per_node=s.max_per_node)
                       for s in self.services])

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "project": self.project, "strategy": self.strategy, "services": [
                {"name": s.name, "replicas": s.replicas, "cpus": s.needs.cpus,
                 "memory": s.needs.memory, "pids": s.needs.pids,
                 "constraints": list(s.constraints), "max_per_node": s.max_per_node,
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
