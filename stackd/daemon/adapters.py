"""The real World: spec, reconciler, runtime, images, netbridge and state behind the daemon.

Two layers: port adapters that give the reconciler's Protocols (reconciler/ports.py)
the real runtime / image store / networks / volumes / intent log where their
signatures differ, and `HostWorld`, the daemon's World built on those ports. One
`Supervisor` lives as long as the daemon: it watches every container an apply
started or adopted (exits, health, restarts) and its facts become bus events.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from stackd import hostnames
from stackd.daemon.events import Event
from stackd.daemon.models import ApplyOptions, ExecRequest, ExecResult, RemoveOptions, StackSource
from stackd.daemon.world import Emit
from stackd.errors import NotFoundError, StackdError, UnavailableError
from stackd.roots import Roots
from stackd.state.db import StateDB

# -- port adapters --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ExecOutput:
    exit_code: int
    output: str


class RuntimeAdapter:
    """RuntimePort over stackd.runtime.Runtime."""

    def __init__(self, runtime: Any) -> None:
        self.rt = runtime

    async def create(self, spec: Any) -> object:
        return await self.rt.create(spec)

    async def start(self, container_id: str) -> None:
        await self.rt.start(container_id)

    async def stop(self, container_id: str, timeout: float | None = None) -> None:
        await self.rt.stop(container_id, grace=timeout)

    async def kill(self, container_id: str, signal: str = "SIGKILL") -> None:
        await self.rt.kill(container_id, signal)

    async def wait(self, container_id: str) -> Any:
        return await self.rt.wait(container_id)

    async def delete(self, container_id: str) -> None:
        await self.rt.delete(container_id, force=True)

    async def list(self, labels: Mapping[str, str] | None = None) -> Sequence[Any]:
        want = dict(labels or {})
        return [c for c in await self.rt.list()
                if all(c.labels.get(k) == v for k, v in want.items())]

    async def inspect(self, container_id: str) -> Any:
        return await self.rt.inspect(container_id)

    async def exec(self, container_id: str, args: Sequence[str], *,
                   timeout: float | None = None) -> _ExecOutput:
        from stackd.runtime.exec import exec_in

        state = await self.rt.inspect(container_id)
        with trio.move_on_after(timeout if timeout is not None else float("inf")):
            r = await exec_in(state, list(args))
            return _ExecOutput(r.exit_code, (r.stdout + r.stderr).decode(errors="replace"))
        return _ExecOutput(-1, f"timed out after {timeout}s")


class NetworkAdapter:
    """NetworkPort over stackd.netbridge.Networks (+ its DNS resolver)."""

    def __init__(self, networks: Any) -> None:
        self.nets = networks

    async def networks(self, project: str) -> Sequence[str]:
        return [n.key for n in self.nets.list() if n.project == project]

    async def ensure_network(self, spec: Any) -> None:
        await self.nets.ensure_network(spec)

    async def remove_network(self, key: str) -> None:
        await self.nets.remove_network(key)

    async def connect(self, container_id: str, attachments: Sequence[Any],
                      ports: Sequence[Any]) -> str:
        if ports:
            self.nets.check_ports_free(list(ports), container_id=container_id)
        path: str = await self.nets.create_netns(container_id)
        try:
            addresses = await self.nets.attach(container_id, path, list(attachments),
                                               names=_dns_names(container_id))
            if ports:
                await self.nets.publish(container_id, list(ports), addresses[0].ip)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.disconnect(container_id)
            raise
        return path

    async def disconnect(self, container_id: str) -> None:
        await self.nets.unpublish(container_id)
        await self.nets.detach(container_id)
        await self.nets.remove_netns(container_id)

    async def set_ready(self, container_id: str, ready: bool) -> None:
        if self.nets.resolver is not None:
            self.nets.resolver.set_ready(container_id, ready)


_ID = re.compile(r"^(?P<name>.+)-(?P<index>\d+)-[0-9a-f]{8}$")


def _dns_names(container_id: str) -> list[str]:
    """The container's name (`webapp-web-1`) from its runtime id (`webapp-web-1-<hash>`).

    The service name and aliases come with the attachments; this adds the container's
    own name, which Compose also serves.
    """
    m = _ID.match(container_id)
    return [f"{m['name']}-{m['index']}"] if m else []


class ImageAdapter:
    """ImagePort over stackd.images.ImageStore."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def ensure(self, ref: str, pull_policy: str = "missing") -> Any:
        return await self.store.ensure(ref, pull_policy)  # type: ignore[arg-type]


