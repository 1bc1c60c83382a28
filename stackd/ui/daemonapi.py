"""The console's side of the daemon's API: the same HTTP over the unix socket the CLI
speaks, with httpx (the console is a long-running server: its import time does not
matter, and it needs concurrent async requests, which the CLI's small client is not).

Every state-changing request names who asked (`X-Stackd-Actor`: the token's name),
so `stackd events` shows it. Errors come back as the daemon's typed StackdError.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from stackd.cli.client import ACTOR_HEADER
from stackd.daemon import wire
from stackd.errors import StackdError, UnavailableError, reason


class DaemonAPI:
    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(socket)), base_url="http://stackd",
            timeout=httpx.Timeout(60.0, read=None))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(self, path: str, **params: Any) -> Any:
        try:
            r = await self._client.get(path, params=wire.query_params(params))
        except httpx.TransportError as exc:
            raise _unavailable(self.socket, exc) from None
        return wire.decode_response(r.status_code, r.content)

    async def get_lines(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """A finite NDJSON answer (the kept events, `follow=false`) as its items."""
        stream = await self.open_stream("GET", path, **params)
        try:
            return [item async for item in stream.items()]
        finally:
            await stream.aclose()

    async def post(self, path: str, body: Any, *, actor: str, **params: Any) -> Any:
        try:
            r = await self._client.post(path, json=body, params=wire.query_params(params),
                                        headers={ACTOR_HEADER: actor})
        except httpx.TransportError as exc:
            raise _unavailable(self.socket, exc) from None
        return wire.decode_response(r.status_code, r.content)

    async def open_stream(self, method: str, path: str, *, body: Any = None,
                          actor: str | None = None, **params: Any) -> Stream:
        """A request whose answer is NDJSON; raises its error when the daemon refused
        it at once (no such stack, a bad count), else the open stream."""
        headers = {ACTOR_HEADER: actor} if actor is not None else {}
        request = self._client.build_request(method, path, params=wire.query_params(params),
                                             json=body, headers=headers)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise _unavailable(self.socket, exc) from None
        if response.status_code >= 400:
            data = await response.aread()
            await response.aclose()
            wire.decode_response(response.status_code, data)
        return Stream(response, self.socket)


class Stream:
    """An NDJSON answer being read: `items()` until its end, `aclose()` to leave."""

    def __init__(self, response: httpx.Response, socket: Path) -> None:
        self._response = response
        self._socket = socket

    async def items(self) -> AsyncIterator[dict[str, Any]]:
        try:
            async for line in self._response.aiter_lines():
                if not line.strip():
                    continue
                item = json.loads(line)
                if isinstance(item, dict) and "error" in item:
                    raise wire.error_from_body(item, 200)
                yield item
        except httpx.TransportError as exc:
            raise _unavailable(self._socket, exc) from None

    async def aclose(self) -> None:
        await self._response.aclose()






def _unavailable(socket: Path, exc: Exception) -> StackdError:
    return UnavailableError(f"the stackd daemon does not answer on {socket}: {reason(exc)}",
                            hint="`stackd daemon status` says whether it runs")
