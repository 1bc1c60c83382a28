"""DNS for replicas on other nodes: the records the embedded DNS of this node adds to
its own, computed from every node's status summaries.

A ready replica of another node is answered, on each network it shares with this
node's containers, under its service name and its container name (each node's
resolver already answers for its own containers, with their readiness; so only other
nodes' replicas come from here). Its address is the one its own node gave it: it is
reachable once the overlay makes those addresses cluster-unique and routed.

The records reach the resolver through the one narrow call it has for names it does
not own (`set_records`, then `flush`); this module decides what they are, not how
they are served.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from stackd.cluster.records import SlotStatus

# (network key, name) → addresses, in a stable order
Table = dict[tuple[str, str], tuple[str, ...]]


class StaticRecords(Protocol):
    """The part of a resolver (`DnsFeed`, `Resolver`) this source drives."""

    def set_records(self, network_key: str, name: str, ips: Iterable[str]) -> None: ...
    async def flush(self) -> None: ...


def remote_records(statuses: Iterable[SlotStatus], node: str,
                   networks: Iterable[str]) -> Table:
    """What this node's DNS adds: other nodes' ready replicas, on the networks this
    node has (a name on a network no container here is on would never be asked)."""
    here = set(networks)
    out: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for s in statuses:
        if s.node == node or not s.ready:
            continue
        for network, ip in s.addresses.items():
            if network not in here:
                continue
            for name in dict.fromkeys((s.service, s.container)):
                out.setdefault((network, name.lower()), []).append((s.container, ip))
    # Ordered by container, so a table is a pure function of the records.
    return {k: tuple(ip for _, ip in sorted(v)) for k, v in sorted(out.items())}


class ClusterDns:
    """Applies `remote_records` tables to a resolver: only what changed."""

    def __init__(self, sink: StaticRecords) -> None:
        self.sink = sink
        self.applied: Table = {}

    async def apply(self, table: Table) -> None:
        changed = False
        for key in sorted(set(self.applied) - set(table)):
            self.sink.set_records(*key, [])
            changed = True
        for key, ips in table.items():
            if self.applied.get(key) != ips:
                self.sink.set_records(*key, ips)
                changed = True
        self.applied = dict(table)
        if changed:
            await self.sink.flush()
