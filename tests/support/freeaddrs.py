"""Host ports and subnets for one test, taken at run time from what is free.

Two complete test runs may share a machine, so nothing here is a fixed number or a
number derived from the root id: ports are random picks checked free, subnets those
the host routes nowhere. Between the pick and the use another run could still take
the same one; the odds are small (a random pick among thousands), and the callers
that can say so retry on the ConflictError stackd then raises.

Ports come from below the kernel's ephemeral range: a port from it (bind port 0) was
also what the kernel hands any outgoing connection, and one made between the pick and
the use took an etcd member's port ("address already in use") in a full run.
"""

from __future__ import annotations

import random
import shutil
import socket
from ipaddress import IPv4Network

from stackd.netbridge import boundaddrs, firewall, links

# Outside stackd's default address pool (10.192.0.0/12), so a test's own subnets never
# take what a stackd network of another run would choose.
TEST_POOL = IPv4Network("10.208.0.0/15")


def _published_ports() -> set[int]:
    """Host ports some stackd root (of any run) publishes now."""
    if shutil.which("nft") is None:
        return set()  # then no root publishes anything
    return {port for _, port, _, _ in firewall.foreign_dnats("")}


def free_port() -> int:
    """A port nothing listens on or is bound to (TCP and UDP, any address) and no
    stackd root publishes."""
    return free_ports(1)


def free_ports(count: int) -> int:
    """The first of `count` consecutive ports, each free as free_port says."""
    published = _published_ports()
    low, _high = _ephemeral_range()
    for _ in range(100):
        held: list[socket.socket] = []
        try:
            first = (random.randrange(FIRST_PORT, low - count) if low - count > FIRST_PORT
                     else _kernels_pick())  # a host whose ephemeral range starts low
            wanted = range(first, first + count)
            if all(_bind(p, socket.SOCK_DGRAM, held) for p in wanted) and \
                    all(_bind(p, socket.SOCK_STREAM, held) for p in wanted) and \
                    not published.intersection(wanted):
                return first
        finally:
            for s in held:
                s.close()
    raise AssertionError(f"found no {count} consecutive free ports in 100 tries")


FIRST_PORT = 20000  # above the well-known and registered ports services listen on


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    return low, high


def _kernels_pick() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def _bind(port: int, kind: socket.SocketKind, held: list[socket.socket]) -> int:
    """Bind `port` (0: the kernel picks) on all addresses, keeping the socket in
    `held`; the port, or 0 if it is taken."""
    s = socket.socket(socket.AF_INET, kind)
    held.append(s)
    try:
        s.bind(("0.0.0.0", port))
    except OSError:
        return 0
    return int(s.getsockname()[1])


def free_subnet(prefixlen: int = 24, pool: IPv4Network = TEST_POOL) -> IPv4Network:
    """A random /prefixlen of `pool` that overlaps nothing the host routes now, nor an
    address a socket is bound to."""
    routed = [*links.routed_subnets(), *boundaddrs.as_networks(boundaddrs.bound_addresses())]
    candidates = [n for n in pool.subnets(new_prefix=prefixlen)
                  if not any(n.overlaps(r) for r in routed)]
    if not candidates:
        raise AssertionError(f"no free /{prefixlen} left in {pool}")
    return random.choice(candidates)
