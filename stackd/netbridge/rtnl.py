"""The few rtnetlink requests made once per container, encoded by hand.

pyroute2's synchronous API runs an asyncio event loop for every handle and every
request: opening a handle, a request and closing it again cost ~10 ms of CPU under the
GIL, 30 of them per container. An `up -d` of 50 services spent most of its time there
(docs/performance.md). These requests are fixed in shape, so they are packed here with
`struct`: one netlink socket per thread for the host's namespace, kept for the thread's
life, and a socket opened inside a container's namespace for the requests made there.

Blocking functions, like links.py; errors are `RtnlError` (an OSError with the errno the
kernel answered), which links.py turns into a HostError.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
from ipaddress import IPv4Address

NETLINK_ROUTE = 0
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 20, 24
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD = 18, 20, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFLA_INFO_SLAVE_DATA, IFLA_BRPORT_MODE, IFLA_BRPORT_ISOLATED = 5, 4, 33
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_GATEWAY = 1, 5
IFF_UP = 0x1
AF_INET = socket.AF_INET
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg


class RtnlError(OSError):
    """The kernel refused a request (errno set), or its answer made no sense."""


def attr(kind: int, payload: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _string(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def _u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def _mac(value: str) -> bytes:
    return bytes(int(part, 16) for part in value.split(":"))


def ifinfo(index: int = 0, *, up: bool = False) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, IFF_UP if up else 0)


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return _HEADER.pack(_HEADER.size + len(body), kind, flags | NLM_F_REQUEST | NLM_F_ACK,
                        seq, 0) + body


def ack_errno(data: bytes, seq: int) -> int | None:
    """The errno of the acknowledgement for `seq` in `data` (0: done), None if none."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, _, got_seq, _ = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            raise RtnlError(errno.EPROTO, "a truncated netlink answer")
        if kind == NLMSG_ERROR and got_seq == seq:
            (code,) = struct.unpack_from("=i", data, offset + _HEADER.size)
            return -int(code)
        offset += (length + 3) & ~3
    return None


class Socket:
    """A NETLINK_ROUTE socket of the namespace the thread was in when it was opened."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                   NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __del__(self) -> None:  # a thread's kept socket, as its thread ends
        sock = getattr(self, "_sock", None)  # None if opening it failed
        if sock is not None:
            sock.close()

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, kind: int, flags: int, body: bytes) -> None:
        self._seq += 1
        self._sock.send(message(kind, flags, self._seq, body))
        while True:
            code = ack_errno(self._sock.recv(65536), self._seq)
            if code is None:
                continue
            if code:
                raise RtnlError(code, os.strerror(code))
            return

    # the requests
    def set_link(self, index: int, *, up: bool = False, alias: str | None = None,
                 hairpin: bool = False, isolated: bool = False) -> None:
        """hairpin: the device is a bridge's port; its hairpin mode is turned on in the
        same request (the bridge's own port options, under the rtnl lock the request
        already holds). Its sysfs file instead takes that lock with a trylock and restarts
        the write while another request holds it: on a busy host, a spin. isolated: a
        bridge port's isolation, set the same way."""
        port = ((attr(IFLA_BRPORT_MODE, b"\1") if hairpin else b"")
                + (attr(IFLA_BRPORT_ISOLATED, b"\1") if isolated else b""))
        self.request(RTM_NEWLINK, 0, ifinfo(index, up=up)
                     + (_string(IFLA_IFALIAS, alias) if alias is not None else b"")
                     + (attr(IFLA_LINKINFO, attr(IFLA_INFO_SLAVE_DATA, port)) if port else b""))

    def delete_link(self, index: int) -> None:
        self.request(RTM_DELLINK, 0, ifinfo(index))

    def add_veth(self, *, ifname: str, mtu: int, master: int, peer_ifname: str,
                 peer_mac: str, peer_netns_fd: int) -> None:
        peer = (ifinfo() + _string(IFLA_IFNAME, peer_ifname) + _u32(IFLA_MTU, mtu)
                + attr(IFLA_ADDRESS, _mac(peer_mac)) + _u32(IFLA_NET_NS_FD, peer_netns_fd))
        info = (_string(IFLA_INFO_KIND, "veth")
                + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer)))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL,
                     ifinfo() + _string(IFLA_IFNAME, ifname) + _u32(IFLA_MTU, mtu)
                     + _u32(IFLA_MASTER, master) + attr(IFLA_LINKINFO, info))

    def add_address(self, index: int, ip: str, prefixlen: int) -> None:
        packed = IPv4Address(ip).packed
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL,
                     _IFADDR.pack(AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
                     + attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed))

    def replace_default_route(self, gateway: str) -> None:
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE,
                     _RTMSG.pack(AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT,
                                 RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
                     + attr(RTA_GATEWAY, IPv4Address(gateway).packed))


_threads = threading.local()


def host() -> Socket:
    """This thread's socket in the host's namespace, opened on first use and kept.

    Call it only while the thread is in its own namespace (not inside
    `netns.entered`): a socket belongs to the namespace it was opened in.
    """
    sock: Socket | None = getattr(_threads, "sock", None)
    if sock is None:
        sock = _threads.sock = Socket()
    return sock
