"""Compose's `network_mode`, turned into what the runtime needs. Pure.

bridge (the default): the container gets its own namespace (`Networks.create_netns`)
and is attached to its networks. none: its own namespace with only lo, attached to
nothing. host: the host's namespace (`namespaces.net = "host"`), no DNS of ours.
service:x / container:x: x's namespace, by the path of x's bind-mounted netns, so the
two share addresses and ports; nothing is attached for the joiner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stackd.errors import SpecError

Kind = Literal["bridge", "none", "host", "service", "container"]


@dataclass(frozen=True, slots=True)
class NetworkMode:
    kind: Kind
    target: str = ""  # the service or container named by service:x / container:x

    @property
    def own_namespace(self) -> bool:
        """Whether the container gets a namespace of its own (create_netns)."""
        return self.kind in ("bridge", "none")

    @property
    def attaches(self) -> bool:
        """Whether the container is attached to networks (and so answered by DNS)."""
        return self.kind == "bridge"


def parse_network_mode(text: str | None) -> NetworkMode:
    if text in (None, "", "bridge", "default"):
        return NetworkMode("bridge")
    if text == "none":
        return NetworkMode("none")
    if text == "host":
        return NetworkMode("host")
    kind, sep, target = text.partition(":")
    if sep and target and kind in ("service", "container"):
        return NetworkMode(kind, target)  # type: ignore[arg-type]
    raise SpecError(f"network_mode {text!r} is not supported",
                    hint="use bridge, host, none, service:NAME or container:NAME")


def namespace_for(mode: NetworkMode, *, own_netns: str | None = None,
                  joined_netns: str | None = None) -> str:
    """The value for ContainerSpec.namespaces.net."""
    if mode.kind == "host":
        return "host"
    if mode.own_namespace:
        if own_netns is None:
            raise ValueError("own_netns is needed: create_netns first")
        return own_netns
    if joined_netns is None:
        raise SpecError(f"network_mode {mode.kind}:{mode.target}: {mode.target} has no "
                        "network namespace", hint=f"start {mode.target} first (depends_on)")
    return joined_netns
