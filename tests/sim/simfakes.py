"""A deterministic fake host for the reconciler: runtime, network, volumes, images.

Containers are records, their "process" is a timer: a `Behaviour` per service says
when it exits and with what code, whether its healthcheck passes (as a function of
seconds since start), whether create/start fail. Every mutating call is counted, and
`Faults.crash_at = n` makes the n-th one raise `SimulatedCrash` *after* its effect —
the daemon dying between acting and writing down that it acted. Time is trio's, so
tests run on a MockClock and assert exact instants.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import trio

from stackd import hostnames
from stackd.errors import AlreadyExistsError, ConflictError, HostError, NotFoundError
from stackd.netbridge.model import Attachment, NetworkSpec, PortBinding, network_hash
from stackd.runtime.containerspec import ContainerSpec


class SimulatedCrash(BaseException):
    """The daemon was SIGKILLed here. BaseException: nothing in the reconciler catches it."""


@dataclass
class Faults:
    crash_at: int | None = None
    ops: int = 0

    def tick(self) -> None:
        self.ops += 1
        if self.crash_at is not None and self.ops == self.crash_at:
            self.crash_at = None
            raise SimulatedCrash(f"crash after operation {self.ops}")


@dataclass
class Behaviour:
    exit_after: float | None = None  # the process exits this long after start
    exit_code: int = 0
    create_error: str | None = None
    start_error: str | None = None
    healthy: Callable[[float], bool] = lambda t: True  # seconds since start → probe passes
    probe_time: float = 0.0  # how long one probe takes
    stop_code: int = 143  # on `stop`'s SIGTERM (0: a server that ends cleanly on it)


@dataclass(frozen=True)
class FakeExit:
    code: int
    signal: int | None = None
    oom_killed: bool = False


@dataclass(frozen=True)
class FakeExec:
    exit_code: int
    stdout: bytes
    stderr: bytes = b""


@dataclass(frozen=True)
class FakeView:
    id: str
    name: str
    labels: Mapping[str, str]
    status: str
    exit: FakeExit | None
    spec: ContainerSpec | None


@dataclass
class FakeContainer:
    spec: ContainerSpec
    status: str = "created"
    exit: FakeExit | None = None
    started_at: float = 0.0
    run: int = 0  # which start this is; timers of older runs do nothing
    exited: trio.Event = field(default_factory=trio.Event)

    def view(self) -> FakeView:
        return FakeView(self.spec.id, self.spec.name, dict(self.spec.labels), self.status,
                        self.exit, self.spec)


class FakeRuntime:
    def __init__(self, nursery: trio.Nursery, faults: Faults | None = None) -> None:
        self.nursery = nursery
        self.faults = faults or Faults()
        self.containers: dict[str, FakeContainer] = {}
        self.behaviours: dict[str, Behaviour] = {}
        self.log: list[tuple[float, str, str]] = []  # (time, op, container name)
        self.exec_count: dict[str, int] = {}
        # id → how many runs its log holds: create appends, a delete with keep_logs
        # keeps it (a restart), any other delete removes it.
        self.log_files: dict[str, int] = {}
        # Containers connected whose names DNS does not answer yet (FakeNetwork's,
        # shared by sim_host): starting one is a bug, its first lookups would fail.
        self.unresolved: set[str] = set()

    def behaviour(self, spec: ContainerSpec) -> Behaviour:
        return self.behaviours.get(spec.labels.get(hostnames.LABEL_SERVICE, ""), Behaviour())

    def _record(self, op: str, c: FakeContainer | ContainerSpec) -> None:
        spec = c if isinstance(c, ContainerSpec) else c.spec
        self.log.append((trio.current_time(), op, spec.name))

    def _get(self, container_id: str) -> FakeContainer:
        try:
            return self.containers[container_id]
        except KeyError:
            raise NotFoundError(f"container {container_id} not found") from None

    def ops(self, op: str) -> list[str]:
        return [name for _, o, name in self.log if o == op]

    # -- RuntimePort ---------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> FakeView:
        await trio.lowlevel.checkpoint()
        if spec.id in self.containers:
            raise AlreadyExistsError(f"container {spec.id} already exists")
        return self._make(spec, "create")

    def _make(self, spec: ContainerSpec, op: str) -> FakeView:
        err = self.behaviour(spec).create_error
        if err:  # as the monitor's: a create that fails leaves nothing, log included
            if op == "respawn":
                self.log_files.pop(spec.id, None)
            raise HostError(err)
        c = self.containers[spec.id] = FakeContainer(spec)
        self.log_files[spec.id] = self.log_files.get(spec.id, 0) + 1
        self._record(op, c)
        self.faults.tick()
        return c.view()

    async def start(self, container_id: str) -> None:
        await trio.lowlevel.checkpoint()
        c = self._get(container_id)
        if c.status != "created":
            raise ConflictError(f"container {container_id} is {c.status}, not created")
        if container_id in self.unresolved:
            raise AssertionError(f"{container_id} started before DNS answers its names")
        b = self.behaviour(c.spec)
        if b.start_error:
            raise HostError(b.start_error)
        c.status, c.started_at, c.run = "running", trio.current_time(), c.run + 1
        self._record("start", c)
        if b.exit_after is not None:
            self.nursery.start_soon(self._exit_later, c, c.run, b.exit_after, b.exit_code)
        self.faults.tick()

    async def _exit_later(self, c: FakeContainer, run: int, after: float, code: int) -> None:
        await trio.sleep(after)
        if c.run == run and c.status == "running":
            self._exit(c, FakeExit(code))

    def _exit(self, c: FakeContainer, status: FakeExit) -> None:
        c.status, c.exit = "exited", status
        self._record(f"exit {status.code}", c)
        c.exited.set()

    async def stop(self, container_id: str, grace: float | None = None) -> None:
        await trio.lowlevel.checkpoint()
        c = self._get(container_id)
        if c.status == "running":
            code = self.behaviour(c.spec).stop_code
            self._exit(c, FakeExit(code, 15 if code else None))
        self._record("stop", c)
        self.faults.tick()

    async def kill(self, container_id: str, signal: str = "SIGKILL") -> None:
        await trio.lowlevel.checkpoint()
        c = self._get(container_id)
        if c.status == "running":
            self._exit(c, FakeExit(137, 9))
        self._record("kill", c)
        self.faults.tick()

    def kill_from_outside(self, container_id: str) -> None:
        """`kill -9` by someone else: not a runtime call, no fault counting."""
        self._exit(self._get(container_id), FakeExit(137, 9))

    async def wait(self, container_id: str) -> FakeExit:
        c = self._get(container_id)
        await c.exited.wait()
        return c.exit or FakeExit(137, 9)

    async def delete(self, container_id: str, force: bool = False,
                     keep_logs: bool = False) -> None:
        await trio.lowlevel.checkpoint()
        c = self._get(container_id)
        if c.status == "running":
            raise ConflictError(f"container {container_id} is running")
        del self.containers[container_id]
        c.exited.set()  # a waiter on a deleted container must not hang
        if not keep_logs:
            self.log_files.pop(container_id, None)
        self._record("delete", c)
        self.faults.tick()

    async def respawn(self, spec: ContainerSpec, *, keep_layer: bool = False) -> FakeView:
        """delete(keep_logs) then create, as one step (the real monitor's request)."""
        await trio.lowlevel.checkpoint()
        old = self._get(spec.id)
        if old.status != "exited":
            raise ConflictError(f"container {spec.id} is {old.status}, not exited")
        old.exited.set()
        del self.containers[spec.id]
        return self._make(spec, "respawn")

    async def list(self) -> list[FakeView]:
        await trio.lowlevel.checkpoint()
        return [c.view() for _, c in sorted(self.containers.items())]

    async def inspect(self, container_id: str) -> FakeView:
        await trio.lowlevel.checkpoint()
        return self._get(container_id).view()

    async def exec(self, container_id: str, args: list[str]) -> FakeExec:
        c = self._get(container_id)
        if c.status != "running":
            raise ConflictError(f"container {container_id} is not running")
        b = self.behaviour(c.spec)
        self.exec_count[c.spec.name] = self.exec_count.get(c.spec.name, 0) + 1
        await trio.sleep(b.probe_time)
        ok = b.healthy(trio.current_time() - c.started_at)
        return FakeExec(0 if ok else 1, b"ok" if ok else b"probe failed")

    def running(self) -> list[str]:
        return sorted(c.spec.name for c in self.containers.values() if c.status == "running")

    def names(self) -> list[str]:
        return sorted(c.spec.name for c in self.containers.values())


class FakeNetwork:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.existing: dict[str, NetworkSpec] = {}
        self.connected: dict[str, tuple[Attachment, ...]] = {}
        self.published: dict[str, tuple[PortBinding, ...]] = {}
        self.ready: dict[str, bool] = {}
        self.readiness_log: list[tuple[float, str, bool]] = []
        self.connects: list[str] = []  # every connect, in order
        self.unresolved: set[str] = set()  # connected, names not answered yet
        # How long a readiness change takes to reach the kernel (netbridge runs nft)
        self.ready_delay = 0.0

    async def networks(self, project: str) -> dict[str, str]:
        return {k: network_hash(n) for k, n in sorted(self.existing.items())
                if n.project == project}

    def netns_path(self, container_id: str) -> str:
        return f"/sim/netns/{container_id}"

    async def ensure_network(self, spec: NetworkSpec) -> None:
        await trio.lowlevel.checkpoint()
        self.existing[spec.key] = spec
        self.faults.tick()

    async def remove_network(self, key: str) -> None:
        await trio.lowlevel.checkpoint()
        users = [c for c, atts in self.connected.items()
                 if any(a.network_key == key for a in atts)]
        if users:
            raise ConflictError(f"network {key} is in use by {', '.join(sorted(users))}")
        self.existing.pop(key, None)
        self.faults.tick()

    async def connect(self, container_id: str, attachments: Sequence[Attachment],
                      ports: Sequence[PortBinding], *, group: str = "") -> str:
        await trio.lowlevel.checkpoint()
        if container_id in self.connected:  # as netbridge: attach twice is refused
            raise AlreadyExistsError(f"container {container_id} is already attached")
        for a in attachments:
            if a.network_key not in self.existing:
                raise NotFoundError(f"network {a.network_key} not found")
        self.connected[container_id] = tuple(attachments)
        self.published[container_id] = tuple(ports)
        self.connects.append(container_id)
        self.unresolved.add(container_id)
        self.faults.tick()
        return f"/run/netns/{container_id}"

    async def resolvable(self, container_id: str) -> None:
        await trio.lowlevel.checkpoint()
        self.unresolved.clear()  # as the resolver's flush: every change so far

    def still_connected(self, container_id: str, attachments: Sequence[Attachment]
                        ) -> str | None:
        held = self.connected.get(container_id)
        if held is None or sorted(a.network_key for a in held) != sorted(
                a.network_key for a in attachments):
            return None
        return f"/run/netns/{container_id}"

    async def disconnect(self, container_id: str) -> None:
        await trio.lowlevel.checkpoint()
        self.connected.pop(container_id, None)
        self.published.pop(container_id, None)
        self.ready.pop(container_id, None)
        self.unresolved.discard(container_id)

    async def set_ready(self, container_id: str, ready: bool, *, running: bool = False
                        ) -> None:
        if self.ready_delay:
            await trio.sleep(self.ready_delay)
        if self.ready.get(container_id) != ready:
            self.readiness_log.append((trio.current_time(), container_id, ready))
        self.ready[container_id] = ready

    def served(self) -> list[str]:
        return sorted(c for c, r in self.ready.items() if r)


class FakeVolumes:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.existing: dict[str, str] = {}  # name → project
        self.files: dict[str, tuple[bytes, int, int, int]] = {}
        self.dirs: set[str] = set()

    def path(self, name: str) -> str:
        return f"/sim/volumes/{name}/data"

    async def volumes(self, project: str) -> list[str]:
        return sorted(n for n, p in self.existing.items() if p == project)

    async def detach(self, name: str) -> str | None:
        await trio.lowlevel.checkpoint()
        project = self.existing.pop(name, None)
        if project is None:
            return None
        self.existing[f"{name}.detached"] = project
        return f"{name}.detached"

    async def exists(self, name: str) -> bool:
        await trio.lowlevel.checkpoint()
        return name in self.existing

    async def ensure_volume(self, project: str, name: str, *, anonymous: bool = False
                            ) -> str:
        await trio.lowlevel.checkpoint()
        self.existing.setdefault(name, project)
        self.faults.tick()
        return self.path(name)

    async def remove_volume(self, name: str) -> None:
        await trio.lowlevel.checkpoint()
        self.existing.pop(name, None)
        self.faults.tick()

    def file_path(self, digest: str) -> str:
        return f"/sim/files/{digest}"

    async def write_file(self, path: str, content: bytes, uid: int, gid: int, mode: int
                         ) -> None:
        await trio.lowlevel.checkpoint()
        self.files[path] = (content, uid, gid, mode)

    async def make_host_dir(self, path: str) -> None:
        await trio.lowlevel.checkpoint()
        self.dirs.add(path)


class NoImages:
    async def ensure(self, ref: str, pull_policy: str = "missing", **kw: object) -> object:
        raise AssertionError("sim tests build desired state directly")

    async def build(self, context_dir: str, dockerfile: str = "Dockerfile",
                    tag: str | list[str] | None = None, build_args: dict[str, str] | None = None,
                    target: str | None = None, **kw: object) -> object:
        raise AssertionError("sim tests build desired state directly")


class FakeImages:
    """Every ref resolves to `image`; a test swaps `digests[ref]` to simulate a re-pull."""

    def __init__(self, image: object) -> None:
        self.image = image
        self.digests: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self.builds: list[dict[str, object]] = []  # the arguments of each build()

    async def build(self, context_dir: str, dockerfile: str = "Dockerfile",
                    tag: str | list[str] | None = None, build_args: dict[str, str] | None = None,
                    target: str | None = None, **kw: object) -> object:
        """Records the call; the result is `image` with a digest of its own, tagged."""
        await trio.lowlevel.checkpoint()
        tags = [tag] if isinstance(tag, str) else list(tag or [])
        self.builds.append(dict(context=context_dir, dockerfile=dockerfile, tags=tags,
                                build_args=dict(build_args or {}), target=target, **kw))
        digest = "sha256:" + f"{len(self.builds):064x}"
        for t in tags:
            self.digests[t] = digest
        return self.image.model_copy(update={"digest": digest})  # type: ignore[attr-defined]

    async def ensure(self, ref: str, pull_policy: str = "missing", **kw: object) -> object:
        await trio.lowlevel.checkpoint()
        self.calls.append((ref, pull_policy))
        digest = self.digests.get(ref)
        if digest is None:
            return self.image
        return self.image.model_copy(update={"digest": digest})  # type: ignore[attr-defined]
