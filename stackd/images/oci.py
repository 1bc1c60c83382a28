"""Reading and writing the OCI JSON documents: manifests, indexes, image configs. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stackd.images.digests import is_digest, sha256_digest
from stackd.images.errors import MalformedImageError, UnsupportedMediaTypeError
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
    def from_json(cls, raw: object, what: str = "a descriptor") -> Descriptor:
        if not isinstance(raw, dict):
            raise _malformed(f"{what} is not a JSON object")
        digest, size, media_type = raw.get("digest"), raw.get("size"), raw.get("mediaType", "")
        if not isinstance(digest, str) or not is_digest(digest):
            raise _malformed(f"{what}: digest {str(digest)[:80]!r} is not a sha256 digest")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _malformed(f"{what} {digest}: size {str(size)[:40]!r} is not a byte count")
        if not isinstance(media_type, str):
            raise _malformed(f"{what} {digest}: its mediaType is not a string")
        return cls(media_type, digest, size)


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def canonical(doc: dict[str, Any]) -> bytes:
    """The bytes we hash: compact, key-sorted JSON (any stable form would do)."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _malformed(detail: str) -> MalformedImageError:
    return MalformedImageError(detail, hint="the registry or archive is broken, or hostile")


def json_object(body: bytes, what: str) -> dict[str, Any]:
    """`body` as the JSON object every OCI document is; typed errors otherwise."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise _malformed(f"{what} is not JSON: {exc}") from None
    except RecursionError:  # json's decoder recurses per level of nesting
        raise _malformed(f"{what} nests too deeply to be an image document") from None
    if not isinstance(doc, dict):
        raise _malformed(f"{what} is not a JSON object")
    return doc


def _list(doc: dict[str, Any], key: str, what: str) -> list[Any]:
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise _malformed(f"{what}: {key} is not a list")
    return value


def config_diff_ids(body: bytes, what: str = "image config") -> list[str]:
    """The layers' uncompressed digests an image config lists (`rootfs.diff_ids`)."""
    doc = json_object(body, what)
    rootfs = doc.get("rootfs") or {}
    if not isinstance(rootfs, dict):
        raise _malformed(f"{what}: rootfs is not a JSON object")
    diff_ids = _list(rootfs, "diff_ids", what)
    for d in diff_ids:
        if not isinstance(d, str) or not is_digest(d):
            raise _malformed(f"{what}: diff_id {str(d)[:80]!r} is not a sha256 digest")
    return diff_ids


def media_type_of(body: bytes, header: str = "") -> str:
    doc = json_object(body, "manifest")
    mt = doc.get("mediaType") or header
    if not isinstance(mt, str):
        raise _malformed("manifest: its mediaType is not a string")
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
    doc = json_object(body, "manifest")
    layers = tuple(Descriptor.from_json(d, "a layer") for d in _list(doc, "layers", "manifest"))
    for layer in layers:
        if layer.media_type not in LAYERS:
            raise UnsupportedMediaTypeError(
                f"layer {layer.digest} has unsupported media type '{layer.media_type}'",
                hint="stackd reads tar layers: uncompressed, gzip or zstd",
            )
    return Manifest(mt, Descriptor.from_json(doc.get("config"), "the config"), layers)


def choose_platform(body: bytes, what: str, wanted: Platform | None = None,
                    host: Platform | None = None) -> Descriptor:
    """The entry of a manifest list or OCI index for `wanted` (default: the host's).

    Without a variant asked for, the first entry of the architecture the host runs.
    """
    host = host or host_platform()
    want = wanted or host
    entries = _list(json_object(body, "index"), "manifests", "index")
    if not all(isinstance(d, dict) for d in entries):
        raise _malformed(f"{what}: an entry of its index is not a JSON object")
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
            return Descriptor.from_json(d, f"the {have} entry of {what}")
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


__all__ = ["DOCKER_LIST", "DOCKER_MANIFEST", "OCI_CONFIG", "Descriptor", "Manifest",
           "config_diff_ids", "json_object"]
