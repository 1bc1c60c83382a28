"""Who holds a host port: sockets of host processes, read from /proc.

Published ports are DNAT rules, which bind nothing; a host process listening on the
same port would silently stop receiving outside connections. So before publishing we
look for listeners ourselves and report who they are.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from stackd.netbridge.model import ANY_ADDRESS

TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"


@dataclass(frozen=True, slots=True)
class Listener:
    protocol: str
    ip: str
    port: int
    inode: int


def _addr(hexaddr: str) -> tuple[str, int]:
    ip_hex, port_hex = hexaddr.split(":")
    raw = bytes.fromhex(ip_hex)
    if len(raw) == 4:
        ip = str(IPv4Address(raw[::-1]))
    else:  # four little-endian 32-bit words
        ip = str(IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))))
    return ip, int(port_hex, 16)


def parse_proc_net(text: str, protocol: str) -> list[Listener]:
    """Listening (tcp) or bound unconnected (udp) sockets in one /proc/net/{tcp,udp}[6] file."""
    wanted = TCP_LISTEN if protocol == "tcp" else UDP_UNCONNECTED
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != wanted:
            continue
        ip, port = _addr(fields[1])
        found.append(Listener(protocol, ip, port, int(fields[9])))
    return found


def kernel_free_port(host_ip: str, protocol: str) -> int:
    """A port no socket of the host holds on `host_ip` ("" or 0.0.0.0: on any address)
    for `protocol`, as the kernel hands out an ephemeral one (from
    net.ipv4.ip_local_port_range). Nothing keeps it: the caller checks and claims it."""
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host_ip if host_ip not in ANY_ADDRESS else "0.0.0.0", 0))
        port: int = s.getsockname()[1]
        return port


def listeners(protocol: str, proc: Path = Path("/proc")) -> list[Listener]:
    found = []
    for suffix in ("", "6"):
        try:
            found += parse_proc_net((proc / "net" / f"{protocol}{suffix}").read_text(), protocol)
        except FileNotFoundError:
            pass
    return found


def conflicts(host_ip: str, listener_ip: str) -> bool:
    return host_ip in ANY_ADDRESS or listener_ip in ANY_ADDRESS or listener_ip == host_ip \
        or listener_ip == f"::ffff:{host_ip}"


def holder(inode: int, proc: Path = Path("/proc")) -> str:
    """'pid 123 (nginx)' for the process owning a socket inode, or 'a host process'."""
    target = f"socket:[{inode}]"
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) == target:
                    comm = (entry / "comm").read_text().strip()
                    return f"pid {entry.name} ({comm})"
        except OSError:
            continue
    return "a host process"
