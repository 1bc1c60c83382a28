"""The runtime client connects to a monitor whose accept queue is full.

A single-threaded monitor busy with a create does not accept for a while; many
clients at once (an `up` of 50 services) then fill its queue. On a unix socket the
overflowing connects fail with EAGAIN, and a client that took that for "in progress"
sent into an unconnected socket: `up` failed with "the monitor closed the connection".
"""

from __future__ import annotations

import socket

import trio

from stackd.runtime.client import _open_unix


async def test_clients_wait_for_a_full_accept_queue(tmp_path):
    path = str(tmp_path / "busy.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(0)  # the queue holds one; the rest must wait
    clients = 8
    answers: list[bytes] = []

    async def client(i: int) -> None:
        stream = await _open_unix(path)
        async with stream:
            await stream.send_all(b"%d\n" % i)
            answers.append(await stream.receive_some(100))

    async def busy_then_serve() -> None:
        await trio.sleep(0.3)  # busy: every client is queued or refused by now
        server = trio.socket.from_stdlib_socket(listener)
        for _ in range(clients):
            conn, _ = await server.accept()
            with conn:
                data = await conn.recv(100)
                await conn.send(b"ok " + data)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(busy_then_serve)
            for i in range(clients):
                nursery.start_soon(client, i)
    listener.close()
    assert sorted(answers) == sorted(b"ok %d\n" % i for i in range(clients))
