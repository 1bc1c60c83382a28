"""`stackd run SERVICE [CMD…]`: compose's one-off container of a stack's service.

`oneoff_container` is pure: the service's first slot as the reconciler builds it
(image, env, env_file, volumes, configs, secrets, networks), turned into a one-off as
`docker compose run` does — its own name `<project>-<service>-run-<6 hex>`, the label
`io.stackd.oneoff=true` instead of a slot index (so the stack's reconciler never
counts, replaces or removes it), CMD in place of the command, no DNS aliases, and the
service's published ports only with --service-ports.

`run_service` carries it out: the service's depends_on brought up first through the
engine's own apply (so the controller keeps them afterwards, as after `up`), the
networks and volumes it joins made if missing, then create, start and the output and
exit code, as an image run streams them. When the name is no service of the stack,
the docker-run reading of the same command line is tried before giving up.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Literal

import trio
from pydantic import Field

from stackd import hostnames
from stackd.daemon.keyvalues import key_values
from stackd.daemon.models import ApplyOptions, ApplyRequest, StackSource
from stackd.daemon.single import RunOptions, RunRequest, follow_output, parse_publish, started
from stackd.errors import (
    AlreadyExistsError,
    ConflictError,
    NotFoundError,
    SpecError,
    StackdError,
    UnavailableError,
    UsageError,
)
from stackd.reconciler.imagedefaults import process_args

if TYPE_CHECKING:
    from stackd.daemon.engine import Engine
    from stackd.reconciler.desired import DesiredContainer
    from stackd.spec.model import Service, Stack

# How long a direct depends_on condition (healthy, completed) may take, as up's gate.
CONDITION_TIMEOUT = 300.0


class ServiceRunRequest(RunOptions):
    source: StackSource
    service: str = Field(min_length=1, max_length=512)
    labels: list[str] = Field(default_factory=list, max_length=1024)
    service_ports: bool = False
    # `run --use-aliases`: answer to the service's network aliases (its name among
    # them) on each network, as the service's own containers do.
    use_aliases: bool = False
    no_deps: bool = False
    build: bool = False  # `run --build`: the service's image built first, as up --build
    # `run --pull`: how the service's image is had (None: its pull_policy).
    pull: Literal["always", "missing", "never"] | None = None
    # -v, in Compose's short syntax (a bind's relative source made absolute by the CLI).
    volumes: list[str] = Field(default_factory=list, max_length=256)
    # The flags given that only an image run has (-m, --cpus, …): refused for a service.
    image_only: list[str] = Field(default_factory=list, max_length=64)
    # The same command line read as `docker run IMAGE`, for when `service` names no
    # service of the stack but an image in the store.
    image_run: RunRequest | None = None


def with_run_volumes(stack: Stack, service: str, volumes: list[str]) -> Stack:
    """Pure: `run -v` on a service, as Compose's: the service's volumes, each of these
    (short syntax) over the one it has at the same target."""
    import os

    from pydantic import ValidationError

    from stackd.spec.canonical import parse_volume
    from stackd.spec.model import ServiceVolume

    extra: list[ServiceVolume] = []
    for text in volumes:
        try:
            v = ServiceVolume.model_validate(dict(parse_volume(text, None)))
        except SpecError as e:
            raise UsageError(f"-v {text!r}: {e.message}", hint=e.hint) from None
        except ValidationError:
            raise UsageError(f"-v {text!r} is not a volume",
                             hint="-v SOURCE:TARGET[:ro], SOURCE a path or a volume of "
                                  "the stack") from None
        if v.type == "bind" and not os.path.isabs(v.source or ""):
            raise UsageError(f"-v {text!r}: a bind's source must be a path",
                             hint="write ./dir or /abs/dir")
        if v.type == "volume" and v.source is not None and v.source not in stack.volumes:
            raise UsageError(f"-v {text!r}: volume {v.source!r} is not one of the stack's",
                             hint=f"declare it under `volumes:` in {stack.name}'s files, "
                                  "or bind a path (./dir:/target)")
        extra.append(v)
    targets = {v.target for v in extra}
    svc = stack.services[service]
    kept = tuple(v for v in svc.volumes if v.target not in targets)
    changed = svc.model_copy(update={"volumes": (*kept, *extra)})
    return stack.model_copy(update={"services": {**stack.services, service: changed}})


def with_run_caps(stack: Stack, service: str, add: list[str], drop: list[str]) -> Stack:
    """Pure: `run --cap-add/--cap-drop` on a service, as Compose's: added to the
    service's own lists (the runtime checks each name, as for the service's)."""
    if not add and not drop:
        return stack
    svc = stack.services[service]
    changed = svc.model_copy(update={"cap_add": (*svc.cap_add, *add),
                                     "cap_drop": (*svc.cap_drop, *drop)})
    return stack.model_copy(update={"services": {**stack.services, service: changed}})


def oneoff_name(project: str, service: str) -> str:
    return f"{project}-{service}-run-{secrets.token_hex(3)}"


def oneoff_args(request: ServiceRunRequest, svc: Service, image_config: Any,
                slot_args: tuple[str, ...]) -> tuple[str, ...]:
    """The process: CMD replaces the command; --entrypoint the entrypoint (and, as in
    Docker, drops the image's CMD, never a command the service sets)."""
    if not request.cmd and request.entrypoint is None:
        return slot_args
    entrypoint = request.entrypoint if request.entrypoint is not None else svc.entrypoint
    args = process_args(image_config.entrypoint, image_config.cmd, entrypoint,
                        request.cmd or svc.command)
    if not args:
        raise UsageError(f"service {request.service!r}: an empty --entrypoint and no command",
                         hint=f"stackd run {request.service} sh -c '…'")
    return args


def anonymous_volumes(slot: DesiredContainer, container_id: str) -> dict[str, str]:
    """Pure: the slot's anonymous volumes (image VOLUMEs, `- /path`) → the one-off's own.

    Compose gives a run container fresh ones: sharing the slot's would put two
    processes on one data directory (think `run db` beside a running database).
    """
    prefix = f"{slot.project}_{slot.service}-{slot.index}_"
    return {v: f"{slot.project}_{container_id}_{v.removeprefix(prefix)}"
            for v in slot.volumes if v.startswith(prefix)}


def oneoff_container(slot: DesiredContainer, request: ServiceRunRequest, svc: Service,
                     image_config: Any, *, name: str,
                     volume_path: Callable[[str], str] = str) -> DesiredContainer:
    """Pure: the one-off made from the service's first slot (see the module doc);
    `volume_path`: a volume's name → its host path (VolumeStore.path)."""
    from stackd.netbridge.model import Attachment
    from stackd.reconciler.desired import LABEL_CONFIG_FIELDS

    spec = slot.spec
    process = spec.process
    env = dict(kv.partition("=")[::2] for kv in process.env)
    env.update(key_values(request.env, "-e"))
    labels = {k: v for k, v in spec.labels.items()
              if k not in (hostnames.LABEL_INDEX, hostnames.LABEL_CONFIG_HASH,
                           LABEL_CONFIG_FIELDS, hostnames.LABEL_ANONYMOUS_VOLUMES)}
    labels.update(run_labels(request))
    labels.update({hostnames.LABEL_PROJECT: slot.project,
                   hostnames.LABEL_SERVICE: slot.service,
                   hostnames.LABEL_ONEOFF: "true"})
    slot_hostname = hostnames.container_name(slot.project, slot.service, slot.index,
                                             svc.container_name)
    hostname = name.lower()[:63] if spec.hostname == slot_hostname else spec.hostname
    new_process = process.model_copy(update={
        "args": oneoff_args(request, svc, image_config, tuple(process.args)),
        "env": tuple(f"{k}={v}" for k, v in env.items()),
        "cwd": request.workdir or process.cwd,
        "user": request.user or process.user,
        **request.attach_fields(terminal=process.terminal),
    })
    renamed = anonymous_volumes(slot, name.lower())
    if renamed:  # its own, not the slot's
        labels[hostnames.LABEL_ANONYMOUS_VOLUMES] = ",".join(sorted(renamed.values()))
    paths = {volume_path(old): volume_path(new) for old, new in renamed.items()}
    mounts = tuple(m.model_copy(update={"source": paths[m.source]})
                   if m.type == "volume" and m.source in paths else m for m in spec.mounts)
    new_spec = spec.model_copy(update={
        "id": name.lower(), "name": name, "labels": labels, "hostname": hostname,
        "process": new_process, "mounts": mounts,
    })
    # Compose gives a run container none of the service's DNS aliases (it must not
    # answer for the service) unless --use-aliases, and no fixed address (that is the
    # slot's).
    # Its service's links are its own (Compose's one-off has them); the service's
    # names only with --use-aliases.
    attachments = tuple(Attachment(network_key=a.network_key,
                                   aliases=a.aliases if request.use_aliases else (),
                                   links=a.links)
                        for a in slot.attachments)
    ports = (tuple(slot.ports) if request.service_ports else ()) + tuple(
        parse_publish(request.publish))
    volumes = tuple(sorted(renamed.get(v, v) for v in slot.volumes))
    return dataclasses.replace(slot, index=0, spec=new_spec, attachments=attachments,
                               ports=ports, volumes=volumes,
                               anonymous=tuple(sorted(renamed.values())))


def run_labels(request: ServiceRunRequest) -> dict[str, str]:
    """`-l` labels, none of them stackd's own (checked before anything is started)."""
    given = key_values(request.labels, "-l")
    if reserved := hostnames.reserved_labels(given):
        raise UsageError(f"-l {reserved[0]}: the {hostnames.LABEL_PREFIX} prefix is "
                         "stackd's own", hint="name your labels otherwise")
    return given


def dependencies(stack: Stack, service: str) -> list[str]:
    """Every service `service` needs, directly or not (what `up service` would start)."""
    from stackd.scheduler import build_graph, select_for_up
    from stackd.scheduler.from_stack import from_stack

    return sorted(set(select_for_up(build_graph(from_stack(stack)), [service])) - {service})


def _ports_of(world: Any) -> Any:
    ports = getattr(world, "ports", None)
    if ports is None:
        raise UnavailableError("the daemon is still starting", hint="retry in a moment")
    return ports


@trio.as_safe_channel
async def run_service(engine: Engine, request: ServiceRunRequest
                      ) -> AsyncGenerator[dict[str, Any], None]:
    """{"progress"} lines while dependencies come up, {"started"}, output, {"exit"}.
    A safe channel, as it streams the engine's progress (docs/daemon.md, trio's rules)."""
    from stackd.reconciler import lifecycle
    from stackd.reconciler.diff import PlanOptions
    from stackd.reconciler.reconcile import ReconcileOptions, desired_for
    from stackd.spec.image_names import image_ref

    world = engine.world
    loaded: Any = await world.load(request.source)
    stack = loaded.stack
    ports = _ports_of(world)
    if request.service not in stack.services:
        async for item in _as_image_run(engine, ports, stack, request):
            yield item
        return
    if request.image_only:
        raise UsageError(
            f"{', '.join(request.image_only)}: only for an image run, and "
            f"{request.service!r} is a service of {stack.name}",
            hint="set it in the service's definition instead")
    run_labels(request)
    if request.volumes:
        stack = with_run_volumes(stack, request.service, request.volumes)
    stack = with_run_caps(stack, request.service, request.cap_add, request.cap_drop)
    svc = stack.services[request.service]
    project = stack.name
    if not request.no_deps:
        deps = dependencies(stack, request.service)
        if deps:
            async with _bring_up(engine, request.source, project, deps) as items:
                async for item in items:
                    yield item
            await _wait_conditions(world, project, request.service, svc)
    options = ReconcileOptions(environ=loaded.environ, scale={request.service: 1},
                               files=loaded.files, pull=request.pull)
    if request.build:  # this service's image built (its dependencies' came with their up)
        options = dataclasses.replace(options, build=True, plan=PlanOptions(
            services=(request.service,), no_deps=True))
    desired = await desired_for(stack, ports, options)
    slot = desired.containers_of(request.service)[0]
    image = await ports.images.ensure(image_ref(stack, request.service, svc), "never")
    name = request.name or oneoff_name(project, request.service)
    container = oneoff_container(slot, request, svc, image.config, name=name,
                                 volume_path=ports.volumes.path)
    if any(v.id == container.id or v.name == name for v in await ports.runtime.list()):
        raise AlreadyExistsError(f"a container named {name} exists",
                                 hint=f"remove it (`stackd rm {name}`) or pick another --name")
    for a in container.attachments:
        await ports.network.ensure_network(desired.networks[a.network_key])
    for volume in container.volumes:
        await ports.volumes.ensure_volume(project, volume,
                                          anonymous=volume in container.anonymous)
    try:
        await lifecycle.bring_up(ports, container)
    except BaseException:
        with trio.CancelScope(shield=True):
            await _remove(ports, container)
        raise
    engine.bus.emit("start", project=project, service=request.service, container=name,
                    message="stackd run (one-off)")
    yield {"started": started(container.id, name, container.spec.process)}
    if request.detach:
        if request.rm and engine.background is not None:
            engine.background.start_soon(_remove_on_exit, engine, ports, container, project)
        return
    removed = False
    try:
        async for item in follow_output(ports, container.id):
            if "exit" in item and request.rm:
                # Removed before the exit is told, as docker run --rm: the client
                # returns at the exit, and a `ps` right after must not list it.
                with trio.CancelScope(shield=True):
                    await _remove_oneoff(engine, ports, container)
                removed = True
            yield item
    finally:
        if request.rm and not removed:
            with trio.CancelScope(shield=True):
                await _remove_oneoff(engine, ports, container)


async def _remove_oneoff(engine: Engine, ports: Any, container: DesiredContainer) -> None:
    await _remove(ports, container)
    engine.bus.emit("remove", project=container.project, service=container.service,
                    container=container.name, message="one-off removed (--rm)")


async def _remove(ports: Any, container: DesiredContainer) -> None:
    """--rm: the container, and its anonymous volumes with it (as compose run --rm)."""
    from stackd.reconciler import lifecycle

    await lifecycle.tear_down(ports, container.id)
    for volume in container.volumes:
        if volume.startswith(f"{container.project}_{container.id}_"):
            await ports.volumes.remove_volume(volume)


async def _remove_on_exit(engine: Engine, ports: Any, container: DesiredContainer,
                          project: str) -> None:
    """`run -d --rm`: the daemon removes the one-off once it exits (unless `down` or
    `rm` did first). A daemon restarted meanwhile leaves it to `down`."""
    try:
        await ports.runtime.wait(container.id)
        await _remove(ports, container)
    except StackdError:
        return  # removed already
    engine.bus.emit("remove", project=project, service=container.service,
                    container=container.name, message="one-off removed (--rm)")


async def _as_image_run(engine: Engine, ports: Any, stack: Stack, request: ServiceRunRequest
                        ) -> AsyncIterator[dict[str, Any]]:
    """The docker-run reading, when the name is no service but an image in the store."""
    fallback = request.image_run
    if fallback is not None:
        try:
            await trio.to_thread.run_sync(ports.images.resolve, fallback.image)
        except StackdError:
            pass
        else:
            items = engine.world.run(fallback)
            first = await items.__anext__()
            engine.bus.emit("start", container=first["started"]["name"], message="stackd run")
            yield first
            async for item in items:
                yield item
            return
    loc = stack.location_of(("services",))
    where = loc.file if loc is not None else f"the stack files of {stack.name}"
    services = ", ".join(sorted(stack.services)) or "(none)"
    if fallback is None:  # the command line had a service-only flag: no image reading
        raise UsageError(f"no service {request.service!r} in {where}: --build, --no-deps "
                         "and --service-ports are only for a service run",
                         hint=f"services are: {services}; an image runs without them")
    raise NotFoundError(
        f"no service {request.service!r} in {where}, and no image {request.service!r} in "
        f"the store — services are: {services}",
        hint=f"name a service, or make the image first (`stackd pull {request.service}`, "
        "`stackd image import`, `stackd build`)")


@trio.as_safe_channel
async def _bring_up(engine: Engine, source: StackSource, project: str, deps: list[str]
                    ) -> AsyncGenerator[dict[str, Any], None]:
    """The dependencies up as `up DEP…` would — their stopped containers started, a
    finished one-shot job run again, as Compose's `run` starts them —; the controller
    keeps them afterwards."""
    from stackd.daemon.engine import steady
    from stackd.reconciler.asks import Ask

    existing = engine.store.get(project)
    active = existing is not None and existing.phase == "active"
    have = set(existing.request.options.services) if existing is not None and active else set()
    if existing is not None and active and (not have or set(deps) <= have):
        # What the stack already keeps covers them: its controller's `up` of them, no
        # new revision.
        asked = engine.lifecycle(project, Ask("up", services=tuple(deps)))
        items_of = engine.lifecycle_events(project, asked)
    else:
        options = (steady(existing.request.options) if existing is not None and active
                   else ApplyOptions())
        options = options.model_copy(update={"services": sorted(have | set(deps))})
        _, gen = await engine.submit(ApplyRequest(source=source, options=options),
                                     up_of=tuple(deps))
        items_of = engine.progress(project, gen)
    async with items_of as progress:
        async for item in progress:
            if "event" in item:
                e: Any = item["event"]
                if e["type"] == "progress" and e.get("state") in ("done", "failed"):
                    yield {"progress": {"container": e.get("container") or "",
                                        "state": e["state"], "message": e["message"]}}
            elif "done" in item:
                done: Any = item["done"]
                if done["result"] not in ("ok", "requeue"):
                    raise ConflictError(f"{project}: bringing up {', '.join(deps)} failed: "
                                        f"{done['error']}", hint="see `stackd ps -a` and `logs`")


async def _wait_conditions(world: Any, project: str, service: str, svc: Service) -> None:
    """The service's own depends_on conditions (healthy, completed) hold, as `up` gates."""
    waits = {dep: d.condition for dep, d in svc.depends_on.items()
             if d.condition != "service_started"}
    if not waits:
        return
    pending: list[str] = []
    with trio.move_on_after(CONDITION_TIMEOUT) as scope:
        while True:
            rows = [r for r in await world.containers(project, True) if r.get("index")]
            pending = []
            for dep, condition in sorted(waits.items()):
                mine = [r for r in rows if r.get("service") == dep]
                if condition == "service_healthy":
                    ok = bool(mine) and all(r.get("health") == "healthy" for r in mine)
                else:
                    failed = [r for r in mine if r.get("state") == "exited"
                              and r.get("exit_code") not in (0, None)]
                    if failed:
                        raise ConflictError(
                            f"{dep} exited {failed[0]['exit_code']}, and "
                            f"{service} waits for "
                            "it to complete successfully", hint=f"see `stackd logs {dep}`")
                    ok = bool(mine) and all(r.get("state") == "exited" for r in mine)
                if not ok:
                    pending.append(f"{dep} ({condition})")
            if not pending:
                return
            await trio.sleep(0.2)
    if scope.cancelled_caught:
        raise UnavailableError(f"gave up after {CONDITION_TIMEOUT:.0f} s waiting for "
                               f"{', '.join(pending)}", hint="see `stackd ps -a` and `logs`")


async def remove_oneoffs(world: Any, project: str) -> list[str]:
    """Remove the project's one-off containers (down leaves nothing behind); their names."""
    from stackd.reconciler import lifecycle

    ports = getattr(world, "ports", None)
    if ports is None:
        return []  # a World without a runtime (tests' fakes) has no one-offs either
    gone = []
    for v in await ports.runtime.list():
        if (v.labels.get(hostnames.LABEL_PROJECT) == project
                and v.labels.get(hostnames.LABEL_ONEOFF) == "true"):
            await lifecycle.tear_down(ports, v.id)
            gone.append(v.name)
    return sorted(gone)
