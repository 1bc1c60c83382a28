"""A loopback TCP proxy a test can cut and heal: a network partition between one
client and its server without touching any interface. Runs in the test's trio run."""

from __future__ import annotations

import socket

import trio


class Cuttable:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self._scope: trio.CancelScope | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _pipe(self, src: trio.SocketStream, dst: trio.SocketStream) -> None:
        try:
            async for chunk in src:
                await dst.send_all(chunk)
            await dst.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def _handle(self, client: trio.SocketStream) -> None:
        up = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        async with client, up, trio.open_nursery() as n:
            n.start_soon(self._pipe, client, up)
            n.start_soon(self._pipe, up, client)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        """Forward until cut (every connection dropped, new ones refused); serving
        again on the same port heals the cut."""
        with trio.CancelScope() as self._scope:
            listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
            async with trio.open_nursery() as n:
                await n.start(trio.serve_listeners, self._handle, listeners)
                task_status.started()

    def cut(self) -> None:
        assert self._scope is not None
        self._scope.cancel()