def make_ports(roots: Roots, db: StateDB, resolver: Any | None) -> Any:
    from stackd.images import ImageStore
    from stackd.netbridge import Networks
    from stackd.reconciler.ports import Ports
    from stackd.runtime.runtime import Runtime
    from stackd.state.intents import IntentLog
    from stackd.state.volumes import VolumeStore

    db.ensure_schemas()  # the tables those modules registered on import
    return Ports(runtime=RuntimeAdapter(Runtime(roots)),
                 images=ImageAdapter(ImageStore(roots)),
                 network=NetworkAdapter(Networks(roots, db, resolver=resolver)),
                 volumes=VolumeStore(db, roots.state),
                 state=IntentLog(db))


# -- the World ------------------------------------------------------------------------


def _event_from_supervisor(e: Any) -> Event:
    return Event(type=e.type if e.type in ("die", "health", "restart", "error") else "error",
                 project=e.project, service=e.service, container=e.container,
                 message=e.message)


class HostWorld:
    def __init__(self, roots: Roots, db: StateDB) -> None:
        self.roots = roots
        self.db = db
        self.resolver: Any = None
        self.ports: Any = None
        self.supervisor: Any = None

    # lifecycle

    async def watch(self, emit: Emit, *, task_status: trio.TaskStatus[None]) -> None:
        from stackd.netbridge import Resolver
        from stackd.reconciler.supervisor import Supervisor

        self.resolver = Resolver()
        async with trio.open_nursery() as nursery:
            try:
                await nursery.start(self.resolver.serve)
            except (OSError, StackdError) as err:
                emit(Event(type="error", message=f"DNS resolver did not start: {err}"))
                self.resolver = None
            self.ports = make_ports(self.roots, self.db, self.resolver)
            try:
                await self.ports.network.nets.restore()
            except StackdError as err:
                emit(Event(type="error", message=f"restoring networks: {err}"))
            self.supervisor = Supervisor(
                self.ports, nursery, lambda e: emit(_event_from_supervisor(e)))
            task_status.started()
            await trio.sleep_forever()

    def _ready(self) -> Any:
        if self.ports is None:
            raise UnavailableError("the daemon is still starting", hint="retry in a moment")
        return self.ports

    # stacks

    async def load(self, source: StackSource) -> Any:
        from stackd.spec import LoadOptions, load

        options = LoadOptions(
            files=source.files, project_name=source.project_name,
            project_directory=source.project_directory, env_files=source.env_files,
            profiles=source.profiles, environ=source.environ, stdin=source.content,
            cwd=source.cwd, on_warning=lambda _w: None)
        stack = await trio.to_thread.run_sync(load, options)
        return _Loaded(stack)

    async def reconcile(self, stack: Any, options: ApplyOptions, emit: Emit) -> float | None:
        from stackd.reconciler.actual import observe
        from stackd.reconciler.apply import apply
        from stackd.reconciler.diff import plan

        ports = self._ready()
        desired = await self._desired(stack, options)
        actual = await observe(stack.project, ports)
        the_plan = plan(desired, actual, _plan_options(options))
        for w in the_plan.warnings:
            emit(Event(type="apply", project=stack.project, message=f"warning: {w}"))
        # Even an empty plan goes through apply: it adopts the stack's containers into
        # the supervisor, which is how a restarted daemon takes over watching them.
        result = await apply(the_plan, desired, ports, self.supervisor,
                             on_progress=_progress_emitter(stack.project, emit))
        if not result.ok:
            from stackd.errors import ConflictError

            first = result.failures[0]
            raise ConflictError(f"{len(result.failures)} step(s) failed; first: "
                                f"{first.line}: {first.error}")
        return None

    async def _desired(self, stack: Any, options: ApplyOptions) -> Any:
        try:
            from stackd.reconciler.build import desired_state
        except ImportError:
            raise UnavailableError("the reconciler cannot build desired state yet") from None
        return await desired_state(stack.stack, self._ready(), pull=options.pull,
                                   scale=options.scale)

    async def plan(self, stack: Any, options: ApplyOptions) -> list[dict[str, Any]]:
        from stackd.reconciler.actual import observe
        from stackd.reconciler.diff import plan

        ports = self._ready()
        desired = await self._desired(stack, options.model_copy(update={"pull": "never"}))
        actual = await observe(stack.project, ports)
        p = plan(desired, actual, _plan_options(options))
        return [*({"line": a.line, "verb": a.verb, "resource": a.resource, "cause": a.cause}
                  for a in p.actions),
                *({"line": f"warning: {w}", "verb": "warning", "resource": "", "cause": w}
                  for w in p.warnings)]

    async def teardown(self, project: str, options: RemoveOptions, emit: Emit) -> None:
        from stackd.reconciler.actual import observe
        from stackd.reconciler.apply import apply
        from stackd.reconciler.diff import plan_down

        ports = self._ready()
        actual = await observe(project, ports)
        p = plan_down(actual, remove_volumes=options.volumes)
        result = await apply(p, None, ports, self.supervisor,
                             on_progress=_progress_emitter(project, emit))
        if not result.ok:
            from stackd.errors import ConflictError

            first = result.failures[0]
            raise ConflictError(f"down: {first.line}: {first.error}")

    # containers

    async def containers(self, project: str | None, all: bool) -> list[dict[str, Any]]:
        from stackd.state.allocations import Allocations

        ports = self._ready()
        views = await ports.runtime.list(
            {hostnames.LABEL_PROJECT: project} if project else None)
        alloc = Allocations(self.db)
        rows = []
        for v in views:
            if not all and v.status != "running":
                continue
            watch = self.supervisor.get(v.id) if self.supervisor else None
            published = [f"{p.host_ip or '0.0.0.0'}:{p.host_port}->{p.container_port}/"
                         f"{p.protocol}" for p in alloc.ports(container_id=v.id)]
            rows.append({
                "id": v.id, "name": v.name,
                "project": v.labels.get(hostnames.LABEL_PROJECT),
                "service": v.labels.get(hostnames.LABEL_SERVICE),
                "index": int(v.labels.get(hostnames.LABEL_INDEX, "0") or 0),
                "state": v.status, "pid": v.pid,
                "health": watch.health if watch is not None else None,
                "exit_code": v.exit.code if v.exit else None,
                "started_at": v.started_at.timestamp() if v.started_at else None,
                "command": list(v.spec.process.args),
                "ports": published,
            })
        rows.sort(key=lambda r: (r["project"] or "", r["service"] or "", r["index"], r["name"]))
        return rows

    async def _resolve(self, container: str) -> Any:
        """A container by id, or by name (the running one first, then the newest)."""
        ports = self._ready()
        views = await ports.runtime.list()
        for v in views:
            if v.id == container:
                return v
        named = [v for v in views if v.name == container]
        if not named:
            raise NotFoundError(f"no container named {container!r}",
                                hint="see `stackd ps -a` for the containers")
        named.sort(key=lambda v: (v.status == "running", v.created_at or 0), reverse=True)
        return named[0]

    async def projects(self) -> list[str]:
        ports = self._ready()
        return sorted({v.labels[hostnames.LABEL_PROJECT] for v in await ports.runtime.list()
                       if hostnames.LABEL_PROJECT in v.labels})

    async def networks(self) -> list[dict[str, Any]]:
        ports = self._ready()
        return [{"key": n.key, "project": n.project, "name": n.name, "bridge": n.bridge,
                 "subnet": n.subnet, "gateway": n.gateway, "internal": n.internal}
                for n in ports.network.nets.list()]

    async def volumes(self) -> list[dict[str, Any]]:
        rows = self.db.conn.execute("SELECT name, project, created FROM volumes ORDER BY name")
        return [dict(r) for r in rows]

    async def images(self) -> list[dict[str, Any]]:
        from stackd.images import ImageStore

        return [s.model_dump(mode="json") for s in ImageStore(self.roots).list()]

    async def logs(self, container: str, *, follow: bool, tail: int | None,
                   timestamps: bool) -> AsyncIterator[dict[str, Any]]:
        v = await self._resolve(container)
        rt = self._ready().runtime.rt
        async for rec in rt.logs(v.id, follow=follow, tail=tail):
            yield {"container": v.name, "id": v.id,
                   "service": v.labels.get(hostnames.LABEL_SERVICE),
                   "time": rec.time.isoformat(), "stream": rec.stream, "line": rec.line}

    async def exec(self, container: str, request: ExecRequest) -> ExecResult:
        from stackd.runtime.exec import exec_in

        v = await self._resolve(container)
        with trio.fail_after(request.timeout or float("inf")):
            r = await exec_in(v, request.cmd, env=request.env, cwd=request.workdir or None,
                              user=request.user or None)
        return ExecResult(exit_code=r.exit_code, stdout=r.stdout.decode(errors="replace"),
                          stderr=r.stderr.decode(errors="replace"))

    async def stats(self, container: str) -> dict[str, Any]:
        v = await self._resolve(container)
        s = await self._ready().runtime.rt.stats(v.id)
        return {"container": v.name, "id": v.id, "memory_bytes": s.memory_bytes,
                "cpu_ns": s.cpu_ns, "pids": s.pids}

    def run(self, request: Any) -> AsyncIterator[dict[str, Any]]:
        from stackd.daemon.single import SingleRunner

        ports = self._ready()
        return SingleRunner(ports, ports.images.store, ports.volumes).run(request)

    async def signal(self, container: str, action: str, signal: str | None) -> None:
        from stackd.reconciler import lifecycle

        v = await self._resolve(container)
        ports = self._ready()
        if action == "kill":
            if v.status != "running":
                from stackd.errors import ConflictError

                raise ConflictError(f"container {v.name} is not running")
            await ports.runtime.kill(v.id, signal or "SIGKILL")
            return
        if action in ("stop", "restart", "remove") and self.supervisor is not None:
            # A stop asked for is not a crash: the restart policy must not undo it.
            await self.supervisor.release(v.id)
        if action in ("stop", "restart"):
            await lifecycle.stop(ports, v.id)
        if action in ("start", "restart"):
            await lifecycle.start_existing(ports, v.id)
        if action == "remove":
            from stackd.daemon.single import release_default_network

            await lifecycle.tear_down(ports, v.id)
            await release_default_network(ports)


@dataclass(frozen=True)
class _Loaded:
    stack: Any

    @property
    def project(self) -> str:
        return str(self.stack.name)


def _plan_options(options: ApplyOptions) -> Any:
    from stackd.reconciler.diff import PlanOptions

    return PlanOptions(services=tuple(options.services), no_deps=options.no_deps,
                       remove_orphans=options.remove_orphans,
                       force_recreate=options.force_recreate, no_recreate=options.no_recreate)


def _progress_emitter(project: str, emit: Emit) -> Any:
    def on_progress(p: Any) -> None:
        emit(Event(type="progress", project=project, container=p.resource, message=p.message,
                   attrs={"state": p.state, "elapsed": f"{p.elapsed:.2f}"}))
    return on_progress


def make_world(roots: Roots, db: StateDB) -> HostWorld:
    return HostWorld(roots, db)
