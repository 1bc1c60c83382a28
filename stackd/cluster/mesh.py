"""The routing mesh: a published port of a cluster stack answers on every node, and
new connections are balanced over the service's ready replicas on all nodes.

It is the local port publishing extended, not a second one: each node's published
ports are already one DNAT rule per port over its own ready replicas
(`netbridge.firewall`); the mesh adds the other nodes' ready replicas as further
backends of the same rule (`DnatRule(remote=True)`), so a node with no replica of
its own gets the rule too. The backends follow the status summaries, as a pure
function of them (`mesh_backends`); the daemon hands them to netbridge
(`daemon/clusterstatus.py`), which this package does not import.

Only ports published on every address of the host are meshed (a port bound to one
host address names an address of that host only), and not those of `mode: host`
(Swarm's: each node answers with its own replica, as a global service's agent does).
A remote backend's address is the one its own node gave it, reachable through the
overlay; connections DNAT'ed to one are masqueraded, so replies come back through the
node that took the connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stackd.cluster.records import SlotStatus


@dataclass(frozen=True, slots=True, order=True)
class Backend:
    """A replica on another node behind a port published on every host address."""

    host_port: int
    protocol: str
    ip: str
    container_port: int
    container: str
    group: str  # project/service, as local port publishing groups replicas


def mesh_backends(statuses: Iterable[SlotStatus], node: str) -> list[Backend]:
    """Other nodes' ready replicas as backends of their published ports, sorted."""
    return sorted(Backend(p.host_port, p.protocol, p.ip, p.container_port, s.container,
                          f"{s.project}/{s.service}")
                  for s in statuses if s.node != node and s.ready
                  for p in s.ports if not p.host_ip and p.meshed)
