"""Platforms (os/arch[/variant]): a node's, from its machine name, and which ones it runs.

Pure. The host's is derived once, in stackd.images.platform.host_platform(); a
service's `platform:` is checked against its node's by stackd.reconciler.platforms.
"""

from __future__ import annotations

from dataclasses import dataclass

# uname -m → the OCI architecture (and variant) names registries use.
_MACHINES: dict[str, tuple[str, str | None]] = {
    "x86_64": ("amd64", None), "amd64": ("amd64", None),
    "aarch64": ("arm64", None), "arm64": ("arm64", None),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
    "i386": ("386", None), "i686": ("386", None),
    "ppc64le": ("ppc64le", None), "s390x": ("s390x", None),
    "riscv64": ("riscv64", None), "loongarch64": ("loong64", None),
}


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    def runs(self, wanted: Platform) -> bool:
        """Whether this (host) platform runs images built for `wanted`.

        A variant is compared only when both name one: linux/arm64/v8 is linux/arm64,
        an amd64 host runs any amd64 level it is asked for, and an arm v7 host runs v6
        and v5 images (the ARM variants are backward compatible).
        """
        if (self.os, self.architecture) != (wanted.os, wanted.architecture):
            return False
        if self.architecture == "amd64" or None in (self.variant, wanted.variant):
            return True
        if self.architecture == "arm":
            return _level(wanted.variant) <= _level(self.variant)
        return wanted.variant == self.variant


def _level(variant: str | None) -> int:
    digits = (variant or "").lstrip("v")
    return int(digits) if digits.isdigit() else 1 << 30


def parse_platform(text: str) -> Platform:
    """`linux/arm64`, `linux/arm/v7` → Platform; the spec has checked the form already."""
    parts = text.lower().split("/")
    variant = parts[2] if len(parts) > 2 else None
    if parts[1] == "arm64" and variant == "v8":
        variant = None
    return Platform(parts[0], parts[1], variant)


def platform_of_machine(machine: str) -> Platform:
    arch, variant = _MACHINES.get(machine, (machine, None))
    return Platform("linux", arch, variant)
