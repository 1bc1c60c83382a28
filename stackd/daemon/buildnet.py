"""The network builds' RUN steps are on: the root's `default` network (`stackd run`'s,
single.DefaultNetwork), as Docker's build steps are on its default bridge — a way out
through the host (masqueraded, as any non-internal stackd network), DNS from stackd's
resolver on the gateway (it forwards what it does not know), no published ports, and
none of a stack's networks reachable (their bridges drop what they did not ask for).

The daemon's own builds (`up --build`) get it through `ImageStore.run_network`; a
`stackd build` holds it over the API for each step (`POST /v1/build/network/{id}`,
cli/buildnet.py): the step's namespace is released when the step ends or the client
goes, so a killed `stackd build` leaves no address held.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from stackd.errors import UsageError
from stackd.images.build.network import Joined

# The runtime ids a builder gives its RUN containers (builder.py); nothing else may ask.
BUILD_CONTAINER = re.compile(r"^build-[0-9a-f]{12}$")


class BuildNetwork:
    def __init__(self, ports: Any, default_network: Any) -> None:
        self.ports = ports
        self.default_network = default_network  # single.DefaultNetwork

    @asynccontextmanager
    async def attached(self, container_id: str) -> AsyncIterator[Joined | None]:
        from stackd.netbridge import hosts_file_for, resolv_conf_for

        if not BUILD_CONTAINER.match(container_id):
            raise UsageError(f"{container_id!r} is not a build step's container id",
                             hint="only a builder's RUN containers (build-<12 hex digits>) "
                                  "join the build network")
        path = await self.default_network.join(container_id, [])
        try:
            # The step's first instruction may look a name up (apt, pip): the resolver
            # serves the network before the step runs (a first network starts it).
            await self.ports.network.resolvable(container_id)
            addresses = self.ports.network.nets.addresses(container_id)
            gateway = addresses[0].gateway
            yield Joined(path, {
                "/etc/resolv.conf": resolv_conf_for(gateway),
                "/etc/hosts": hosts_file_for("stackd-build", [a.ip for a in addresses],
                                             host_gateway=gateway)}, gateway)
        finally:
            with trio.CancelScope(shield=True):
                await self.ports.network.disconnect(container_id)
