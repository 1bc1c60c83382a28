"""The real World: spec, reconciler, runtime, images, netbridge and state behind the daemon.

Two layers: the reconciler's Adapters (reconciler/ports.py) wired to the real runtime,
image store, networks (through `NetworkAdapter`, the one whose calls differ), volumes
and intent log; and `HostWorld`, the daemon's World built on those ports. One
`Supervisor` lives as long as the daemon: it watches every container an apply
started or adopted (exits, health, restarts) and its facts become bus events.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import trio

from stackd import hostinfo, hostnames
from stackd.daemon.events import Event
from stackd.daemon.loadcache import LoadCache
from stackd.daemon.models import ApplyOptions, ExecRequest, ExecResult, RemoveOptions, StackSource
from stackd.daemon.world import Emit
from stackd.errors import NotFoundError, StackdError, UnavailableError
from stackd.netbridge.model import LABEL_NETWORK_HASH
from stackd.roots import Roots
from stackd.state.db import StateDB

if TYPE_CHECKING:
    from stackd.daemon.single import RunRequest

BRIDGE_CHECK_INTERVAL = 0.5  # seconds between looks for deleted bridges, netns, veths, cgroups
GATE_TIMEOUT = 300.0  # seconds one depends_on condition may take before the apply fails

# -- port adapters --------------------------------------------------------------------


class NetworkedRuntime:
    """The runtime, plus the files a container on stackd's networks needs.

    Nobody upstream writes /etc/resolv.conf and /etc/hosts for a stack's containers:
    the spec is built before its network exists (the addresses are picked by
    `connect`, which runs just before `create`). So `create` adds them here, from the
    addresses netbridge recorded: DNS on the first network's gateway (stackd's
    resolver), the container's own name on each of its addresses. And /etc/hostname,
    on every network mode, as Docker's and Kubernetes' containers have it.
    """

    def __init__(self, runtime: Any, networks: Any, network_port: NetworkAdapter) -> None:
        self._rt = runtime
        self._nets = networks
        self._port = network_port

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rt, name)

    async def create(self, spec: Any) -> object:
        try:
            return await self._rt.create(self._with_network_files(spec))
        finally:
            # Created, or failed and its caller disconnects: no longer in flight.
            self._port.in_flight.discard(spec.id)

    async def respawn(self, spec: Any, *, keep_layer: bool = False) -> Any:
        # A heal, a restart, a start of an exited container: made again from the
        # desired spec, which has no network files either (a respawn without them had
        # no /etc/resolv.conf: DNS was gone after every crash).
        try:
            return await self._rt.respawn(self._with_network_files(spec),
                                          keep_layer=keep_layer)
        finally:
            self._port.in_flight.discard(spec.id)

    def _with_network_files(self, spec: Any) -> Any:
        from stackd.netbridge import hosts_file_for, resolv_conf_for

        files = dict(spec.files)
        if spec.namespaces.uts == "host":
            files.setdefault("/etc/hostname", f"{socket.gethostname()}\n")
        else:
            files.setdefault("/etc/hostname", f"{spec.hostname or spec.name}\n")
        addresses = self._nets.addresses(spec.id)
        if not addresses:
            # `network_mode: service:x`: in x's namespace, with x's addresses and DNS.
            path = Path(spec.namespaces.net)
            if Path(self._nets.netns_path(path.name)) == path:
                addresses = self._nets.addresses(path.name)
        if not addresses:
            return spec.model_copy(update={"files": files})
        gateway = addresses[0].gateway
        files.setdefault("/etc/resolv.conf", resolv_conf_for(
            gateway, search=spec.dns_search, options=spec.dns_options, also=spec.dns))
        name = spec.hostname or spec.name
        aliases = [spec.name] if spec.name != name else []
        files.setdefault("/etc/hosts", hosts_file_for(
            name, [a.ip for a in addresses], spec.extra_hosts, aliases=aliases,
            host_gateway=gateway))
        return spec.model_copy(update={"files": files})


class NetworkAdapter:
    """NetworkPort over stackd.netbridge.Networks (+ its DNS resolver)."""

    def __init__(self, networks: Any) -> None:
        self.nets = networks
        # Connected, not yet created: a stray-looking attachment that is not one. Kept
        # in memory only: after a daemon dies, what it had in flight is a real stray.
        self.in_flight: set[str] = set()

    async def networks(self, project: str) -> Mapping[str, str]:
        return {n.key: n.labels.get(LABEL_NETWORK_HASH, "") for n in self.nets.list()
                if n.project == project}

    async def ensure_network(self, spec: Any) -> None:
        # The resolver catches up while the containers are made: `resolvable`, before
        # each starts, waits for it (for an unused network, DnsFeed.keep within 1 s).
        await self.nets.ensure_network(spec, wait_for_dns=False)

    async def remove_network(self, key: str) -> None:
        await self.nets.remove_network(key)

    def netns_path(self, container_id: str) -> str:
        return str(self.nets.netns_path(container_id))

    async def connect(self, container_id: str, attachments: Sequence[Any],
                      ports: Sequence[Any], *, group: str = "") -> str:
        if ports:
            self.nets.check_ports_free(list(ports), container_id=container_id, group=group)
        self.in_flight.add(container_id)
        path: str = await self.nets.create_netns(container_id)
        try:
            addresses = await self.nets.attach(container_id, path, list(attachments),
                                               names=_dns_names(container_id),
                                               wait_for_dns=False)
            if ports:
                await self.nets.publish(container_id, list(ports), addresses[0].ip,
                                        group=group)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.disconnect(container_id)
            raise
        return path

    async def resolvable(self, container_id: str) -> None:
        await self.nets.dns_current()  # one flush carries every container's records

    async def disconnect(self, container_id: str) -> None:
        self.in_flight.discard(container_id)
        await self.nets.unpublish(container_id)
        await self.nets.detach(container_id)
        await self.nets.remove_netns(container_id)

    def still_connected(self, container_id: str, attachments: Sequence[Any]) -> str | None:
        """The netns path, if the container's namespace is still mounted and it holds an
        address on each of the given networks (and no other), with its host veth still
        on that network's bridge; None otherwise. A few stats, no netlink. (The same id
        is the same config, so the attachments' order and options are those it was
        connected with.)"""
        path = self.nets.netns_path(container_id)
        rows = self.nets.alloc.addresses(container_id=container_id)
        if sorted(r.network_key for r in rows) != sorted(a.network_key for a in attachments):
            return None
        for r in rows:
            net = self.nets.alloc.network(r.network_key)
            try:
                master = os.readlink(f"/sys/class/net/{r.host_ifname}/master")
            except OSError:
                return None  # the veth is gone, or on no bridge
            if net is None or os.path.basename(master) != net.bridge:
                return None
        from stackd.netbridge.netns import is_netns

        return str(path) if is_netns(path) else None

    async def release_strays(self, project: str, live: set[str]) -> list[str]:
        """Disconnect attachments to the project's networks held for containers that do
        not exist (`live`: every container id the runtime has): what a daemon killed
        between `connect` and `create` leaves behind. Their ids."""
        keys = {n.key for n in self.nets.list() if n.project == project}
        live = live | self.in_flight
        strays = sorted({cid for key, cid, _ in self.nets.alloc.holders()
                         if key in keys and cid not in live})
        for cid in strays:
            await self.disconnect(cid)
        return strays

    async def release_orphans(self, live: set[str]) -> list[str]:
        """At daemon start, before any apply: every namespace, address or published port
        held for a container the runtime does not have, whatever its project. A daemon
        killed between making a namespace and recording its addresses leaves a netns
        that no project's records name. Their ids."""
        held = (set(self.nets.netns_ids()) | {a.container_id for a in self.nets.alloc.addresses()}
                | {p.container_id for p in self.nets.alloc.ports()})
        orphans = sorted(held - live - self.in_flight)
        for cid in orphans:
            await self.disconnect(cid)
        return orphans

    async def set_ready(self, container_id: str, ready: bool, *, running: bool = False
                        ) -> None:
        if self.nets.resolver is not None:
            self.nets.resolver.set_ready(container_id, ready, running=running)
            await self.nets.resolver.flush()
        await self.nets.set_port_ready(container_id, ready)


