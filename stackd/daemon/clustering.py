"""The daemon's cluster membership: joins when asked (`stackd node join`, through the
API) and again at every start once joined, then runs the member (lease, election,
placement when leading) in a nursery of its own. See docs/cluster.md.

A daemon that is no member pays nothing for it at start: the member's modules (the
scheduler with networkx, the etcd client) are imported, in a worker thread, only
when it joins."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from stackd.cluster import config as cluster_config
from stackd.errors import AlreadyExistsError, ConflictError, StackdError, UnavailableError
from stackd.roots import Roots

if TYPE_CHECKING:
    from stackd.cluster.overlay import OverlayAgent
    from stackd.cluster.records import NodeRecord
    from stackd.cluster.store import Store
    from stackd.daemon.engine import Engine

log = logging.getLogger(__name__)

class ClusterStackVerbError(ConflictError):
    """A verb that acts on one node's containers, asked of a stack the cluster runs."""


# Seconds between joins when the store cannot be reached at start (or this node's
# previous lease has not expired yet, after a quick restart).
REJOIN = 1.0
# How long `up` on a member waits for the leader to place its stack or say why not,
# and after how long a reason already recorded is taken as the leader's answer.
VERDICT = 2.0
STALE = 0.5


@dataclass(frozen=True, slots=True)
class _Published:
    """A stack as `up` published it here, for `_verdict` to wait on."""

    stack: str  # its JSON
    slots: frozenset[str]  # the slot names to see assigned, global services' aside
    per_node: frozenset[str]  # its global services: as many slots as nodes, one at least
    before: int  # the revision of the record it replaced

    def placed(self, assigned: set[str]) -> bool:
        services = {n.rpartition("-")[0] for n in assigned}
        return ({n for n in assigned if n.rpartition("-")[0] not in self.per_node}
                == self.slots and self.per_node <= services)


