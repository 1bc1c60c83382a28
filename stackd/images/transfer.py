"""Pull and push whole images: the manifest graph walked over a `RegistryClient`.

Pull: resolve the tag (from an index, the wanted platform, by default the host's), fetch
the config, then download every missing layer in parallel, each unpacked into its
snapshot as soon as it is complete, verified by digest and size on the way in. Push: for
each blob, skip it if the registry has it, else mount it from a repository of the same registry we
know holds it, else upload it (one PUT, or PATCH chunks for big blobs); the manifest
goes last so a registry never serves an image with missing blobs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import httpx
import trio

from stackd.errors import reason
from stackd.images.digests import sha256_digest
from stackd.images.errors import (
    DigestMismatchError,
    LayerRejectedError,
    RegistryError,
    UnsupportedMediaTypeError,
)
from stackd.images.mediatypes import OCI_MANIFEST
from stackd.images.nursery import open_nursery
from stackd.images.oci import (
    Descriptor,
    choose_platform,
    config_diff_ids,
    is_index,
    media_type_of,
    parse_manifest,
)
from stackd.images.platform import Platform, host_platform
from stackd.images.progress import Progress, ProgressEvent
from stackd.images.reference import Reference
from stackd.images.registry.client import MAX_CONFIG, RegistryClient, read_capped
from stackd.images.unpack import UnpackResult, unpack_layer
from stackd.trees import remove_tree

if TYPE_CHECKING:
    from stackd.images.content import Ingest
    from stackd.images.store import ImageStore

PARALLEL_DOWNLOADS = 4
PARALLEL_UNPACKS = 2
CHUNKED_UPLOAD_THRESHOLD = 32 * 1024 * 1024
UPLOAD_CHUNK = 8 * 1024 * 1024
PIPE_SIZE = 1 << 20
PROGRESS_STEP = 1 << 20  # downloaded bytes between progress events
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, missing from Python 3.11 on some builds


def _check(body: bytes, expected: str | None, what: str) -> str:
    digest = sha256_digest(body)
    if expected and digest != expected:
        raise DigestMismatchError(
            f"{what}: content hashes to {digest}, expected {expected}",
            hint="the registry sent corrupt or tampered content; try again or report it",
        )
    return digest


async def pull_image(store: ImageStore, ref: Reference, client: RegistryClient,
                     progress: Progress, platform: Platform | None = None) -> str:
    """Fetch `ref` into the store; returns its manifest digest (the reference is not set)."""
    progress(ProgressEvent(str(ref), "resolving"))
    body, mt_header, header_digest = await client.get_manifest(ref, ref.locator)
    digest = _check(body, ref.digest, f"manifest of {ref}")
    if header_digest and not ref.digest and header_digest != digest:
        raise DigestMismatchError(
            f"manifest of {ref}: hashes to {digest} but the registry says {header_digest}",
            hint="the registry sent corrupt or tampered content; try again",
        )
    mt = media_type_of(body, mt_header)
    if is_index(mt):
        chosen = choose_platform(body, str(ref), platform)
        store.blobs.put_bytes(body, digest, "image index")
        body, mt_header, _ = await client.get_manifest(ref, chosen.digest)
        digest = _check(body, chosen.digest, f"{platform or host_platform()} manifest of {ref}")
    manifest = parse_manifest(body, mt_header)
    cfg = manifest.config
    if store.blobs.has(cfg.digest):
        config_body = store.blobs.read_bytes(cfg.digest, "image config")
    else:
        async with client.blob(ref, cfg.digest) as resp:
            config_body = await read_capped(resp, MAX_CONFIG, f"the config of {ref}",
                                            ref.domain)
        store.blobs.put_bytes(config_body, cfg.digest, f"config of {ref}")
    diff_ids = config_diff_ids(config_body, f"the config of {ref}")
    if len(diff_ids) != len(manifest.layers):
        raise UnsupportedMediaTypeError(
            f"image {ref}: {len(manifest.layers)} layers but {len(diff_ids)} diff_ids in config",
            hint="the image is malformed",
        )
    downloads = trio.CapacityLimiter(PARALLEL_DOWNLOADS)
    unpacks = trio.CapacityLimiter(PARALLEL_UNPACKS)
    async with open_nursery() as nursery:
        for layer, diff_id in zip(manifest.layers, diff_ids, strict=True):
            nursery.start_soon(_fetch_layer, store, ref, client, layer, diff_id, downloads,
                               unpacks, progress)
    store.blobs.put_bytes(body, digest, f"manifest of {ref}")
    store.refs.add_sources(ref.repository, [cfg.digest, *(d.digest for d in manifest.layers)])
    return digest


async def _fetch_layer(store: ImageStore, ref: Reference, client: RegistryClient,
                       layer: Descriptor, diff_id: str, downloads: trio.CapacityLimiter,
                       unpacks: trio.CapacityLimiter, progress: Progress) -> None:
    short = layer.digest[7:19]
    if store.snapshots.has(diff_id) and store.blobs.has(layer.digest):
        progress(ProgressEvent(short, "exists", layer.size, layer.size))
        return
    if not store.blobs.has(layer.digest):
        async with downloads:
            await _download_and_unpack(store, ref, client, layer, diff_id, short, progress)
    else:
        async with unpacks:
            progress(ProgressEvent(short, "unpacking", 0, layer.size))
            await trio.to_thread.run_sync(store.snapshots.unpack,
                                          store.blobs.path(layer.digest), diff_id)
    progress(ProgressEvent(short, "done", layer.size, layer.size))


class _Tee:
    """Reads the pipe for the unpacker, writing (and hashing) every byte into the blob."""

    def __init__(self, raw: BinaryIO, ingest: Ingest) -> None:
        self.raw = raw
        self.ingest = ingest

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        if data:
            self.ingest.write(data)
        return data


def _ingest_and_unpack(fd: int, ingest: Ingest, dest: Path) -> UnpackResult | BaseException:
    """The thread's whole job: the blob file and the snapshot from one read of the pipe.

    An unpack error does not stop the blob: the rest of the pipe still goes into it,
    so a blob that fails its digest is the error reported, as it is the cause. An
    error writing the blob (more bytes than announced, a full disk) closes the pipe,
    which stops the download.
    """
    with os.fdopen(fd, "rb", buffering=PIPE_SIZE) as stream:
        tee = _Tee(stream, ingest)
        try:
            return unpack_layer(tee, dest)  # type: ignore[arg-type]
        except LayerRejectedError as exc:
            unpacked: BaseException = exc
        while tee.read(PIPE_SIZE):
            pass
        return unpacked


async def _download_and_unpack(store: ImageStore, ref: Reference, client: RegistryClient,
                               layer: Descriptor, diff_id: str, short: str,
                               progress: Progress) -> None:
    """Download a layer into the blob store while a thread unpacks the same bytes.

    The event loop only moves bytes from the socket into a pipe; one thread reads the
    pipe, writes and hashes the blob, and unpacks it, so unpacking overlaps the
    transfer and no thread hop waits per batch (each hop is a wake-up, and on a loaded
    host a wake-up is a scheduler's time slice away). Neither blob nor snapshot is
    used unless the blob's digest and the layer's diff_id both check out at the end.
    """
    ingest = store.blobs.ingest(layer.digest, layer.size)
    tmp = store.snapshots.temp_dir()
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_fd, F_SETPIPE_SZ, PIPE_SIZE)
    outcome: dict[str, Any] = {}

    async def worker() -> None:
        try:
            outcome["result"] = await trio.to_thread.run_sync(
                _ingest_and_unpack, read_fd, ingest, tmp)
        except BaseException as exc:  # reported below, after the download has stopped
            outcome["error"] = exc

    try:
        async with open_nursery() as nursery:
            nursery.start_soon(worker)
            pipe = trio.lowlevel.FdStream(write_fd)
            try:
                async with client.blob(ref, layer.digest) as resp:
                    done = reported = 0
                    # The socket's own pieces (64 KiB), no re-chunking copy.
                    async for chunk in resp.aiter_raw():
                        try:
                            await pipe.send_all(chunk)
                        except trio.BrokenResourceError:
                            break  # the blob could not be written: its error says why
                        done += len(chunk)
                        if done - reported >= PROGRESS_STEP:
                            progress(ProgressEvent(short, "downloading", done, layer.size))
                            reported = done
                    progress(ProgressEvent(short, "downloading", done, layer.size))
            except httpx.HTTPError as exc:
                raise RegistryError(f"download of layer {layer.digest} from {ref.domain} "
                                    f"broke off: {reason(exc)}", hint="try the pull again") \
                    from exc
            finally:
                await pipe.aclose()
        if "error" in outcome:
            raise outcome["error"]
        await trio.to_thread.run_sync(ingest.commit, f"layer {layer.digest} of {ref}")
        result: UnpackResult | BaseException = outcome["result"]
        if isinstance(result, BaseException):
            raise result
        if result.diff_id != diff_id:
            raise DigestMismatchError(
                f"layer {layer.digest} of {ref}: uncompressed content hashes to "
                f"{result.diff_id}, but the image config says {diff_id}",
                hint="the image is corrupt or was tampered with; pull it again",
            )
        await trio.to_thread.run_sync(store.snapshots.commit_dir, tmp, diff_id)
    except BaseException:
        ingest.abort()
        remove_tree(tmp, ignore_errors=True)
        raise


async def push_image(store: ImageStore, manifest_digest: str, dest: Reference,
                     client: RegistryClient, progress: Progress) -> str:
    body = store.blobs.read_bytes(manifest_digest, "manifest")
    manifest = parse_manifest(body)
    blobs = [*manifest.layers, manifest.config]
    limiter = trio.CapacityLimiter(PARALLEL_DOWNLOADS)
    async with open_nursery() as nursery:
        for d in blobs:
            nursery.start_soon(_push_blob, store, dest, client, d, limiter, progress)
    locator = dest.digest or dest.tag or "latest"
    await client.put_manifest(dest, locator, body, manifest.media_type or OCI_MANIFEST)
    store.refs.add_sources(dest.repository, [d.digest for d in blobs])
    return manifest_digest


async def _push_blob(store: ImageStore, dest: Reference, client: RegistryClient, d: Descriptor,
                     limiter: trio.CapacityLimiter, progress: Progress) -> None:
    short = d.digest[7:19]
    async with limiter:
        if await client.has_blob(dest, d.digest):
            progress(ProgressEvent(short, "exists", d.size, d.size))
            return
        location = None
        for source in store.refs.sources(d.digest):
            domain, _, path = source.partition("/")
            if domain != dest.domain or path == dest.path:
                continue
            location = await client.mount_blob(dest, d.digest, path)
            if location is None:
                progress(ProgressEvent(short, "mounted", d.size, d.size))
                return
            break
        if location is None:
            location = await client.start_upload(dest)
        blob = store.blobs.path(d.digest)
        if d.size < CHUNKED_UPLOAD_THRESHOLD:
            await client.upload_monolithic(dest, location, d.digest, blob.read_bytes, d.size)
        else:
            offset = 0
            with open(blob, "rb") as f:
                while chunk := f.read(UPLOAD_CHUNK):
                    location = await client.upload_chunk(dest, location, chunk, offset)
                    offset += len(chunk)
                    progress(ProgressEvent(short, "pushing", offset, d.size))
            await client.finish_upload(dest, location, d.digest)
        progress(ProgressEvent(short, "pushed", d.size, d.size))


__all__ = ["pull_image", "push_image"]