_ID = re.compile(r"^(?P<name>.+)-(?P<index>\d+)-[0-9a-f]{8}$")


def _dns_names(container_id: str) -> list[str]:
    """The container's name (`webapp-web-1`) from its runtime id (`webapp-web-1-<hash>`).

    The service name and aliases come with the attachments; this adds the container's
    own name, which Compose also serves.
    """
    m = _ID.match(container_id)
    return [f"{m['name']}-{m['index']}"] if m else []


def _frozen(root_id: str, ids: Sequence[str]) -> set[str]:
    """Which of these running containers are paused (their cgroup frozen)."""
    from stackd.runtime.cgroups import host_mounts, manager_for

    out: set[str] = set()
    if not ids:
        return out
    mounts = host_mounts()  # once, not once per container (a ps of 500 read it 500 times)
    for cid in ids:
        try:
            if manager_for(root_id, cid, mounts).frozen():
                out.add(cid)
        except (OSError, StackdError):
            continue  # gone meanwhile, or no cgroup: not paused
    return out


def make_ports(roots: Roots, db: StateDB, resolver: Any | None) -> Any:
    from stackd.images import ImageStore
    from stackd.netbridge import Networks
    from stackd.reconciler.ports import Adapters
    from stackd.runtime.runtime import Runtime
    from stackd.state.intents import IntentLog
    from stackd.state.volumes import VolumeStore

    db.ensure_schemas()  # the tables those modules registered on import
    # netbridge gets a connection of its own: it writes from worker threads while the
    # intent log and volume store write from the trio thread, and one sqlite3
    # connection has one transaction at a time. WAL and BEGIN IMMEDIATE serialise
    # separate connections properly.
    networks = Networks(roots, StateDB.open(db.path), resolver=resolver)
    network = NetworkAdapter(networks)
    return Adapters(runtime=NetworkedRuntime(Runtime(roots), networks, network),
                 images=ImageStore(roots),
                 network=network,
                 volumes=VolumeStore(db, roots.state),
                 state=IntentLog(db))


# -- the World ------------------------------------------------------------------------


def _event_from_supervisor(e: Any) -> Event:
    # A die's code and a health event's status under Docker's attribute names, for
    # readers (`stackd wait`, the containers gauge, `events --json`) that must not
    # parse the message.
    attrs = {"exitCode": str(e.exit_code)} if e.exit_code is not None else {}
    if e.health:
        attrs["healthStatus"] = e.health
    return Event(type=e.type, project=e.project, service=e.service, container=e.container,
                 slot=e.slot, reason=e.reason, message=e.message, attrs=attrs)


