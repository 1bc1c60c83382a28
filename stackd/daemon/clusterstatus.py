"""The daemon's side of cluster status (docs/cluster.md, "Status, DNS and the routing
mesh"): this node's slots summarised from its supervisor and network records and
written to the store, and every node's summaries turned into this node's DNS records
and mesh rules. Runs for as long as the node holds its lease."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import trio

from stackd.cluster import status
from stackd.cluster.mesh import Backend, mesh_backends
from stackd.cluster.records import PublishedPort, SlotStatus
from stackd.cluster.statusdns import ClusterDns, remote_records
from stackd.cluster.store import Store
from stackd.netbridge.firewall import DnatRule

IDLE = 0.5  # seconds between looks while the daemon's world is not up yet


def dnat_rules(backends: Iterable[Backend]) -> list[DnatRule]:
    """The mesh's backends as further (remote, ready) rows of the port rules."""
    return [DnatRule("", b.host_port, b.protocol, b.ip, b.container_port, b.container,
                     b.group, True, remote=True) for b in backends]


def local_facts(world: Any, node: str) -> list[SlotStatus]:
    """Each watched container of this node as a summary. Ready is the supervisor's
    own rule (`Watch.ready`), the one its DNS and port balancing follow."""
    supervisor = getattr(world, "supervisor", None)
    ports_of = getattr(world, "ports", None)
    if supervisor is None or ports_of is None:
        return []
    nets = ports_of.network.nets
    addresses: dict[str, dict[str, str]] = {}
    for a in nets.alloc.addresses():
        addresses.setdefault(a.container_id, {})[a.network_key] = a.ip
    rows: dict[str, list[Any]] = {}
    for p in nets.alloc.ports():
        rows.setdefault(p.container_id, []).append(p)
    out = []
    for w in supervisor.watches():
        d = w.desired
        host_mode = {(b.host_port, b.protocol) for b in d.ports if not b.meshed}
        # A host port chosen as it was published (`- "80"`) is never meshed.
        chosen = {(b.container_port, b.protocol) for b in d.ports if b.ephemeral}
        published = [PublishedPort(p.host_port, p.protocol, p.container_port, p.container_ip,
                                   p.host_ip, (p.host_port, p.protocol) not in host_mode
                                   and (p.container_port, p.protocol) not in chosen)
                     for p in rows.get(w.container_id, [])]
        out.append(SlotStatus(
            node=node, project=d.project, service=d.service, index=d.index,
            container=d.name, state="running" if w.running else "exited", ready=w.ready,
            addresses=dict(sorted(addresses.get(w.container_id, {}).items())),
            ports=tuple(sorted(published, key=lambda p: (p.host_port, p.protocol)))))
    return out


async def _local_change(world: Any) -> None:
    supervisor = getattr(world, "supervisor", None)
    if supervisor is None:
        await trio.sleep(IDLE)
    else:
        await supervisor.changed.wait()


async def run(store: Store, lease: int, node: str, world: Any,
              dns: Callable[[], ClusterDns | None],
              assigned: Callable[[], Mapping[str, Iterable[str]]],
              seen: Callable[[list[SlotStatus]], None] = lambda statuses: None) -> None:
    """Until cancelled. `seen` gets every node's summaries after each change."""
    view = status.StatusView()

    async def apply(statuses: list[SlotStatus]) -> None:
        seen(statuses)
        ports = getattr(world, "ports", None)
        if ports is None:
            return
        nets = ports.network.nets
        source = dns()
        if source is not None:
            await source.apply(remote_records(statuses, node, [n.key for n in nets.list()]))
        await nets.set_mesh(dnat_rules(mesh_backends(statuses, node)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(status.publish, store, lease, lambda: local_facts(world, node),
                           lambda: _local_change(world), assigned)
        nursery.start_soon(view.run, store)
        nursery.start_soon(view.follow, apply)
