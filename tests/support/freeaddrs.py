"""Host ports and subnets for one test, taken at run time from what is free.

Two complete test runs may share a machine, so nothing here is a fixed number or a
number derived from the root id: ports come from the kernel (bind port 0), subnets
from those the host routes nowhere. Between the pick and the use another run could
still take the same one; the odds are small (a random pick among thousands), and the
callers that can say so retry on the ConflictError stackd then raises.
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
    for _ in range(100):
        held: list[socket.socket] = []
        try:
            first = _bind(0, socket.SOCK_STREAM, held)
            wanted = range(first, first + count)
            if all(_bind(p, socket.SOCK_DGRAM, held) for p in wanted) and \
                    all(_bind(p, socket.SOCK_STREAM, held) for p in wanted[1:]) and \
                    not published.intersection(wanted):
                return first
        finally:
            for s in held:
                s.close()
    raise AssertionError(f"found no {count} consecutive free ports in 100 tries")


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
