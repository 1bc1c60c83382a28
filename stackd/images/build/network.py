"""What a RUN step needs of a network: a namespace on a bridge with a way out, and the
files that name its DNS, for as long as the step runs — what Docker's builds get on
its default bridge.

The daemon provides it (daemon/buildnet.py: the root's `default` network, `stackd
run`'s); `stackd build` asks the daemon for it (cli/buildnet.py). A builder given none
runs its steps with loopback only, as `RUN --network=none` asks for.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

# `RUN --network=`: BuildKit's modes. `host` needs an entitlement there and is refused
# here (a build step would share the host's network namespace).
MODES = ("default", "none")


@dataclass(frozen=True, slots=True)
class Joined:
    netns: str  # the namespace file the step's container joins
    files: Mapping[str, str]  # /etc/resolv.conf and /etc/hosts for it
    gateway: str | None = None  # the host's address there (extra_hosts' host-gateway)


@dataclass(frozen=True, slots=True)
class StepOptions:
    """What Compose's `build:` says of every RUN step's container (extra_hosts,
    shm_size, ulimits); none of it is in a step's cache key, as in Docker's."""

    extra_hosts: tuple[str, ...] = ()  # "host=ip", ip may be host-gateway
    shm_size: int | None = None
    ulimits: tuple[tuple[str, int, int], ...] = ()  # (name, soft, hard)


class RunNetwork(Protocol):
    def attached(self, container_id: str) -> AbstractAsyncContextManager[Joined | None]:
        """The step's namespace on the network until the block ends (then released,
        also when the block fails or is cancelled); None when there is none to be had
        (the step then has loopback only)."""
