"""The scheduler's own input: services reduced to what ordering and placement need.

These types are deliberately smaller than the spec model so the scheduler can be
tested without YAML; `from_stack` converts a loaded `Stack` into them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from stackd.errors import Location


class DependencyKind(StrEnum):
    """Which stack-file field an edge of the graph came from."""

    DEPENDS_ON = "depends_on"
    LINKS = "links"
    NETWORK_MODE = "network_mode"  # network_mode: service:x
    VOLUMES_FROM = "volumes_from"
    IPC = "ipc"  # ipc: service:x
    PID = "pid"  # pid: service:x


class Condition(StrEnum):
    """When a dependency counts as ready (Compose's `depends_on.condition`)."""

    STARTED = "service_started"
    HEALTHY = "service_healthy"
    COMPLETED = "service_completed_successfully"


@dataclass(frozen=True, slots=True)
class Dependency:
    """One reason a service must start after `target`.

    Only `depends_on` can carry a condition other than `service_started`, `required:
    false` or `restart: true`; every other kind is a hard, started-is-enough edge.
    """

    target: str
    kind: DependencyKind = DependencyKind.DEPENDS_ON
    condition: Condition = Condition.STARTED
    required: bool = True
    restart: bool = False
    location: Location | None = None

    def describe(self) -> str:
        """`depends_on: service_healthy`, `links`, … — how the edge is labelled."""
        if self.kind is DependencyKind.DEPENDS_ON:
            text = f"depends_on: {self.condition}"
            if not self.required:
                text += ", required: false"
            if self.restart:
                text += ", restart: true"
            return text
        return str(self.kind)


@dataclass(frozen=True, slots=True)
class Resources:
    """CPUs (fractional), memory (bytes) and pids; None means unset."""

    cpus: float | None = None
    memory: int | None = None
    pids: int | None = None

    def or_else(self, fallback: Resources) -> Resources:
        """Each unset field taken from `fallback` (reservations falling back to limits)."""
        return Resources(
            cpus=self.cpus if self.cpus is not None else fallback.cpus,
            memory=self.memory if self.memory is not None else fallback.memory,
            pids=self.pids if self.pids is not None else fallback.pids,
        )


@dataclass(frozen=True, slots=True)
class ServiceNode:
    """A service as the scheduler sees it.

    `constraints` are Swarm-style placement expressions (`node.labels.zone == east`),
    parsed when slots are made so a bad one is reported at the service's location.
    """

    name: str
    depends: tuple[Dependency, ...] = ()
    replicas: int = 1
    reservations: Resources = Resources()
    limits: Resources = Resources()
    constraints: tuple[str, ...] = ()
    max_per_node: int | None = None  # deploy.placement.max_replicas_per_node
    # deploy.placement.preferences, as (kind, descriptor): ("spread", "node.labels.zone")
    preferences: tuple[tuple[str, str], ...] = ()
    # deploy.mode: "global" is one replica on every node its constraints allow (a
    # cluster counts them; one host is one node), "replicated" is `replicas` of them.
    mode: Literal["replicated", "global"] = "replicated"
    location: Location | None = None

    @property
    def needs(self) -> Resources:
        """What one replica needs on a node: its reservations, falling back to limits."""
        return self.reservations.or_else(self.limits)
