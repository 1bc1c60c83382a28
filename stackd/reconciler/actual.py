"""Actual state: what the host holds for one stack, read fresh for every reconcile.

Containers are found by their `io.stackd.project` label (stackd touches only what
it labelled), networks and volumes through their ports, and intents that were
written but never finished through the state store. Observed state is read-only
input to `diff.plan`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from stackd import hostnames
from stackd.reconciler.desired import LABEL_CONFIG_FIELDS
from stackd.reconciler.hash import ConfigHash
from stackd.reconciler.ports import Adapters, ContainerStatus, ContainerView, PendingIntent


@dataclass(frozen=True, slots=True)
class ActualContainer:
    id: str
    name: str
    service: str
    index: int
    status: ContainerStatus
    config_hash: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] | None = None  # None when the runtime did not say
    exit_code: int | None = None
    anonymous: tuple[str, ...] = ()  # its anonymous volumes (the label's)

    @property
    def slot(self) -> str:
        return f"{self.service}-{self.index}"


@dataclass(frozen=True, slots=True)
class ActualState:
    project: str
    containers: tuple[ActualContainer, ...] = ()
    networks: frozenset[str] = frozenset()
    volumes: frozenset[str] = frozenset()
    pending: tuple[PendingIntent, ...] = ()
    held: frozenset[str] = frozenset()  # container ids a user stopped (StatePort holds)
    # key → network_hash recorded on the existing network ("" or absent: not recorded)
    network_hashes: Mapping[str, str] = field(default_factory=dict)


def container_from_view(view: ContainerView) -> ActualContainer | None:
    """None for a container without stackd's labels (never ours to touch), and for a
    one-off (`stackd run SERVICE`): not a slot, so never an extra replica or an orphan."""
    labels = view.labels
    if labels.get(hostnames.LABEL_ONEOFF) == "true":
        return None
    service = labels.get(hostnames.LABEL_SERVICE)
    index = labels.get(hostnames.LABEL_INDEX, "")
    if service is None or not index.isdigit():
        return None
    env: dict[str, str] | None = None
    if view.spec is not None:
        env = dict(kv.partition("=")[::2] for kv in view.spec.process.env)
    exit_code = view.exit.code if view.exit is not None else None
    return ActualContainer(
        id=view.id,
        name=view.name,
        service=service,
        index=int(index),
        status=view.status,
        config_hash=labels.get(hostnames.LABEL_CONFIG_HASH, ""),
        fields=ConfigHash.parse_fields_label(labels.get(LABEL_CONFIG_FIELDS, "")),
        env=env,
        exit_code=exit_code,
        # Only the project's own: whatever a label says, a removal sets apart no other's.
        anonymous=tuple(v for v in labels.get(hostnames.LABEL_ANONYMOUS_VOLUMES, "").split(",")
                        if v.startswith(f"{labels.get(hostnames.LABEL_PROJECT)}_")),
    )


def actual_from(
    project: str,
    views: Sequence[ContainerView],
    networks: Mapping[str, str] | Sequence[str] = (),
    volumes: Sequence[str] = (),
    pending: Sequence[PendingIntent] = (),
    held: Sequence[str] = (),
) -> ActualState:
    containers = [c for v in views if (c := container_from_view(v)) is not None
                  and v.labels.get(hostnames.LABEL_PROJECT) == project]
    containers.sort(key=lambda c: (c.service, c.index, c.id))
    hashes = dict(networks) if isinstance(networks, Mapping) else {}
    return ActualState(project, tuple(containers), frozenset(networks), frozenset(volumes),
                       tuple(pending), frozenset(held), hashes)


async def observe(project: str, ports: Adapters) -> ActualState:
    views = await ports.runtime.list()
    networks = await ports.network.networks(project)
    volumes = await ports.volumes.volumes(project)
    pending = ports.state.pending(project)
    held = ports.state.held(project)
    return actual_from(project, views, networks, volumes, pending, held)
