"""recvmmsg/sendmmsg batches on real loopback sockets: every datagram of a batch is
read whole with its sender, and each reply reaches the sender it was queued for."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from stackd.netbridge.udpbatch import SIZE, SLOTS, DatagramBatch, address_key


@pytest.fixture
def server() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    with s:
        yield s


def _clients(server: socket.socket, n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.connect(server.getsockname())
        c.settimeout(2)
        out.append(c)
    return out


def test_nothing_waiting_is_zero(server: socket.socket) -> None:
    assert DatagramBatch().receive(server) == 0


def test_a_batch_answers_each_sender_and_more_than_a_batch_waits(server: socket.socket
                                                                  ) -> None:
    clients = _clients(server, 3)
    try:
        sent = {}
        for i in range(SLOTS + 5):  # more than one call can take
            c = clients[i % 3]
            payload = f"query {i} ".encode() * (i + 1)
            c.send(payload)
            sent[payload] = c.getsockname()
        batch, got = DatagramBatch(), {}
        for _ in range(4):
            n = batch.receive(server)
            assert 0 <= n <= SLOTS
            for k in range(n):
                data = batch.datagram(k)
                got[data] = batch.source(k)
                assert batch.source_ip(k) == "127.0.0.1"
                assert batch.reply(k, b"re: " + data)
            batch.flush(server)
        assert got == sent  # every datagram once, whole, with its own sender
        for c in clients:
            replies = []
            for _ in range(sum(1 for addr in sent.values() if addr == c.getsockname())):
                replies.append(c.recv(SIZE))
            assert sorted(replies) == sorted(b"re: " + p for p, a in sent.items()
                                             if a == c.getsockname())
    finally:
        for c in clients:
            c.close()


def test_a_reply_too_long_is_not_queued(server: socket.socket) -> None:
    (client,) = _clients(server, 1)
    with client:
        client.send(b"q")
        batch = DatagramBatch()
        assert batch.receive(server) == 1
        assert not batch.reply(0, b"x" * (SIZE + 1))
        assert batch.reply(0, b"short")
        batch.flush(server)
        assert client.recv(SIZE) == b"short"


def test_a_queued_socket_error_is_taken_off_and_serving_goes_on() -> None:
    """Only a connected UDP socket is told of an ICMP error (without IP_RECVERR), so
    the error is made on one; the batch reads any socket alike."""
    gone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gone.bind(("127.0.0.1", 0))
    addr = gone.getsockname()
    gone.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(addr)
        sock.setblocking(False)
        sock.send(b"to nobody")  # loopback answers with ICMP port unreachable
        batch = DatagramBatch()
        assert batch.receive(sock) == -1  # the error, taken off the socket
        assert batch.receive(sock) == 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind(addr)  # the port is served again
            peer.sendto(b"after", sock.getsockname())
            n = 0
            for _ in range(100):
                n = batch.receive(sock)
                if n:
                    break
            assert n == 1 and batch.datagram(0) == b"after"


def test_a_cached_reply_goes_out_after_each_datagrams_own_id(server: socket.socket) -> None:
    """The resolver's hot path: the key of a datagram is its sender's address (as
    `address_key` makes it from the dotted form) and its bytes after the ID; the reply
    is the datagram's own ID, then the cached tail."""
    clients = _clients(server, 2)
    try:
        for i, c in enumerate(clients):
            c.send(bytes([0xAB, i]) + b"question")
        batch = DatagramBatch()
        assert batch.receive(server) == 2
        for k in range(2):
            assert batch.tail(k) == b"question"
            assert batch.source_key(k) == address_key("127.0.0.1")
            assert batch.reply_after_id(k, b"-answer")
        assert not batch.reply_after_id(0, b"x" * (SIZE - 1))  # with its ID, too long
        batch.flush(server)
        assert [c.recv(SIZE) for c in clients] == [b"\xab\x00-answer", b"\xab\x01-answer"]
    finally:
        for c in clients:
            c.close()
    assert address_key("10.1.2.3") != address_key("10.1.2.4")
