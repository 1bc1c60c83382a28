"""The routing mesh: a published port of a cluster stack answers on every node, and
new connections are balanced over the service's ready replicas on all nodes.

It is the local port publishing extended, not a second one: each node's published
ports are already one DNAT rule per port over its own ready replicas
(`netbridge.firewall`); the mesh adds the other nodes' ready replicas as further
backends of the same rule (`DnatRule(remote=True)`), so a node with no replica of
its own gets the rule too. The rules follow the status summaries, as a pure function
of them (`mesh_backends`).

Only ports published on every address of the host are meshed (a port bound to one
host address names an address of that host only). A remote backend's address is the
one its own node gave it, reachable through the overlay; connections DNAT'ed to one
are masqueraded, so replies come back through the node that took the connection.
"""

from __future__ import annotations

from collections.abc import Iterable

from stackd.cluster.records import SlotStatus
from stackd.netbridge.firewall import DnatRule


def mesh_backends(statuses: Iterable[SlotStatus], node: str) -> list[DnatRule]:
    """Other nodes' ready replicas as backends of their published ports, sorted."""
    out = []
    for s in statuses:
        if s.node == node or not s.ready:
            continue
        for p in s.ports:
            if p.host_ip:
                continue
            out.append(DnatRule("", p.host_port, p.protocol, p.ip, p.container_port,
                                s.container, f"{s.project}/{s.service}", True, remote=True))
    return sorted(out, key=lambda r: (r.host_port, r.protocol, r.container_ip,
                                      r.container_port, r.container_id))
