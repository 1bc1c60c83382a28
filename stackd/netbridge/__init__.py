"""Bridges, veth, IPAM, the nftables table 'stackd', published ports, embedded DNS.

The only package that speaks netlink (pyroute2) or nftables. The reconciler (through
the daemon's adapter) drives it with these calls, all trio coroutines unless noted:

    resolver = DnsFeed(roots)                      # the daemon: the root's resolver process
    resolver = Resolver()                          # or in process; run: nursery.start(.serve)
    nets = Networks(roots, db, resolver=resolver, pool="10.192.0.0/12", prefixlen=20)
    await nets.restore()                           # after a daemon restart

    await nets.ensure_network(NetworkSpec(key, project, name, subnet=None, gateway=None,
                              internal=False, external=False, driver="bridge",
                              labels={}, driver_opts={})) -> NetworkState
    await nets.remove_network(key)                 # ConflictError while containers use it

    await nets.create_netns(container_id) -> str   # path for ContainerSpec.namespaces.net
    await nets.remove_netns(container_id)
    await nets.attach(container_id, netns_path, [Attachment(network_key, aliases=(),
                      ipv4_address=None, mac_address=None), ...],
                      names=(container_name, service_name)) -> list[Address]
    await nets.detach(container_id)                # also drops its DNS records

    nets.check_ports_free([PortBinding(host_port, container_port, protocol, host_ip)],
                          container_id=None)       # sync; ConflictError naming the holder
    await nets.publish(container_id, bindings, container_ip)
    await nets.unpublish(container_id)
    await nets.teardown()                          # everything of this root

    nets.overlay = provider                        # a cluster node: driver "overlay"
    nets.overlay_endpoints() / overlay_networks()  # what it publishes (overlayplan.py)
    await nets.program_overlay(network_key, peers) # a VXLAN device's FDB/neigh entries

    resolver.add(network_key, container_id, ip, names, links) / remove(container_id)
    resolver.set_records(network_key, name, ips) / set_ready(container_id, ready)
    await resolver.flush()                         # answered from now on (Networks calls it)
    resolver_pid(roots) -> int | None              # the root's resolver process, if it runs

    resolv_conf_for(gateway) / hosts_file_for(name, ips, extra_hosts) -> str
    parse_network_mode(text) -> NetworkMode; namespace_for(mode, own_netns=, joined_netns=)
    expand_ports((h0, h1), (c0, c1), protocol, host_ip) -> list[PortBinding]

Import from here; the submodules are internal. Names resolve lazily (PEP 562), so
`from stackd.netbridge.model import NetworkSpec` — what the pure reconciler does — loads
neither pyroute2 nor trio.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Resolver": "dns",
    "DnsFeed": "dnsfeed",
    "resolver_pid": "dnsfeed",
    "hosts_file_for": "files",
    "resolv_conf_for": "files",
    "resolv_conf_for_host": "files",
    "Address": "model",
    "Attachment": "model",
    "NetworkSpec": "model",
    "NetworkState": "model",
    "PortBinding": "model",
    "expand_ports": "model",
    "NetworkMode": "modes",
    "namespace_for": "modes",
    "parse_network_mode": "modes",
    "Networks": "networks",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'stackd.netbridge' has no attribute {name!r}")
    return getattr(importlib.import_module(f"stackd.netbridge.{module}"), name)
