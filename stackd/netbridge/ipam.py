"""Address management, pure: which subnet a new network gets, which address a container gets.

The caller gathers the facts (the pool, subnets the host already routes, subnets and
addresses already taken) and these functions only decide.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network

from stackd.errors import ConflictError, SpecError, UnavailableError

# Docker cuts its default pools into /16s and /20s; a /24 (253 containers) was too
# small for a service with a few hundred replicas. 256 networks of 4094 addresses.
DEFAULT_POOL = "10.192.0.0/12"
DEFAULT_PREFIXLEN = 20


def parse_subnet(text: str, *, what: str) -> IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise SpecError(f"{what}: {text!r} is not a subnet ({exc})",
                        hint="write a network address and prefix, e.g. 10.1.2.0/24") from None
    if not isinstance(net, IPv4Network):
        raise SpecError(f"{what}: {text} is IPv6; stackd networks are IPv4 only")
    if net.prefixlen > 29:
        raise SpecError(f"{what}: {text} is too small for a gateway and containers",
                        hint="use a /29 or larger")
    return net


def choose_subnet(pool: IPv4Network, prefixlen: int, routed: Iterable[IPv4Network],
                  taken: Iterable[IPv4Network]) -> IPv4Network:
    """The first /prefixlen of the pool that overlaps nothing routed or taken."""
    busy = [*routed, *taken]
    for candidate in pool.subnets(new_prefix=prefixlen):
        if not any(candidate.overlaps(b) for b in busy):
            return candidate
    raise UnavailableError(f"no free /{prefixlen} left in the address pool {pool}",
                           hint="remove unused networks (stackd network prune) or configure "
                                "a larger pool")


def check_subnet_free(subnet: IPv4Network, routed: Iterable[IPv4Network],
                      taken: Iterable[tuple[str, IPv4Network]], *, network: str) -> None:
    """A subnet the stack file asks for must not collide with the host or another network."""
    for other_name, other in taken:
        if subnet.overlaps(other):
            raise ConflictError(f"network {network}: subnet {subnet} overlaps {other} of "
                                f"network {other_name}", hint="choose another ipam subnet")
    for route in routed:
        if subnet.overlaps(route):
            raise ConflictError(f"network {network}: subnet {subnet} overlaps {route}, "
                                "which the host already routes or a socket is bound in",
                                hint="choose another ipam subnet")


def default_gateway(subnet: IPv4Network) -> IPv4Address:
    return subnet.network_address + 1


def check_gateway(subnet: IPv4Network, gateway: str, *, network: str) -> IPv4Address:
    try:
        gw = IPv4Address(gateway)
    except ValueError:
        raise SpecError(f"network {network}: gateway {gateway!r} is not an IPv4 address") from None
    if gw not in subnet or gw in (subnet.network_address, subnet.broadcast_address):
        raise SpecError(f"network {network}: gateway {gw} is not a host address of {subnet}")
    return gw


def pick_address(subnet: IPv4Network, gateway: IPv4Address, taken: Iterable[str],
                 *, network: str) -> IPv4Address:
    """The lowest host address that is neither the gateway nor taken."""
    used = {IPv4Address(t) for t in taken}
    used.add(gateway)
    for host in subnet.hosts():
        if host not in used:
            return host
    raise UnavailableError(f"network {network}: all addresses of {subnet} are in use",
                           hint="give the network a larger ipam subnet")


def check_static_address(subnet: IPv4Network, gateway: IPv4Address, wanted: str,
                         taken: dict[str, str], *, network: str) -> IPv4Address:
    """A container's `ipv4_address`: inside the subnet, not the gateway, not someone else's."""
    try:
        ip = IPv4Address(wanted)
    except ValueError:
        raise SpecError(f"network {network}: ipv4_address {wanted!r} is not an IPv4 address") \
            from None
    if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address):
        raise SpecError(f"network {network}: ipv4_address {ip} is not a host address of {subnet}",
                        hint=f"pick one in {subnet}")
    if ip == gateway:
        raise ConflictError(f"network {network}: ipv4_address {ip} is the network's gateway")
    holder = taken.get(str(ip))
    if holder is not None:
        raise ConflictError(f"network {network}: ipv4_address {ip} is already used by "
                            f"container {holder}", hint="give each container its own address")
    return ip


def mac_for(ip: IPv4Address) -> str:
    """Docker's convention: 02:42 + the four address bytes, so a MAC tells its IP."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)
