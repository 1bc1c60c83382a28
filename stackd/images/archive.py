"""`docker save` tarballs and OCI archives in and out of the store.

Load reads either shape: Docker's (`manifest.json` listing Config, RepoTags and
Layers) or an OCI image layout (`oci-layout`, `index.json`, `blobs/`). The archive is
first extracted with tarfile's `data` filter (no absolute names, no links out) into a
private dir; every blob is verified as it enters the store.

Save writes what Docker 25 writes, readable by both `docker load` and OCI tools: an OCI
layout whose layers are uncompressed tars (so each layer's digest is its diff_id) plus
Docker's `manifest.json`.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tarfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from stackd.images.compression import CHUNK, compression_of, open_decompressed
from stackd.images.digests import hex_of, is_digest
from stackd.images.errors import ArchiveError, ImageNotFoundError
from stackd.images.mediatypes import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
)
from stackd.images.models import Image
from stackd.images.oci import (
    Descriptor,
    canonical,
    choose_platform,
    config_diff_ids,
    descriptor_of,
    is_index,
    json_object,
    make_manifest,
    media_type_of,
    parse_manifest,
)
from stackd.images.reference import parse
from stackd.outfile import replaced
from stackd.trees import remove_tree

if TYPE_CHECKING:
    from stackd.images.store import ImageStore

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


def regular_file(path: Path) -> bool:
    """Whether `path` is a regular file; False, not an OSError, for a name too long."""
    try:
        return path.is_file()
    except OSError:
        return False


def load_archive(store: ImageStore, source: Path | BinaryIO, shown: str | None = None
                 ) -> list[Image]:
    """Load the archive at `source` (a path, or a stream read once: `load` from stdin),
    called `shown` in messages (default: the path)."""
    archive = shown or str(source)
    if isinstance(source, Path) and not regular_file(source):
        raise ArchiveError(f"{archive} is not a file", hint="give the path of a docker save "
                                                           "tarball or an OCI archive")
    work = store.root / "ingest" / f"load-{uuid.uuid4().hex}"
    work.mkdir(parents=True)
    try:
        try:
            with contextlib.ExitStack() as stack:
                raw = (stack.enter_context(open(source, "rb")) if isinstance(source, Path)
                       else source)
                tar = stack.enter_context(tarfile.open(fileobj=open_decompressed(raw),
                                                       mode="r|"))
                tar.extractall(work, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise ArchiveError(f"{archive}: not a readable image archive: {exc}",
                               hint="give a file written by `docker save`, `stackd image save` "
                                    "or `skopeo copy … oci-archive:`") from exc
        with store.writing():
            if (work / "manifest.json").is_file():
                return _load_docker(store, work, archive)
            if (work / "index.json").is_file():
                return _load_oci(store, work, archive)
        raise ArchiveError(f"{archive}: neither manifest.json nor index.json inside",
                           hint="this is not a docker save tarball or an OCI archive")
    finally:
        remove_tree(work, ignore_errors=True)


def _inside(work: Path, rel: str, archive: str) -> Path:
    path = (work / rel).resolve()
    if not path.is_relative_to(work.resolve()) or not path.is_file():
        raise ArchiveError(f"{archive}: '{rel}' is missing from the archive",
                           hint="the archive is incomplete")
    return path


def _layer_media_type(path: Path) -> str:
    with open(path, "rb") as f:
        kind = compression_of(f.read(4))
    return {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}.get(kind, OCI_LAYER)


def _save_entries(work: Path, archive: str) -> list[tuple[str, list[str], list[str]]]:
    """manifest.json of a `docker save` archive: (config, layers, tags) of each image,
    each of the type docker writes, or an ArchiveError naming the file."""
    malformed = ArchiveError(f"{archive}: manifest.json is not what `docker save` writes "
                             "(a list of {Config, Layers, RepoTags})",
                             hint="the archive is corrupt")
    try:
        entries = json.loads((work / "manifest.json").read_bytes())
    except (ValueError, RecursionError):  # (the decoder recurses per level of nesting)
        raise malformed from None
    if not isinstance(entries, list):
        raise malformed
    out = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise malformed
        config, layers, tags = (entry.get("Config"), entry.get("Layers") or [],
                                entry.get("RepoTags") or [])
        if not (isinstance(config, str) and _strings(layers) and _strings(tags)):
            raise malformed
        out.append((config, layers, tags))
    return out


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _load_docker(store: ImageStore, work: Path, archive: str) -> list[Image]:
    images = []
    for config, layer_paths, tags in _save_entries(work, archive):
        config_body = _inside(work, config, archive).read_bytes()
        cfg = descriptor_of(config_body, OCI_CONFIG)
        diff_ids = config_diff_ids(config_body, f"{archive}: {config}")
        store.blobs.put_bytes(config_body, cfg.digest, "image config")
        if len(diff_ids) != len(layer_paths):
            raise ArchiveError(f"{archive}: {config} names {len(diff_ids)} layers but "
                               f"the archive lists {len(layer_paths)}",
                               hint="the archive is corrupt")
        layers = []
        for rel, diff_id in zip(layer_paths, diff_ids, strict=True):
            path = _inside(work, rel, archive)
            with open(path, "rb") as f:
                digest = store.blobs.put_stream(f, None, None, f"layer {rel}")
            layer = Descriptor(_layer_media_type(path), digest, path.stat().st_size)
            store.snapshots.unpack(store.blobs.path(digest), diff_id)
            layers.append(layer)
        manifest = make_manifest(cfg, layers)
        mdigest = store.blobs.put_bytes(manifest, None, "manifest")
        store.image(mdigest)  # an image no Image can be made of is refused before it is named
        for tag in tags:
            store.refs.set(str(parse(tag)), mdigest)
        images.append(store.image(mdigest))
    return images


def _load_oci(store: ImageStore, work: Path, archive: str) -> list[Image]:
    index = json_object((work / "index.json").read_bytes(), f"{archive}: index.json")
    entries = index.get("manifests") or []
    if not isinstance(entries, list):
        raise ArchiveError(f"{archive}: index.json's manifests is not a list",
                           hint="the archive is corrupt")
    images = []

    def blob(digest: str) -> Path:
        return _inside(work, f"blobs/sha256/{hex_of(digest)}", archive)

    for raw in entries:
        desc = Descriptor.from_json(raw, f"{archive}: an entry of index.json")
        annotations = raw.get("annotations") or {}
        if not isinstance(annotations, dict):
            annotations = {}
        body = blob(desc.digest).read_bytes()
        mdigest = store.blobs.put_bytes(body, desc.digest, "manifest")
        if is_index(media_type_of(body, desc.media_type)):
            chosen = choose_platform(body, str(archive))
            body = blob(chosen.digest).read_bytes()
            mdigest = store.blobs.put_bytes(body, chosen.digest, "manifest")
        manifest = parse_manifest(body)
        with open(blob(manifest.config.digest), "rb") as f:
            store.blobs.put_stream(f, manifest.config.digest, manifest.config.size, "image config")
        diff_ids = config_diff_ids(store.blobs.read_bytes(manifest.config.digest),
                                   f"{archive}: the config of {desc.digest[:19]}")
        if len(diff_ids) != len(manifest.layers):
            raise ArchiveError(f"{archive}: image {desc.digest[:19]} has "
                               f"{len(manifest.layers)} layers but its config names "
                               f"{len(diff_ids)}", hint="the archive is corrupt")
        for layer, diff_id in zip(manifest.layers, diff_ids, strict=True):
            if not store.blobs.has(layer.digest):
                with open(blob(layer.digest), "rb") as f:
                    store.blobs.put_stream(f, layer.digest, layer.size, "layer")
            store.snapshots.unpack(store.blobs.path(layer.digest), diff_id)
        name = annotations.get(CONTAINERD_NAME) or annotations.get(REF_NAME) or ""
        name = name if isinstance(name, str) else ""
        store.image(mdigest)  # an image no Image can be made of is refused before it is named
        # A bare tag ("latest") names no repository: the image stays unnamed, as in Docker.
        if name and ("/" in name or ":" in name) and not is_digest(name):
            store.refs.set(str(parse(name)), mdigest)
        images.append(store.image(mdigest))
    return images


def save_archive(store: ImageStore, refs: list[str], archive: Path | BinaryIO) -> None:
    """`refs` as one archive (docker save's and OCI's layout at once): written to a
    file (complete, or not there), or streamed to `archive` (stdout) as it is made —
    the archive is never gathered anywhere first; only one layer at a time is
    decompressed under ingest, since a tar entry says its size before its bytes."""
    if not refs:
        raise ImageNotFoundError("no image to save", hint="name at least one image")
    if not isinstance(archive, Path):
        with tarfile.open(fileobj=archive, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            _write_archive(store, refs, tar)
        return
    with replaced(archive, "image save -o") as out, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _write_archive(store, refs, tar)


def _write_archive(store: ImageStore, refs: list[str], tar: tarfile.TarFile) -> None:
    docker_manifest: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    written: set[str] = set()
    sizes: dict[str, int] = {}  # diff_id → uncompressed size
    # Every name found before a byte is written: streamed, nothing can be taken back.
    found = [store.resolve(ref) for ref in refs]
    work = store.root / "ingest" / f"save-{uuid.uuid4().hex}"
    work.mkdir(parents=True)
    try:
        def add_bytes(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            tar.addfile(ti, io.BytesIO(data))

        def add_file(name: str, path: Path) -> int:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = path.stat().st_size, 0o644
            with open(path, "rb") as f:
                tar.addfile(ti, f)
            return ti.size

        for digest, parsed in found:
            manifest = parse_manifest(store.blobs.read_bytes(digest))
            config_body = store.blobs.read_bytes(manifest.config.digest)
            diff_ids = config_diff_ids(config_body)
            layers = []
            for layer, diff_id in zip(manifest.layers, diff_ids, strict=True):
                if diff_id not in written:
                    plain = work / hex_of(diff_id)
                    with store.blobs.open(layer.digest) as src, open(plain, "wb") as out:
                        shutil.copyfileobj(open_decompressed(src), out, CHUNK)
                    sizes[diff_id] = add_file(f"blobs/sha256/{hex_of(diff_id)}", plain)
                    plain.unlink()
                    written.add(diff_id)
                layers.append(Descriptor(OCI_LAYER, diff_id, sizes[diff_id]))
            cfg_name = f"blobs/sha256/{hex_of(manifest.config.digest)}"
            if manifest.config.digest not in written:
                add_bytes(cfg_name, config_body)
                written.add(manifest.config.digest)
            cfg = Descriptor(OCI_CONFIG, manifest.config.digest, len(config_body))
            body = make_manifest(cfg, layers)
            mdesc = descriptor_of(body, manifest.media_type)
            if mdesc.digest not in written:
                add_bytes(f"blobs/sha256/{hex_of(mdesc.digest)}", body)
                written.add(mdesc.digest)
            entry = mdesc.to_json()
            entry["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
            repo_tags = []
            if parsed is not None:
                entry["annotations"] = {CONTAINERD_NAME: str(parsed),
                                        REF_NAME: parsed.tag or parsed.locator}
                repo_tags.append(parsed.familiar())
            index.append(entry)
            same = [e for e in docker_manifest if e["Config"] == cfg_name]
            if same:  # one entry per image, with all its names, as docker save does
                same[0]["RepoTags"].extend(repo_tags)
            else:
                docker_manifest.append({"Config": cfg_name, "RepoTags": repo_tags,
                                        "Layers": [f"blobs/sha256/{hex_of(d.digest)}"
                                                   for d in layers]})
        add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add_bytes("index.json", canonical({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                           "manifests": index}))
        add_bytes("manifest.json", json.dumps(docker_manifest).encode())
    finally:
        remove_tree(work, ignore_errors=True)

