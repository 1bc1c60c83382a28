"""The few runtime/network sequences a container goes through, shared by apply and supervisor.

Each is safe to run again after being interrupted at any point: `bring_up` adopts a
container an earlier attempt already created, `tear_down` tolerates one that is
already gone.
"""

from __future__ import annotations

import dataclasses

from stackd import hostnames
from stackd.errors import (
    AlreadyExistsError,
    ConflictError,
    NotFoundError,
    StackdError,
    UsageError,
)
from stackd.netbridge.model import Attachment
from stackd.reconciler import hooks
from stackd.reconciler.desired import DesiredContainer
from stackd.reconciler.ports import Adapters, ContainerView
from stackd.runtime.containerspec import ContainerSpec
from stackd.runtime.signals import signal_number


async def _inspect(ports: Adapters, container_id: str) -> ContainerView | None:
    try:
        return await ports.runtime.inspect(container_id)
    except NotFoundError:
        return None


async def bring_up(ports: Adapters, container: DesiredContainer, *,
                   keep_layer: bool = False, renew: tuple[str, ...] = ()) -> None:
    """Network namespace, create, start — whatever of that is not done yet. An exited
    container of the same id is made again; with keep_layer (a user's start or
    restart, as Docker's) its writable layer goes on. renew: volumes (its anonymous
    ones, `up -V`) made afresh before a container is made."""
    started = not await _make(ports, container, keep_layer=keep_layer, renew=renew)
    if started:
        # Only now, not at connect: the resolver catches up while the container is made.
        await ports.network.resolvable(container.id)
        await ports.runtime.start(container.id)
    ports.state.unhold(container.id)
    if started:
        await hooks.post_start(ports.runtime, container.id, container.spec.name,
                               container.spec.labels)


async def create(ports: Adapters, container: DesiredContainer, *,
                 renew: tuple[str, ...] = ()) -> None:
    """`stackd create`: network namespace and container, not started. Its hold (set
    by the ask before) stays, so no later pass starts it until `start` or `up`."""
    await _make(ports, container, renew=renew)


async def _make(ports: Adapters, container: DesiredContainer, *,
                keep_layer: bool = False, renew: tuple[str, ...] = ()) -> bool:
    """The container's network namespace and the container itself, unless there.
    → whether it is running already."""
    view = await _inspect(ports, container.id)
    exited = view is not None and view.status == "exited"
    if exited:
        # Same id means same config: an earlier run of this very container. Our runtime
        # runs a container's process once, so starting again is a fresh create (a
        # respawn) — of the same container as far as a user sees: its log goes on
        # (`logs -f` too), and `ps` lists it throughout. Its network starts afresh.
        await ports.network.disconnect(container.id)
    if view is None or exited:
        for volume in renew:  # no container of the slot holds it now
            await ports.volumes.remove_volume(volume)
            await ports.volumes.ensure_volume(container.project, volume, anonymous=True)
        await _write_host_files(ports, container)
        spec = _joined(container.spec, await _connect(ports, container)
                       if container.attachments else None)
        try:
            if exited:
                await ports.runtime.respawn(spec, keep_layer=keep_layer)
            else:
                await ports.runtime.create(spec)
        except AlreadyExistsError:
            pass  # created by an interrupted attempt; same id, same config: adopt it
        except StackdError:
            # No container to own the namespace: take it away again, or nothing would.
            await ports.network.disconnect(container.id)
            raise
        else:
            return False  # made just now: created, its process waits for `start`
        view = await ports.runtime.inspect(container.id)
    assert view is not None
    return view.status == "running"


async def _write_host_files(ports: Adapters, container: DesiredContainer) -> None:
    for d in container.host_dirs:
        await ports.volumes.make_host_dir(d)
    for f in container.host_files:
        await ports.volumes.write_file(f.path, f.content, f.uid, f.gid, f.mode)


def _joined(spec: ContainerSpec, netns: str | None) -> ContainerSpec:
    """`spec` joined to the network namespace `netns` (unchanged without one)."""
    if netns is None:
        return spec
    return spec.model_copy(
        update={"namespaces": spec.namespaces.model_copy(update={"net": netns})})


def _group(container: DesiredContainer) -> str:
    """Who may share the container's published ports: its service's replicas."""
    return f"{container.project}/{container.service}"


def dns_attachments(container: DesiredContainer) -> tuple[Attachment, ...]:
    """The container's attachments, each also answering for its hostname when that is
    not its name (`hostname: db-primary`), as Docker's DNS does since 20.10. Added
    here, not in the attachments the config hash covers: the hostname is hashed as
    part of the spec already. Pure."""
    host = container.spec.hostname
    if not host or host == container.spec.name:
        return container.attachments
    return tuple(dataclasses.replace(a, aliases=(*a.aliases, host))
                 if host not in a.aliases else a for a in container.attachments)


