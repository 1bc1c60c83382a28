"""An NDJSON response whose items come from a safe channel it opens and closes itself.

A stream that runs tasks (events until a reconcile ends, `logs -f` of a stack's
containers) is a `trio.as_safe_channel`: its nursery lives inside the `async with`
that holds it. A generator handed to Starlette would be iterated, and abandoned, from
outside any such block; so the response opens the channel in the coroutine that sends
the body, and leaving (the stream done, the client gone, the daemon stopping) closes it
there (docs/daemon.md, trio's rules).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import trio
from starlette.responses import StreamingResponse
from starlette.types import Send

from stackd.daemon import wire
from stackd.daemon.controller import leaves
from stackd.errors import StackdError

Items = AbstractAsyncContextManager[AsyncIterable[dict[str, Any]] | AsyncIterable[wire.Batch]]


async def _nothing() -> Any:  # the iterator StreamingResponse wants, never read
    return
    yield


class ChannelStream(StreamingResponse):
    def __init__(self, open_items: Callable[[], Items]) -> None:
        super().__init__(_nothing(), media_type=wire.NDJSON)
        self._open = open_items

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        try:
            async with self._open() as items:
                async for item in items:
                    await send({"type": "http.response.body", "body": wire.ndjson_body(item),
                                "more_body": True})
        except StackdError as exc:
            await send({"type": "http.response.body",
                        "body": wire.ndjson_line(wire.error_body(exc)), "more_body": True})
        except BaseExceptionGroup as group:
            # A task of the stream failed in its nursery: the user reads its error, as
            # from a plain raise; a group holding anything else is a bug, and raised.
            found = leaves(group)
            first = next((e for e in found if isinstance(e, StackdError)), None)
            if first is None or not all(isinstance(e, (StackdError, trio.Cancelled))
                                        for e in found):
                raise
            await send({"type": "http.response.body",
                        "body": wire.ndjson_line(wire.error_body(first)), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
