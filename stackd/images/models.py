"""What an image is to the rest of stackd: its config and its snapshot directories."""

from __future__ import annotations

import posixpath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


def in_image(path: str, cwd: str = "/") -> str:
    """`path` (relative to `cwd`) as a clean absolute path inside an image: `..` stops
    at its root, as the container resolves it. The builder joins these to host
    directories; a relative or climbing one (a hostile image's WorkingDir, a
    Dockerfile's `COPY --from=src ../../..`) would leave them."""
    return posixpath.normpath(posixpath.join("/", cwd, path)).replace("//", "/", 1)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Healthcheck(_Frozen):
    """Durations are seconds (the OCI config stores nanoseconds)."""

    test: tuple[str, ...] = ()  # ("CMD", …), ("CMD-SHELL", "…"), ("NONE",)
    interval: float | None = None
    timeout: float | None = None
    retries: int | None = None
    start_period: float | None = None
    start_interval: float | None = None


class ImageConfig(_Frozen):
    env: tuple[str, ...] = ()  # "KEY=value"
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    working_dir: str = ""
    user: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    exposed_ports: tuple[str, ...] = ()  # "80/tcp"
    volumes: tuple[str, ...] = ()
    stop_signal: str | None = None
    healthcheck: Healthcheck | None = None
    shell: tuple[str, ...] | None = None

    @field_validator("working_dir")
    @classmethod
    def _absolute(cls, v: str) -> str:
        # Docker refuses to run a relative WorkingDir; BuildKit builds on it from "/".
        return in_image(v) if v else v

    @classmethod
    def from_oci(cls, raw: object) -> ImageConfig:
        """From the `config` object of an OCI/Docker image config JSON. Its values go to
        the model as they are, so one of the wrong type (a hostile image's) is a
        ValidationError naming the field, never a TypeError from converting it here."""
        raw = raw or {}
        if not isinstance(raw, dict):
            return cls.model_validate(raw)
        hc = raw.get("Healthcheck")
        return cls.model_validate({
            "env": raw.get("Env") or (),
            "cmd": raw.get("Cmd"),
            "entrypoint": raw.get("Entrypoint"),
            "working_dir": raw.get("WorkingDir") or "",
            "user": raw.get("User") or "",
            "labels": raw.get("Labels") or {},
            "exposed_ports": _keys(raw.get("ExposedPorts")),
            "volumes": _keys(raw.get("Volumes")),
            "stop_signal": raw.get("StopSignal") or None,
            "healthcheck": (_healthcheck_from_oci(hc) if isinstance(hc, dict) and hc
                            else hc or None),
            "shell": raw.get("Shell") or None,
        })

    def to_oci(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.env:
            out["Env"] = list(self.env)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.user:
            out["User"] = self.user
        if self.labels:
            out["Labels"] = dict(sorted(self.labels.items()))
        if self.exposed_ports:
            out["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.volumes:
            out["Volumes"] = {v: {} for v in self.volumes}
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.healthcheck is not None:
            out["Healthcheck"] = _healthcheck_to_oci(self.healthcheck)
        if self.shell:
            out["Shell"] = list(self.shell)
        return out


_NS = 1_000_000_000


def _keys(raw: object) -> object:
    """An OCI set ({"80/tcp": {}}) as its sorted keys; anything else as it is."""
    return tuple(sorted(raw)) if isinstance(raw, dict) else raw or ()


def _healthcheck_from_oci(raw: dict[str, Any]) -> dict[str, Any]:
    def secs(key: str) -> object:
        v = raw.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return v / _NS if v else None
        return v  # the model refuses it, naming the field

    return {
        "test": raw.get("Test") or (),
        "interval": secs("Interval"),
        "timeout": secs("Timeout"),
        "retries": raw.get("Retries") or None,
        "start_period": secs("StartPeriod"),
        "start_interval": secs("StartInterval"),
    }


def _healthcheck_to_oci(hc: Healthcheck) -> dict[str, Any]:
    out: dict[str, Any] = {"Test": list(hc.test)}
    for key, value in (("Interval", hc.interval), ("Timeout", hc.timeout),
                       ("StartPeriod", hc.start_period), ("StartInterval", hc.start_interval)):
        if value:
            out[key] = int(value * _NS)
    if hc.retries:
        out["Retries"] = hc.retries
    return out


class Image(_Frozen):
    id: str  # config digest
    digest: str  # manifest digest
    references: tuple[str, ...]
    config: ImageConfig
    # Overlay lower dirs, top-most first.
    layer_dirs: tuple[str, ...]
    size: int = 0  # compressed bytes of the layers
    created: str | None = None
    architecture: str = "amd64"
    os: str = "linux"


class ImageSummary(_Frozen):
    id: str
    digest: str
    references: tuple[str, ...]
    size: int
    created: str | None = None


class PruneReport(_Frozen):
    blobs_removed: int = 0
    snapshots_removed: int = 0
    bytes_freed: int = 0
