"""Published ports for the host's own connections, decided once at connect().

A published port is an nftables DNAT rule (firewall.py), and that stays the whole
truth: it serves every path. For a TCP connection made on the host itself (127.0.0.1,
or any of the host's addresses) the daemon also attaches two small eBPF programs to
the root of the cgroup2 hierarchy, the way Cilium's socket load balancer does:

- connect4: a TCP connect() from the daemon's own network namespace to a published
  (address, port) is sent straight to one of its backends, picked round robin as the
  nftables rule picks them. The socket is then an ordinary connection to the
  container: no packet of it is NAT'ed, so it costs what a direct connection costs.
- getpeername4: such a socket still reports the address it was asked to connect to.

Anything the programs do not know (UDP, another namespace — a container's own
127.0.0.1 is not the host's —, a backend on another cluster node, more than
MAX_BACKENDS replicas, an address the host gained since the last change) takes the
nftables path as before. The maps follow the rules in the same step (`sync`), so the
two never disagree for longer than one change. The programs live as long as the
daemon's descriptors: if it dies, the kernel detaches them and DNAT alone serves.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address

from stackd.errors import UnavailableError
from stackd.netbridge.firewall import DnatRule, backends, by_port
from stackd.netbridge.model import ANY_ADDRESS
from stackd.runtime import ebpf
from stackd.runtime.cgroups import host_mounts
from stackd.runtime.ebpf import R0, R1, R2, R3, R4, R6, R7, R8, R9, R10

log = logging.getLogger(__name__)

MAX_BACKENDS = 16
# Kernel memory: the two hash maps grow as filled; the LRU map is allocated whole
# (~1.2 MB). Its oldest records go first: a socket connected 16,384 connections ago
# may then report its backend's address to getpeername.
_PORTS_MAX, _LOCALS_MAX, _SOCKETS_MAX = 4096, 1024, 16384
# struct bpf_sock_addr: where connect() and getpeername() keep the address.
_USER_IP4, _USER_PORT, _PROTOCOL = 4, 24, 36
_SO_NETNS_COOKIE = 71
_ANY = "0.0.0.0"


def endpoint(ip: str, port: int) -> bytes:
    """(address, port) as the programs read them from a socket: both in network order,
    the port in the low half of a 32-bit word."""
    return socket.inet_aton(ip) + struct.pack(">HH", port, 0)


def _value(to: Sequence[DnatRule]) -> bytes:
    """{count, round-robin counter, MAX_BACKENDS endpoints}"""
    pairs = b"".join(endpoint(r.container_ip, r.container_port) for r in to)
    return struct.pack("<II", len(to), 0) + pairs.ljust(8 * MAX_BACKENDS, b"\0")


def entries(dnats: Iterable[DnatRule]) -> dict[bytes, bytes]:
    """The ports map for these rules: published (address, port) → its backends. Only
    what the connect program can serve exactly as the DNAT rule would. Pure."""
    out = {}
    for (port, proto, host_ip), rules in by_port(dnats).items():
        to = backends(rules)
        if proto != "tcp" or any(r.remote for r in rules) or len(to) > MAX_BACKENDS:
            continue
        ip = _ANY if host_ip in ANY_ADDRESS else host_ip
        if ":" in ip:
            continue
        out[endpoint(ip, port)] = _value(to)
    return out


def _lookup(p: ebpf.Program, map_fd: int, key_at: int) -> None:
    """R0 = the map's value for the key on the stack at R10 + key_at, or 0."""
    p.load_map(R1, map_fd)
    p.mov(R2, R10)
    p.add_imm(R2, key_at)
    p.call(ebpf.HELPER_MAP_LOOKUP)


