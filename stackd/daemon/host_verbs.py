"""What compose's verbs do on this host from the CLI's own process, not through the API.

Some verbs need the CLI's stdio or terminal (`exec`, `run -i/-t`'s attach), act on a
container's root from the host (`cp`, `pause`), or must work when no daemon runs
(`volume` and `network`: host objects with a row in the state store, whose removal
must work after a daemon that is gone), or ask the host what the API doesn't say
(`image prune`: which layers containers still use). They live here, in the package
that wires the real runtime, netbridge and state store, so the CLI imports none of
them; the CLI finds a container through the API first and passes its id.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, BinaryIO

import trio

from stackd.roots import Roots


def _runtime(roots: Roots) -> Any:
    from stackd.runtime.runtime import Runtime

    return Runtime(roots)


def exec_attached(roots: Roots, container_id: str, cmd: Sequence[str], *, env: Sequence[str],
                  cwd: str | None, user: str | None, tty: bool, privileged: bool = False) -> int:
    """`exec`: run `cmd` in the container on this process's stdio (a pty relayed to our
    terminal with `tty`); its exit code."""
    from stackd.runtime.exec import exec_interactive

    state = _runtime(roots).inspect_here(container_id)
    return exec_interactive(state, cmd, env=env, cwd=cwd, user=user, tty=tty,
                            privileged=privileged)


def exec_detached(roots: Roots, container_id: str, cmd: Sequence[str], *,
                  env: Sequence[str], cwd: str | None, user: str | None,
                  privileged: bool = False) -> tuple[int, str | None]:
    """`exec -d`: start `cmd` in the container, running on after we return; (0, None),
    or the exit code and why of a program that cannot run."""
    from stackd.runtime.exec import exec_detached as start_detached

    state = _runtime(roots).inspect_here(container_id)
    return start_detached(state, cmd, env=env, cwd=cwd, user=user, privileged=privileged)


def copy(roots: Roots, container_id: str, *, from_container: bool, src: str, dest: str,
         follow: bool = False, owners: bool = False) -> None:
    """`cp`: through the container's root (stackd.runtime.copy), running or not."""
    import os

    from stackd.runtime.copy import container_root, copy_in, copy_out

    root = container_root(trio.run(_runtime(roots).inspect, container_id), roots,
                          writable=not from_container)
    try:
        if from_container:
            copy_out(root, src, dest, follow=follow, owners=owners)
        else:
            copy_in(root, src, dest, owners=owners)
    finally:
        os.close(root)


def copy_tar(roots: Roots, container_id: str, *, path: str, stream: BinaryIO,
             from_container: bool, follow: bool = False, owners: bool = False) -> None:
    """`cp SVC:PATH -` (a tar of PATH on `stream`) and `cp - SVC:DIR` (the tar on
    `stream` unpacked into DIR), as `docker cp` does with `-`; running or not."""
    import os

    from stackd.runtime.copy import container_root
    from stackd.runtime.tarcopy import tar_in, tar_out

    root = container_root(trio.run(_runtime(roots).inspect, container_id), roots,
                          writable=not from_container)
    try:
        if from_container:
            tar_out(root, path, stream, follow=follow)
        else:
            tar_in(root, stream, path, spool_dir=str(roots.state), owners=owners)
    finally:
        os.close(root)


def sync(roots: Roots, container_id: str, items: Sequence[tuple[str, str, bool]]) -> None:
    """`watch`'s sync: each (host path, container path, removed) written at that path
    in the running container — or removed there —, through its root."""
    import os

    from stackd.runtime.copy import container_root, remove_in, sync_in

    root = container_root(trio.run(_runtime(roots).inspect, container_id))
    try:
        for host, path, removed in items:
            if removed:
                remove_in(root, path)
            else:
                sync_in(root, host, path)
    finally:
        os.close(root)


def pause(roots: Roots, container_id: str, paused: bool) -> None:
    """`pause`/`unpause`: the cgroup freezer."""
    trio.run(_runtime(roots).pause, container_id, paused)


def attach(roots: Roots, container_id: str, *, stdin: bool,
           detach_keys: bytes | None = None) -> dict[str, Any] | None:
    """`run -i/-t`, `attach`: relay our stdio to the container until it exits."""
    from stackd.runtime.attach import attach as attach_

    return attach_(roots, container_id, stdin=stdin, detach_keys=detach_keys)


