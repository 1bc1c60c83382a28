"""What the CLI does on this host itself rather than through the daemon's API.

Three verbs must work when no daemon runs, or need the CLI's own terminal: `network
ls/inspect/rm/prune` (networks are host objects; `rm`/`prune` clean up after a daemon
that is gone), `exec -t` (the process is attached to the CLI's tty) and `image prune`
(which layers containers still use). They live here, in the package that wires the
real runtime, netbridge and state store, so that the CLI imports none of those.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

import trio

from stackd.roots import Roots


def in_use_layers(roots: Roots) -> list[str]:
    """Snapshot dirs containers of this root still use (their lower dirs must stay)."""
    from stackd.runtime import Runtime

    async def collect() -> list[str]:
        return [layer for st in await Runtime(roots).list() for layer in st.spec.layers]

    return trio.run(collect)


def exec_tty(roots: Roots, container_id: str, cmd: Sequence[str], *, env: Sequence[str],
             cwd: str | None, user: str | None) -> int:
    """Run `cmd` in the container on this process's terminal; its exit code."""
    from stackd.runtime.exec import exec_interactive
    from stackd.runtime.runtime import Runtime

    state = trio.run(Runtime(roots).inspect, container_id)
    return exec_interactive(state, cmd, env=env, cwd=cwd, user=user, tty=True)


class NetworkAdmin:
    """The root's networks, read from and removed through the state store directly.
    Both this and the daemon take the same host-wide lock for firewall changes."""

    def __init__(self, roots: Roots) -> None:
        import stackd.state.allocations  # noqa: F401  (registers the tables)
        from stackd.daemon.desired_store import db_path
        from stackd.state.allocations import Allocations
        from stackd.state.db import StateDB

        self.roots = roots.ensure()
        self.db = StateDB.open(db_path(self.roots.state))
        self.alloc = Allocations(self.db)
        self._nets: Any = None

    def __enter__(self) -> NetworkAdmin:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None
                 ) -> None:
        self.db.close()

    def network_keys(self) -> list[str]:
        return [n.key for n in self.alloc.networks()]

    def describe(self, key: str) -> dict[str, Any]:
        from stackd.errors import NotFoundError

        alloc = self.alloc
        row = alloc.network(key)
        if row is None:
            raise NotFoundError(f"network {key} does not exist",
                                hint="see `stackd network ls` for the networks there are")
        containers = alloc.addresses(network_key=key)
        ips = {a.ip for a in containers}
        return {
            "name": row.key, "project": row.project, "compose_name": row.name,
            "bridge": row.bridge, "subnet": row.subnet, "gateway": row.gateway,
            "internal": row.internal, "mtu": row.mtu, "labels": row.labels,
            "containers": [{"id": a.container_id, "ip": a.ip, "mac": a.mac,
                            "ifname": a.ifname, "host_ifname": a.host_ifname,
                            "aliases": list(a.aliases)} for a in containers],
            "ports": [f"{p.host_ip or '0.0.0.0'}:{p.host_port}->{p.container_ip}:"
                      f"{p.container_port}/{p.protocol}" for p in alloc.ports()
                      if p.container_ip in ips],
        }

    def remove(self, name: str) -> None:
        nets = self._networks()
        nets.inspect(name)  # NotFoundError names it
        trio.run(nets.remove_network, name)

    def prune(self) -> list[str]:
        """Remove every network no container uses; their names."""
        nets = self._networks()
        removed = []
        for n in self.alloc.networks():
            if not self.alloc.addresses(network_key=n.key):
                trio.run(nets.remove_network, n.key)
                removed.append(n.key)
        return removed

    def _networks(self) -> Any:
        if self._nets is None:
            from stackd.netbridge import DnsFeed, Networks

            # Tell the root's resolver process too (never start one): with no daemon, its
            # last network removed here is what makes it exit.
            self._nets = Networks(self.roots, self.db,
                                  resolver=DnsFeed(self.roots, start=False))
            trio.run(self._nets.restore_dns)
        return self._nets
