"""This host's cluster membership, kept in its state root (`cluster.json`, root-only):
written by `stackd node join`, read by the daemon at every start so a member that
restarts rejoins, and by `stackd node ls|inspect|drain|rm` for the etcd endpoints."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from stackd.cluster import keys
from stackd.errors import UsageError
from stackd.filemodes import write_private

FILE = "cluster.json"
DEFAULT_TTL = 10
DEFAULT_PREFIX = "/stackd/"
# VXLAN's IANA port: the UDP port overlay networks made from this node use (the node
# that makes a network first records it; every node then uses that network's).
DEFAULT_VXLAN_PORT = 4789


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    endpoints: tuple[str, ...]
    name: str
    labels: MappingProxyType[str, str] = field(
        default_factory=lambda: MappingProxyType({}))
    ttl: int = DEFAULT_TTL
    prefix: str = DEFAULT_PREFIX
    address: str = ""
    listen: str = ""  # HOST:PORT of the daemon's mutual-TLS API; "" for none
    vxlan_port: int = DEFAULT_VXLAN_PORT

    def __post_init__(self) -> None:
        keys.check_name("node", self.name)
        if not self.endpoints:
            raise UsageError("no etcd endpoint given", hint="pass --etcd http://HOST:2379")
        for url in self.endpoints:
            if not url.startswith(("http://", "https://")):
                raise UsageError(f"etcd endpoint {url!r} is not an http(s) URL",
                                 hint="write it as http://HOST:PORT")
        if not 2 <= self.ttl <= 300:
            raise UsageError(f"lease TTL {self.ttl} s is out of range",
                             hint="use 2 to 300 seconds")
        if not self.prefix.startswith("/") or not self.prefix.endswith("/"):
            raise UsageError(f"cluster prefix {self.prefix!r} must start and end with '/'")
        if self.listen:
            listen_address(self.listen)
        if not 1 <= self.vxlan_port <= 65535:
            raise UsageError(f"VXLAN port {self.vxlan_port} is out of range",
                             hint="use 1 to 65535 (VXLAN's own is 4789)")

    def to_json(self) -> dict[str, Any]:
        return {"endpoints": list(self.endpoints), "name": self.name,
                "labels": dict(self.labels), "ttl": self.ttl, "prefix": self.prefix,
                "address": self.address, "listen": self.listen,
                "vxlan_port": self.vxlan_port}

    @classmethod
    def from_json(cls, data: Any) -> ClusterConfig:
        if not isinstance(data, dict):
            raise UsageError("a cluster configuration must be a JSON object")
        try:
            labels = data.get("labels") or {}
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
                raise TypeError("labels")
            return cls(endpoints=tuple(str(e) for e in data["endpoints"]),
                       name=str(data["name"]), labels=MappingProxyType(dict(labels)),
                       ttl=int(data.get("ttl", DEFAULT_TTL)),
                       prefix=str(data.get("prefix", DEFAULT_PREFIX)),
                       address=str(data.get("address", "")),
                       listen=str(data.get("listen", "")),
                       vxlan_port=int(data.get("vxlan_port", DEFAULT_VXLAN_PORT)))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UsageError(f"cluster configuration is malformed ({e})",
                             hint="rejoin with `stackd node join --etcd URL`") from e


def listen_address(text: str) -> tuple[str, int]:
    """`--listen HOST:PORT` ([v6]:PORT too) as (host, port)."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"listen address {text!r} is not HOST:PORT",
                         hint="e.g. --listen 0.0.0.0:2377")
    return host, int(port)


def parse_labels(items: list[str]) -> dict[str, str]:
    """`--label k=v` flags as a mapping."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"label {item!r} is not KEY=VALUE", hint="e.g. --label zone=a")
        out[key] = value
    return out


def load(state: Path) -> ClusterConfig | None:
    try:
        text = (state / FILE).read_text()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise UsageError(f"{state / FILE} is not JSON ({e})",
                         hint="remove it and rejoin with `stackd node join`") from e
    return ClusterConfig.from_json(data)


def save(state: Path, config: ClusterConfig) -> None:
    write_private(state / FILE, json.dumps(config.to_json(), indent=2).encode())


def forget(state: Path) -> None:
    try:
        os.unlink(state / FILE)
    except FileNotFoundError:
        pass