def _connect_program(ports: int, locals_: int, sockets: int, netns_cookie: int) -> ebpf.Program:
    p = ebpf.Program()
    p.mov(R6, R1)  # the socket address being connected to
    p.load32(R0, R6, _PROTOCOL)
    p.jump_if(R0, "!=", socket.IPPROTO_TCP, "pass")
    p.call(ebpf.HELPER_NETNS_COOKIE)
    p.load_imm64(R1, netns_cookie)
    p.jump_if_reg(R0, "!=", R1, "pass")
    p.load32(R7, R6, _USER_IP4)
    p.load32(R8, R6, _USER_PORT)
    p.store32(R10, -8, R7)
    p.store32(R10, -4, R8)
    _lookup(p, ports, -8)  # the exact (address, port) first
    p.jump_if(R0, "!=", 0, "found")
    p.mov(R1, R7)  # then a port published on every address, if this one is local
    p.and_imm(R1, 0xFF)
    p.jump_if(R1, "==", 127, "any")
    _lookup(p, locals_, -8)
    p.jump_if(R0, "==", 0, "pass")
    p.label("any")
    p.store32_imm(R10, -8, 0)
    _lookup(p, ports, -8)
    p.jump_if(R0, "==", 0, "pass")
    p.label("found")
    p.mov(R9, R0)
    p.load32(R1, R9, 0)  # how many backends
    p.jump_if(R1, "==", 0, "pass")
    p.mov_imm(R2, 1)
    p.fetch_add32(R9, 4, R2)  # the round robin's turn
    p.mod32(R2, R1)
    p.jump_if(R2, ">=", MAX_BACKENDS, "pass")
    p.lsh_imm(R2, 3)
    p.add(R9, R2)
    # What getpeername must answer for this socket: {asked, given}.
    p.store32(R10, -32, R7)
    p.store32(R10, -28, R8)
    p.load32(R1, R9, 8)
    p.store32(R10, -24, R1)
    p.load32(R1, R9, 12)
    p.store32(R10, -20, R1)
    p.mov(R1, R6)
    p.call(ebpf.HELPER_SOCKET_COOKIE)
    p.store64(R10, -16, R0)
    p.load_map(R1, sockets)
    p.mov(R2, R10)
    p.add_imm(R2, -16)
    p.mov(R3, R10)
    p.add_imm(R3, -32)
    p.mov_imm(R4, 0)
    p.call(ebpf.HELPER_MAP_UPDATE)
    p.load32(R1, R10, -24)
    p.store32(R6, _USER_IP4, R1)
    p.load32(R1, R10, -20)
    p.store32(R6, _USER_PORT, R1)
    p.label("pass")
    p.mov_imm(R0, 1)
    p.exit()
    return p


def _getpeername_program(sockets: int) -> ebpf.Program:
    p = ebpf.Program()
    p.mov(R6, R1)
    p.call(ebpf.HELPER_SOCKET_COOKIE)
    p.store64(R10, -8, R0)
    _lookup(p, sockets, -8)
    p.jump_if(R0, "==", 0, "pass")
    # Only while the peer is still the backend given at connect (cookies are unique,
    # but the record outlives a socket until the LRU map drops it).
    p.load32(R1, R0, 8)
    p.load32(R2, R6, _USER_IP4)
    p.jump_if_reg(R1, "!=", R2, "pass")
    p.load32(R1, R0, 12)
    p.load32(R2, R6, _USER_PORT)
    p.jump_if_reg(R1, "!=", R2, "pass")
    p.load32(R1, R0, 0)
    p.store32(R6, _USER_IP4, R1)
    p.load32(R1, R0, 4)
    p.store32(R6, _USER_PORT, R1)
    p.label("pass")
    p.mov_imm(R0, 1)
    p.exit()
    return p


def _netns_cookie() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        raw = s.getsockopt(socket.SOL_SOCKET, _SO_NETNS_COOKIE, 8)
    cookie: int = struct.unpack("=Q", raw)[0]
    return cookie


def _cgroup2_root() -> str:
    v2 = host_mounts().v2
    if v2 is None:
        raise UnavailableError("no cgroup2 filesystem is mounted",
                               hint="mount cgroup2 (e.g. at /sys/fs/cgroup/unified)")
    return str(v2)


