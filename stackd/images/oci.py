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

PLATFORM = ("linux", "amd64")


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


def choose_platform(body: bytes, what: str) -> Descriptor:
    """The linux/amd64 entry of a manifest list or OCI index."""
    doc = json.loads(body)
    for d in doc.get("manifests") or ():
        plat = d.get("platform") or {}
        if (plat.get("os"), plat.get("architecture")) == PLATFORM and d.get("mediaType") in (
                *MANIFESTS, ""):
            return Descriptor.from_json(d)
    have = sorted({f"{(d.get('platform') or {}).get('os')}/"
                   f"{(d.get('platform') or {}).get('architecture')}"
                   for d in doc.get("manifests") or ()})
    raise UnsupportedMediaTypeError(
        f"{what} has no linux/amd64 image (it has: {', '.join(have) or 'nothing'})",
        hint="use an image built for linux/amd64",
    )


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
        "architecture": PLATFORM[1],
        "os": PLATFORM[0],
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
