"""The reconciler's narrow view of the world: what it needs from runtime, images, network, state.

The reconciler imports none of the packages that do I/O; it depends only on these
Protocols. The daemon wires the real runtime / image store / netbridge / state store
to them (an adapter where a signature differs), and tests/sim wires a deterministic
fake with injected faults. Data crossing the boundary is described by Protocols too
(`ContainerView`, `ImageView`…) so either side can use its own classes.

Every method may raise a `StackdError`; the executor reports it with the action that
failed and carries on with whatever does not depend on it.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from stackd.netbridge.model import Attachment, NetworkSpec, PortBinding
from stackd.runtime.containerspec import ContainerSpec
from stackd.scheduler.platform import Platform

ContainerStatus = Literal["created", "running", "exited"]


class ExitView(Protocol):
    @property
    def code(self) -> int | None: ...
    @property
    def signal(self) -> int | str | None: ...
    @property
    def oom_killed(self) -> bool: ...


class ContainerView(Protocol):
    """What the runtime reports of one container (its `ContainerState`)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def status(self) -> ContainerStatus: ...
    @property
    def exit(self) -> ExitView | None: ...
    @property
    def spec(self) -> ContainerSpec | None: ...


class ExecView(Protocol):
    @property
    def exit_code(self) -> int: ...
    @property
    def stdout(self) -> bytes: ...
    @property
    def stderr(self) -> bytes: ...


class RuntimePort(Protocol):
    """The subset of `stackd.runtime.Runtime` the reconciler uses, with its signatures."""

    async def create(self, spec: ContainerSpec) -> object: ...
    async def start(self, container_id: str) -> object: ...
    async def stop(self, container_id: str, grace: float | None = None) -> object:
        """Send the spec's stop signal, SIGKILL after `grace` (the spec's if None)."""
    async def kill(self, container_id: str, signal: str = "SIGTERM") -> None: ...
    async def wait(self, container_id: str) -> ExitView:
        """Return once the container's process has exited (at once if it already has)."""
    async def delete(self, container_id: str, force: bool = False,
                     keep_logs: bool = False) -> None:
        """keep_logs: a restart, the same id is created again and appends to its log."""
        ...
    async def respawn(self, spec: ContainerSpec, *, keep_layer: bool = False
                      ) -> ContainerView:
        """An exited container created again (a restart): delete(keep_logs) and create
        in one step, so it is never missing from list/inspect in between. keep_layer:
        its writable layer too (a user's restart or start); else fresh (a heal)."""
    async def list(self) -> Sequence[ContainerView]: ...
    async def inspect(self, container_id: str) -> ContainerView: ...
    async def exec(self, container_id: str, args: builtins.list[str], **options: Any
                   ) -> ExecView:
        """Run `args` inside the running container; cancelling kills the process.
        options: env ("K=v" items over the container's), cwd, user (hooks)."""


