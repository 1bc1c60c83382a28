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
        from stackd.netbridge.dnscache import Cached

        batch = DatagramBatch()
        assert batch.receive(server) == 2
        known = {(address_key("127.0.0.1"), b"question"): Cached("q", (b"-answer",))}
        assert batch.reply_known(2, known, lambda name: 0) == []
        too_long = {(address_key("127.0.0.1"), b"question"): Cached("q", (b"x" * (SIZE - 1),))}
        assert batch.reply_known(1, too_long, lambda name: 0) == [0]  # with its ID
        batch.flush(server)
        assert [c.recv(SIZE) for c in clients] == [b"\xab\x00-answer", b"\xab\x01-answer"]
    finally:
        for c in clients:
            c.close()
    assert address_key("10.1.2.3") != address_key("10.1.2.4")


def test_known_queries_are_answered_in_one_call_and_the_rest_handed_back(
        server: socket.socket) -> None:
    """`reply_known`, the resolver's hot loop: a datagram whose (sender, bytes after
    its first two) is known gets its own first two bytes and the known tail (one of
    several, by the name's turn); the others come back in order, unanswered."""
    from stackd.netbridge.dnscache import Cached

    a, b = _clients(server, 2)
    with a, b:
        key = address_key("127.0.0.1")
        known = {(key, b"-one"): Cached("one", (b"+1",)),
                 (key, b"-two"): Cached("two", (b"+2a", b"+2b"))}
        turns: list[str] = []

        def turn(name: str) -> int:
            turns.append(name)
            return len(turns)

        for client, payload in ((a, b"A1-one"), (b, b"B1-nope"), (a, b"A2-two"),
                                (b, b"B2-two"), (a, b"A3")):
            client.send(payload)
        batch = DatagramBatch()
        assert batch.receive(server) == 5
        assert batch.reply_known(5, known, turn) == [1, 4]
        assert [batch.datagram(k) for k in (1, 4)] == [b"B1-nope", b"A3"]
        assert turns == ["two", "two"]  # one name with a single tail takes no turn
        batch.flush(server)
        assert sorted(a.recv(SIZE) for _ in range(2)) == [b"A1+1", b"A2+2b"]
        assert b.recv(SIZE) == b"B2+2a"
