"""A node: somewhere slots can run, described by its capacity and labels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Node:
    """A machine's name, capacity (CPUs, memory bytes, pids) and placement labels.

    `role`, `os` and `arch` answer Swarm's `node.role`, `node.platform.os` and
    `node.platform.arch` constraints. Today the only node is this host
    (`stackd.hostinfo.local_node()`); a cluster will supply several.
    """

    name: str
    cpus: float
    memory: int
    pids: int
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    role: str = "manager"
    os: str = "linux"
    arch: str = ""
