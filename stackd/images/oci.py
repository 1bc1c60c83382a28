"""Reading and writing the OCI JSON documents: manifests, indexes, image configs. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stackd.images.digests import sha256_digest
from stackd.images.errors import UnsupportedMediaTypeError
from stackd.images.mediatypes import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    INDEXES,
    LAYERS,
    MANIFESTS,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
)
from stackd.images.models import ImageConfig
from stackd.images.platform import Platform, host_platform


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Descriptor:
        return cls(raw.get("mediaType", ""), raw["digest"], int(raw["size"]))


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def canonical(doc: dict[str, Any]) -> bytes:
    """The bytes we hash: compact, key-sorted JSON (any stable form would do)."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def media_type_of(body: bytes, header: str = "") -> str:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise UnsupportedMediaTypeError(f"manifest is not JSON: {exc}",
                                        hint="the registry or archive is broken") from exc
    mt = doc.get("mediaType") or header
    if not mt:
        if "manifests" in doc:
            mt = OCI_INDEX
        elif "layers" in doc:
            mt = OCI_MANIFEST
    return mt


def parse_manifest(body: bytes, header: str = "") -> Manifest:
    mt = media_type_of(body, header)
    if mt not in MANIFESTS:
        raise UnsupportedMediaTypeError(
            f"unsupported manifest type '{mt}'",
            hint="stackd reads OCI and Docker schema2 manifests (schema1 is long deprecated)",
        )
    doc = json.loads(body)
    layers = tuple(Descriptor.from_json(d) for d in doc.get("layers") or ())
    for layer in layers:
        if layer.media_type not in LAYERS:
            raise UnsupportedMediaTypeError(
                f"layer {layer.digest} has unsupported media type '{layer.media_type}'",
                hint="stackd reads tar layers: uncompressed, gzip or zstd",
            )
    return Manifest(mt, Descriptor.from_json(doc["config"]), layers)


def choose_platform(body: bytes, what: str, wanted: Platform | None = None,
                    host: Platform | None = None) -> Descriptor:
    """The entry of a manifest list or OCI index for `wanted` (default: the host's).

    Without a variant asked for, the first entry of the architecture the host runs.
    """
    host = host or host_platform()
    want = wanted or host
    doc = json.loads(body)
    entries = doc.get("manifests") or ()
    for d in entries:
        plat = d.get("platform") or {}
        if not isinstance(plat, dict) or d.get("mediaType") not in (*MANIFESTS, ""):
            continue
        have = _platform(plat)
        if (have.os, have.architecture) != (want.os, want.architecture):
            continue
        if want.variant is not None and have.variant != want.variant:
            continue
        if host.runs(have):
            return Descriptor.from_json(d)
    listed = sorted({str(_platform(d.get("platform") or {})) for d in entries
                     if isinstance(d.get("platform") or {}, dict)})
    raise UnsupportedMediaTypeError(
        f"{what} has no {want} image (it has: {', '.join(listed) or 'nothing'})",
        hint=f"use an image built for {want}",
    )


def _platform(raw: dict[str, Any]) -> Platform:
    variant = raw.get("variant") or None
    arch = str(raw.get("architecture"))
    if arch == "arm64" and variant == "v8":
        variant = None
    return Platform(str(raw.get("os")), arch, variant)


def is_index(mt: str) -> bool:
    return mt in INDEXES


def make_manifest(config: Descriptor, layers: list[Descriptor],
                  annotations: dict[str, str] | None = None) -> bytes:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [d.to_json() for d in layers],
    }
    if annotations:
        doc["annotations"] = annotations
    return canonical(doc)


def make_config(config: ImageConfig, diff_ids: list[str], history: list[dict[str, Any]],
                created: str | None = None) -> bytes:
    doc = {
        "created": created or now(),
        "architecture": host_platform().architecture,
        "os": host_platform().os,
        **({"variant": host_platform().variant} if host_platform().variant else {}),
        "config": config.to_oci(),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    return canonical(doc)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def descriptor_of(body: bytes, media_type: str) -> Descriptor:
    return Descriptor(media_type, sha256_digest(body), len(body))


__all__ = ["DOCKER_LIST", "DOCKER_MANIFEST", "OCI_CONFIG", "Descriptor", "Manifest"]