def container_json(roots: Roots, container_id: str) -> dict[str, Any]:
    """`container inspect`: the runtime's state of the container, spec included."""
    state = trio.run(_runtime(roots).inspect, container_id)
    out = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
    out["spec"] = state.spec.model_dump(mode="json")
    out["exit"] = dataclasses.asdict(state.exit) if state.exit is not None else None
    return dict(json.loads(json.dumps(out, default=str)))


@dataclasses.dataclass(frozen=True)
class Attached:
    """A container's address on one network, with what Docker shows beside it."""
    network: str
    ip: str
    prefix_len: int
    gateway: str
    mac: str
    aliases: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ContainerLinks:
    """What `container inspect -f` shows beside the runtime's record of a container."""
    attached: tuple[Attached, ...]
    published: tuple[Any, ...]  # state.allocations.PortRow
    volumes: dict[str, str]  # a volume's directory → its name


def container_links(roots: Roots, container_id: str, mount_sources: Sequence[str]
                    ) -> ContainerLinks:
    """The container's networks and published ports from the state store, and the names
    of the volumes among `mount_sources`."""
    import ipaddress

    import stackd.state.allocations  # noqa: F401  (registers the tables)
    from stackd.daemon.desired_store import db_path
    from stackd.state.allocations import Allocations
    from stackd.state.db import StateDB
    from stackd.state.volumes import VolumeStore

    db = StateDB.open(db_path(roots.ensure().state))
    try:
        alloc = Allocations(db)
        nets = {n.key: n for n in alloc.networks()}
        attached = tuple(
            Attached(a.network_key, a.ip,
                     ipaddress.ip_network(nets[a.network_key].subnet).prefixlen
                     if a.network_key in nets else 0,
                     nets[a.network_key].gateway if a.network_key in nets else "",
                     a.mac, a.aliases)
            for a in alloc.addresses(container_id=container_id))
        published = tuple(alloc.ports(container_id=container_id))
        volumes = VolumeStore(db, roots.state)
        named = {s: n for s in mount_sources if (n := volumes.name_of(s)) is not None}
    finally:
        db.close()
    return ContainerLinks(attached, published, named)


def project_layers(roots: Roots, project: str) -> list[tuple[str, tuple[str, ...]]]:
    """`images --stack`: (name, layer dirs) of each container of the project."""
    from stackd.hostnames import LABEL_PROJECT

    return [(c.name, tuple(c.spec.layers)) for c in trio.run(_runtime(roots).list)
            if c.labels.get(LABEL_PROJECT) == project]


def volume_users(containers: Sequence[Any], mountpoint: str) -> list[str]:
    """Names of the containers that mount the volume at `mountpoint`. Pure."""
    return sorted({c.name for c in containers for m in c.spec.mounts
                   if m.type == "volume" and m.source == mountpoint})


class VolumeAdmin:
    """The root's named volumes, through the state store directly (`stackd volume`).
    What uses a volume is read from the runtime's containers, running or not, as
    Docker counts them: such a volume is not removed."""

    def __init__(self, roots: Roots) -> None:
        import stackd.state.volumes  # noqa: F401  (registers the table)
        from stackd.daemon.desired_store import db_path
        from stackd.state.db import StateDB
        from stackd.state.volumes import VolumeStore

        self.roots = roots.ensure()
        self.db = StateDB.open(db_path(self.roots.state))
        self.db.ensure_schemas()
        self.store = VolumeStore(self.db, self.roots.state)
        self._containers: list[Any] | None = None

    def __enter__(self) -> VolumeAdmin:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None
                 ) -> None:
        self.db.close()

    def containers(self) -> list[Any]:
        if self._containers is None:
            self._containers = trio.run(_runtime(self.roots).list)
        return self._containers

    def _row(self, name: str) -> Any:
        from stackd.errors import NotFoundError

        self.store.path(name)  # a UsageError for a name that is not one
        found = self.db.conn.execute("SELECT name, project, created FROM volumes WHERE name=?",
                                     (name,)).fetchone()
        if found is None:
            raise NotFoundError(f"no volume {name!r}", hint="see `stackd volume ls`")
        return found

    def _describe(self, row: Any) -> dict[str, Any]:
        mountpoint = self.store.path(row["name"])
        return {"name": row["name"], "project": row["project"],
                "created": datetime.fromtimestamp(row["created"], UTC).isoformat(),
                "mountpoint": mountpoint,
                "containers": volume_users(self.containers(), mountpoint)}

    def list(self) -> list[dict[str, Any]]:
        rows = self.db.conn.execute("SELECT name, project, created FROM volumes ORDER BY name")
        return [self._describe(r) for r in rows.fetchall()]

    def inspect(self, name: str) -> dict[str, Any]:
        return self._describe(self._row(name))

    def create(self, name: str) -> None:
        """Idempotent; the project is empty, so no stack's `down -v` removes it."""
        self.store.path(name)
        trio.run(self.store.ensure_volume, "", name)

    def remove(self, names: Sequence[str]) -> None:
        """All or none: every name is checked (exists, unused) first."""
        from stackd.errors import ConflictError

        for name in names:
            used = volume_users(self.containers(), self.store.path(self._row(name)["name"]))
            if used:
                raise ConflictError(f"volume {name} is in use by {', '.join(used)}",
                                    hint="remove those containers first (`stackd rm`, "
                                         "`stackd down`)")
        for name in names:
            trio.run(self.store.remove_volume, name)

    def prune(self, project: str | None = None, *, all: bool = True) -> builtins.list[str]:
        """Remove the volumes no container mounts (of one project, if given); their
        names. all=False: only anonymous ones (a container's own, or set apart when it
        went), as Docker's `volume prune` without --all."""
        if project is None:
            rows = self.db.conn.execute("SELECT name FROM volumes ORDER BY name")
        else:
            rows = self.db.conn.execute(
                "SELECT name FROM volumes WHERE project=? ORDER BY name", (project,))
        names = [r["name"] for r in rows.fetchall()]
        if not all:
            anonymous = self.store.anonymous()
            names = [n for n in names if n in anonymous]
        if not names:
            return []
        unused = [n for n in names
                  if not volume_users(self.containers(), self.store.path(n))]
        for name in unused:
            trio.run(self.store.remove_volume, name)
        return unused


