"""The reconciler's front door: what the daemon and the CLI call.

    desired = await desired_for(stack, ports, options)     # images resolved, files read
    plan    = plan_for(desired, actual, options)           # pure
    result  = await reconcile(stack, ports, options, supervisor)   # observe → plan → apply
    result  = await down(project, ports, supervisor, ...)

`reconcile` is level-triggered and idempotent: it reads the host afresh every time, so
calling it twice in a row does nothing the second time (the plan is empty).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from stackd.errors import NotFoundError
from stackd.reconciler.actual import ActualState, observe
from stackd.reconciler.apply import ApplyResult, OnProgress, apply
from stackd.reconciler.build import BuildInputs, desired_state, image_ref
from stackd.reconciler.desired import DesiredState
from stackd.reconciler.diff import PlanOptions, plan, plan_down
from stackd.reconciler.plan import Plan
from stackd.reconciler.ports import ImageView, Ports, PullPolicy
from stackd.reconciler.supervisor import Supervisor
from stackd.spec.model import Stack


@dataclass(frozen=True, slots=True)
class ReconcileOptions:
    plan: PlanOptions = field(default_factory=PlanOptions)
    pull: str | None = None  # always | missing | never; None: each service's pull_policy
    scale: Mapping[str, int] = field(default_factory=dict)  # --scale svc=n
    environ: Mapping[str, str] = field(default_factory=dict)  # for environment-sourced secrets
    gate_timeout: float | None = None  # seconds a depends_on condition may take; None: forever


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
    id: str = "missing"
    digest: str = "missing"
    config: _MissingConfig = field(default_factory=_MissingConfig)
    layer_dirs: tuple[str, ...] = ()


async def resolve_images(stack: Stack, ports: Ports, pull: str | None, *,
                         missing_ok: bool = False) -> dict[str, ImageView]:
    """Each service's image, pulled as the policy says; one pull per distinct ref.

    missing_ok (for `preview`, which never pulls): an image not in the store is
    replaced by a stand-in, so the plan can still be shown.
    """
    wanted: dict[tuple[str, PullPolicy], list[str]] = {}
    for name, svc in sorted(stack.services.items()):
        given = pull or svc.pull_policy or "missing"
        # build/daily/weekly: what is local, else pull
        policy: PullPolicy = ("always" if given == "always" else
                              "never" if given == "never" else "missing")
        wanted.setdefault((image_ref(stack, name, svc), policy), []).append(name)
    found: dict[str, ImageView] = {}

    async def one(ref: str, policy: PullPolicy, names: list[str]) -> None:
        image: ImageView
        try:
            image = await ports.images.ensure(ref, policy)
        except NotFoundError:
            if not missing_ok:
                raise
            image = _MissingImage(ref)
        for n in names:
            found[n] = image

    async with trio.open_nursery() as nursery:
        for (ref, policy), names in wanted.items():
            nursery.start_soon(one, ref, policy, names)
    return found


async def _read_files(stack: Stack) -> dict[str, bytes]:
    paths = sorted({o.file for objs in (stack.configs, stack.secrets) for o in objs.values()
                    if o.file is not None})

    def read_all() -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for p in paths:
            try:
                out[p] = Path(p).read_bytes()
            except OSError:
                pass  # build.desired_state reports it, with the stack location
        return out

    return await trio.to_thread.run_sync(read_all)


async def desired_for(stack: Stack, ports: Ports, options: ReconcileOptions) -> DesiredState:
    images = await resolve_images(stack, ports, options.pull)
    return await _build(stack, images, ports, options)


async def _build(stack: Stack, images: Mapping[str, ImageView], ports: Ports,
                 options: ReconcileOptions) -> DesiredState:
    contents = await _read_files(stack)

    def read_file(path: str) -> bytes:
        try:
            return contents[path]
        except KeyError:
            raise FileNotFoundError(2, "No such file or directory", path) from None

    inputs = BuildInputs(volume_path=ports.volumes.path, file_path=ports.volumes.file_path,
                         read_file=read_file, environ=options.environ, scale=options.scale)
    return desired_state(stack, images, inputs)


def plan_for(desired: DesiredState, actual: ActualState, options: ReconcileOptions) -> Plan:
    """Pure: what `reconcile` would do from here."""
    return plan(desired, actual, options.plan)


async def preview(stack: Stack, ports: Ports, options: ReconcileOptions) -> Plan:
    """`stackd plan`: the plan against the host as it is, changing nothing (no pulls)."""
    images = await resolve_images(stack, ports, "never", missing_ok=True)
    desired = await _build(stack, images, ports, options)
    p = plan_for(desired, await observe(desired.project, ports), options)
    missing = sorted({i.ref for i in images.values() if isinstance(i, _MissingImage)})
    notes = tuple(f"image {ref} is not in the store: up will pull it" for ref in missing)
    return Plan(p.project, p.actions, p.warnings + notes)


async def reconcile(stack: Stack, ports: Ports, options: ReconcileOptions,
                    supervisor: Supervisor, *, on_progress: OnProgress | None = None
                    ) -> ApplyResult:
    """Make the host match `stack`: resolve, observe, plan, apply."""
    desired = await desired_for(stack, ports, options)
    return await converge(desired, ports, options.plan, supervisor, on_progress=on_progress,
                          gate_timeout=options.gate_timeout)


async def converge(desired: DesiredState, ports: Ports, options: PlanOptions,
                   supervisor: Supervisor, *, on_progress: OnProgress | None = None,
                   gate_timeout: float | None = None) -> ApplyResult:
    actual = await observe(desired.project, ports)
    return await apply(plan(desired, actual, options), desired, ports, supervisor,
                       on_progress=on_progress, gate_timeout=gate_timeout)


async def down(project: str, ports: Ports, supervisor: Supervisor, *,
               waves: Sequence[Sequence[str]] = (), remove_volumes: bool = False,
               on_progress: OnProgress | None = None) -> ApplyResult:
    """Remove every container of `project`, dependents first, then its networks (and
    its volumes with `remove_volumes`). `waves`: the stack's start waves, if known."""
    actual = await observe(project, ports)
    stop_order = [s for wave in reversed(waves) for s in wave]
    p = plan_down(actual, stop_order=stop_order, remove_volumes=remove_volumes)
    return await apply(p, None, ports, supervisor, waves=waves, on_progress=on_progress)