class HostWorld:
    def __init__(self, roots: Roots, db: StateDB) -> None:
        self.roots = roots
        self.db = db
        self.resolver: Any = None
        self.ports: Any = None
        self.supervisor: Any = None
        self.default_network: Any = None  # single.DefaultNetwork, made by watch
        self.singles: Any = None  # SingleSupervisor: `stackd run --restart` containers
        # Cluster mode: project → service → the slot indices this node holds (the
        # daemon's Membership sets it when it is a member); None runs every slot.
        self.slots_of: Callable[[str], Mapping[str, frozenset[int]] | None] = \
            lambda project: None
        self._loads: LoadCache[_Loaded] = LoadCache()

    # lifecycle

    async def watch(self, emit: Emit, *, task_status: trio.TaskStatus[None]) -> None:
        from stackd.netbridge import DnsFeed
        from stackd.reconciler.supervisor import Supervisor

        # DNS is served by the root's resolver process, which outlives this daemon;
        # restore() below hands it this daemon's view (the same one, if it runs).
        self.resolver = DnsFeed(self.roots)
        try:
            async with trio.open_nursery() as nursery:
                self.ports = make_ports(self.roots, self.db, self.resolver)
                nets = self.ports.network.nets
                alloc = nets.alloc
                self.resolver.networks_now = lambda: [n.key for n in alloc.networks()]
                try:
                    from stackd.netbridge.socketlb import SocketBalancer

                    nets.sockets = SocketBalancer()
                except StackdError as err:
                    emit(Event(type="daemon", message=f"{err.message}; {err.hint}"))
                try:
                    if done := await self.ports.runtime.replace_older_monitor():
                        emit(Event(type="daemon", message=done))
                except StackdError as err:
                    emit(Event(type="error", message=f"checking the runtime monitor: {err}"))
                try:
                    await nets.restore()
                    live = {v.id for v in await self.ports.runtime.list()}
                    for cid in await self.ports.network.release_orphans(live):
                        emit(Event(type="heal", container=cid,
                                   message="network namespace or addresses of a container "
                                   "that does not exist: released"))
                except StackdError as err:
                    emit(Event(type="error", message=f"restoring networks: {err}"))
                self.supervisor = Supervisor(
                    self.ports, nursery, lambda e: emit(_event_from_supervisor(e)))
                from stackd.daemon.singlewatch import SingleSupervisor

                self.singles = SingleSupervisor(
                    self.ports, nursery,
                    lambda kind, name, message: emit(Event(type=kind,  # type: ignore[arg-type]
                                                           container=name, message=message)))
                try:
                    await self.singles.adopt()
                except StackdError as err:
                    emit(Event(type="error", message=f"restart policies of run containers: {err}"))
                nursery.start_soon(self.resolver.keep,
                                   lambda problem: emit(Event(type="error", message=problem)))
                nursery.start_soon(self._watch_bridges, emit)
                nursery.start_soon(self._watch_containers, emit)
                nursery.start_soon(self._hold_monitor)
                from stackd.daemon.single import DefaultNetwork

                self.default_network = DefaultNetwork(self.ports)
                nursery.start_soon(self.default_network.keep)
                from stackd.daemon.buildnet import BuildNetwork

                # `up --build` and `stackd build` (over the API): RUN steps on it.
                self.ports.images.run_network = BuildNetwork(self.ports, self.default_network)
                task_status.started()
                await trio.sleep_forever()
        finally:
            # Once every task is done with them: DNAT alone serves the ports from here.
            if self.ports is not None and self.ports.network.nets.sockets is not None:
                self.ports.network.nets.sockets.close()
                self.ports.network.nets.sockets = None

    async def _hold_monitor(self) -> None:
        """Keep the runtime monitor up while this daemon runs, so an `up` after a
        `down` does not wait for a new one to start (~0.4 s). Started here once; after
        it goes (a shutdown asked for, a crash), held again only once something else
        has needed and started it: holding never starts one by itself."""
        monitor = self.ports.runtime.monitor
        first = True
        while True:
            if first or await monitor.answers():
                try:
                    await monitor.hold()
                except (StackdError, OSError):
                    pass
            first = False
            await trio.sleep(1.0)

    async def _watch_bridges(self, emit: Emit) -> None:
        """A bridge deleted from outside (`ip link del`) is made again, and the containers
        that were on it are restarted so they are attached to it afresh.

        Looks each bridge up by name (an ioctl per network, no netlink) four times a second:
        cheap, and well inside the one second a heal may take.
        """
        from stackd.netbridge.overlayplan import LABEL_OVERLAY, vxlan_name

        nets = self.ports.network.nets
        while True:
            await trio.sleep(BRIDGE_CHECK_INTERVAL)
            networks = nets.list()
            missing = [n for n in networks if not n.external and not _device_exists(n.bridge)]
            if not missing:
                # An overlay's VXLAN device alone gone: made again (restore), its
                # entries programmed again; the containers on the bridge are unharmed.
                vxlans = [vxlan_name(self.roots.id, n.key) for n in networks
                          if LABEL_OVERLAY in n.labels and not n.external]
                gone = [v for v in vxlans if not _device_exists(v)]
                if gone:
                    try:
                        await nets.restore()
                        emit(Event(type="heal", message=f"VXLAN device {gone[0]} was gone: "
                                   "made it again"))
                    except StackdError as err:
                        emit(Event(type="error", message=f"recreating VXLAN devices: {err}"))
                continue
            try:
                await nets.restore()
            except StackdError as err:
                emit(Event(type="error", message=f"recreating bridges: {err}"))
                continue
            for n in missing:
                ids = sorted({a.container_id for a in nets.alloc.addresses(network_key=n.key)})
                emit(Event(type="heal", project=n.project,
                           message=f"bridge {n.bridge} of network {n.key} was gone: made it "
                           f"again; restarting the {len(ids)} container(s) that were on it"))
                # A fact for each stack's worker, which kills and restarts them (repair);
                # the heal event above enqueues the stack.
                for cid in ids:
                    w = self.supervisor.get(cid)
                    if w is not None:  # not supervised: the next reconcile decides
                        self.supervisor.mark_disrupted(w, f"bridge {n.bridge} was gone")

    async def _watch_containers(self, emit: Emit) -> None:
        """A running container whose cgroup, network namespace or host veth was removed
        from outside is killed, so its restart makes all three afresh.

        Same cadence as the bridge check; a pass is one query of the address records
        on the trio thread, then in a worker thread a listing of one hierarchy's cgroup
        parent and of /sys/class/net and a stat per netns file, never a netlink dump.
        """
        from stackd.runtime.cgroups import host_mounts
        from stackd.runtime.cgroups.v1 import CONTROLLERS

        # The hierarchies the runtime makes a container's cgroup in (manager_for).
        mounts = host_mounts()
        hierarchies = (sorted({mounts.v1[c] for c in CONTROLLERS if c in mounts.v1})
                       if mounts.v1 else [mounts.v2] if mounts.v2 else [])
        nets = self.ports.network.nets
        ns_dir = str(nets.netns_path("x").parent)
        turn = 0
        while True:
            await trio.sleep(BRIDGE_CHECK_INTERVAL)
            # One hierarchy per pass, in turn: removing a container's cgroups by hand
            # (cgdelete, or a script) takes it from every hierarchy, so one look finds
            # it at the next pass; one removed from a single hierarchy is found within
            # a round. Looking in all eight each pass was most of an idle daemon's CPU
            # at 500 containers.
            turn = (turn + 1) % max(1, len(hierarchies))
            try:
                looked = to_look_at(nets, self.supervisor.watches())
                found_now = await trio.to_thread.run_sync(
                    disrupted, self.roots, hierarchies[turn:turn + 1], ns_dir, looked)
            except (StackdError, OSError, sqlite3.Error) as err:
                # A busy database or a racing delete: the next pass looks again; a
                # crash here would take the whole daemon down.
                emit(Event(type="error", message=f"checking containers: {err}"))
                continue
            for c, found in found_now:
                w = self.supervisor.get(c.container_id)
                # Only the run that was looked at: released, held or restarted while
                # the worker thread looked, what it found is not this one's.
                if w is None or w.held or w.started_at != c.started_at:
                    continue
                # A fact for the stack's worker; the event enqueues the stack.
                if self.supervisor.mark_disrupted(w, found):
                    emit(Event(type="heal", project=c.project, container=c.container_id,
                               message=f"{found}: restarting the container to make it again"))

    def _ready(self) -> Any:
        if self.ports is None:
            raise UnavailableError("the daemon is still starting", hint="retry in a moment")
        return self.ports

    # stacks

    async def load(self, source: StackSource) -> Any:
        """The stack as its files are now, with what a revision of it records: the
        last load of the same request when nothing it read or looked for changed
        (daemon/loadcache.py)."""
        from stackd.daemon.revision import capture
        from stackd.spec import LoadOptions, load
        from stackd.spec.files import read_stack_files
        from stackd.spec.probes import Probes

        request = source.model_dump_json()
        place = source.model_dump_json(exclude={"environ", "content"})

        def same_files(loaded: _Loaded) -> bool:
            try:
                return read_stack_files(loaded.stack) == loaded.files
            except StackdError:
                return False

        def read() -> _Loaded:
            kept = self._loads.get(place, request, same_files)
            if kept is not None:
                return kept
            reads: list[tuple[str, str, str]] = []
            probes = Probes()
            stack = load(LoadOptions(
                files=source.files, project_name=source.project_name,
                project_directory=source.project_directory, env_files=source.env_files,
                profiles=source.profiles, services=source.services,
                environ=source.environ, stdin=source.content,
                cwd=source.cwd, on_warning=lambda _w: None, probes=probes,
                on_read=lambda path, kind, text: reads.append((path, kind, text))))
            files = read_stack_files(stack)
            loaded = _Loaded(stack, dict(source.environ), files=files,
                             captured=capture(stack, reads, files, source.environ))
            self._loads.put(place, request, probes, loaded)
            return loaded

        return await trio.to_thread.run_sync(read)

    async def restore(self, revision: Any, files: Mapping[str, bytes],
                      environ: Mapping[str, str], pin: Callable[[str, str], str]) -> Any:
        """The stack of an applied revision, with its files' contents and image pins."""
        from stackd.daemon.revision import restored_from_json

        restored = await trio.to_thread.run_sync(restored_from_json, revision.stack)
        return _Loaded(restored.stack, dict(environ), files=dict(files),
                       pins=dict(revision.images), pin=pin, refused=restored.refused)

    async def image_digest(self, ref: str) -> str | None:
        """The manifest digest the store holds for `ref` now; None if it holds none."""
        try:
            digest, _ = await trio.to_thread.run_sync(self._ready().images.resolve, ref)
        except StackdError:
            return None
        return str(digest)

    def _options(self, stack: Any, options: ApplyOptions) -> Any:
        from stackd.hostinfo import local_node
        from stackd.reconciler.diff import PlanOptions
        from stackd.reconciler.reconcile import ReconcileOptions
        from stackd.runtime.devices import resolve_devices

        slots = self.slots_of(stack.project)
        return ReconcileOptions(
            plan=PlanOptions(services=tuple(options.services), no_deps=options.no_deps,
                             disabled=frozenset(options.disabled),
                             remove_orphans=options.remove_orphans,
                             force_recreate=options.force_recreate or (
                                 options.renew_anon_volumes and not options.no_recreate),
                             recreate_deps=(options.always_recreate_deps
                                            and not options.no_recreate),
                             no_recreate=options.no_recreate,
                             renew_anon_volumes=options.renew_anon_volumes,
                             grace=None if options.timeout is None else float(options.timeout)),
            pull=options.pull, scale=dict(options.scale), environ=stack.environ,
            # Only the apply the user asked for has build set: the engine's resyncs
            # clear it (`steady`), else every pass would rebuild.
            build=options.build, no_build=options.no_build, parallel=options.parallel,
            # An over-committed stack is refused before anything of it starts; in a
            # cluster the leader placed the slots over every node's room.
            nodes=(local_node(),) if slots is None else (), slots=slots,
            files=stack.files,  # a revision's configs and secrets, as applied
            # A reconcile holds its stack's key: one waiting forever on a health check
            # that never passes would keep every later apply of that stack waiting too.
            gate_timeout=GATE_TIMEOUT,
            rolling_back=options.rolling_back,
            # A device the host lacks is refused before a recreate stops anything.
            check_devices=resolve_devices)

    async def reconcile(self, stack: Any, options: ApplyOptions, emit: Emit,
                        ask: Any = None, rollouts: Any = None,
                        keep: Any = None) -> float | None:
        from stackd.reconciler.reconcile import reconcile

        await self._release_strays(stack.project, emit)
        # Even an empty plan goes through apply: it adopts the stack's containers into
        # the supervisor, which is how a restarted daemon takes over watching them.
        reconcile_options = dataclasses.replace(self._options(stack, options),
                                                rollouts=dict(rollouts or {}))
        result = await reconcile(stack.stack, stack.bind(self._ready()),
                                 reconcile_options,
                                 self.supervisor,
                                 on_progress=_progress_emitter(stack.project, emit),
                                 ask=ask, on_done=_done_emitter(stack.project, emit),
                                 on_rollout=keep)
        if keep is not None:
            keep(result.rollouts)
        for w in result.plan.warnings:
            emit(Event(type="apply", project=stack.project, verb="warning",
                       message=f"warning: {w}"))
        _raise_failures(result, "up")
        return result.requeue_after

    async def heal(self, project: str) -> None:
        from stackd.reconciler.repair import repair

        # The requeue-after it may return is found again by the full pass that follows.
        await repair(project, self._ready(), self.supervisor)

    async def plan(self, stack: Any, options: ApplyOptions, *, as_up: bool = False
                   ) -> list[dict[str, Any]]:
        from stackd.reconciler.reconcile import preview

        p = await preview(stack.stack, self._ready(), self._options(stack, options),
                          as_up=as_up)
        return [*({"line": a.line, "verb": a.verb, "resource": a.resource, "cause": a.cause}
                  for a in p.actions),
                *({"line": f"warning: {w}", "verb": "warning", "resource": "", "cause": w}
                  for w in p.warnings)]

    async def teardown(self, project: str, options: RemoveOptions, emit: Emit,
                       stack: Any = None) -> None:
        from stackd.reconciler.reconcile import down

        await self._release_strays(project, emit)
        # The stack, when it can still be read, gives the order: dependents go first.
        result = await down(project, self._ready(), self.supervisor,
                            waves=_start_waves(stack.stack) if stack is not None else (),
                            remove_volumes=options.volumes,
                            on_progress=_progress_emitter(project, emit),
                            grace=options.timeout)
        _raise_failures(result, "down")

    async def _release_strays(self, project: str, emit: Emit) -> None:
        """Network attachments of containers that were never created (a daemon killed
        between connect and create) go before a reconcile or down looks: a stray keeps
        its veth and netns, and its network from being removed."""
        ports = self._ready()
        # Restarts happen under the stack's key too (repair.py), so none is half-way
        # now; a one-off's connect-before-create is covered by the adapter's in_flight.
        live = {v.id for v in await ports.runtime.list()}
        for cid in await ports.network.release_strays(project, live):
            emit(Event(type="heal", project=project, container=cid,
                       message="network attachment of a container that does not exist: "
                       "released (veth, address, netns)"))

    # containers

    async def containers(self, project: str | None, all: bool) -> list[dict[str, Any]]:
        from stackd.state.allocations import Allocations

        ports = self._ready()
        views = [v for v in await ports.runtime.list()
                 if project is None or v.labels.get(hostnames.LABEL_PROJECT) == project]
        alloc = Allocations(self._ready().network.nets.alloc.db)
        by_container: dict[str, list[str]] = {}
        for p in alloc.ports():  # one query, not one per container
            by_container.setdefault(p.container_id, []).append(
                f"{p.host_ip or '0.0.0.0'}:{p.host_port}->{p.container_port}/{p.protocol}")
        rows = []
        frozen = await trio.to_thread.run_sync(
            _frozen, self.roots.id, [v.id for v in views if v.status == "running"])
        for v in views:
            if not all and v.status != "running":
                continue
            watch = self.supervisor.get(v.id) if self.supervisor else None
            # As Docker's: a container that does not run publishes nothing, whatever
            # it holds for its next start.
            published = by_container.get(v.id, []) if v.status == "running" else []
            rows.append({
                "id": v.id, "name": v.name,
                "project": v.labels.get(hostnames.LABEL_PROJECT),
                "service": v.labels.get(hostnames.LABEL_SERVICE),
                "index": int(v.labels.get(hostnames.LABEL_INDEX, "0") or 0),
                "state": v.status, "pid": v.pid,
                "paused": v.id in frozen,  # still running, its cgroup frozen (`pause`)
                "oneoff": bool(v.labels.get(hostnames.LABEL_ONEOFF)),
                "health": watch.health if watch is not None else None,
                "restarting": bool(v.status == "exited" and watch is not None
                                   and watch.restarting),
                # Exited for good: its restart policy will not start it again, as its
                # supervisor has seen (not while the exit is on its way to it).
                "ended": bool(v.status == "exited" and (
                    watch is None or not (watch.running or watch.restarting))),
                # The supervisor's when the record has none: a restart may be making
                # the container again between the two records a listing reads.
                "exit_code": v.exit.code if v.exit else (
                    watch.exit_code if watch is not None and v.status == "exited" else None),
                "oom_killed": bool(v.exit and v.exit.oom_killed),
                "started_at": v.started_at.timestamp() if v.started_at else None,
                "finished_at": v.finished_at.timestamp() if v.finished_at else None,
                "created_at": v.created_at.timestamp() if v.created_at else None,
                "image": v.labels.get(hostnames.LABEL_IMAGE) or "",
                "command": list(v.spec.process.args),
                "ports": published,
                "problem": v.problem,  # an unreadable record (runtime statefile)
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
        """Projects with a container or a network here: a `stackd run` of a service
        makes the project's networks without any desired stack, and `down` must still
        find them."""
        ports = self._ready()
        with_containers = {v.labels[hostnames.LABEL_PROJECT] for v in await ports.runtime.list()
                           if hostnames.LABEL_PROJECT in v.labels}
        return sorted(with_containers | {n.project for n in ports.network.nets.list() if n.project})

    async def networks(self) -> list[dict[str, Any]]:
        from stackd.state.allocations import Allocations

        ports = self._ready()
        by_network: dict[str, list[dict[str, Any]]] = {}
        for a in Allocations(ports.network.nets.alloc.db).addresses():  # one query
            by_network.setdefault(a.network_key, []).append(
                {"container_id": a.container_id, "ip": a.ip, "aliases": list(a.aliases)})
        return [{"key": n.key, "project": n.project, "name": n.name, "bridge": n.bridge,
                 "subnet": n.subnet, "gateway": n.gateway, "internal": n.internal,
                 "addresses": by_network.get(n.key, [])}
                for n in ports.network.nets.list()]

    async def volumes(self) -> list[dict[str, Any]]:
        rows = self.db.conn.execute("SELECT name, project, created FROM volumes ORDER BY name")
        return [dict(r) for r in rows]

    async def images(self) -> list[dict[str, Any]]:
        from stackd.images import ImageStore

        # The store's index and manifests are files: read in a worker thread.
        summaries = await trio.to_thread.run_sync(ImageStore(self.roots).list)
        return [s.model_dump(mode="json") for s in summaries]

    async def logs(self, container: str, *, follow: bool, tail: int | None,
                   timestamps: bool, across_restarts: bool = False
                   ) -> AsyncIterator[dict[str, Any]]:
        from stackd.runtime import logfile

        v = await self._resolve(container)
        rt = self._ready().runtime
        async for rec in rt.logs(v.id, follow=follow, tail=tail,
                                 across_restarts=follow and across_restarts):
            yield {"container": v.name, "id": v.id,
                   "service": v.labels.get(hostnames.LABEL_SERVICE),
                   "time": logfile.display_time(rec.time), "stream": rec.stream,
                   "line": rec.line}

    async def exec(self, container: str, request: ExecRequest) -> ExecResult:
        from stackd.runtime.exec import exec_detached, exec_in

        v = await self._resolve(container)
        if request.detach:
            code, why = await trio.to_thread.run_sync(functools.partial(
                exec_detached, v, request.cmd, env=request.env,
                cwd=request.workdir or None, user=request.user or None,
                privileged=request.privileged))
            return ExecResult(exit_code=code, stdout="", stderr=f"{why}\n" if why else "")
        with trio.fail_after(request.timeout or float("inf")):
            r = await exec_in(v, request.cmd, env=request.env, cwd=request.workdir or None,
                              user=request.user or None, privileged=request.privileged)
        return ExecResult(exit_code=r.exit_code, stdout=r.stdout.decode(errors="replace"),
                          stderr=r.stderr.decode(errors="replace"))

    async def stats(self, container: str) -> dict[str, Any]:
        v = await self._resolve(container)
        s = await self._ready().runtime.stats(v.id)
        # Docker's: a container with no limit of its own is limited by the host's memory.
        return {"container": v.name, "id": v.id, "memory_bytes": s.memory_bytes,
                "memory_limit": s.memory_limit or hostinfo.memory_total(),
                "cpu_ns": s.cpu_ns, "pids": s.pids, "net_rx": s.net_rx, "net_tx": s.net_tx,
                "block_read": s.block_read, "block_write": s.block_write}

    async def top(self, container: str) -> dict[str, Any]:
        from stackd.runtime.processes import TITLES

        v = await self._resolve(container)
        rows = await self._ready().runtime.top(v.id)
        return {"container": v.name, "id": v.id, "titles": list(TITLES), "processes": rows}

    def build_network(self, container_id: str) -> AbstractAsyncContextManager[Any]:
        network = self._ready().images.run_network
        if network is None:
            raise UnavailableError("the daemon is still starting", hint="retry in a moment")
        return network.attached(container_id)  # type: ignore[no-any-return]

    def run(self, request: RunRequest) -> AsyncIterator[dict[str, Any]]:
        from stackd.daemon.single import SingleRunner

        ports = self._ready()
        return SingleRunner(ports, ports.images, ports.volumes,
                            self.default_network, self.singles).run(request)

    async def signal(self, container: str, action: str, signal: str | None,
                     timeout: int | None = None) -> None:
        from stackd.reconciler import lifecycle

        v = await self._resolve(container)
        ports = self._ready()
        if action == "kill":
            if v.status != "running":
                from stackd.errors import ConflictError

                raise ConflictError(f"container {v.name} is not running")
            sent = signal or "SIGKILL"
            spec = v.spec
            if lifecycle.kill_stops(sent, spec.stop_signal if spec is not None else "SIGTERM"):
                # Docker's: a kill is a user's stop, not a crash to restart from.
                if self.supervisor is not None:
                    await self.supervisor.release(v.id)
                if self.singles is not None:
                    self.singles.release(v.id)
                ports.state.hold(v.labels.get(hostnames.LABEL_PROJECT, ""), v.id)
            await ports.runtime.kill(v.id, sent)
            return
        if action in ("stop", "restart", "remove") and self.supervisor is not None:
            # A stop asked for is not a crash: the restart policy must not undo it.
            await self.supervisor.release(v.id)
        if action in ("stop", "restart", "remove") and self.singles is not None:
            self.singles.release(v.id)
        if action in ("stop", "restart"):
            await lifecycle.stop(ports, v.id, timeout)
        if action in ("start", "restart"):
            await lifecycle.start_existing(ports, v.id)
            from stackd.daemon.singlewatch import LABEL_RESTART

            if self.singles is not None and LABEL_RESTART in v.labels:
                self.singles.watch(v.id, v.name, v.labels[LABEL_RESTART])
        if action == "remove":
            # A `run` container's default network lingers (single.DefaultNetwork).
            await lifecycle.tear_down(ports, v.id)


class Looked(NamedTuple):
    """A running supervised container as one pass of the watcher found it."""

    container_id: str
    project: str
    netns: bool  # it has a network namespace of its own
    veths: list[str]
    started_at: float  # its watch's, to tell the same run from a restart after the look


def to_look_at(nets: Any, watches: Sequence[Any]) -> list[Looked]:
    """The supervised containers `disrupted` looks at: the trio thread's half of a pass
    (watches and address records), the stats are `disrupted`'s in a worker thread."""
    running = [w for w in watches if w.running and not w.released and not w.held
               and not w.disrupted]
    if not running:
        return []
    veths: dict[str, list[str]] = {}
    for _, cid, host_ifname in nets.alloc.holders():
        veths.setdefault(cid, []).append(host_ifname)
    return [Looked(w.container_id, w.desired.spec.labels.get(hostnames.LABEL_PROJECT, ""),
                   bool(w.desired.attachments), veths.get(w.container_id, []), w.started_at)
            for w in running]


def disrupted(roots: Roots, hierarchies: Sequence[Any], ns_dir: str, looked: Sequence[Looked]
              ) -> list[tuple[Looked, str]]:
    """(container, what is missing) for each of these whose cgroup directory,
    bind-mounted netns or host-side veth is gone. Blocking: a worker thread's."""
    if not looked:
        return []
    try:
        ns_dev = os.stat(ns_dir).st_dev
    except OSError:
        ns_dev = None
    # Plain strings, and a directory listing where one answers for every container:
    # this runs 4 times a second over every container, and a stat per container per
    # thing looked at was most of a busy daemon's trio thread at 500 (a no-op `up`
    # waited behind it). The netns needs its stat (st_dev tells a mount from the file
    # under it), so the whole look is a worker thread's.
    cgroup_dirs = [f"{h}/{hostnames.cgroup_relpath(roots.id, '')}" for h in hierarchies]
    cgroups = [_subdirs(d) for d in cgroup_dirs]
    devices = _device_names() if any(c.veths for c in looked) else set()
    ns_prefix = f"{ns_dir}/"
    out = []
    for c in looked:
        cid = c.container_id
        gone = [d + cid for d, there in zip(cgroup_dirs, cgroups, strict=True)
                if cid not in there]
        if gone:
            out.append((c, f"cgroup {gone[0]} was gone"))
            continue
        if c.netns:
            path = ns_prefix + cid
            try:
                # Bind-mounted, the file is on nsfs; unmounted, it is a plain file (or
                # nothing) on the netns directory's own filesystem.
                mounted = os.stat(path).st_dev != ns_dev
            except OSError:
                mounted = False
            if not mounted:
                out.append((c, f"network namespace {path} was gone"))
                continue
        missing = [v for v in c.veths if v not in devices]
        if missing:
            out.append((c, f"veth {missing[0]} was gone"))
    return out


_SYSFS_IS_OURS: list[bool] = []


def _device_exists(name: str) -> bool:
    """Whether this network namespace has the device. /sys/class/net shows the
    namespace /sys was mounted in, which is not ours in a daemon started with `nsenter
    --net` (each node of the cluster tests): then an ioctl asks (4× a stat's cost)."""
    import socket

    if not _SYSFS_IS_OURS:
        _SYSFS_IS_OURS.append(any(_sysfs_lists_our_devices() for _ in range(5)))
    if _SYSFS_IS_OURS[0]:
        return _exists(f"/sys/class/net/{name}")
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def _sysfs_lists_our_devices() -> bool:
    """Whether /sys/class/net lists exactly this namespace's devices right now (asked a
    few times: devices come and go between the two looks on a busy host)."""
    import socket

    try:
        return {n for _, n in socket.if_nameindex()} == set(os.listdir("/sys/class/net"))
    except OSError:
        return False


def _subdirs(path: str) -> set[str]:
    """Names of the directories in `path` (none if it is gone): one readdir, no stats."""
    try:
        with os.scandir(path) as it:
            return {e.name for e in it if e.is_dir(follow_symlinks=False)}
    except OSError:
        return set()


def _exists(path: str) -> bool:
    try:
        os.stat(path)
    except OSError:
        return False
    return True


def _device_names() -> set[str]:
    """This network namespace's devices, in one netlink dump: /sys/class/net may show
    another namespace's (a daemon started with `nsenter --net`, as the cluster tests'
    nodes are)."""
    import socket

    try:
        return {name for _, name in socket.if_nameindex()}
    except OSError:
        return set()


@dataclass(frozen=True)
class _Loaded:
    """A stack to reconcile: loaded from its files now (`captured` is what a revision
    of it records), or restored from an applied revision (`pins` are its images).
    `files`: its configs'/secrets' contents, read once (never again from disk)."""

    stack: Any
    environ: dict[str, str]
    captured: Any = None
    files: Mapping[str, bytes] | None = None
    pins: dict[str, str] | None = None
    pin: Callable[[str, str], str] | None = None
    refused: tuple[str, ...] = ()

    @property
    def project(self) -> str:
        return str(self.stack.name)

    @property
    def services(self) -> Collection[str]:
        return tuple(self.stack.services)

    @property
    def disabled(self) -> Collection[str]:
        return tuple(sorted(self.stack.disabled))

    def bind(self, ports: Any) -> Any:
        """`ports` with the image store seen through this revision's pins."""
        if self.pins is None or self.pin is None:
            return ports
        from stackd.daemon.pinned_images import PinnedImages

        return dataclasses.replace(ports, images=PinnedImages(ports.images, self.pins,
                                                              self.pin))


def _raise_failures(result: Any, what: str) -> None:
    """The first failed step's own error, its class kept (a SpecError found at create
    time is as terminal as one found at load), its message naming the step."""
    if result.ok:
        return
    failed = [o for o in result.failures if o.exception is not None]
    first = failed[0] if failed else result.failures[0]
    more = len(result.failures) - 1
    note = f" (and {more} more step(s) failed)" if more else ""
    if first.exception is None:
        from stackd.errors import ConflictError

        raise ConflictError(f"{what}: {first.line}: {first.error}{note}")
    err = first.exception
    err.message = f"{what}: {first.line}: {err.message}{note}"
    err.args = (err.message,)
    raise err


def _progress_emitter(project: str, emit: Emit) -> Any:
    """Apply progress as `progress` events, plus the facts among them: a container
    started (`start`) or removed (`remove`), read from the plan step itself."""
    from stackd.reconciler.plan import Create, Recreate, Remove, Start

    def on_progress(p: Any) -> None:
        a = p.action
        verb = a.verb if a is not None else ""
        slot = a.resource if a is not None and hasattr(a, "service") else ""
        service = getattr(a, "service", None) if a is not None else None
        emit(Event(type="progress", project=project, container=p.resource, message=p.message,
                   service=service, verb=verb, slot=slot, cause=a.cause if a else "",
                   state=p.state, elapsed=round(p.elapsed, 2)))
        if p.state != "done" or not slot:
            return
        kind = ("start" if isinstance(a, (Create, Recreate, Start)) else
                "remove" if isinstance(a, Remove) else None)
        if kind is not None:
            emit(Event(type=kind, project=project, service=service, slot=slot, verb=verb,
                       cause=a.cause, container=f"{project}-{slot}", message=p.message))
    return on_progress


def _done_emitter(project: str, emit: Emit) -> Any:
    """What a user's kill or rm did to each container, as `progress` lines."""
    def on_done(d: Any) -> None:
        c = d.container
        state = "failed" if d.error is not None else "done"
        message = f"{c.slot}: {d.verb}" + (f" — {d.error}" if d.error is not None else "")
        emit(Event(type="progress", project=project, container=c.slot, service=c.service,
                   slot=c.slot, verb=d.verb, state=state, elapsed=0.0, message=message))
    return on_done


def _start_waves(stack: Any) -> list[list[str]]:
    from stackd.scheduler import build_graph, start_waves
    from stackd.scheduler.from_stack import from_stack

    return start_waves(build_graph(from_stack(stack)))


def make_world(roots: Roots, db: StateDB) -> HostWorld:
    return HostWorld(roots, db)
