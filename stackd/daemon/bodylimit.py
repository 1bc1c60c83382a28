"""A cap on request bodies, before anything parses them.

The largest real request is an apply carrying a stack file read from stdin (4 MB at
most) and the client's environment; anything over MAX_BODY is answered 413 without
being kept in memory: refused on its Content-Length when it has one, else counted as
it arrives. The rest of an oversized body is read and dropped (up to DRAIN_LIMIT), so
a client that writes its whole body before reading, as most do, gets the 413 rather
than a broken pipe.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from stackd.daemon import wire
from stackd.errors import UsageError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 16 * 1024 * 1024
DRAIN_LIMIT = 1024 * 1024 * 1024


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1:
            await _error(send, 400, "invalid Content-Length header")
            return
        if declared is not None and declared > self.limit:
            await _drain(receive, 0)
            await _too_large(send, self.limit)
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body = message.get("body", b"")
            seen += len(body)
            if seen > self.limit:
                chunks.clear()
                if message.get("more_body", False):
                    await _drain(receive, seen)
                await _too_large(send, self.limit)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # a disconnect, for streaming responses

        await self.app(scope, replay, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                n = int(value)
            except ValueError:
                return -1
            return n if n >= 0 else -1
    return None


async def _drain(receive: Receive, seen: int) -> None:
    while seen <= DRAIN_LIMIT:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _too_large(send: Send, limit: int) -> None:
    await _error(send, 413, f"request body larger than {limit // (1024 * 1024)} MiB",
                 hint="a stack file on stdin must stay under 4 MB")


async def _error(send: Send, status: int, message: str, hint: str | None = None) -> None:
    body = json.dumps(wire.error_body(UsageError(message, hint=hint))).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
