"""Replica slots: each service with `replicas: n` becomes slots (service, 1..n)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import networkx as nx

from stackd.errors import SpecError
from stackd.scheduler.constraints import Constraint, parse_constraint, parse_spread
from stackd.scheduler.services import Resources, ServiceNode


@dataclass(frozen=True, slots=True, order=True)
class Slot:
    """One replica of a service; equal and hashed by (service, index) alone.

    `needs` and `constraints` travel with the slot so placement needs nothing else.
    `index` is 1-based, as in container names (`<project>-<service>-<index>`).
    """

    service: str
    index: int
    needs: Resources = field(default=Resources(), compare=False)
    constraints: tuple[Constraint, ...] = field(default=(), compare=False)
    max_per_node: int | None = field(default=None, compare=False)
    # Node labels to spread the service's slots over, outermost first.
    spread: tuple[str, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        return f"{self.service}-{self.index}"


def slots(services: Iterable[ServiceNode] | nx.DiGraph) -> list[Slot]:
    """Every replica slot, ordered by service name then index.

    Takes ServiceNodes or a graph from `build_graph`. A service scaled to 0 has no
    slots. Constraints are parsed here, so a bad one fails before anything is placed.
    """
    if isinstance(services, nx.DiGraph):
        services = [data for _, data in services.nodes(data="service")]
    out: list[Slot] = []
    for svc in sorted(services, key=lambda s: s.name):
        if svc.replicas < 0:
            raise SpecError(f"service {svc.name!r}: replicas must be 0 or more, "
                            f"not {svc.replicas}", location=svc.location)
        needs = svc.needs
        parsed = tuple(parse_constraint(c, service=svc.name, location=svc.location)
                       for c in svc.constraints)
        if svc.max_per_node is not None and svc.max_per_node < 1:
            raise SpecError(f"service {svc.name!r}: max_replicas_per_node must be 1 or "
                            f"more, not {svc.max_per_node}", location=svc.location)
        spread = tuple(parse_spread(kind, descriptor, service=svc.name,
                                    location=svc.location)
                       for kind, descriptor in svc.preferences)
        out.extend(Slot(svc.name, i, needs, parsed, svc.max_per_node, spread)
                   for i in range(1, svc.replicas + 1))
    return out