async def _connect(ports: Adapters, container: DesiredContainer) -> str:
    attachments = dns_attachments(container)
    try:
        return await ports.network.connect(container.id, attachments,
                                           container.ports, group=_group(container))
    except AlreadyExistsError:
        # An interrupted attempt connected it and never created the container: start
        # the namespace over rather than trust half of it.
        await ports.network.disconnect(container.id)
        return await ports.network.connect(container.id, attachments,
                                           container.ports, group=_group(container))


async def start_existing(ports: Adapters, container_id: str) -> None:
    """Start a container as it is; an exited one is created again from its own spec,
    its writable layer kept (a user's start)."""
    view = await ports.runtime.inspect(container_id)
    if view.status == "exited" and view.spec is not None:
        view = await ports.runtime.respawn(view.spec, keep_layer=True)
    started = view.status != "running"
    if started:
        await ports.network.resolvable(container_id)  # `stackd create` did not wait
        await ports.runtime.start(container_id)
    ports.state.unhold(container_id)
    if started:
        await hooks.post_start(ports.runtime, container_id, view.name, view.labels)


async def _stop(ports: Adapters, view: ContainerView, grace: float | None) -> None:
    """pre_stop hooks (compose: before the stop signal), then the stop itself."""
    await hooks.pre_stop(ports.runtime, view.id, view.labels, 10.0 if grace is None else grace)
    await ports.runtime.stop(view.id, grace)


async def tear_down(ports: Adapters, container_id: str, *, keep_logs: bool = False,
                    grace: float | None = None) -> None:
    """Stop (if running; SIGKILL after `grace` s, None: the spec's), detach from
    networks, delete (keeping the log for a restart that creates the same id again)."""
    view = await _inspect(ports, container_id)
    if view is not None and view.status == "running":
        await _stop(ports, view, grace)
    await ports.network.disconnect(container_id)
    if view is not None:
        try:
            await ports.runtime.delete(container_id, keep_logs=keep_logs)
        except NotFoundError:
            pass
    ports.state.unhold(container_id)


def kill_stops(sent: str, stop_signal: str) -> bool:
    """Whether `kill -s sent` is a user's stop, as Docker's kill reads it (then no
    restart policy brings the container back): SIGKILL, or its own stop signal."""
    import signal

    def number(name: str) -> int | None:
        try:
            return signal_number(name)
        except UsageError:
            return None

    return number(sent) in (signal.SIGKILL.value, number(stop_signal))


async def stop(ports: Adapters, container_id: str, grace: float | None = None) -> None:
    """A user's stop: held, so no restart policy starts it again (see StatePort).
    SIGKILL after `grace` seconds (None: the container's stop_grace_period)."""
    view = await _inspect(ports, container_id)
    if view is None:
        return
    ports.state.hold(view.labels.get(hostnames.LABEL_PROJECT, ""), container_id)
    if view.status == "running":
        await _stop(ports, view, grace)


async def restart(ports: Adapters, container: DesiredContainer) -> None:
    """Start an exited container again (the restart policy's restart): what a `kill -9`
    heal waits for. Its network namespace outlives its process (netbridge keeps it
    mounted), so it is joined again as it is — no detach, no new veth, address, DNS
    record or published port — when `still_connected` finds all of it there; else the
    whole `replace`. Same id, same config: the log goes on."""
    view = await _inspect(ports, container.id)
    netns = (ports.network.still_connected(container.id, container.attachments)
             if container.attachments else None)
    if view is None or view.status == "running" or (container.attachments and netns is None):
        await replace(ports, container, container.id)
        return
    await _write_host_files(ports, container)
    spec = _joined(container.spec, netns)
    try:
        await ports.runtime.respawn(spec)
    except (NotFoundError, ConflictError):
        # Removed, or made again, meanwhile: brought up as any other container is.
        await bring_up(ports, container)
        return
    except StackdError:
        await ports.network.disconnect(container.id)  # as _make: nothing owns it now
        raise
    await ports.runtime.start(container.id)
    ports.state.unhold(container.id)
    await hooks.post_start(ports.runtime, container.id, container.spec.name,
                           container.spec.labels)


async def replace(ports: Adapters, container: DesiredContainer, old_id: str, *,
                  grace: float | None = None, keep_layer: bool = False,
                  renew: tuple[str, ...] = ()) -> None:
    """Recreate: the old container goes first (names and ports are exclusive). The same
    id again (a restart) is stopped and respawned by bring_up: listed throughout, its
    log going on, so `logs -f` follows on across it; with keep_layer (a restart a user
    or a `restart: true` dependency asked for) its writable layer too."""
    if old_id == container.id:
        view = await _inspect(ports, old_id)
        if view is not None and view.status == "running":
            await _stop(ports, view, grace)
    else:
        await tear_down(ports, old_id, grace=grace)
    await bring_up(ports, container, keep_layer=keep_layer and old_id == container.id,
                   renew=renew)