class ImageConfigView(Protocol):
    @property
    def env(self) -> Sequence[str]: ...  # "KEY=value"
    @property
    def cmd(self) -> Sequence[str] | None: ...
    @property
    def entrypoint(self) -> Sequence[str] | None: ...
    @property
    def working_dir(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def healthcheck(self) -> object | None: ...
    @property
    def volumes(self) -> Sequence[str]: ...
    @property
    def stop_signal(self) -> str | None: ...


class ImageView(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def digest(self) -> str: ...
    @property
    def config(self) -> ImageConfigView: ...
    @property
    def layer_dirs(self) -> Sequence[str]: ...  # top-most first


PullPolicy = Literal["always", "missing", "never"]


class ImagePort(Protocol):
    async def ensure(self, ref: str, pull_policy: PullPolicy = "missing", *,
                     platform: Platform | None = None,
                     progress: Callable[[Any], None] | None = None) -> ImageView:
        """progress: told of a pull's events (images.progress.ProgressEvent)."""
    async def build(self, context_dir: str, dockerfile: str = "Dockerfile",
                    tag: str | builtins.list[str] | None = None,
                    build_args: dict[str, str] | None = None, target: str | None = None,
                    *, labels: dict[str, str] | None = None, pull: bool = False,
                    no_cache: bool = False, dockerfile_text: str | None = None,
                    secrets: dict[str, Path] | None = None,
                    network_mode: str | None = None, extra_hosts: Sequence[str] = (),
                    shm_size: int | None = None,
                    ulimits: Sequence[tuple[str, int, int]] = (),
                    contexts: dict[str, str] | None = None,
                    progress: Callable[[Any], None] | None = None) -> ImageView:
        """Build a Dockerfile in `context_dir`, tagged `tag` (compose `build:`);
        `dockerfile_text` is the Dockerfile itself (`dockerfile_inline`); `secrets`:
        id → file, for `RUN --mount=type=secret` (`build.secrets`); `network_mode`:
        `build.network`, what RUN steps are on (default or none); `extra_hosts`
        ("host=ip"), `shm_size`, `ulimits` ((name, soft, hard)): build's, of each step."""
        ...


class NetworkPort(Protocol):
    async def networks(self, project: str) -> Mapping[str, str]:
        """The project's networks that exist on the host: key (`<project>_<name>`) →
        the `netbridge.model.network_hash` recorded when it was made ("" if none was)."""
    async def ensure_network(self, spec: NetworkSpec) -> None: ...
    async def remove_network(self, key: str) -> None: ...
    def netns_path(self, container_id: str) -> str:
        """Where the container's network namespace is (or will be) mounted."""
    async def connect(
        self, container_id: str, attachments: Sequence[Attachment], ports: Sequence[PortBinding],
        *, group: str = "",
    ) -> str:
        """Make the container's network namespace, attach it, publish ports; its netns path.
        Its names are recorded for DNS, answered once `resolvable` returns.

        Containers of one `group` (a service's replicas) share their published ports,
        balanced over the ready ones.

        Called before the container is created, so the runtime can join the namespace.
        Idempotent per container id: a second call (after an interrupted apply) returns
        the namespace the first one made.
        """
    async def resolvable(self, container_id: str) -> None:
        """Return once DNS answers with the names `connect` gave the container (and at
        the gateways of networks made before): what must hold before its process
        starts, whose first lookups would fail otherwise. `connect` and
        `ensure_network` do not wait for it, so the resolver catches up while the
        container is created."""
    async def disconnect(self, container_id: str) -> None:
        """Undo `connect` (detach, unpublish, delete the netns); no error if already gone."""
    def still_connected(self, container_id: str, attachments: Sequence[Attachment]
                        ) -> str | None:
        """The netns path of a container still connected as `attachments` say (its
        namespace, addresses and links all there), for a restart to join again
        instead of connecting afresh; None if anything of it is missing."""
    async def set_ready(self, container_id: str, ready: bool, *, running: bool = False
                        ) -> None:
        """Whether DNS answers with this container's addresses and its published ports
        send it new connections (readiness). `running` (not ready, but running: its
        health check starting or failing): DNS still answers it for a name that no
        ready container has."""


class VolumePort(Protocol):
    """Named volumes: directories under the state root, created on first use."""

    def path(self, name: str) -> str:
        """Where the volume's data lives on the host (whether or not it exists yet)."""
    async def volumes(self, project: str) -> Sequence[str]: ...
    async def ensure_volume(self, project: str, name: str, *, anonymous: bool = False
                            ) -> str:
        """Create the named volume if missing; its host directory. `anonymous`: a
        container's own, which `volume prune` removes once unused (a named one only
        with --all, as Docker's)."""
    async def remove_volume(self, name: str) -> None: ...
    async def exists(self, name: str) -> bool:
        """The volume is there (made by a stack, or by `volume create`)."""
    async def detach(self, name: str) -> str | None:
        """A removed container's anonymous volume, kept under a new name nothing mounts
        (Docker's dangling volume; `volume prune` or `down -v` removes it): its new
        name, None if there was no such volume."""
    def file_path(self, digest: str) -> str:
        """Where a config/secret file with this content digest lives on the host."""
    async def write_file(self, path: str, content: bytes, uid: int, gid: int, mode: int
                         ) -> None:
        """Write (atomically, if missing) a file `file_path` named."""
    async def make_host_dir(self, path: str) -> None:
        """A bind mount's source, made as a directory (0755, root's) if nothing is there."""


class PendingIntent(Protocol):
    """An intent written but never marked done: the step was interrupted."""

    @property
    def id(self) -> int: ...
    @property
    def project(self) -> str: ...
    @property
    def verb(self) -> str: ...  # "create", "remove", …
    @property
    def resource(self) -> str: ...  # "web-2", "network demo_default"
    @property
    def container_id(self) -> str | None: ...
    @property
    def line(self) -> str: ...  # the plan line, for the report


class StatePort(Protocol):
    """The reconciler's durable record (stackd.state.intents.IntentLog).

    Intents: what the executor was about to do, durable before it acts. Holds:
    containers a user stopped, which no restart policy may start again until a user
    starts them (Docker's "manually stopped"), across daemon restarts.
    """

    def hold(self, project: str, container_id: str) -> None: ...
    def unhold(self, container_id: str) -> None: ...
    def held(self, project: str) -> Sequence[str]: ...
    def begin(
        self, project: str, verb: str, resource: str, container_id: str | None, line: str
    ) -> int: ...
    def done(self, intent_id: int) -> None: ...
    def pending(self, project: str) -> Sequence[PendingIntent]: ...


@dataclass(frozen=True, slots=True)
class Adapters:
    """Everything the reconciler may act through, in one value to pass around."""

    runtime: RuntimePort
    images: ImagePort
    network: NetworkPort
    volumes: VolumePort
    state: StatePort
