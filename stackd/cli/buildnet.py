"""`stackd build`'s RUN steps on the daemon's build network (daemon/buildnet.py): for
each step, a stream held open to `POST /v1/build/network/{id}` for as long as the step
runs. The daemon releases the step's namespace when the stream closes, so a build
killed mid-step holds nothing.

Without a daemon and with STACKD_NO_AUTOSTART set, there is none to ask: the build
says so once and its steps run with loopback only (`RUN --network=none`).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from stackd.cli.client import Client
from stackd.images.build.network import Joined
from stackd.roots import Roots


class DaemonRunNetwork:
    """Asks the daemon only once a step needs it: a build with no RUN starts none."""

    def __init__(self, roots: Roots) -> None:
        self.client = Client(roots)  # this host's daemon, never a --host one: steps run here
        self.available: bool | None = None

    @asynccontextmanager
    async def attached(self, container_id: str) -> AsyncIterator[Joined | None]:
        if self.available is None:
            self.available = self.client.autostart or await trio.to_thread.run_sync(
                self.client.alive)
            if not self.available:
                print("stackd: warning: no daemon runs and STACKD_NO_AUTOSTART is set: "
                      "RUN steps have no network (loopback only)", file=sys.stderr)
        if not self.available:
            yield None
            return
        items: Iterator[dict[str, Any]] = self.client.stream(
            "POST", f"/v1/build/network/{container_id}")
        try:
            first = await trio.to_thread.run_sync(next, items)
            gateway = first.get("gateway")
            yield Joined(str(first["netns"]), {str(k): str(v)
                                              for k, v in dict(first["files"]).items()},
                         str(gateway) if gateway else None)
        finally:
            close = getattr(items, "close", None)  # closing the stream lets go
            if close is not None:
                await trio.to_thread.run_sync(close)
