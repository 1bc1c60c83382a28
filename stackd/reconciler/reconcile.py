"""The reconciler's front door: what the daemon and the CLI call.

    desired = await desired_for(stack, ports, options)     # images resolved, files read
    plan    = plan_for(desired, actual, options)           # pure
    result  = await reconcile(stack, ports, options, supervisor)   # observe → plan → apply
    result  = await down(project, ports, supervisor, ...)

Only the stack's reconcile (the daemon's controller worker holding its key) calls
`reconcile`/`converge`/`down`: they are the one writer of the stack's containers.

Before any side effect `desired_for` places every replica slot on `options.nodes`
(scheduler.place), so a stack whose reservations cannot fit is refused with the
scheduler's UnschedulableError naming the service and the numbers; then it resolves
images: a service with `build:` runs `<project>-<service>` (or its `image:`), built
when the store lacks it or `options.build` (`up --build`) says so — never pulled, as
stackd machines are often offline (`pull_policy: build` always builds too).

`reconcile` is level-triggered and idempotent: it reads the host afresh every time, so
calling it twice in a row does nothing the second time (the plan is empty).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from stackd import hostnames
from stackd.errors import ConflictError, NotFoundError
from stackd.reconciler.actual import ActualState, observe
from stackd.reconciler.apply import ApplyResult, OnProgress, OnRollout, Progress, apply
from stackd.reconciler.asks import Ask, Report, carry_out, up_view
from stackd.reconciler.desired import DesiredState
from stackd.reconciler.diff import PlanOptions, plan, plan_down
from stackd.reconciler.hostdevices import CheckDevices, check_host_devices, to_check
from stackd.reconciler.plan import Action, Plan, makes_container
from stackd.reconciler.platforms import check_platforms
from stackd.reconciler.ports import Adapters, ImageView, PullPolicy
from stackd.reconciler.rolling import Rollout, annotate
from stackd.reconciler.supervisor import Supervisor
from stackd.reconciler.translate import TranslateInputs, desired_state
from stackd.reconciler.translations import PLACEMENTS, TRANSLATIONS, inputs_of
from stackd.scheduler import Node, build_graph, place, select_for_up, slots
from stackd.scheduler.from_stack import from_stack
from stackd.scheduler.platform import Platform
from stackd.spec.buildsecrets import build_secrets
from stackd.spec.image_names import image_ref
from stackd.spec.model import Service, Stack


@dataclass(frozen=True, slots=True)
class ReconcileOptions:
    plan: PlanOptions = field(default_factory=PlanOptions)
    pull: str | None = None  # always | missing | never; None: each service's pull_policy
    scale: Mapping[str, int] = field(default_factory=dict)  # --scale svc=n
    environ: Mapping[str, str] = field(default_factory=dict)  # for environment-sourced secrets
    gate_timeout: float | None = None  # seconds a depends_on condition may take; None: forever
    # `up --build`: build every service with a `build:` section, even if its image
    # exists. Only for the one apply the user asked for: a level-triggered loop passing
    # it on every pass would rebuild each time.
    build: bool = False
    # `up --no-build`: never build (resolve_images).
    no_build: bool = False
    # Compose's --parallel: at most this many pulls, builds and container steps at once.
    parallel: int | None = None
    # Where the slots must fit (the daemon: `(hostinfo.local_node(),)`); empty skips
    # placement, as the simulation does.
    nodes: tuple[Node, ...] = ()
    # The contents of the configs' and secrets' `file:`s as read by the caller (the
    # daemon: as its revision holds them, so a file edited on disk reaches containers
    # only at the next `up`; spec.files reads them bounded). None: read them now.
    files: Mapping[str, bytes] | None = None
    # The revision applied is a rollback: rolling updates follow rollback_config.
    rolling_back: bool = False
    # What each service's rolling update of this revision did in earlier passes (the
    # daemon keeps it with the revision): this pass runs the next batch.
    rollouts: Mapping[str, Rollout] = field(default_factory=dict)
    # Cluster mode: the slots this node holds, per service (translate.TranslateInputs).
    slots: Mapping[str, frozenset[int]] | None = None
    # The host's rule for the device paths a spec names (the daemon: the runtime's), run
    # on what a plan creates before anything changes; None skips it, as the simulation
    # does.
    check_devices: CheckDevices | None = None


@dataclass(frozen=True, slots=True)
class _MissingConfig:
    env: tuple[str, ...] = ()
    cmd: tuple[str, ...] | None = ("<the image's command>",)
    entrypoint: tuple[str, ...] | None = None
    working_dir: str = ""
    user: str = ""
    healthcheck: object | None = None
    volumes: tuple[str, ...] = ()
    stop_signal: str | None = None


@dataclass(frozen=True, slots=True)
class _MissingImage:
    """Stands in for an image `preview` may not pull: enough to plan, never to run."""

    ref: str
    verb: str = "pull"  # what `up` would do about it: pull | build | refuse (--no-build)
    id: str = "missing"
    digest: str = "missing"
    config: _MissingConfig = field(default_factory=_MissingConfig)
    layer_dirs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Builder:
    """The service whose `build:` section makes a ref, and whether to build regardless."""

    name: str
    svc: Service
    always: bool


async def resolve_images(stack: Stack, ports: Adapters, pull: str | None, *,
                         missing_ok: bool = False, build: bool = False,
                         no_build: bool = False, parallel: int | None = None,
                         environ: Mapping[str, str] | None = None,
                         would_build: set[str] | None = None,
                         platforms: Mapping[str, Platform | None] | None = None,
                         needed: frozenset[str] | None = None,
                         on_progress: OnProgress | None = None,
                         ) -> dict[str, ImageView]:
    """Each service's image, pulled as the policy says; one pull per distinct ref.

    needed: the services an `up` of some names (Compose's `up web`: web and what it
    needs); the others' images are taken from the store only, never pulled or built,
    and a service whose image is not there is left out of the answer.

    A ref some service has a `build:` section for is built instead of pulled: when it
    is not in the store, or always with `build` (`up --build`) or `pull_policy: build`.
    With `no_build` (`up --no-build`) none is built: a service that names its `image:`
    is pulled as if it had no `build:`, one that does not must find its image in the
    store.

    missing_ok (for `preview`, which never pulls nor builds): an image not in the store
    is replaced by a stand-in, so the plan can be shown; the refs `up` would build are
    added to `would_build`.

    on_progress: told of each pull and build as it goes (resource `image REF`), for
    `up`'s display: a long build or pull is not silence.

    parallel: at most this many pulls and builds at once (Compose's --parallel).
    """
    limit = trio.CapacityLimiter(parallel) if parallel else None
    platforms = platforms or {}
    wanted: dict[tuple[str, PullPolicy], list[str]] = {}
    builders: dict[str, _Builder] = {}
    store_only: dict[str, list[str]] = {}
    needs_build: dict[str, str] = {}  # --no-build: ref → a service only a build can make
    for name, svc in sorted(stack.services.items()):
        ref = image_ref(stack, name, svc)
        if needed is not None and name not in needed:
            store_only.setdefault(ref, []).append(name)
            continue
        if svc.build is not None and no_build and not svc.image:
            needs_build.setdefault(ref, name)
        elif svc.build is not None and not no_build and ref not in builders:
            builders[ref] = _Builder(name, svc, build or svc.pull_policy == "build")
        given = pull or svc.pull_policy or "missing"
        # build/daily/weekly: what is local, else pull
        policy: PullPolicy = ("always" if given == "always" else
                              "never" if given == "never" else "missing")
        wanted.setdefault((ref, policy), []).append(name)
    found: dict[str, ImageView] = {}

    async def one(ref: str, policy: PullPolicy, names: list[str]) -> None:
        if limit is None:
            await resolve(ref, policy, names)
        else:
            async with limit:
                await resolve(ref, policy, names)

    async def resolve(ref: str, policy: PullPolicy, names: list[str]) -> None:
        image: ImageView
        builder = builders.get(ref)
        try:
            if ref in needs_build:
                image = await _built_already(ports, ref, needs_build[ref], missing_ok)
            elif builder is None:
                # A platform is passed only when asked for (it picks a variant).
                asked = {platforms.get(n) for n in names} - {None}
                told = _ImageProgress(ref, "pull", on_progress) if on_progress else None
                image = await ports.images.ensure(
                    ref, policy, platform=asked.pop() if asked else None, progress=told)
                if told is not None:
                    told.finish()
            elif builder.always and not missing_ok:
                raise _Rebuild
            else:
                image = await ports.images.ensure(ref, "never")
                if builder.always and would_build is not None:
                    would_build.add(ref)
        except (NotFoundError, _Rebuild):
            if missing_ok:
                image = _MissingImage(ref, "pull" if builder is None else "build")
            elif builder is None:
                raise
            else:
                told = _ImageProgress(ref, "build", on_progress) if on_progress else None
                image = await _build_image(ports, ref, builder, environ or {},
                                           build_secrets(stack, builder.name), told)
                if told is not None:
                    told.finish()
        for n in names:
            found[n] = image

    async def from_store(ref: str, names: list[str]) -> None:
        try:
            image = await ports.images.ensure(ref, "never")
        except NotFoundError:
            return  # not needed now: its services are left as they are
        for n in names:
            found[n] = image

    pulled = {ref: key for key in wanted for ref in (key[0],)}
    for ref, names in store_only.items():  # one that a needed service pulls: with it
        if ref in pulled:
            wanted[pulled[ref]] += names
    async with trio.open_nursery() as nursery:
        for (ref, policy), names in wanted.items():
            nursery.start_soon(one, ref, policy, names)
        for ref, names in store_only.items():
            if ref not in pulled:
                nursery.start_soon(from_store, ref, names)
    return found


async def _built_already(ports: Adapters, ref: str, service: str,
                         missing_ok: bool) -> ImageView:
    """--no-build, a service with `build:` and no `image:`: its image as an earlier
    build left it in the store, or why not."""
    try:
        return await ports.images.ensure(ref, "never")
    except NotFoundError:
        if missing_ok:
            return _MissingImage(ref, "refuse")
        raise NotFoundError(f"service {service!r} needs its image built ({ref} is not in "
                            "the store), but --no-build was given",
                            hint=f"build it first (`stackd build {service}`), or drop "
                                 "--no-build") from None


class _Rebuild(Exception):
    """Internal: skip the store lookup, build."""


class _ImageProgress:
    """A pull's or build's progress events (images.progress.ProgressEvent, read by
    their fields) as `up`'s progress lines, resource `image REF`: a build's steps, a
    pull's layers. Nothing is said of a pull that found everything in the store."""

    def __init__(self, ref: str, what: str, on_progress: OnProgress) -> None:
        self.resource = f"image {ref}"
        self.what = what
        self.on_progress = on_progress
        self.started = trio.current_time()
        self.said = False

    def __call__(self, event: Any) -> None:
        item, action = str(getattr(event, "item", "")), str(getattr(event, "action", ""))
        if self.what == "build":
            if action != "step":
                return  # a RUN's output lines: the step line says where it is
            message = f"build: {item.strip()}"
        else:
            if action in ("exists", "done"):
                return
            total = getattr(event, "total", None)
            size = f" {getattr(event, 'current', 0) >> 20}/{total >> 20} MB" if total else ""
            message = f"pull: {action} {item}{size}"
        self.said = True
        self.on_progress(Progress(self.resource, "working", message[:120],
                                  trio.current_time() - self.started))

    def finish(self) -> None:
        if self.said or self.what == "build":
            self.on_progress(Progress(self.resource, "done", f"{self.what}: done",
                                      trio.current_time() - self.started))


async def _build_image(ports: Adapters, ref: str, builder: _Builder,
                       environ: Mapping[str, str], secrets: dict[str, Path],
                       progress: _ImageProgress | None = None) -> ImageView:
    b = builder.svc.build
    assert b is not None
    # Compose: an ARG listed without a value takes the environment's, if it has one.
    args = {k: v if v is not None else environ[k] for k, v in b.args.items()
            if v is not None or k in environ}
    tags = [ref, *(t for t in b.tags if t != ref)]
    return await ports.images.build(b.context, b.dockerfile or "Dockerfile", tag=tags,
                                    build_args=args, target=b.target, labels=dict(b.labels),
                                    pull=b.pull, no_cache=b.no_cache,
                                    dockerfile_text=b.dockerfile_inline, secrets=secrets,
                                    network_mode=b.network, extra_hosts=b.extra_hosts,
                                    shm_size=int(b.shm_size) if b.shm_size else None,
                                    ulimits=tuple((k, u.soft, u.hard)
                                                  for k, u in sorted(b.ulimits.items())),
                                    contexts=dict(b.additional_contexts), progress=progress)


def check_placement(stack: Stack, nodes: Sequence[Node],
                    scale: Mapping[str, int] | None = None) -> None:
    """Refuse (UnschedulableError) a stack whose slots' reservations cannot fit `nodes`.

    Pure. Every service of the stack counts, at its `--scale` if given: what is already
    running of it holds the same reservations, so placing the whole stack is the
    question of whether it fits at all. No nodes: nothing to check.
    """
    if not nodes:
        return
    services = [dataclasses.replace(s, replicas=(scale or {}).get(s.name, s.replicas))
                for s in from_stack(stack)]
    place(slots(services), nodes)


async def _read_files(stack: Stack) -> dict[str, bytes]:
    paths = sorted({o.file for objs in (stack.configs, stack.secrets) for o in objs.values()
                    if o.file is not None})

    def read_all() -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for p in paths:
            try:
                out[p] = Path(p).read_bytes()
            except OSError:
                pass  # translate.desired_state reports it, with the stack location
        return out

    return await trio.to_thread.run_sync(read_all)


async def desired_for(stack: Stack, ports: Adapters, options: ReconcileOptions,
                      on_progress: OnProgress | None = None) -> DesiredState:
    nodes = tuple(options.nodes)
    if not PLACEMENTS.known(stack, nodes, options.scale):
        check_placement(stack, nodes, options.scale)
        PLACEMENTS.passed(stack, nodes, options.scale)
    named = options.plan.services
    needed = frozenset(select_for_up(build_graph(from_stack(stack)), named)) if named \
        else None
    images = await resolve_images(stack, ports, options.pull, build=options.build,
                                  no_build=options.no_build, environ=options.environ,
                                  parallel=options.parallel,
                                  platforms=check_platforms(stack, options.nodes),
                                  needed=needed, on_progress=on_progress)
    left = frozenset(stack.services) - set(images)
    if not left:
        return await _build(stack, images, ports, options)
    rest = stack.model_copy(update={"services": {
        name: svc for name, svc in stack.services.items() if name not in left}})
    return dataclasses.replace(await _build(rest, images, ports, options), left_alone=left)


async def _build(stack: Stack, images: Mapping[str, ImageView], ports: Adapters,
                 options: ReconcileOptions) -> DesiredState:
    contents = dict(options.files) if options.files is not None else await _read_files(stack)

    def read_file(path: str) -> bytes:
        try:
            return contents[path]
        except KeyError:
            raise FileNotFoundError(2, "No such file or directory", path) from None

    inputs = TranslateInputs(volume_path=ports.volumes.path, file_path=ports.volumes.file_path,
                         read_file=read_file, environ=options.environ, scale=options.scale,
                         rolling_back=options.rolling_back, slots=options.slots,
                         netns_path=ports.network.netns_path)
    key = inputs_of(stack, images, contents, options.environ, options.scale,
                    options.rolling_back, ports.volumes, options.slots)
    if key is not None and (known := TRANSLATIONS.get(key)) is not None:
        return known
    # Pure but not cheap (a spec, a config hash per service: ~60 ms for 20 services):
    # a worker thread's, so the daemon's loop keeps answering meanwhile.
    desired = await trio.to_thread.run_sync(desired_state, stack, images, inputs)
    if key is not None:
        TRANSLATIONS.put(key, desired)
    return desired


def plan_for(desired: DesiredState, actual: ActualState, options: ReconcileOptions) -> Plan:
    """Pure: what `reconcile` would do from here (rolling updates' batches named)."""
    return annotate(plan(desired, actual, options.plan), desired.services, options.rollouts)


async def preview(stack: Stack, ports: Adapters, options: ReconcileOptions, *,
                  as_up: bool = False) -> Plan:
    """`stackd plan`: the plan against the host as it is, changing nothing (no pulls,
    no builds); refused as `up` would be when the stack cannot be placed.

    The plan is what the stack lacks, as the reconcile loop sees it: it never starts
    a finished job or a container a user stopped. `as_up` (`up --dry-run`) plans as
    `up` itself does, which starts both (asks.py)."""
    check_placement(stack, options.nodes, options.scale)
    check_platforms(stack, options.nodes)
    rebuilt: set[str] = set()
    images = await resolve_images(stack, ports, "never", missing_ok=True, build=options.build,
                                  no_build=options.no_build, would_build=rebuilt)
    desired = await _build(stack, images, ports, options)
    actual = await observe(desired.project, ports)
    if as_up:
        actual, plan_options = up_view(desired, actual, options.plan)
        options = dataclasses.replace(options, plan=plan_options)
    p = plan_for(desired, actual, options)
    await _check_devices(p.actions, options.check_devices)
    missing = {(i.ref, i.verb) for i in images.values() if isinstance(i, _MissingImage)}
    notes = tuple(f"image {ref} is not in the store: up would build it" if verb == "build"
                  else f"image {ref} is not in the store, and --no-build: up would fail"
                  if verb == "refuse"
                  else f"image {ref} is not in the store: up will pull it"
                  for ref, verb in sorted(missing))
    notes += tuple(f"image {ref}: up would build it again (--build)" for ref in sorted(rebuilt))
    return Plan(p.project, p.actions, p.warnings + notes)


async def reconcile(stack: Stack, ports: Adapters, options: ReconcileOptions,
                    supervisor: Supervisor, *, on_progress: OnProgress | None = None,
                    ask: Ask | None = None, on_done: Report | None = None,
                    on_rollout: OnRollout | None = None) -> ApplyResult:
    """Make the host match `stack`: resolve, observe, plan, apply (and carry out a
    user's lifecycle verb first, if one was asked)."""
    desired = await desired_for(stack, ports, options, on_progress)
    return await converge(desired, ports, options.plan, supervisor, on_progress=on_progress,
                          gate_timeout=options.gate_timeout, ask=ask, on_done=on_done,
                          rollouts=options.rollouts, on_rollout=on_rollout,
                          parallel=options.parallel, check_devices=options.check_devices)


async def converge(desired: DesiredState, ports: Adapters, options: PlanOptions,
                   supervisor: Supervisor, *, on_progress: OnProgress | None = None,
                   gate_timeout: float | None = None, ask: Ask | None = None,
                   on_done: Report | None = None,
                   rollouts: Mapping[str, Rollout] | None = None,
                   on_rollout: OnRollout | None = None,
                   parallel: int | None = None,
                   check_devices: CheckDevices | None = None) -> ApplyResult:
    """One pass of the stack's writer: the ask, then observe → plan → apply → repair;
    a rolling update advances by one batch (`rollouts`: its state from the passes
    before; the result's is for the next). Only the stack's reconcile calls this (it
    holds the stack's key)."""
    if ask is not None:
        options = await carry_out(ask, desired, ports, supervisor, options, on_done)
    actual = await observe(desired.project, ports)
    planned = plan(desired, actual, options)
    await _check_devices(planned.actions, check_devices)
    await _check_externals(planned.actions, desired, ports)
    await _check_fixed_names(planned.actions, desired.project, ports)
    return await apply(annotate(planned, desired.services, rollouts),
                       desired, ports, supervisor,
                       on_progress=on_progress, gate_timeout=gate_timeout, rollouts=rollouts,
                       on_rollout=on_rollout, parallel=parallel)


async def _check_devices(actions: Sequence[Action], check: CheckDevices | None) -> None:
    """What the pass will create must find its devices here; a pass that creates none
    naming any (most: every resync) does not leave the event loop for it."""
    specs = to_check(actions) if check is not None else {}
    if specs and check is not None:
        await trio.to_thread.run_sync(check_host_devices, specs, check)


async def _check_externals(actions: Sequence[Action], desired: DesiredState,
                           ports: Adapters) -> None:
    """The external networks and volumes of the containers the pass makes must be
    there before the pass changes anything: else the stack's own networks and volumes
    were made, and containers removed for a recreate, before the first one failed."""
    made = [action.container for action in actions if makes_container(action)]
    for key in sorted({a.network_key for c in made for a in c.attachments}):
        spec = desired.networks.get(key)
        if spec is not None and spec.external:
            await ports.network.ensure_network(spec)  # NotFoundError names it
    # The stack's own volumes are what it makes; any other a container mounts is external.
    for name in sorted({v for c in made for v in c.volumes} - set(desired.volumes)):
        if not await ports.volumes.exists(name):
            raise NotFoundError(f"external volume {name} does not exist",
                                hint=f"create it first (`stackd volume create {name}`, or "
                                     "with the stack that owns it), or drop `external: true`")


async def _check_fixed_names(actions: Sequence[Action], project: str, ports: Adapters
                             ) -> None:
    """A `container_name` is the host's, as Docker's: one another stack's container (or
    a one-off's `run --name`) holds is refused before anything changes."""
    fixed = {a.container.spec.name: a.container for a in actions if makes_container(a)
             and a.container.spec.name != hostnames.container_name(
                 project, a.container.service, a.container.index)}
    if not fixed:
        return
    for view in await ports.runtime.list():
        want = fixed.get(view.name)
        if want is None:
            continue
        if (view.labels.get(hostnames.LABEL_PROJECT) == project
                and view.labels.get(hostnames.LABEL_SERVICE) == want.service
                and view.labels.get(hostnames.LABEL_ONEOFF) != "true"):
            continue  # the slot's own container, which this pass replaces
        owner = view.labels.get(hostnames.LABEL_PROJECT)
        raise ConflictError(
            f"container name {view.name} is already in use by container {view.id}"
            + (f" of stack {owner}" if owner else ""),
            hint=(f"take that stack down (`stackd -p {owner} down`)" if owner else
                  "remove that container (`stackd container rm`)")
            + ", or change container_name")


async def down(project: str, ports: Adapters, supervisor: Supervisor, *,
               waves: Sequence[Sequence[str]] = (), remove_volumes: bool = False,
               on_progress: OnProgress | None = None,
               grace: float | None = None) -> ApplyResult:
    """Remove every container of `project`, dependents first, then its networks (and
    its volumes with `remove_volumes`). `waves`: the stack's start waves, if known."""
    actual = await observe(project, ports)
    stop_order = [s for wave in reversed(waves) for s in wave]
    p = plan_down(actual, stop_order=stop_order, remove_volumes=remove_volumes, grace=grace)
    return await apply(p, None, ports, supervisor, waves=waves, on_progress=on_progress)
