"""Many UDP datagrams per system call: recvmmsg(2) in, sendmmsg(2) out (IPv4).

The resolver's hot path is mostly the kernel's: a query answered from the cache costs
a few µs of Python and two system calls, each of which also does the loopback
delivery. Receiving up to `SLOTS` queries in one call and sending their answers in
one more takes the per-call cost off each datagram (issue #20: the resolver against
dnsmasq's q/s; docs/performance.md). One `DatagramBatch` serves every socket of a
listener's thread, which receives, answers and flushes it.

A datagram longer than `SIZE` is cut, as `recvfrom(4096)` did before; a DNS query
over UDP is at most a few hundred bytes. A reply longer than `SIZE` is not queued
(`reply` says so) and the caller sends it on its own.

A batch is not shared: the resolver gives each listener's thread its own.
"""

from __future__ import annotations

import ctypes
import errno
import socket
import sys

from stackd.runtime.syscalls import mmsg_functions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Protocol

    class Known(Protocol):
        """An answer cache's entry: reply tails, and the name whose turn picks one."""

        @property
        def name(self) -> str: ...
        @property
        def tails(self) -> tuple[bytes, ...]: ...

# Datagrams per call. Fewer than the 64 a client may have in flight, on purpose: the
# replies of a batch go out only when all of it is answered, and with 16 the client
# reads the first replies while we answer the next 16 (measured: 4 and 32 slower).
SLOTS = 16
SIZE = 4096
_SOCKADDR_IN = 16
_MSG_DONTWAIT = 0x40
_MSG_WAITFORONE = 0x10000
# struct mmsghdr on a 64-bit Linux: msghdr (56 bytes) then msg_len and padding; viewed
# as uint32 the k-th header's msg_namelen is word 16k+2 and its msg_len word 16k+14,
# viewed as uint64 its msg_name is word 8k. struct iovec: iov_len is uint64 word 2k+1.
_HEADER = 64
_NAMELEN, _MSGLEN, _NAME, _IOVLEN = 2, 14, 0, 1


def address_key(ip: str) -> int:
    """An IPv4 address as the kernel writes a sender's (`reply_known`'s keys): a
    cheap key."""
    return int.from_bytes(socket.inet_aton(ip), sys.byteorder)


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    """struct mmsghdr: a struct msghdr and the length the kernel got or sent."""

    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.c_void_p), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int), ("_pad", ctypes.c_int),  # msghdr ends here
                ("len", ctypes.c_uint32), ("_pad2", ctypes.c_uint32)]


def _address(buf: bytearray) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


