"""Desired state: what the host should hold for one stack, slot by slot.

Built from a `Stack` plus the resolved images by `translate.desired_state` (pure once the
images are known); read by `diff.plan` and `apply.apply`. Every replica slot becomes
a `DesiredContainer`: a complete `ContainerSpec` (labels included), the networks it
joins, the ports it publishes, and the config hash that decides recreation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from stackd import hostnames
from stackd.netbridge.model import Attachment, NetworkSpec, PortBinding
from stackd.reconciler.hash import ConfigHash
from stackd.reconciler.health import HealthCheck
from stackd.reconciler.restart import RestartPolicy
from stackd.runtime.containerspec import ContainerSpec
from stackd.spec.model import UpdateConfig

LABEL_CONFIG_FIELDS = "io.stackd.config-fields"

CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")


@dataclass(frozen=True, slots=True)
class DependsOn:
    service: str
    condition: str = "service_started"  # one of CONDITIONS
    required: bool = True
    restart: bool = False  # restart this service when `service` is recreated (Compose)


@dataclass(frozen=True, slots=True)
class DesiredService:
    """What applies to every replica of a service but is not part of its containers."""

    name: str
    scale: int = 1
    depends_on: tuple[DependsOn, ...] = ()
    healthcheck: HealthCheck | None = None
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    restart_on_unhealthy: bool = True
    # Every service this one starts after: depends_on, links, network_mode service:,
    # volumes_from (the scheduler graph's edges); what `up <this>` brings up too.
    needs: tuple[str, ...] = ()
    # deploy.update_config: recreate its replicas batch by batch behind a health gate
    # (reconciler/rolling.py); None: all at once, as Compose's `up` does.
    update: UpdateConfig | None = None


@dataclass(frozen=True, slots=True)
class FileToWrite:
    """A config/secret with its own uid/gid/mode: a host file bind-mounted read-only."""

    path: str  # content-addressed, so writing it twice is harmless
    content: bytes
    uid: int
    gid: int
    mode: int


@dataclass(frozen=True, slots=True)
class DesiredContainer:
    project: str
    service: str
    index: int
    spec: ContainerSpec  # id, name and labels (project, service, index, hashes) filled in
    config_hash: ConfigHash
    attachments: tuple[Attachment, ...] = ()
    ports: tuple[PortBinding, ...] = ()
    volumes: tuple[str, ...] = ()  # host names of the named volumes it mounts
    # Those of `volumes` that are its anonymous ones (image VOLUMEs, `- /path`): named
    # per slot, so a recreated container finds its predecessor's data (Compose's).
    anonymous: tuple[str, ...] = ()
    host_files: tuple[FileToWrite, ...] = ()  # written before the container is created
    # Bind mount sources made (as directories) before the container is created when
    # missing, as Docker makes them; `bind.create_host_path: false` opts out.
    host_dirs: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def slot(self) -> str:
        """`web-2`: how plans and progress name the container."""
        return f"{self.service}-{self.index}"

    @property
    def env(self) -> dict[str, str]:
        return dict(kv.partition("=")[::2] for kv in self.spec.process.env)


@dataclass(frozen=True, slots=True)
class DesiredState:
    project: str
    services: Mapping[str, DesiredService]
    containers: tuple[DesiredContainer, ...]  # sorted by (service, index)
    networks: Mapping[str, NetworkSpec] = field(default_factory=dict)  # by key
    volumes: tuple[str, ...] = ()  # host names of the stack's named volumes, sorted
    waves: tuple[tuple[str, ...], ...] = ()  # start order of services, dependencies first
    # Services of the stack an `up` of others left out, their image not in the store
    # (only what is named and what it needs is pulled or built): kept as they are.
    left_alone: frozenset[str] = frozenset()

    def containers_of(self, service: str) -> tuple[DesiredContainer, ...]:
        return tuple(c for c in self.containers if c.service == service)


def container_id(project: str, service: str, index: int, digest: str,
                 fixed_name: str | None = None) -> str:
    """Runtime id: the name plus the config hash, so a new config never reuses an old id."""
    name = hostnames.container_name(project, service, index, fixed_name).lower()
    return f"{name}-{digest[:8]}"


def slot_container(
    project: str,
    service: str,
    index: int,
    spec: ContainerSpec,
    config_hash: ConfigHash,
    *,
    attachments: tuple[Attachment, ...] = (),
    ports: tuple[PortBinding, ...] = (),
    volumes: tuple[str, ...] = (),
    anonymous: tuple[str, ...] = (),
    host_files: tuple[FileToWrite, ...] = (),
    host_dirs: tuple[str, ...] = (),
    fixed_name: str | None = None,
) -> DesiredContainer:
    """A DesiredContainer whose spec carries the slot's id, name and labels; the name is
    the service's `container_name` when it has one (fixed_name), with the same labels,
    so the slot is found again as any other."""
    name = hostnames.container_name(project, service, index, fixed_name)
    labels = dict(spec.labels)
    labels.update({
        hostnames.LABEL_PROJECT: project,
        hostnames.LABEL_SERVICE: service,
        hostnames.LABEL_INDEX: str(index),
        hostnames.LABEL_CONFIG_HASH: config_hash.digest,
        LABEL_CONFIG_FIELDS: config_hash.fields_label(),
    })
    if anonymous:
        labels[hostnames.LABEL_ANONYMOUS_VOLUMES] = ",".join(anonymous)
    full = spec.model_copy(update={
        "id": container_id(project, service, index, config_hash.digest, fixed_name),
        "name": name,
        "labels": labels,
    })
    return DesiredContainer(project, service, index, full, config_hash, attachments, ports,
                            volumes, anonymous, host_files, host_dirs)
