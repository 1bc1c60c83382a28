"""`Networks`: the one object the reconciler drives to create networks and wire containers.

Every method is a trio coroutine; netlink, nft and /proc work runs in worker threads.
The state store is the record of what exists: each host change is recorded in the same
method that makes it, and `restore` rebuilds firewall rules and DNS records from the
store after a daemon restart.
"""

from __future__ import annotations

import builtins
import dataclasses
import logging
from collections.abc import Sequence
from functools import partial
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import trio

from stackd.errors import AlreadyExistsError, ConflictError, NotFoundError, SpecError
from stackd.hostnames import device_name
from stackd.netbridge import (
    boundaddrs,
    firewall,
    hostports,
    ipam,
    links,
    netns,
    overlaylinks,
    overlayplan,
)
from stackd.netbridge.dns import DnsSink
from stackd.netbridge.model import (
    LABEL_IP_RANGE,
    LABEL_ISOLATED,
    LABEL_NETWORK_HASH,
    LABEL_RESERVED,
    SUPPORTED_DRIVERS,
    Address,
    Attachment,
    NetworkSpec,
    NetworkState,
    PortBinding,
    network_hash,
)
from stackd.netbridge.overlayplan import (
    LABEL_OVERLAY,
    OverlayLease,
    OverlayProvider,
    Peer,
    vxlan_name,
)
from stackd.netbridge.socketlb import SocketBalancer
from stackd.roots import Roots
from stackd.state.allocations import AddressRow, Allocations, NetworkRow, PortRow
from stackd.state.db import StateDB

DEFAULT_MTU = 1500
# Ports the kernel hands out that DNAT rules (which bind nothing) hold already: a few
# in a row is a full range.
EPHEMERAL_TRIES = 20
log = logging.getLogger("stackd.netbridge")


def _warn_if_uplinks_do_not_forward(network: str) -> None:
    """Egress replies arrive on the uplink and are routed only if it forwards (IPv4
    checks the input device). stackd does not change host-wide settings on its own."""
    off = links.uplinks_not_forwarding()
    if off:
        log.warning("network %s: egress needs forwarding on the uplink %s; set "
                    "net.ipv4.conf.%s.forwarding=1 (or net.ipv4.ip_forward=1)",
                    network, ", ".join(off), off[0])


def _overlay_mtu(lease: OverlayLease, default: int) -> int:
    """The underlay's MTU less VXLAN's headers, so no container packet is fragmented."""
    underlay = overlaylinks.underlay_mtu(lease.local) or default
    return min(default, underlay - overlaylinks.VXLAN_OVERHEAD)


def _lease(row: NetworkRow) -> OverlayLease | None:
    text = row.labels.get(LABEL_OVERLAY)
    return OverlayLease.from_label(text) if text else None


def _state(row: NetworkRow, *, external: bool = False) -> NetworkState:
    return NetworkState(key=row.key, project=row.project, name=row.name, bridge=row.bridge,
                        subnet=row.subnet, gateway=row.gateway, internal=row.internal,
                        external=external, mtu=row.mtu, labels=row.labels)


