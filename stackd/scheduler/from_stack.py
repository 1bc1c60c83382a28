"""A loaded `Stack` → the scheduler's ServiceNodes (the only module that reads the spec model).

Every edge source Compose has becomes a Dependency with the location it was written
at: `depends_on` (condition, required, restart kept), `links` (`db` or `db:alias`),
`network_mode: service:x`, `volumes_from` (`x`, `x:ro`; `container:…` names a
container outside the stack and is no edge), `ipc: service:x` and `pid: service:x`.

Resources: `deploy.resources.reservations` and `.limits`; the service-level
`cpus`, `mem_limit` and `pids_limit` stand in for limits `deploy` doesn't set, and
`mem_reservation` for its memory reservation.
"""

from __future__ import annotations

from stackd.errors import SpecError
from stackd.scheduler.services import (
    Condition,
    Dependency,
    DependencyKind,
    Resources,
    ServiceNode,
)
from stackd.spec.model import ResourceSpec, Service, Stack, Volume

_SERVICE_PREFIX = "service:"


def from_stack(stack: Stack) -> list[ServiceNode]:
    """One ServiceNode per service of the stack, in name order."""
    return [_service(stack, name, svc) for name, svc in sorted(stack.services.items())]


def _service(stack: Stack, name: str, svc: Service) -> ServiceNode:
    deploy = svc.deploy
    resources = deploy.resources if deploy is not None else None
    placement = deploy.placement if deploy is not None else None
    limits = _resources(resources.limits if resources else None).or_else(
        _resources(ResourceSpec(cpus=svc.cpus, memory=svc.mem_limit, pids=svc.pids_limit)))
    return ServiceNode(
        name=name,
        depends=tuple(_dependencies(stack, name, svc)),
        replicas=svc.replicas,
        reservations=_resources(resources.reservations if resources else None).or_else(
            _resources(ResourceSpec(memory=svc.mem_reservation))),
        limits=limits,
        constraints=placement.constraints if placement is not None else (),
        max_per_node=placement.max_replicas_per_node if placement is not None else None,
        preferences=tuple(item for pref in placement.preferences for item in pref.items())
        if placement is not None else (),
        mode=deploy.mode if deploy is not None else "replicated",
        location=stack.location_of(("services", name)),
    )


def _resources(spec: ResourceSpec | None) -> Resources:
    if spec is None:
        return Resources()
    # A pids limit of 0 or -1 means "unlimited" in Compose/Docker: nothing to reserve.
    pids = spec.pids if spec.pids is not None and spec.pids > 0 else None
    return Resources(cpus=spec.cpus, memory=spec.memory, pids=pids)


def _dependencies(stack: Stack, name: str, svc: Service) -> list[Dependency]:
    here = ("services", name)
    deps = [
        Dependency(target, DependencyKind.DEPENDS_ON, Condition(dep.condition),
                   required=dep.required, restart=dep.restart,
                   location=stack.location_of((*here, "depends_on", target)))
        for target, dep in svc.depends_on.items()
    ]
    for i, link in enumerate(svc.links):
        deps.append(Dependency(link.split(":", 1)[0], DependencyKind.LINKS,
                               location=stack.location_of((*here, "links", i))))
    for kind, value, field in (
        (DependencyKind.NETWORK_MODE, svc.network_mode, "network_mode"),
        (DependencyKind.IPC, svc.ipc, "ipc"),
        (DependencyKind.PID, svc.pid, "pid"),
    ):
        if value is not None and value.startswith(_SERVICE_PREFIX):
            deps.append(Dependency(value[len(_SERVICE_PREFIX):], kind,
                                   location=stack.location_of((*here, field))))
    for i, source in enumerate(svc.volumes_from):
        if source.startswith("container:"):
            continue
        deps.append(Dependency(source.split(":", 1)[0], DependencyKind.VOLUMES_FROM,
                               location=stack.location_of((*here, "volumes_from", i))))
    return deps


def node_local_volumes(stack: Stack) -> dict[str, tuple[str, ...]]:
    """service → the stack's named volumes it mounts whose data lives on one node (in a
    cluster, it runs where they are). A volume is shared — on storage every node
    reaches, so it pins nothing — when declared so: `x-stackd: {shared: true}` on the
    top-level volume. Anonymous volumes are per container and pin nothing either."""
    shared = {name for name, vol in stack.volumes.items() if _shared(stack, name, vol)}
    out: dict[str, tuple[str, ...]] = {}
    for name, svc in sorted(stack.services.items()):
        local = sorted({m.source for m in svc.volumes if m.type == "volume" and m.source
                        and m.source in stack.volumes and m.source not in shared})
        if local:
            out[name] = tuple(local)
    return out


def _shared(stack: Stack, name: str, volume: Volume) -> bool:
    ext = volume.extensions.get("x-stackd")
    if ext is None:
        return False
    shared = ext.get("shared", False) if isinstance(ext, dict) else None
    if not isinstance(shared, bool):
        raise SpecError(f"volume {name!r}: x-stackd must be a mapping like "
                        "{shared: true}", location=stack.location_of(("volumes", name)),
                        hint="`shared: true` says every node reaches the volume's storage "
                             "(its services are not pinned to one node)")
    return shared
