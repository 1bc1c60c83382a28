"""A network under the names Docker's `network inspect` and `network ls` give it, for
`--format` templates scripts use: `{{range .IPAM.Config}}{{.Subnet}}{{end}}`,
`{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}`, `{{.Name}}`. Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from stackd.cli.goformat import GoStruct
from stackd.hostnames import LABEL_PROJECT


def docker_network(described: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """`described`: `NetworkAdmin.describe`'s; `names`: container id → name."""
    prefix = ipaddress.ip_network(described["subnet"]).prefixlen
    return GoStruct({
        "Name": described["name"],
        "Id": described["name"],
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": False,
        "IPAM": GoStruct({"Driver": "default", "Options": {}, "Config": [
            GoStruct({"Subnet": described["subnet"], "Gateway": described["gateway"]})]}),
        "Internal": bool(described["internal"]),
        "Attachable": False,
        "Ingress": False,
        "Containers": {c["id"]: GoStruct({
            "Name": names.get(c["id"], c["id"]), "MacAddress": c["mac"],
            "IPv4Address": f"{c['ip']}/{prefix}", "IPv6Address": ""})
            for c in described["containers"]},
        "Options": {"com.docker.network.bridge.name": described["bridge"],
                    "com.docker.network.driver.mtu": str(described["mtu"])},
        "Labels": _labels(described),
    })


def ls_fields(described: Mapping[str, Any]) -> dict[str, Any]:
    """`network ls --format`'s fields, as Docker's: Labels as `k=v,…`."""
    labels = _labels(described)
    return {"ID": described["name"], "Name": described["name"], "Driver": "bridge",
            "Scope": "local", "IPv6": False, "Internal": bool(described["internal"]),
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items()))}


def _labels(described: Mapping[str, Any]) -> dict[str, str]:
    labels = dict(described.get("labels") or {})
    if described.get("project"):
        labels.setdefault(LABEL_PROJECT, described["project"])
    return labels