class DatagramBatch:
    """Receive up to SLOTS datagrams, then queue replies to their senders and flush."""

    def __init__(self) -> None:
        if ctypes.sizeof(_Msghdr) != _HEADER:
            raise OSError(errno.ENOSYS, "recvmmsg: unexpected struct mmsghdr layout")
        self._recv, self._send = mmsg_functions()
        self._in = bytearray(SLOTS * SIZE)
        self._out = bytearray(SLOTS * SIZE)
        self._names = bytearray(SLOTS * _SOCKADDR_IN)
        self._in_view, self._out_view = memoryview(self._in), memoryview(self._out)
        self._names_view = memoryview(self._names)
        self._names_words = self._names_view.cast("I")  # sin_addr: word 4k+1
        in_iov, self._out_iov = (_Iovec * SLOTS)(), (_Iovec * SLOTS)()
        self._in_msgs, self._out_msgs = (_Msghdr * SLOTS)(), (_Msghdr * SLOTS)()
        in_base, out_base, names = _address(self._in), _address(self._out), _address(self._names)
        for k in range(SLOTS):
            in_iov[k].base, in_iov[k].len = in_base + k * SIZE, SIZE
            self._out_iov[k].base = out_base + k * SIZE
            m = self._in_msgs[k]
            m.name, m.namelen = names + k * _SOCKADDR_IN, _SOCKADDR_IN
            m.iov, m.iovlen = ctypes.addressof(in_iov[k]), 1
            o = self._out_msgs[k]
            o.namelen, o.iov, o.iovlen = _SOCKADDR_IN, ctypes.addressof(self._out_iov[k]), 1
        self._in_iov = in_iov  # kept alive: the headers point into it
        self._in_words = memoryview(self._in_msgs).cast("B").cast("I")
        self._out_names = memoryview(self._out_msgs).cast("B").cast("Q")
        self._out_lens = memoryview(self._out_iov).cast("B").cast("Q")
        self._names_base = names
        self._in_ptr = ctypes.addressof(self._in_msgs)
        self._out_ptr = ctypes.addressof(self._out_msgs)
        self._queued = 0

    def receive(self, sock: socket.socket, *, wait: bool = False) -> int:
        """How many datagrams arrived: 0 when none is waiting, -1 when the call took an
        error the socket had queued (an ICMP error of an earlier send) and may be made
        again at once. wait (a blocking socket): sleep in the call until one comes,
        then take what else is there."""
        n: int = self._recv(sock.fileno(), self._in_ptr, SLOTS,
                            _MSG_WAITFORONE if wait else _MSG_DONTWAIT, None)
        if n < 0:
            return 0 if ctypes.get_errno() in (errno.EAGAIN, errno.EINTR) else -1
        words = self._in_words
        for k in range(n):  # the kernel wrote each sender's length here; ready the next call
            words[16 * k + _NAMELEN] = _SOCKADDR_IN
        return n

    def datagram(self, k: int) -> bytes:
        return bytes(self._in_view[k * SIZE:self._end(k)])

    def _end(self, k: int) -> int:
        """Where datagram k ends in the receive buffer (cut at SIZE)."""
        return k * SIZE + min(self._in_words[16 * k + _MSGLEN], SIZE)

    def source_ip(self, k: int) -> str:
        return socket.inet_ntoa(self._names_view[k * _SOCKADDR_IN + 4:k * _SOCKADDR_IN + 8])

    def source(self, k: int) -> tuple[str, int]:
        at = k * _SOCKADDR_IN
        return (socket.inet_ntoa(self._names_view[at + 4:at + 8]),
                int.from_bytes(self._names_view[at + 2:at + 4], "big"))

    def reply_known(self, n: int, known: Mapping[tuple[int, bytes], Known],
                    turn: Callable[[str], int]) -> list[int]:
        """Queue, for each of the first n datagrams whose (sender as `source_key`
        gives it, bytes after the first two) is in `known`, its first two bytes and
        then one of the known tails (`turn(name)` picks among several); → the
        indices of the others, in order. The resolver's hot loop, written out in one
        call: at ~250k queries a second, a method call or two per query was a third
        of its Python (docs/performance.md)."""
        others: list[int] = []
        in_view, out_view, in_words = self._in_view, self._out_view, self._in_words
        names_words, out_lens, out_names = self._names_words, self._out_lens, self._out_names
        names_base = self._names_base
        j = self._queued
        for k in range(n):
            at = k * SIZE
            end = at + min(in_words[16 * k + _MSGLEN], SIZE)
            entry = known.get((names_words[4 * k + 1], bytes(in_view[at + 2:end])))
            if entry is None or not entry.tails:
                others.append(k)
                continue
            tails = entry.tails
            tail = tails[0] if len(tails) == 1 else tails[turn(entry.name) % len(tails)]
            size = len(tail) + 2
            if size > SIZE:
                others.append(k)
                continue
            to = j * SIZE
            out_lens[2 * j + _IOVLEN] = size
            out_names[8 * j + _NAME] = names_base + k * _SOCKADDR_IN
            out_view[to:to + 2] = in_view[at:at + 2]
            out_view[to + 2:to + size] = tail
            j += 1
        self._queued = j
        return others

    def reply(self, k: int, data: bytes) -> bool:
        """Queue `data` to the sender of datagram k; False if it is too long to."""
        at = self._slot(k, len(data))
        if at < 0:
            return False
        self._out_view[at:at + len(data)] = data
        return True

    def _slot(self, k: int, size: int) -> int:
        """Queue a reply of `size` bytes to datagram k's sender; → where in the send
        buffer to write it, or -1 if it is too long to queue."""
        if size > SIZE:
            return -1
        j = self._queued
        self._out_lens[2 * j + _IOVLEN] = size
        self._out_names[8 * j + _NAME] = self._names_base + k * _SOCKADDR_IN
        self._queued = j + 1
        return j * SIZE

    def flush(self, sock: socket.socket) -> None:
        """Send what is queued. A full send buffer drops the rest, as the network could;
        the clients ask again."""
        fd, sent, total = sock.fileno(), 0, self._queued
        self._queued = 0
        while sent < total:
            n = self._send(fd, self._out_ptr + sent * _HEADER, total - sent, 0)
            if n < 0 and ctypes.get_errno() == errno.EINTR:
                continue
            # n < 0: the first of the rest failed (say, its sender is unreachable): it
            # is dropped and the others still go.
            sent += n if n > 0 else 1