def containers_here(roots: Roots) -> list[Any]:
    """Every container of this root, as the runtime lists them: what `rmi` and a prune
    must not take an image from (stack_images.users_of)."""
    from stackd.runtime import Runtime

    return trio.run(Runtime(roots).list)


def host_facts() -> dict[str, Any]:
    """`system info`'s of the host: its cgroup layout ("1", "1 (hybrid: …)", "2") and
    memory."""
    from stackd.hostinfo import memory_total
    from stackd.runtime.cgroups import host_mounts

    mounts = host_mounts()
    version = ("2" if not mounts.v1 else
               "1 (hybrid: v1 controllers beside a cgroup2 mount)" if mounts.v2 else "1")
    return {"cgroup_version": version, "total_memory": memory_total()}


def writable_layer_sizes(roots: Roots, states: Sequence[Any]) -> list[tuple[int, bool]]:
    """Each container's writable layer's size and whether it runs (`system df`)."""
    from stackd.runtime import Runtime
    from stackd.trees import tree_size

    rt = Runtime(roots)
    return [(tree_size(rt.upper_dir(s.id)), s.status == "running") for s in states]


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

    def create(self, name: str, *, subnet: str | None = None, gateway: str | None = None,
               ip_range: str | None = None, internal: bool = False,
               labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None) -> None:
        """A bridge no stack owns (`network create`), for stacks to join as
        `external: true`. Its options are checked before anything is made."""
        from pydantic import ValidationError

        from stackd.errors import AlreadyExistsError, UsageError
        from stackd.netbridge.model import NetworkSpec
        from stackd.spec.model import HOST_BINDING_OPTION, ICC_OPTION, MTU_OPTION, Network

        try:  # a stack's network's rules
            declared = Network(driver_opts=dict(options or {}), labels=dict(labels or {}))
        except ValidationError as e:
            raise UsageError(e.errors()[0]["msg"].removeprefix("Value error, ")
                             .replace("driver_opts: ", "-o "), hint=f"the options there are: "
                             f"{MTU_OPTION}=N, {ICC_OPTION}=false; labels under io.stackd. "
                             "are stackd's own") from None
        if declared.host_binding_ipv4 is not None:
            raise UsageError(f"-o {HOST_BINDING_OPTION} is for a stack's own networks",
                             hint="set it in the stack file's networks:, or give each "
                                  "port its address")
        spec = NetworkSpec(key=name, project="", name=name, subnet=subnet, gateway=gateway,
                           ip_range=ip_range, internal=internal, labels=dict(labels or {}),
                           driver_opts=dict(options or {}), isolated=not declared.icc)
        spec.mtu(1500)  # SpecError for a bad one
        if self.alloc.network(name) is not None:
            raise AlreadyExistsError(f"network {name} already exists",
                                     hint="use it as it is, or remove it first "
                                          "(`stackd network rm`)")
        trio.run(self._networks().ensure_network, spec)

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