class Networks:
    def __init__(self, roots: Roots, db: StateDB, *, resolver: DnsSink | None = None,
                 pool: str = ipam.DEFAULT_POOL, prefixlen: int = ipam.DEFAULT_PREFIXLEN,
                 mtu: int = DEFAULT_MTU) -> None:
        self.roots = roots
        self.alloc = Allocations(db)
        self.resolver = resolver
        self.pool = ipam.parse_subnet(pool, what="address pool")
        self.prefixlen = prefixlen
        self.mtu = mtu
        # Set on a cluster node: its networks of driver "overlay" are made with it.
        self.overlay: OverlayProvider | None = None
        # One change at a time per root: IPAM decisions read then write the store.
        self._lock = trio.Lock()
        # Backends on other cluster nodes, added to the published ports' rules (the
        # routing mesh; set by stackd/cluster, empty off a cluster).
        self.mesh: tuple[firewall.DnatRule, ...] = ()
        # Set by the daemon (it holds the programs attached while it runs): published
        # ports served at connect() for the host's own connections (socketlb.py).
        self.sockets: SocketBalancer | None = None

    # networks
    def list(self) -> list[NetworkState]:
        return [_state(r) for r in self.alloc.networks()]

    def inspect(self, key: str) -> NetworkState:
        row = self.alloc.network(key)
        if row is None:
            raise NotFoundError(f"network {key} does not exist",
                                hint="see `stackd network ls` for the networks there are")
        return _state(row)

    async def ensure_network(self, spec: NetworkSpec, *,
                             wait_for_dns: bool = True) -> NetworkState:
        """The network, made unless there. wait_for_dns: return only once the resolver
        listens at its gateway (else `dns_current` does it later)."""
        if spec.driver not in SUPPORTED_DRIVERS:
            raise SpecError(f"network {spec.name}: driver {spec.driver!r} is not supported",
                            hint="stackd networks use the bridge driver; remove `driver:`")
        if spec.isolated and spec.driver == "overlay":
            # Its VXLAN port on each node's bridge is not isolated: containers on other
            # nodes would reach each other's, those on one node not.
            raise SpecError(f"network {spec.name}: enable_icc false is not supported on a "
                            "cluster's overlay networks yet",
                            hint="leave com.docker.network.bridge.enable_icc out, or run "
                                 "the stack on one host")
        lease = None
        if spec.driver == "overlay" and not spec.external:
            if self.overlay is None:
                raise SpecError(f"network {spec.name}: driver 'overlay' needs this host to be "
                                "a cluster node",
                                hint="join a cluster (`stackd node join`), or remove `driver:`")
            if self.alloc.network(spec.key) is None:  # the cluster decides its subnet
                lease = await self.overlay.lease(spec)
        async with self._lock:
            row = self.alloc.network(spec.key)
            if spec.external:
                if row is None:
                    raise NotFoundError(f"external network {spec.key} does not exist",
                                        hint=f"create it first (`stackd network create "
                                             f"{spec.key}`, or with the stack that owns "
                                             "it), or drop `external: true`")
                if self.resolver is not None:
                    # Made by `network create` while we ran, not known to the resolver
                    # yet: its containers' names are answered at its gateway too.
                    await self.resolver.listen(row.key, row.gateway)
                    if wait_for_dns:
                        await self.resolver.flush()
                return _state(row, external=True)
            if row is not None:
                if spec.subnet and ipam.parse_subnet(
                        spec.subnet, what=f"network {spec.name} subnet") != IPv4Network(row.subnet):
                    raise ConflictError(f"network {spec.key} exists with subnet {row.subnet}, "
                                        f"not {spec.subnet}",
                                        hint="remove the network (stackd down) to change it")
                await trio.to_thread.run_sync(self._ensure_devices, row)
            else:
                mtu = spec.mtu(self.mtu)
                if lease is not None:
                    mtu = spec.mtu(await trio.to_thread.run_sync(_overlay_mtu, lease, self.mtu))
                row = await trio.to_thread.run_sync(partial(self._create_bridge, spec, mtu,
                                                            lease))
                if lease is not None and self.overlay is not None:
                    self.overlay.changed()
                if not spec.internal:
                    await trio.to_thread.run_sync(_warn_if_uplinks_do_not_forward, row.key)
            await self._apply_firewall()
            if self.resolver is not None:
                await self.resolver.listen(row.key, row.gateway)
                if wait_for_dns:
                    await self.resolver.flush()
            return _state(row)

    def _ensure_devices(self, row: NetworkRow) -> None:
        """The network's bridge and, for an overlay, its VXLAN device (blocking)."""
        links.ensure_bridge(row.bridge, row.gateway, IPv4Network(row.subnet).prefixlen,
                            row.mtu, self.roots.owner_id)
        lease = _lease(row)
        if lease is not None:
            overlaylinks.ensure_vxlan(vxlan_name(self.roots.id, row.key), bridge=row.bridge,
                                      vni=lease.vni, local=lease.local, port=lease.port,
                                      mtu=row.mtu, owner=self.roots.owner_id)

    def _create_bridge(self, spec: NetworkSpec, mtu: int,
                       lease: OverlayLease | None = None) -> NetworkRow:
        """Choose the subnet and make the bridge under the host lock (roots share a pool).
        An overlay's subnet is the cluster's; the gateway is the first address of this
        node's block (each node's bridge is its own containers' gateway)."""
        with firewall.host_lock():
            # A bound address counts as routed: a resolver (ours or another root's)
            # may still hold the gateway of a network whose bridge has just gone.
            routed = [*links.routed_subnets(),
                      *boundaddrs.as_networks(boundaddrs.bound_addresses())]
            mine = [(r.key, IPv4Network(r.subnet)) for r in self.alloc.networks()]
            labels = {**spec.labels, LABEL_NETWORK_HASH: network_hash(spec)}
            if spec.ip_range:
                labels[LABEL_IP_RANGE] = spec.ip_range
            if spec.reserved:
                labels[LABEL_RESERVED] = ",".join(spec.reserved)
            if spec.isolated:
                labels[LABEL_ISOLATED] = "true"
            if lease is not None:
                subnet = IPv4Network(lease.subnet)
                ipam.check_subnet_free(subnet, routed, mine, network=spec.name)
                labels[LABEL_OVERLAY] = lease.to_label()
            elif spec.subnet:
                subnet = ipam.parse_subnet(spec.subnet, what=f"network {spec.name} subnet")
                ipam.check_subnet_free(subnet, routed, mine, network=spec.name)
            else:
                subnet = ipam.choose_subnet(self.pool, self.prefixlen, routed,
                                            [n for _, n in mine])
            if lease is not None:
                gateway = ipam.default_gateway(IPv4Network(lease.block))
            else:
                gateway = (ipam.check_gateway(subnet, spec.gateway, network=spec.name)
                           if spec.gateway else ipam.default_gateway(subnet))
            row = NetworkRow(key=spec.key, project=spec.project, name=spec.name,
                             bridge=device_name(self.roots.id, "b", spec.key),
                             subnet=str(subnet), gateway=str(gateway), internal=spec.internal,
                             mtu=mtu, labels=labels)
            self.alloc.add_network(row)
            try:
                self._ensure_devices(row)
            except BaseException:
                links.delete_links([vxlan_name(self.roots.id, row.key), row.bridge])
                self.alloc.remove_network(row.key)
                raise
            return row

    async def remove_network(self, key: str) -> None:
        """Remove a network nobody is attached to; no error if it is already gone."""
        async with self._lock:
            row = self.alloc.network(key)
            if row is None:
                return
            users = sorted({a.container_id for a in self.alloc.addresses(network_key=key)})
            if users:
                raise ConflictError(f"network {key} is in use by {', '.join(users)}",
                                    hint="remove those containers first")
            if self.resolver is not None:
                await self.resolver.unlisten(key)
                await self.resolver.flush()

            def remove() -> None:
                # Under the host lock, as `restore`: a daemon that sees the bridge gone
                # (`network rm` from the command line) must not find the row still
                # there and make the bridge again, for nothing to remove it after.
                with firewall.host_lock():
                    links.delete_links([vxlan_name(self.roots.id, key), row.bridge])
                    self.alloc.remove_network(key)

            await trio.to_thread.run_sync(remove)
            await self._apply_firewall()
        if _lease(row) is not None and self.overlay is not None:
            self.overlay.changed()
            await self.overlay.release(key, row.project)

    # overlays (the cluster's agent, stackd/cluster/overlay.py, drives these)
    def overlay_endpoints(self) -> builtins.list[tuple[str, str, str, str, str]]:
        """(network_key, ip, mac, container_id, vtep) of each container on an overlay
        network here, and of this node's bridge (its gateway, container ""): what this
        node publishes to the cluster. The bridge is a peer too: the mesh masquerades a
        connection to a remote replica behind it, and the replica's reply must find it."""
        rows = {r.key: (r, lease) for r in self.alloc.networks()
                if (lease := _lease(r)) is not None}
        out = [(a.network_key, a.ip, a.mac, a.container_id, rows[a.network_key][1].local)
               for a in self.alloc.addresses() if a.network_key in rows]
        out += [(key, row.gateway, links.bridge_mac(row.bridge), "", lease.local)
                for key, (row, lease) in rows.items()]
        return sorted(out)

    def overlay_networks(self) -> dict[str, OverlayLease]:
        """Each overlay network here → its lease."""
        return {r.key: lease for r in self.alloc.networks()
                if (lease := _lease(r)) is not None}

    async def program_overlay(self, network_key: str, peers: Sequence[Peer]) -> bool:
        """Make the network's VXLAN device forward to exactly `peers` (the containers of
        other nodes); whether anything changed. A network that is not here: nothing."""
        row = self.alloc.network(network_key)
        lease = _lease(row) if row is not None else None
        if lease is None:
            return False
        name = vxlan_name(self.roots.id, network_key)

        def run() -> bool:
            have = overlaylinks.read(name)
            if have is None:
                return False
            changes = overlayplan.diff(overlayplan.desired(peers, lease.local), have)
            overlaylinks.apply(name, changes)
            return bool(changes)
        return await trio.to_thread.run_sync(run)

    # namespaces
    def netns_path(self, container_id: str) -> Path:
        return netns.netns_path(self.roots.run, container_id)

    async def create_netns(self, container_id: str) -> str:
        """A namespace with only lo (up), kept alive by a bind mount; its path."""
        path = self.netns_path(container_id)
        def make() -> None:  # one trip to a worker thread, not two
            netns.create(path)
            links.lo_up(str(path))

        await trio.to_thread.run_sync(make)
        return str(path)

    def netns_ids(self) -> builtins.list[str]:
        """Container ids that have a namespace file here (mounted or left half-made)."""
        ns_dir = netns.netns_dir(self.roots.run)
        if not ns_dir.is_dir():
            return []
        return sorted(p.name for p in ns_dir.iterdir() if not p.name.startswith("."))

    async def remove_netns(self, container_id: str) -> None:
        await trio.to_thread.run_sync(netns.remove, self.netns_path(container_id))

    # attaching
    async def attach(self, container_id: str, netns_path: str,
                     attachments: Sequence[Attachment], *,
                     names: Sequence[str] = (),
                     wait_for_dns: bool = True) -> builtins.list[Address]:
        """eth0, eth1… on the given networks, in order; the first carries the default route.

        names: what DNS answers with this container's address on every network it joins
        (container name, service name, hostname); each attachment adds its aliases.
        wait_for_dns: return only once the resolver answers them (else `dns_current`).
        """
        keys = [a.network_key for a in attachments]
        if len(set(keys)) != len(keys):
            raise SpecError(f"container {container_id} joins a network twice: {', '.join(keys)}",
                            hint="list each network once")
        # Only the bookkeeping is under the lock (addresses are chosen from what is
        # taken); the devices are made outside it, so many containers attach at once.
        async with self._lock:
            if self.alloc.addresses(container_id=container_id):
                raise AlreadyExistsError(f"container {container_id} is already attached",
                                         hint="detach it first")
            done = [self._reserve(container_id, att, i, names)
                    for i, att in enumerate(attachments)]
        try:
            for i, (addr, att) in enumerate(zip(done, attachments, strict=True)):
                row = self.alloc.network(att.network_key)
                assert row is not None
                await trio.to_thread.run_sync(partial(
                    links.add_veth, host_ifname=addr.host_ifname,
                    peer_ifname=device_name(self.roots.id, "p", f"{container_id}/{row.key}"),
                    bridge=row.bridge, mtu=row.mtu, netns=netns_path, ifname=addr.ifname,
                    ip=addr.ip, prefixlen=addr.prefixlen, mac=addr.mac,
                    gateway=row.gateway if i == 0 else None, owner=self.roots.owner_id,
                    isolated=row.labels.get(LABEL_ISOLATED) == "true"))
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._release(container_id)
            raise
        if self.resolver is not None:
            for addr, att in zip(done, attachments, strict=True):
                self.resolver.add(addr.network_key, container_id, addr.ip,
                                  [*names, *att.aliases], dict(att.links))
            if wait_for_dns:
                await self.resolver.flush()
        if self.overlay is not None:
            self.overlay.changed()
        return done

    async def dns_current(self) -> None:
        """Return once the resolver answers with every network and name given it so far
        (starting it if need be: ~0.1 s of a Python start when a first network came)."""
        if self.resolver is not None:
            await self.resolver.flush()

    def _reserve(self, container_id: str, att: Attachment, index: int,
                 names: Sequence[str]) -> Address:
        """Choose and record the address; recorded before the veth exists, so an
        interrupted attach is found and undone. Call under the lock."""
        row = self.alloc.network(att.network_key)
        if row is None:
            raise NotFoundError(f"network {att.network_key} does not exist",
                                hint="create the network before attaching containers to it")
        subnet = IPv4Network(row.subnet)
        gateway = IPv4Address(row.gateway)
        taken = self.alloc.taken(row.key)
        # An overlay's addresses come from this node's block alone: the others hand out
        # theirs from their own, so no two containers of the cluster share one.
        lease = _lease(row)
        pool = IPv4Network(lease.block) if lease is not None else subnet
        reserved = row.labels.get(LABEL_RESERVED, "")
        taken = {**taken, **dict.fromkeys(filter(None, reserved.split(",")), "aux_addresses")}
        if att.ipv4_address:
            ip = ipam.check_static_address(pool, gateway, att.ipv4_address, taken,
                                           network=row.key)
        else:
            ranged = row.labels.get(LABEL_IP_RANGE)
            ip = ipam.pick_address(IPv4Network(ranged) if ranged and lease is None else pool,
                                   gateway, taken, network=row.key)
        mac = att.mac_address or ipam.mac_for(ip)
        key = f"{container_id}/{row.key}"
        addr = Address(network_key=row.key, ifname=att.interface_name or f"eth{index}",
                       host_ifname=device_name(self.roots.id, "v", key), ip=str(ip),
                       prefixlen=subnet.prefixlen, gateway=row.gateway, mac=mac)
        self.alloc.add_address(AddressRow(row.key, addr.ip, container_id, addr.ifname,
                                          addr.host_ifname, mac,
                                          tuple(dict.fromkeys([*names, *att.aliases]))),
                              att.links)
        return addr

    async def detach(self, container_id: str) -> None:
        """Remove the container's veths and release its addresses; no error if none."""
        if self.resolver is not None:
            self.resolver.remove(container_id)
            await self.resolver.flush()
        await self._release(container_id)

    async def _release(self, container_id: str) -> None:
        # Devices first, addresses after: an address is free only once its veth is gone.
        names = []
        for a in self.alloc.addresses(container_id=container_id):
            names += [a.host_ifname,
                      device_name(self.roots.id, "p", f"{container_id}/{a.network_key}")]
        if names:
            await trio.to_thread.run_sync(links.delete_links, names)
        async with self._lock:
            self.alloc.release_addresses(container_id)
        if self.overlay is not None:
            self.overlay.changed()

    def addresses(self, container_id: str) -> builtins.list[Address]:
        out = []
        for a in self.alloc.addresses(container_id=container_id):
            row = self.alloc.network(a.network_key)
            assert row is not None
            out.append(Address(a.network_key, a.ifname, a.host_ifname, a.ip,
                               IPv4Network(row.subnet).prefixlen, row.gateway, a.mac))
        return sorted(out, key=lambda a: int(a.ifname[3:]))

    # published ports
    def check_ports_free(self, bindings: Sequence[PortBinding], *,
                         container_id: str | None = None, group: str = "") -> None:
        """ConflictError naming the first taken port and its holder; blocks briefly on /proc.

        Containers of one `group` (a service's replicas, old and new revisions) share
        their ports: they become backends of one balanced rule."""
        foreign = firewall.foreign_dnats(self.roots.chain_id) if bindings else []
        self._check_ports_against(bindings, self.alloc.ports(), foreign,
                                  container_id=container_id, group=group)

    def _check_ports_against(self, bindings: Sequence[PortBinding],
                             ours: Sequence[PortRow],
                             foreign: Sequence[tuple[str, int, str, str]], *,
                             container_id: str | None, group: str) -> None:
        """`check_ports_free` with this root's rows and other roots' rules read."""
        for i, b in enumerate(bindings):
            if any(b.overlaps(other) for other in bindings[:i]):
                raise ConflictError(f"port {b} is published twice", hint="publish it once")
        cache: dict[str, list[hostports.Listener]] = {}
        for b in bindings:
            want = b.host_ip or "0.0.0.0"
            for p in ours:
                if p.host_port == b.host_port and p.protocol == b.protocol and \
                        p.container_id != container_id and not (group and p.group == group) \
                        and hostports.conflicts(want, p.host_ip or "0.0.0.0"):
                    raise ConflictError(f"host port {b.host_port}/{b.protocol} is already "
                                        f"published by container {p.container_id}",
                                        hint="choose another host port or stop that container")
            for m in self.mesh:
                if m.host_port == b.host_port and m.protocol == b.protocol and \
                        not (group and m.group == group):
                    raise ConflictError(f"host port {b.host_port}/{b.protocol} is published "
                                        f"on every cluster node by service {m.group}",
                                        hint="choose another host port")
            for host_ip, port, proto, who in foreign:
                if port == b.host_port and proto == b.protocol and \
                        hostports.conflicts(want, host_ip or "0.0.0.0"):
                    raise ConflictError(f"host port {b.host_port}/{b.protocol} is already "
                                        f"published by another stackd instance ({who})",
                                        hint="choose another host port")
            if b.protocol not in cache:
                cache[b.protocol] = hostports.listeners(b.protocol)
            for lis in cache[b.protocol]:
                if lis.port == b.host_port and hostports.conflicts(want, lis.ip):
                    raise ConflictError(f"host port {b.host_port}/{b.protocol} is in use by "
                                        f"{hostports.holder(lis.inode)} on {lis.ip}",
                                        hint="stop that process or choose another host port")

    def _with_host_ports(self, bindings: Sequence[PortBinding], container_id: str,
                         ours: Sequence[PortRow],
                         foreign: Sequence[tuple[str, int, str, str]]
                         ) -> builtins.list[PortBinding]:
        """Each ephemeral binding (`- "80"`) given its host port: the one the container
        had (publishing again keeps it), else one the kernel hands out that no other
        container of this root (`ours`), another root's rule (`foreign`) or the
        cluster's mesh holds. Call under the host lock."""
        if not any(b.ephemeral for b in bindings):
            return list(bindings)
        had = {(p.container_port, p.protocol, p.host_ip): p.host_port
               for p in ours if p.container_id == container_id}
        taken = {(p.host_port, p.protocol) for p in ours if p.container_id != container_id}
        taken |= {(m.host_port, m.protocol) for m in self.mesh}
        taken |= {(port, proto) for _, port, proto, _ in foreign}
        taken |= {(b.host_port, b.protocol) for b in bindings if not b.ephemeral}
        out = []
        for b in bindings:
            if b.ephemeral:
                port = had.pop((b.container_port, b.protocol,
                                "" if b.any_address else b.host_ip), 0)
                for _ in range(EPHEMERAL_TRIES):
                    if not port or (port, b.protocol) in taken:
                        port = hostports.kernel_free_port(b.host_ip, b.protocol)
                    if (port, b.protocol) not in taken:
                        break
                else:
                    raise ConflictError(f"no free host port for {b}",
                                        hint="publish it on a host port you choose")
                b = dataclasses.replace(b, host_port=port)
                taken.add((port, b.protocol))
            out.append(b)
        return out

    async def publish(self, container_id: str, bindings: Sequence[PortBinding],
                      container_ip: str, *, group: str = "") -> None:
        """DNAT the bindings to the container. It is a backend only once `set_port_ready`
        says so (unless no backend of its port is ready: see `firewall.backends`)."""
        if not bindings:
            return
        async with self._lock:
            await trio.to_thread.run_sync(partial(self._publish_locked, container_id,
                                                  bindings, container_ip, group))

    def _publish_locked(self, container_id: str, bindings: Sequence[PortBinding],
                        container_ip: str, group: str) -> None:
        with firewall.host_lock():  # two roots must not both claim a port
            ours = self.alloc.ports()
            foreign = firewall.foreign_dnats(self.roots.chain_id)
            bindings = self._with_host_ports(bindings, container_id, ours, foreign)
            self._check_ports_against(bindings, ours, foreign, container_id=container_id,
                                      group=group)
            # Publishing again replaces the container's bindings (idempotent).
            self.alloc.remove_ports(container_id)
            self.alloc.add_ports([PortRow(container_id, "" if b.any_address else b.host_ip,
                                          b.host_port, b.protocol, container_ip,
                                          b.container_port, group) for b in bindings])
            try:
                self._firewall_rules_locked()
            except BaseException:
                self.alloc.remove_ports(container_id)
                raise

    async def set_port_ready(self, container_id: str, ready: bool) -> None:
        """Add the container to (or take it out of) its published ports' backends. New
        connections follow at once; established ones keep their backend (conntrack)."""
        async with self._lock:
            if await trio.to_thread.run_sync(self.alloc.set_ports_ready, container_id, ready):
                await self._apply_firewall()

    async def set_mesh(self, backends: Sequence[firewall.DnatRule]) -> None:
        """The routing mesh's backends on other nodes (all of them: replaces the last
        set); the rules are replaced only if they changed."""
        async with self._lock:
            mesh = tuple(backends)
            if mesh != self.mesh:
                self.mesh = mesh
                await self._apply_firewall()

    async def use_sockets(self, balancer: SocketBalancer | None) -> None:
        """Serve the host's own connections to published ports with `balancer` from now
        on (its maps filled at once), or with DNAT alone (None). The one it replaces is
        closed."""
        async with self._lock:
            old, self.sockets = self.sockets, balancer
            if old is not None and old is not balancer:
                old.close()
            await self._apply_firewall()

    async def unpublish(self, container_id: str) -> None:
        async with self._lock:
            if self.alloc.ports(container_id=container_id):
                self.alloc.remove_ports(container_id)
                await self._apply_firewall()

    # firewall
    def _firewall_rules_locked(self) -> None:
        bridges = [firewall.BridgeRules(n.bridge, n.subnet, n.internal)
                   for n in self.alloc.networks()]
        dnats = [firewall.DnatRule(p.host_ip, p.host_port, p.protocol, p.container_ip,
                                   p.container_port, p.container_id, p.group, p.ready)
                 for p in self.alloc.ports()]
        rules = [*dnats, *self.mesh]
        firewall.apply(self.roots.chain_id, bridges, rules)
        if self.sockets is not None:
            self.sockets.sync(rules)

    async def _apply_firewall(self) -> None:
        def run() -> None:
            with firewall.host_lock():
                self._firewall_rules_locked()
        await trio.to_thread.run_sync(run)

    # lifecycle
    async def restore(self) -> None:
        """After a daemon restart: bridges, rules, DNS listeners and records from the store."""
        def ensure_all() -> None:
            # The rows read under the host lock: one another process's `network rm` is
            # removing is either still whole (row and bridge) or gone (both).
            with firewall.host_lock():
                for row in self.alloc.networks():
                    self._ensure_devices(row)

        async with self._lock:
            await trio.to_thread.run_sync(ensure_all)
            await self._restore_dns_locked()
            await self._apply_firewall()
        if self.overlay is not None:  # a VXLAN device made again has no entries yet
            self.overlay.changed()

    async def restore_dns(self) -> None:
        """Only the DNS part of `restore`: what a command changing networks without a
        daemon does first, so the resolver process is told the store's whole truth."""
        async with self._lock:
            await self._restore_dns_locked()

    async def _restore_dns_locked(self) -> None:
        if self.resolver is None:
            return
        for row in self.alloc.networks():
            await self.resolver.listen(row.key, row.gateway)
        links = self.alloc.links()
        for a in self.alloc.addresses():
            self.resolver.add(a.network_key, a.container_id, a.ip, a.aliases,
                              links.get((a.network_key, a.container_id)))
        await self.resolver.flush()

    async def teardown(self) -> None:
        """Remove everything of this root: ports, veths, namespaces, bridges, rules."""
        for cid in sorted({a.container_id for a in self.alloc.addresses()} |
                          {p.container_id for p in self.alloc.ports()}):
            await self.unpublish(cid)
            await self.detach(cid)
        for row in self.alloc.networks():
            await self.remove_network(row.key)
        ns_dir = netns.netns_dir(self.roots.run)
        if ns_dir.exists():
            for path in sorted(ns_dir.iterdir()):
                await trio.to_thread.run_sync(netns.remove, path)
        await self._apply_firewall()
