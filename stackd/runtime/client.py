"""Talking to the monitor from trio, and starting it when it is not running."""

from __future__ import annotations

import json
import socket
from typing import Any

import trio

from stackd import detached
from stackd.errors import UnavailableError
from stackd.roots import Roots
from stackd.runtime import protocol
from stackd.runtime.layout import MonitorPaths

CONNECT_ATTEMPTS = 50
IDLE_RACE_RETRIES = 3


class MonitorClient:
    def __init__(self, roots: Roots) -> None:
        self.roots = roots
        self.paths = MonitorPaths(roots.run)
        self._spawn_lock = trio.Lock()

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request, return its reply; StackdErrors from the monitor re-raised."""
        for _ in range(IDLE_RACE_RETRIES):
            buf = await self._exchange(message)
            if buf:
                break
            # Closed without a byte: we reached a monitor in the instant it shut down
            # for being idle (it had not read the request). A new one will answer.
        else:
            raise UnavailableError(
                f"the runtime monitor for {self.roots.run} closed the connection",
                hint=f"see {self.paths.log}")
        reply: dict[str, Any] = json.loads(buf)
        protocol.raise_error(reply)
        return reply

    async def hold(self) -> None:
        """Keep the monitor from exiting while idle, for as long as this task runs (a
        daemon's lifetime). Returns when the monitor goes away (asked to shut down,
        or killed); the caller decides whether to hold the next one."""
        stream = await self._connect()
        async with stream:
            await stream.send_all(protocol.encode({"op": "hold"}))
            while await stream.receive_some(65536):
                pass  # an old monitor answers "unknown request": then it just ends

    async def _exchange(self, message: dict[str, Any]) -> bytes:
        stream = await self._connect()
        buf = b""
        async with stream:
            try:
                await stream.send_all(protocol.encode(message))
                while not buf.endswith(b"\n"):
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        if buf:
                            raise UnavailableError(
                                f"the runtime monitor for {self.roots.run} broke off its reply",
                                hint=f"see {self.paths.log}")
                        return b""
                    buf += chunk
            except (trio.BrokenResourceError, ConnectionResetError):
                if buf:
                    raise
                return b""
        return buf

    async def _connect(self) -> trio.SocketStream:
        for _ in range(CONNECT_ATTEMPTS):
            try:
                return await _open_unix(str(self.paths.socket))
            except (FileNotFoundError, ConnectionRefusedError):
                async with self._spawn_lock:
                    if not await self.answers():
                        await self._spawn()
        raise UnavailableError(f"cannot reach the runtime monitor at {self.paths.socket}",
                               hint=f"see {self.paths.log}")

    async def answers(self) -> bool:
        """Does a monitor listen right now? (Never starts one.)"""
        try:
            stream = await trio.open_unix_socket(str(self.paths.socket))
        except OSError:
            return False
        await stream.aclose()
        return True

    def alive(self) -> bool:
        """Does a monitor process live (serving, or starting)? Its lock says, without
        a word to it: never a connection to a busy monitor."""
        return detached.held(self.paths.lock)

    async def _spawn(self) -> None:
        self.roots.ensure()
        await detached.spawn("stackd.runtime.monitor", self.roots, self.paths.log,
                             what="runtime monitor")


async def _open_unix(path: str) -> trio.SocketStream:
    """Connect, waiting while the monitor's accept queue is full.

    On a unix socket a full queue makes a non-blocking connect fail with EAGAIN: there
    is no connection in progress to wait for (trio.open_unix_socket takes the socket's
    writability for success, and the first send then fails with ENOTCONN). The monitor
    is busy, not gone: try again shortly, for as long as it takes.
    """
    delay = 0.001
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.connect(path)
        except BlockingIOError:
            sock.close()
            await trio.sleep(delay)
            delay = min(delay * 2, 0.05)
            continue
        except BaseException:
            sock.close()
            raise
        return trio.SocketStream(trio.socket.from_stdlib_socket(sock))
