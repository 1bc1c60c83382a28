"""The daemon's cluster membership: joins when asked (`stackd node join`, through the
API) and again at every start once joined, then runs the member (lease, election,
placement when leading) in a nursery of its own. See docs/cluster.md.

A daemon that is no member pays nothing for it at start: the member's modules (the
scheduler with networkx, the etcd client) are imported, in a worker thread, only
when it joins."""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

import trio

from stackd.cluster import config as cluster_config
from stackd.errors import AlreadyExistsError, StackdError
from stackd.roots import Roots

if TYPE_CHECKING:
    from stackd.cluster.records import NodeRecord

log = logging.getLogger(__name__)

# Seconds between joins when the store cannot be reached at start (or this node's
# previous lease has not expired yet, after a quick restart).
REJOIN = 1.0


class Membership:
    def __init__(self, roots: Roots) -> None:
        self.roots = roots
        self.config: cluster_config.ClusterConfig | None = None
        self.lease = 0
        # This node's assignments as last seen: project → slot names. What its
        # reconciler is to converge (not wired yet: docs/cluster.md).
        self.assigned: dict[str, list[str]] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            config = await trio.to_thread.run_sync(cluster_config.load, self.roots.state)
            if config is not None:
                self.config = config
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
            await serve(store, self._record(config), config.ttl, reuse=reuse,
                        on_assigned=self._assigned, task_status=task_status)

    def _assigned(self, desired: dict[str, frozenset[str]]) -> None:
        self.assigned = {p: sorted(slots) for p, slots in desired.items()}
        log.info("cluster: assigned %s", self.assigned)

    async def _rejoin(self, config: cluster_config.ClusterConfig) -> None:
        while True:
            try:
                assert self._nursery is not None
                self.lease = await self._nursery.start(self._member, config)
                await trio.to_thread.run_sync(self._save_lease)
                return
            except StackdError as e:
                log.warning("cluster: cannot rejoin as %s yet: %s", config.name, e.message)
                await trio.sleep(REJOIN)

    async def join(self, config: cluster_config.ClusterConfig) -> dict[str, Any]:
        """Join now; the node's record. Fails (typed) if etcd cannot be reached or a
        node of this name is up, and then nothing is saved."""
        if self.config is not None:
            raise AlreadyExistsError(
                f"this daemon is already node {self.config.name!r} of a cluster",
                hint=f"remove {self.roots.state / cluster_config.FILE} and restart the "
                     "daemon to leave it")
        assert self._nursery is not None
        self.lease = await self._nursery.start(self._member, config)
        self.config = config
        await trio.to_thread.run_sync(cluster_config.save, self.roots.state, config)
        await trio.to_thread.run_sync(self._save_lease)
        return {"name": config.name, "lease": self.lease,
                "record": self._record(config).to_json().decode()}

    def _save_lease(self) -> None:
        from stackd.filemodes import write_private

        write_private(self.roots.run / "cluster.lease", f"{self.lease}\n".encode())

    def status(self) -> dict[str, Any]:
        return {"config": self.config.to_json() if self.config else None, "lease": self.lease,
                "assigned": self.assigned}
