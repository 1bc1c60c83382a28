"""IPv4 addresses some socket on the host is bound to, from /proc/net.

A subnet nobody routes may still be claimed: a resolver binds its network's gateway
with IP_FREEBIND, so its socket outlives the bridge for a moment after a network is
removed (and for as long as a crashed root's resolver lives). Another root choosing
that subnet would make a bridge whose DNS cannot listen (EADDRINUSE), so subnet choice
treats bound addresses as taken.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

_TABLES = ("udp", "tcp", "raw")


def parse_proc_net(text: str) -> set[IPv4Address]:
    """Local addresses of a /proc/net/{udp,tcp,raw} table, wildcard and loopback aside.

    The kernel prints each address as the hex of its 32-bit value in host byte order.
    """
    found = set()
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 2 or ":" not in fields[1]:
            continue
        raw = fields[1].split(":", 1)[0]
        try:
            addr = IPv4Address(socket.inet_ntoa(struct.pack("=I", int(raw, 16))))
        except (ValueError, struct.error):
            continue
        if not (addr.is_unspecified or addr.is_loopback):
            found.add(addr)
    return found


def bound_addresses(proc_net: Path = Path("/proc/net")) -> set[IPv4Address]:
    """Every IPv4 address a socket in this network namespace is bound to."""
    found: set[IPv4Address] = set()
    for table in _TABLES:
        try:
            found |= parse_proc_net((proc_net / table).read_text())
        except OSError:
            continue
    return found


def as_networks(addresses: Iterable[IPv4Address]) -> list[IPv4Network]:
    return sorted(IPv4Network(a) for a in addresses)
