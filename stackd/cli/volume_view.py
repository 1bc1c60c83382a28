"""A volume under the names Docker's `volume inspect` and `volume ls` give it, for
`--format` templates scripts use: `{{.Mountpoint}}`, `{{.Name}}`. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stackd.cli.goformat import GoStruct
from stackd.hostnames import LABEL_PROJECT


def docker_volume(described: Mapping[str, Any]) -> dict[str, Any]:
    """`described`: `VolumeAdmin.inspect`'s."""
    return GoStruct({"CreatedAt": described["created"].replace("+00:00", "Z"),
                     "Driver": "local", "Labels": _labels(described),
                     "Mountpoint": described["mountpoint"], "Name": described["name"],
                     "Options": {}, "Scope": "local"})


def ls_fields(described: Mapping[str, Any]) -> dict[str, Any]:
    """`volume ls --format`'s fields, as Docker's: Labels as `k=v,…`."""
    return {"Name": described["name"], "Driver": "local", "Scope": "local",
            "Mountpoint": described["mountpoint"],
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(_labels(described).items()))}


def _labels(described: Mapping[str, Any]) -> dict[str, str]:
    return {LABEL_PROJECT: described["project"]} if described.get("project") else {}