class Membership:
    def __init__(self, roots: Roots) -> None:
        self.roots = roots
        self.config: cluster_config.ClusterConfig | None = None
        self.lease = 0
        # This node's assignments as last seen: project → slot names. What its
        # reconciler converges (slots_of), once the agent has seen them.
        self.assigned: dict[str, list[str]] = {}
        self._nursery: trio.Nursery | None = None
        self._engine: Engine | None = None
        self._world: Any = None
        self._dns: Any = None  # statusdns.ClusterDns: what DNS holds outlives a lease
        self.slots: list[dict[str, Any]] = []  # every node's slot summaries, as last seen
        self._store: Store | None = None
        self._wake = trio.Event()
        self._followed: set[str] = set()  # projects converged at the last change
        # project → what was last published here: what `_verdict` waits on.
        self._published: dict[str, _Published] = {}
        # Whether the agent has read this node's assignments since the daemon started:
        # until then a member knows nothing of what it should run, and touches nothing.
        self._seen = False
        # How to serve the API on a TCP address with TLS (server.py, once its app is
        # built), and the addresses served so (`--listen`).
        self._serve_api: Callable[..., Awaitable[Any]] | None = None
        self._api_ready = trio.Event()
        self.listening: list[str] = []
        self.overlay: OverlayAgent | None = None  # this node's overlay networks

    def serve_api_with(self, serve: Callable[..., Awaitable[Any]]) -> None:
        """`serve(listen, task_status=)` serves the API on `listen` with mutual TLS."""
        self._serve_api = serve
        self._api_ready.set()

    def attach(self, engine: Engine, world: Any) -> None:
        """Feed the engine: `up` publishes to the cluster, and each reconcile runs only
        this node's slots (the real world's `slots_of`; a simulated one has none)."""
        self._engine = engine
        self._world = world
        engine.publish = self._publish
        engine.verdict = self._verdict
        engine.unpublish = self._unpublish
        engine.refuse_verb = self._refuse_verb
        engine.placement_notes = self._placement_notes
        engine.cluster_rows = self.cluster_rows
        engine.node_name = lambda: self.config.name if self.config is not None else ""
        if hasattr(world, "slots_of"):
            world.slots_of = self.slots_of

    def cluster_rows(self, project: str | None, all: bool) -> list[dict[str, Any]]:
        """`ps --cluster`: the slots other nodes run, as `ps` rows, from their status
        summaries as last seen (a node that is gone took its summaries with its lease)."""
        here = self.config.name if self.config is not None else ""
        rows = []
        for s in self.slots:
            if s["node"] == here or (project is not None and s["project"] != project):
                continue
            if not all and s["state"] != "running":
                continue
            rows.append({
                "id": s["container"], "name": s["container"], "project": s["project"],
                "service": s["service"], "index": s["index"], "state": s["state"],
                "health": "healthy" if s["ready"] else "not ready", "node": s["node"],
                "ports": [f"{p[4] or '0.0.0.0'}:{p[0]}->{p[2]}/{p[1]}" for p in s["ports"]],
                "remote": True})
        return sorted(rows, key=lambda r: (r["project"], r["service"], r["index"]))

    def slots_of(self, project: str) -> Mapping[str, frozenset[int]] | None:
        """service → the slot indices this node holds; None when no member (one host:
        every slot). A member runs only what the cluster assigned it; one that has not
        read its assignments yet (etcd unreachable since start) refuses to reconcile,
        so its containers keep running as they are (the partition choice)."""
        if self.config is None:
            return None
        if not self._seen:
            raise UnavailableError(
                f"node {self.config.name!r} has not read its slots from the cluster yet",
                hint="its containers are left as they are; it converges once etcd answers")
        out: dict[str, set[int]] = {}
        for slot in self.assigned.get(project, ()):
            service, _, index = slot.rpartition("-")
            if index.isdigit():
                out.setdefault(service, set()).add(int(index))
        return {s: frozenset(i) for s, i in out.items()}

    async def _publish(self, project: str, stack_json: str) -> None:
        """`up` on a member: the stack goes to `stacks/<project>` (for the leader to
        place, for every agent to run), in a transaction on the record as read."""
        if self.config is None:
            return
        from stackd.cluster import keys
        from stackd.cluster.records import StackRecord
        from stackd.cluster.store import Compare, Delete, Put
        from stackd.daemon.revision import stack_from_json
        from stackd.scheduler.from_stack import from_stack, node_local_volumes

        store = self._connected()
        stack = await trio.to_thread.run_sync(stack_from_json, stack_json)
        record = StackRecord.of(project, from_stack(stack), stack=stack_json,
                                volumes=node_local_volumes(stack))
        key = keys.stack(project)
        while True:  # another `up` of the same project racing: the last one wins
            kv = await store.get(key)
            # A `down -v`'s note goes with it: the stack is back, its volumes are not
            # to be removed by a node that returns later.
            result = await store.txn(
                [Compare(key, "MOD", "EQUAL", kv.mod_revision) if kv
                 else Compare(key, "CREATE", "EQUAL", 0)],
                [Put(key, record.to_json()), Delete(keys.removed(project))])
            if result.succeeded:
                per_node = frozenset(s.name for s in record.services if s.mode == "global")
                self._published[project] = _Published(
                    stack_json,
                    frozenset(str(s) for s in record.slots() if s.service not in per_node),
                    per_node, kv.mod_revision if kv else 0)
                return

    async def _verdict(self, project: str, stack_json: str) -> str:
        """After `up` published `stack_json`: wait (at most VERDICT) until every slot is
        assigned, or the leader says why it cannot place the stack — a reason written
        since the publish, or one still there after STALE (the leader rewrites a
        reason only when it changes). "" when placed, or when no answer came."""
        published = self._published.pop(project, None)
        if self.config is None or published is None or published.stack != stack_json:
            return ""  # before the imports: a lone daemon's `up` never loads the cluster
        from stackd.cluster import keys
        from stackd.cluster.records import StoreRecordError, Unplaced
        from stackd.cluster.store import Get

        start = trio.current_time()
        with trio.move_on_after(VERDICT):
            while True:
                try:
                    result = await self._connected().txn([], [
                        Get(keys.unplaced(project)),
                        Get(keys.assignments(project), prefix=True)])
                except StackdError:
                    return ""  # published; only the verdict is unknown
                why, assigned = result.reads
                names = {keys.tail(kv.key, keys.assignments(project)) for kv in assigned}
                if why and (why[0].mod_revision > published.before
                            or trio.current_time() - start > STALE):
                    try:
                        return Unplaced.from_json(why[0].key, why[0].value).reason
                    except StoreRecordError as e:
                        return e.message
                if not why and published.placed(names):
                    return ""
                await trio.sleep(0.1)
        return ""

    def _connected(self) -> Store:
        from stackd.cluster.store import StoreUnavailableError

        assert self.config is not None
        if self._store is None:
            raise StoreUnavailableError(
                f"node {self.config.name!r} is not connected to its cluster's etcd yet",
                hint="`stackd node inspect` shows the node; try again when it is up")
        return self._store

    async def _unpublish(self, project: str, volumes: bool) -> bool:
        """`down` on a member: the stack's record, assignments and unplaced note go in
        one transaction (every node's agent then removes its slots and the stack);
        with -v its volumes' node records too. Whether the cluster had the stack."""
        if self.config is None:
            return False
        from stackd.cluster import keys
        from stackd.cluster.store import Delete, Get, Put

        ops: list[Get | Delete | Put] = [
            Get(keys.stack(project)), Delete(keys.stack(project)),
            Delete(keys.assignments(project), prefix=True), Delete(keys.unplaced(project))]
        if volumes:  # each node removes its own copy: the note tells them
            ops += [Delete(keys.volumes(project), prefix=True),
                    Put(keys.removed(project), b'{"volumes":true}')]
        result = await self._connected().txn([], ops)
        return bool(result.reads and result.reads[0])

    def _refuse_verb(self, verb: str, project: str) -> None:
        """Lifecycle verbs act on one node's containers; a member's stacks run on the
        cluster, where the next reconcile would undo them. Refused, saying what does
        the same cluster-wide (docs/cluster.md)."""
        if self.config is None:
            return
        raise ClusterStackVerbError(
            f"`stackd {verb}` is not available for {project!r}: this daemon is node "
            f"{self.config.name!r} of a cluster, and its stacks run on the cluster's nodes",
            hint="cluster-wide: `stackd scale SERVICE=0` (and back) stops and starts a "
                 "service, `stackd down` removes the stack, `stackd up` applies it again")

    async def _placement_notes(self, project: str, stack_json: str) -> list[str]:
        """What `plan` says on a member: each service pinned to its volumes' node (or
        to be pinned by the first placement), and why the stack is not placed."""
        if self.config is None:
            return []
        from stackd.cluster import assign, keys
        from stackd.cluster.records import StackRecord, Unplaced, VolumeRecord
        from stackd.cluster.store import Get
        from stackd.daemon.revision import stack_from_json
        from stackd.scheduler.from_stack import from_stack, node_local_volumes

        stack = await trio.to_thread.run_sync(stack_from_json, stack_json)
        record = StackRecord.of(project, from_stack(stack),
                                volumes=node_local_volumes(stack))
        try:
            result = await self._connected().txn([], [Get(keys.volumes(project), prefix=True),
                                                      Get(keys.unplaced(project))])
        except StackdError as e:  # the local plan still stands; say what is unknown
            return [f"where its services are pinned is unknown: {e.message}"]
        vols, why = result.reads
        recorded = {keys.tail(kv.key, keys.volumes(project)):
                    VolumeRecord.from_json(kv.key, kv.value).node for kv in vols}
        pins = assign.pins_of(record, recorded)
        notes = [f"{svc} pinned to node {node} by volume {vol}" for svc, node, vol in pins]
        pinned = {svc for svc, _, _ in pins}
        notes += [f"{s.name} will be pinned to the node its first placement chooses, by "
                  f"volume {s.volumes[0]}" for s in record.services
                  if s.volumes and s.name not in pinned]
        if why:
            notes.append("not placed: " + Unplaced.from_json(why[0].key, why[0].value).reason)
        return notes

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._converge_loop)
            config = await trio.to_thread.run_sync(cluster_config.load, self.roots.state)
            if config is not None:
                self.config = config
                from stackd.cluster import pki

                # A restarted member serves at once with the identity it has: no need
                # to wait for etcd (_rejoin checks it against the CA later).
                identity = pki.node_identity(self.roots.state)
                has_identity: bool = await trio.to_thread.run_sync(identity.exists)
                if config.listen and has_identity:
                    nursery.start_soon(self._listen_logged, config.listen)
                nursery.start_soon(self._rejoin, config)
            task_status.started()
            await trio.sleep_forever()

    def _record(self, config: cluster_config.ClusterConfig) -> NodeRecord:
        from stackd.cluster.records import NodeRecord
        from stackd.hostinfo import local_node

        host = local_node(config.labels)
        return NodeRecord(config.name, host.cpus, host.memory, host.pids, host.labels,
                          host.arch, address=config.address)

    def _lease_file(self) -> str:
        # In the run dir: a lease is worth keeping across a daemon restart, not a reboot.
        return str(self.roots.run / "cluster.lease")

    def _last_lease(self) -> int:
        try:
            with open(self._lease_file()) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    async def _member(self, config: cluster_config.ClusterConfig, *,
                      task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.to_thread.run_sync(importlib.import_module, "stackd.cluster.member")
        from stackd.cluster.member import serve
        from stackd.cluster.store import Store

        async with Store(config.endpoints, config.prefix) as store:
            reuse = await trio.to_thread.run_sync(self._last_lease)
            self._store = store
            overlay = await self._overlay_agent(config)
            # Beside serve, not around it: a failed first join is raised as itself (a
            # nursery here would wrap it in an ExceptionGroup), and ends the agent too.
            assert self._nursery is not None
            agent = trio.CancelScope()
            self._nursery.start_soon(self._run_overlay, overlay, store, agent)
            try:
                await serve(store, self._record(config), config.ttl, reuse=reuse,
                            on_assigned=self._assigned, also=[partial(self._status, config.name)],
                            task_status=task_status)
            finally:
                agent.cancel()
                self._store = None

    async def _status(self, name: str, store: Store, lease: int) -> None:
        """Status summaries out, every node's into DNS and the mesh (clusterstatus)."""
        from stackd.daemon import clusterstatus

        def seen(statuses: list[Any]) -> None:
            self.slots = [json.loads(s.to_json()) for s in statuses]

        await clusterstatus.run(store, lease, name, self._world, self._cluster_dns,
                                lambda: self.assigned, seen)

    def _cluster_dns(self) -> Any:
        """The records source of this daemon's resolver (made once it has one; what
        it put in DNS outlives a lease, so it is kept across rejoins)."""
        from stackd.cluster.statusdns import ClusterDns

        resolver = getattr(self._world, "resolver", None)
        if resolver is not None and (self._dns is None or self._dns.sink is not resolver):
            self._dns = ClusterDns(resolver)
        return self._dns
    @staticmethod
    async def _run_overlay(overlay: OverlayAgent, store: Store, scope: trio.CancelScope
                           ) -> None:
        with scope:
            await overlay.run(store)

    async def _overlay_agent(self, config: cluster_config.ClusterConfig) -> OverlayAgent:
        """This node's part in overlay networks (cluster/overlay.py), handed to its
        netbridge as the provider of networks of driver "overlay"."""
        from stackd.cluster.overlay import OverlayAgent
        from stackd.netbridge.links import routed_subnets

        if self.overlay is None:
            vtep = config.address or await trio.to_thread.run_sync(
                _source_address, config.endpoints[0])
            self.overlay = OverlayAgent(config.name, vtep, config.vxlan_port,
                                        self._local_networks, routed_subnets)
        self._local_networks()
        return self.overlay

    def _local_networks(self) -> Any:
        """This node's netbridge, told its overlay provider; None before it exists."""
        ports = getattr(self._world, "ports", None)
        nets = getattr(getattr(ports, "network", None), "nets", None)
        if nets is not None and hasattr(nets, "overlay"):
            nets.overlay = self.overlay
        return nets

    def _assigned(self, desired: dict[str, frozenset[str]]) -> None:
        self.assigned = {p: sorted(slots) for p, slots in desired.items()}
        self._seen = True
        log.info("cluster: assigned %s", self.assigned)
        self._wake.set()

    async def _converge_loop(self) -> None:
        """After each change of this node's assignments: every stack it holds slots of
        is recorded here as the cluster has it, and every stack it holds or held is
        reconciled (slots_of: the ones it no longer holds are removed)."""
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            try:
                if self._store is None:  # between a lost lease and the rejoin
                    raise UnavailableError("not connected to etcd")
                await self._converge(self._store)
            except StackdError as e:
                log.warning("cluster: cannot converge this node's slots yet: %s", e.message)
                await trio.sleep(REJOIN)
                self._wake.set()

    async def _converge(self, store: Store) -> None:
        from stackd.cluster import keys
        from stackd.cluster.records import StackRecord

        if self._engine is None:
            return
        self._local_networks()  # made after the member started, at daemon start
        held = set(self.assigned)
        # First what needs no store: each stack reconciled with the slots held now (one
        # no longer held is removed even while etcd is slow to answer), ...
        for project in sorted(held | self._followed):
            self._engine.controller.enqueue(project)
        self._followed = held
        # ... then each held stack recorded here as the cluster has it (adopt enqueues),
        # except one an `up` here is recording right now (a second revision otherwise).
        busy = False
        for project in sorted(held):
            if project in self._engine.publishing:
                busy = True
                continue
            kv = await store.get(keys.stack(project))
            if kv is None:
                continue
            record = StackRecord.from_json(kv.key, kv.value)
            if project in self._engine.publishing:  # began while the store answered
                busy = True
                continue
            if record.stack and self._engine.stack_of(project) != record.stack:
                await self._engine.adopt(project, record.stack)
        # A stack kept here that the cluster no longer has (`down` on some node, maybe
        # while this one was away) is removed here too: networks and all, volumes kept.
        for project in self._engine.store.projects():
            desired = self._engine.store.get(project)
            if project in held or desired is None or desired.phase == "removing":
                continue
            if await store.get(keys.stack(project)) is None:
                from stackd.daemon.models import RemoveOptions

                volumes = await store.get(keys.removed(project)) is not None
                log.info("cluster: %s is no longer a cluster stack: removing it here%s",
                         project, " with its volumes" if volumes else "")
                await self._engine.submit_removal(project, RemoveOptions(volumes=volumes),
                                                  local=True)
        if busy:  # look again once that `up` has recorded its revision
            await trio.sleep(0.2)
            self._wake.set()

    async def _rejoin(self, config: cluster_config.ClusterConfig) -> None:
        while True:
            try:
                assert self._nursery is not None
                self.lease = await self._nursery.start(self._member, config)
                await trio.to_thread.run_sync(self._save_lease)
                break
            except StackdError as e:
                log.warning("cluster: cannot rejoin as %s yet: %s", config.name, e.message)
                await trio.sleep(REJOIN)
        while True:
            try:
                await self._secure(config)
                break
            except StackdError as e:
                log.warning("cluster: cannot check %s's certificate yet: %s", config.name,
                            e.message)
                await trio.sleep(REJOIN)
        if config.listen and not self.listening:
            await self._listen_logged(config.listen)

    async def _secure(self, config: cluster_config.ClusterConfig) -> None:
        """This node's TLS identity (state root's tls/: its own key, made here and never
        sent; a certificate from the cluster's CA, which the first node makes)."""
        from stackd.cluster import pki

        if self._store is None:
            raise UnavailableError("not connected to etcd")
        ca = await pki.authority(self._store)
        if await trio.to_thread.run_sync(pki.provision, pki.node_identity(self.roots.state),
                                         ca, config.name):
            log.info("cluster: %s has a certificate from the cluster CA", config.name)

    async def _listen(self, listen: str, *,
                      task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
                      ) -> None:
        await self._api_ready.wait()
        assert self._serve_api is not None
        try:
            await self._serve_api(listen, task_status=task_status)
        except OSError as e:
            raise UnavailableError(f"cannot listen on {listen}: {e.strerror or e}",
                                   hint="choose another --listen address") from None

    async def _listen_logged(self, listen: str) -> None:
        assert self._nursery is not None
        try:
            self.listening = await self._nursery.start(self._listen, listen)
        except StackdError as e:  # a restart: the daemon serves its socket anyway
            log.warning("cluster: %s", e.message)

    async def join(self, config: cluster_config.ClusterConfig) -> dict[str, Any]:
        """Join now; the node's record. Fails (typed) if etcd cannot be reached or a
        node of this name is up, and then nothing is saved."""
        if self.config is not None:
            raise AlreadyExistsError(
                f"this daemon is already node {self.config.name!r} of a cluster",
                hint=f"remove {self.roots.state / cluster_config.FILE} and restart the "
                     "daemon to leave it")
        assert self._nursery is not None
        if config.listen:
            _check_bind(config.listen)
        self.lease = await self._nursery.start(self._member, config)
        await self._secure(config)
        if config.listen:
            self.listening = await self._nursery.start(self._listen, config.listen)
        self.config = config
        await trio.to_thread.run_sync(cluster_config.save, self.roots.state, config)
        await trio.to_thread.run_sync(self._save_lease)
        return {"name": config.name, "lease": self.lease,
                "record": self._record(config).to_json().decode()}

    def _save_lease(self) -> None:
        from stackd.filemodes import write_private

        write_private(self.roots.run / "cluster.lease", f"{self.lease}\n".encode())

    async def status(self) -> dict[str, Any]:
        """GET /v1/cluster: this node's membership and assignments, and the stacks the
        leader cannot place and why (read from etcd; null when it does not answer)."""
        return {"config": self.config.to_json() if self.config else None, "lease": self.lease,
                "assigned": self.assigned, "listening": self.listening, "slots": self.slots,
                "unplaced": await self._unplaced()}

    async def _unplaced(self) -> dict[str, str] | None:
        if self.config is None:
            return {}
        if self._store is None:
            return None
        from stackd.cluster import keys
        from stackd.cluster.records import StoreRecordError, Unplaced

        out = {}
        try:
            with trio.fail_after(2):
                kvs, _ = await self._store.range(keys.UNPLACED)
        except (StackdError, trio.TooSlowError):
            return None
        for kv in kvs:
            try:
                why = Unplaced.from_json(kv.key, kv.value).reason
            except StoreRecordError as e:
                why = e.message
            out[keys.tail(kv.key, keys.UNPLACED)] = why
        return out


def _check_bind(listen: str) -> None:
    """Refuse a `--listen` address that cannot be bound before joining, not after."""
    import socket

    host, port = cluster_config.listen_address(listen)
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as e:
        raise UnavailableError(f"cannot listen on {listen}: {e.strerror or e}",
                               hint="choose another --listen address") from None


def _source_address(url: str) -> str:
    """The address this host reaches `url`'s host from: its underlay address when
    `node join` was given none (a UDP connect sends nothing; the kernel picks the route)."""
    import socket
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))
            return str(s.getsockname()[0])
    except OSError:
        return ""
