"""The plan as data: what `apply` will do, each step with its resource and its cause.

A plan is produced by `diff.plan` (pure) and carried out by `apply.apply`, which
makes no decisions of its own. Each action prints as one stable line —

    web-2: recreate — environment changed: LOG_LEVEL

— which is what `stackd plan` shows, what the intent log records and what the tests
compare with golden strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, TypeGuard

from stackd.netbridge.model import NetworkSpec
from stackd.reconciler.desired import DesiredContainer


@dataclass(frozen=True, slots=True)
class _Action:
    verb: ClassVar[str] = ""
    cause: str

    @property
    def resource(self) -> str:
        raise NotImplementedError

    @property
    def line(self) -> str:
        return f"{self.resource}: {self.verb} — {self.cause}"

    def __str__(self) -> str:
        return self.line


@dataclass(frozen=True, slots=True)
class NetworkCreate(_Action):
    verb: ClassVar[str] = "create"
    spec: NetworkSpec

    @property
    def resource(self) -> str:
        return f"network {self.spec.key}"


@dataclass(frozen=True, slots=True)
class NetworkRecreate(_Action):
    """Remove the network and make it again from `spec`: its configuration changed.
    The plan removes the containers attached to it first and creates them after."""

    verb: ClassVar[str] = "recreate"
    spec: NetworkSpec

    @property
    def resource(self) -> str:
        return f"network {self.spec.key}"


@dataclass(frozen=True, slots=True)
class NetworkRemove(_Action):
    verb: ClassVar[str] = "remove"
    key: str

    @property
    def resource(self) -> str:
        return f"network {self.key}"


@dataclass(frozen=True, slots=True)
class VolumeCreate(_Action):
    verb: ClassVar[str] = "create"
    name: str
    # A container's own (image VOLUME, `- /path`): `volume prune` removes it unused,
    # as Docker's prune removes only anonymous volumes unless --all.
    anonymous: bool = False

    @property
    def resource(self) -> str:
        return f"volume {self.name}"


@dataclass(frozen=True, slots=True)
class VolumeRemove(_Action):
    verb: ClassVar[str] = "remove"
    name: str

    @property
    def resource(self) -> str:
        return f"volume {self.name}"


@dataclass(frozen=True, slots=True)
class Create(_Action):
    """Create the slot's container and start it (`start` False: `stackd create`, which
    leaves it created and held until `start` or `up`)."""

    verb: ClassVar[str] = "create"
    container: DesiredContainer
    start: bool = True
    # `up -V`: these anonymous volumes of the container are made afresh before it is.
    renew: tuple[str, ...] = ()

    @property
    def resource(self) -> str:
        return self.container.slot

    @property
    def service(self) -> str:
        return self.container.service


@dataclass(frozen=True, slots=True)
class Recreate(_Action):
    """Stop and remove `old_id`, then create and start the slot's new container."""

    verb: ClassVar[str] = "recreate"
    container: DesiredContainer
    old_id: str
    grace: float | None = None  # `restart -t`: SIGKILL the old one after this long
    # `up -V`: these anonymous volumes are made afresh once the old container is gone,
    # instead of the new one finding its data.
    renew: tuple[str, ...] = ()

    @property
    def resource(self) -> str:
        return self.container.slot

    @property
    def service(self) -> str:
        return self.container.service


@dataclass(frozen=True, slots=True)
class Restart(Recreate):
    """A current container stopped and started again (same id, same config) because a
    dependency it declares `depends_on: {x: {restart: true}}` on was recreated.
    Carried out as a Recreate of the same id, which keeps the container's log."""

    verb: ClassVar[str] = "restart"


def makes_container(action: object) -> TypeGuard[Create | Recreate]:
    """A new container is made from the slot's spec: a Create or a Recreate, not a
    Restart (the same container, same config, started again)."""
    return isinstance(action, Create | Recreate) and not isinstance(action, Restart)


@dataclass(frozen=True, slots=True)
class Start(_Action):
    """Start an existing container whose config is current (created, or exited)."""

    verb: ClassVar[str] = "start"
    container: DesiredContainer
    old_id: str

    @property
    def resource(self) -> str:
        return self.container.slot

    @property
    def service(self) -> str:
        return self.container.service


@dataclass(frozen=True, slots=True)
class Stop(_Action):
    verb: ClassVar[str] = "stop"
    container_id: str
    service: str
    index: int
    grace: float | None = None  # `stop -t`: SIGKILL after this long (None: the spec's)

    @property
    def resource(self) -> str:
        return f"{self.service}-{self.index}"


@dataclass(frozen=True, slots=True)
class Remove(_Action):
    """Stop (if running), detach and delete a container."""

    verb: ClassVar[str] = "remove"
    container_id: str
    service: str
    index: int
    grace: float | None = None  # `down -t`: SIGKILL after this long (None: the spec's)
    # `down` (without -v): its anonymous volumes, kept but set apart (VolumePort.detach):
    # the slot's next container gets new ones, as Compose's new container does.
    detach: tuple[str, ...] = ()

    @property
    def resource(self) -> str:
        return f"{self.service}-{self.index}"


Action = (NetworkCreate | NetworkRecreate | NetworkRemove | VolumeCreate | VolumeRemove
          | Create | Recreate | Start | Stop | Remove)
ContainerAction = Create | Recreate | Start | Stop | Remove
BringUp = Create | Recreate | Start


@dataclass(frozen=True, slots=True)
class Plan:
    project: str
    actions: tuple[Action, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.actions

    def lines(self) -> list[str]:
        return [a.line for a in self.actions]

    def __str__(self) -> str:
        body = self.lines() or [f"{self.project}: nothing to do, the stack already matches"]
        return "\n".join([*body, *(f"warning: {w}" for w in self.warnings)])