def local_addresses() -> list[str]:
    """The host's IPv4 addresses, as `fib daddr type local` would match them (127/8
    is matched by the program itself)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return sorted({a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS")
                       for a in ipr.get_addr(family=socket.AF_INET)} - {None})


def _put(m: ebpf.HashMap, key: bytes, value: bytes) -> bool:
    """Whether the entry is in; a full map leaves the rest to DNAT, which serves all."""
    try:
        m.update(key, value)
        return True
    except OSError as err:
        log.warning("socket load balancer: %s; DNAT serves the rest", err.strerror)
        return False


class SocketBalancer:
    """The two programs and their maps, attached while this object is open."""

    def __init__(self) -> None:
        self._maps: list[ebpf.HashMap] = []
        self._fds: list[int] = []
        try:
            self.ports = self._map(ebpf.MAP_HASH, 8, 8 + 8 * MAX_BACKENDS, _PORTS_MAX,
                                   "stackd_ports", ebpf.MAP_NO_PREALLOC)
            self.locals = self._map(ebpf.MAP_HASH, 4, 4, _LOCALS_MAX, "stackd_locals",
                                    ebpf.MAP_NO_PREALLOC)
            self.sockets = self._map(ebpf.MAP_LRU_HASH, 8, 16, _SOCKETS_MAX, "stackd_socks")
            cgroup = _cgroup2_root()
            for program, attach, name in (
                    (_connect_program(self.ports.fd, self.locals.fd, self.sockets.fd,
                                      _netns_cookie()), ebpf.ATTACH_INET4_CONNECT,
                     "stackd_connect4"),
                    (_getpeername_program(self.sockets.fd), ebpf.ATTACH_INET4_GETPEERNAME,
                     "stackd_peer4")):
                prog = ebpf.load(program, prog_type=ebpf.PROG_CGROUP_SOCK_ADDR,
                                 attach_type=attach, name=name)
                self._fds.append(prog)
                self._fds.append(ebpf.link_cgroup(prog, cgroup, attach))
        except OSError as err:
            self.close()
            raise UnavailableError(f"cannot attach the socket load balancer: {err.strerror}",
                                   hint="published ports still work, through nftables "
                                   "DNAT alone (slower from the host itself); it needs a "
                                   "cgroup2 mount and a kernel with CONFIG_CGROUP_BPF "
                                   "(5.12 or later)") from None
        except BaseException:
            self.close()
            raise
        self._synced: dict[bytes, bytes] = {}
        self._local: set[bytes] = set()

    def _map(self, kind: int, key: int, value: int, entries_: int, name: str,
             flags: int = 0) -> ebpf.HashMap:
        m = ebpf.HashMap(kind, key, value, entries_, name, flags)
        self._maps.append(m)
        return m

    def sync(self, dnats: Sequence[DnatRule]) -> None:
        """Make the maps say what these rules say. Blocking (a few syscalls; a netlink
        dump of the host's addresses when a port is published on all of them)."""
        want = entries(dnats)
        wildcard = any(key.startswith(socket.inet_aton(_ANY)) for key in want)
        addresses = local_addresses() if wildcard else ()
        for key in self._synced.keys() - want.keys():
            self.ports.delete(key)
        for key, value in list(want.items()):
            if self._synced.get(key) != value and not _put(self.ports, key, value):
                del want[key]
        self._synced = want
        local = {socket.inet_aton(a) for a in addresses if not IPv4Address(a).is_loopback}
        for key in self._local - local:
            self.locals.delete(key)
        for key in local - self._local:
            if not _put(self.locals, key, key):
                local.discard(key)
        self._local = local

    def close(self) -> None:
        """Detach: the links first, so no connect sees a map half gone."""
        for fd in reversed(self._fds):
            os.close(fd)
        self._fds = []
        for m in self._maps:
            m.close()
        self._maps = []
