"""The host ports one replica publishes. Pure.

A host range with one container port (`18090-18092:80`, the only form a range keeps
after the spec's canonical stage) gives each replica one port of the range, in order,
as Compose does: replica 1 gets 18090, replica 2 18091… A replica beyond the range is
refused before anything starts. A port with no host port (`- "80"`) gets a free one
per replica when it is published, as Compose's.
"""

from __future__ import annotations

from stackd.errors import SpecError
from stackd.netbridge.model import PortBinding
from stackd.spec.model import Stack


def published_ports(stack: Stack, name: str, index: int) -> tuple[PortBinding, ...]:
    """The bindings of replica `index` (1-based) of service `name`. A port that names
    no host address takes its first network's host_binding_ipv4, as Docker's."""
    out: list[PortBinding] = []
    svc = stack.services[name]
    joined = svc.networks_in_order() if svc.network_mode is None else []
    network = stack.networks.get(joined[0][0]) if joined else None
    default_ip = (network.host_binding_ipv4 if network is not None else None) or ""
    for i, p in enumerate(svc.ports):
        proto = p.protocol if p.protocol != "sctp" else "tcp"
        if p.published is None:
            # Each replica its own free host port, chosen as it is published (`stackd
            # port` tells which). Never meshed: a port one node chose may be taken on
            # the others.
            out.append(PortBinding(host_port=0, container_port=p.target, protocol=proto,
                                   host_ip=p.host_ip or default_ip, meshed=False))
            continue
        lo, _, hi = p.published.partition("-")
        first, last = int(lo), int(hi or lo)
        port = first + index - 1 if last > first else first
        if port > last:
            raise SpecError(
                f"service {name!r}: replica {index} has no host port left in "
                f"{p.published} (each replica takes one port of the range)",
                location=stack.location_of(("services", name, "ports", i)),
                hint="widen the range, or run fewer replicas")
        out.append(PortBinding(host_port=port, container_port=p.target, protocol=proto,
                               host_ip=p.host_ip or default_ip, meshed=p.mode != "host"))
    return tuple(out)
