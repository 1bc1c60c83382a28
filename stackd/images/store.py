"""`ImageStore`: the image graph under `<state>/images`, and the one façade callers use.

Layout:
    blobs/sha256/<hex>        manifests, configs, layer blobs (as pulled: gzip/zstd/tar)
    ingest/                   blobs being written (orphans after a crash; prune empties it)
    snapshots/<diff_id hex>/  one unpacked layer each: an overlay lower dir
    snapshots/.tmp-*          unpacks in progress (never used; prune removes them)
    index.json                references → manifest digests, blob sources for mounts
    store.lock                taken shared by writers, exclusive by prune/remove
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, cast

import trio
from pydantic import ValidationError
from zlib_ng import gzip_ng

from stackd.filemodes import private_dir
from stackd.images.compression import CHUNK
from stackd.images.content import BlobStore
from stackd.images.errors import (
    ArchiveError,
    ImageNotFoundError,
    MalformedImageError,
    UnsupportedMediaTypeError,
)
from stackd.images.locks import flocked
from stackd.images.mediatypes import OCI_CONFIG, OCI_LAYER_GZIP
from stackd.images.models import Image, ImageConfig, ImageSummary, PruneReport
from stackd.images.oci import (
    Descriptor,
    config_diff_ids,
    descriptor_of,
    json_object,
    make_config,
    make_manifest,
    parse_manifest,
)
from stackd.images.platform import Platform
from stackd.images.progress import Progress, silent
from stackd.images.reference import Reference, parse
from stackd.images.refs import RefIndex
from stackd.images.snapshots import SnapshotStore
from stackd.images.unpack import unpack_layer
from stackd.roots import Roots
from stackd.trees import remove_tree

if TYPE_CHECKING:
    import gzip

    from stackd.images.build.network import RunNetwork

# gzip's GzipFile, with zlib-ng's deflate (its module has no types of its own).
_GzipFile = cast("type[gzip.GzipFile]", gzip_ng.GzipFile)

PullPolicy = Literal["always", "missing", "never"]


class ImageStore:
    def __init__(self, roots: Roots) -> None:
        self.root = roots.state / "images"
        # Root's only: layers hold the images' set-uid binaries and blobs private images.
        private_dir(self.root, parents=True)
        self.roots = roots
        self.locks = self.root / "locks"
        self.blobs = BlobStore(self.root)
        self.snapshots = SnapshotStore(self.root / "snapshots", self.locks)
        self.refs = RefIndex(self.root / "index.json")
        self._store_lock = self.root / "store.lock"
        # What builds' RUN steps are on unless a build names its own: set by the daemon
        # (its build network) once it has one.
        self.run_network: RunNetwork | None = None

    # -- locking ------------------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[None]:
        """Held while adding content: prune waits until the references are in place."""
        with flocked(self._store_lock, shared=True):
            yield

    async def hold_for_writing(self) -> int:
        """`writing()` for async callers: an fd holding the shared lock; close it to release."""
        fd = os.open(self._store_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        await trio.to_thread.run_sync(fcntl.flock, fd, fcntl.LOCK_SH)
        return fd

    # -- lookup -------------------------------------------------------------------------
    def resolve(self, ref: str) -> tuple[str, Reference | None]:
        """(manifest digest, parsed reference or None when `ref` named an image id).

        A name wins over an id prefix, as in Docker; ids may be shortened to 4+ hex digits.
        """
        refs = self.refs.refs()
        hint = f"run `stackd pull {ref}`, `stackd image load` or `stackd build`"
        if not ref.startswith("sha256:"):
            parsed = parse(ref)
            digest = refs.get(str(parsed))
            if digest is not None:
                return digest, parsed
        id_like = ref.removeprefix("sha256:")
        if len(id_like) >= 4 and all(c in "0123456789abcdef" for c in id_like):
            matches = {m for m in set(refs.values())
                       if self._config_digest(m)[7:].startswith(id_like)
                       or m[7:].startswith(id_like)}
            if len(matches) == 1:
                return matches.pop(), None
            if len(matches) > 1:
                raise ImageNotFoundError(f"image id prefix '{ref}' is ambiguous",
                                         hint="give more digits of the id")
        raise ImageNotFoundError(f"image '{ref}' is not in the store", hint=hint)

    def _config_digest(self, manifest_digest: str) -> str:
        try:
            return parse_manifest(self.blobs.read_bytes(manifest_digest)).config.digest
        except Exception:
            return ""

    def get(self, ref: str) -> Image:
        digest, _ = self.resolve(ref)
        return self.image(digest)

    def image(self, manifest_digest: str) -> Image:
        """The Image for a manifest in the store, unpacking any snapshot not yet unpacked."""
        manifest = parse_manifest(self.blobs.read_bytes(manifest_digest, "manifest"))
        config_body = self.blobs.read_bytes(manifest.config.digest, "image config")
        raw = json_object(config_body, "image config")
        diff_ids = config_diff_ids(config_body)
        if len(diff_ids) != len(manifest.layers):
            raise UnsupportedMediaTypeError(
                f"image {manifest_digest}: {len(manifest.layers)} layers but "
                f"{len(diff_ids)} diff_ids in its config", hint="the image is malformed")
        dirs = []
        for layer, diff_id in zip(manifest.layers, diff_ids, strict=True):
            if not self.snapshots.has(diff_id):
                with self.writing():  # a prune must not run under this unpack
                    self.snapshots.unpack(self.blobs.path(layer.digest), diff_id)
            dirs.append(str(self.snapshots.path(diff_id)))
        names = tuple(sorted(n for n, d in self.refs.refs().items() if d == manifest_digest))
        try:
            return Image(
                id=manifest.config.digest,
                digest=manifest_digest,
                references=names,
                config=ImageConfig.from_oci(raw.get("config")),
                layer_dirs=tuple(reversed(dirs)),
                size=sum(d.size for d in manifest.layers),
                created=raw.get("created"),
                architecture=raw.get("architecture", "amd64"),
                os=raw.get("os", "linux"),
            )
        except ValidationError as exc:
            where = ".".join(str(p) for p in exc.errors()[0]["loc"])
            raise MalformedImageError(
                f"image config {manifest.config.digest[:19]}: {where}: "
                f"{exc.errors()[0]['msg']}",
                hint="the image is malformed: its registry or archive is broken, or "
                     "hostile") from None

    def list(self) -> builtins.list[ImageSummary]:
        by_digest: dict[str, builtins.list[str]] = {}
        for name, digest in self.refs.refs().items():
            by_digest.setdefault(digest, []).append(name)
        out = []
        for digest, names in by_digest.items():
            try:
                manifest = parse_manifest(self.blobs.read_bytes(digest))
                created = json.loads(self.blobs.read_bytes(manifest.config.digest)).get("created")
            except Exception:
                continue  # a half-removed image is not listed
            out.append(ImageSummary(id=manifest.config.digest, digest=digest,
                                    references=tuple(sorted(names)),
                                    size=sum(d.size for d in manifest.layers), created=created))
        return sorted(out, key=lambda s: s.references)

    # -- registry -----------------------------------------------------------------------
    async def ensure(self, ref: str, pull_policy: PullPolicy = "missing",
                     progress: Progress | None = None,
                     platform: Platform | None = None) -> Image:
        """The image for `ref`, pulled first if the policy says so."""
        if pull_policy == "always":
            return await self.pull(ref, progress, platform)
        try:
            # May unpack a loaded image's layers: not on the event loop.
            return await trio.to_thread.run_sync(self.get, ref)
        except ImageNotFoundError:
            if pull_policy == "never":
                raise ImageNotFoundError(
                    f"image '{ref}' is not in the store and pull_policy is never",
                    hint=f"run `stackd pull {ref}` or `stackd image import`/`load` first",
                ) from None
        return await self.pull(ref, progress, platform)

    async def pull(self, ref: str, progress: Progress | None = None,
                   platform: Platform | None = None) -> Image:
        """Pull `ref`; from an index, the entry for `platform` (default: the host's)."""
        from stackd.images.registry.client import RegistryClient
        from stackd.images.transfer import pull_image

        parsed = parse(ref)
        fd = await self.hold_for_writing()
        try:
            async with RegistryClient() as client:
                digest = await pull_image(self, parsed, client, progress or silent, platform)
            # A config no Image can be made of (a hostile registry's) is refused before
            # the image is named.
            await trio.to_thread.run_sync(self.image, digest)
            self.refs.set(str(parsed), digest)
        finally:
            os.close(fd)
        return await trio.to_thread.run_sync(self.image, digest)

    async def push(self, ref: str, dest: str | None = None, progress: Progress | None = None
                   ) -> str:
        """Push the image `ref` (to `dest` if given); returns the manifest digest."""
        from stackd.images.registry.client import RegistryClient
        from stackd.images.transfer import push_image

        digest, parsed = self.resolve(ref)
        target = parse(dest) if dest else parsed
        if target is None:
            raise ImageNotFoundError(f"'{ref}' is an image id; push needs a name",
                                     hint=f"run `stackd tag {ref} HOST/NAME:TAG` and push that")
        async with RegistryClient() as client:
            return await push_image(self, digest, target, client, progress or silent)

    # -- local refs ---------------------------------------------------------------------
    def tag(self, src: str, dst: str) -> None:
        digest, _ = self.resolve(src)
        self.refs.set(str(parse(dst)), digest)

    def remove(self, ref: str) -> builtins.list[str]:
        """Untag `ref` (every name of the image when `ref` is an id); returns the names removed.

        Content is freed by `prune`.
        """
        with flocked(self._store_lock):
            digest, parsed = self.resolve(ref)
            names = ([str(parsed)] if parsed is not None else
                     [n for n, d in self.refs.refs().items() if d == digest])
            for name in names:
                self.refs.delete(name)
            return names

    def untag_unused(self, in_use: Iterable[Sequence[str]]) -> builtins.list[str]:
        """`image prune -a`'s first half, as Docker's: every name of an image no
        container runs on (`in_use`: each container's layer dirs) is removed; returns
        those names. `prune` then frees the content."""
        used = {tuple(layers) for layers in in_use}
        with flocked(self._store_lock):
            gone = [name for name, digest in sorted(self.refs.refs().items())
                    if self.layer_dirs(digest) not in used]
            for name in gone:
                self.refs.delete(name)
        return gone

    def layer_dirs(self, manifest_digest: str) -> tuple[str, ...]:
        """The snapshot dirs an image's containers run on (`Image.layer_dirs`, top-most
        first), read without unpacking anything; () for content that is no image."""
        try:
            manifest = parse_manifest(self.blobs.read_bytes(manifest_digest, "manifest"))
            diff_ids = config_diff_ids(self.blobs.read_bytes(manifest.config.digest))
        except Exception:
            return ()
        return tuple(reversed([str(self.snapshots.path(d)) for d in diff_ids]))

    def _manifests_run_by(self, in_use: set[tuple[str, ...]]) -> set[str]:
        """The images (named or not) whose layers are exactly a container's."""
        found = set()
        for blob in self.blobs.all():
            if self.blobs.size(blob) <= 4 << 20 and self.layer_dirs(blob) in in_use:
                found.add(blob)
        return found

    def prune(self, in_use: Iterable[Sequence[str]] = ()) -> PruneReport:
        """Delete blobs and snapshots no reference reaches, and every crash leftover.

        `in_use`: each container's layer dirs. An image a container runs on is kept
        whole, named or not (`rmi -f`, or a tag that moved on with a pull): the
        container is started again from it after a crash or a restart, as Docker
        keeps an image its containers use.
        """
        with flocked(self._store_lock):
            keep_blobs: set[str] = set()
            roots = {tuple(layers) for layers in in_use}
            keep_snaps = {Path(p).name for layers in roots for p in layers}
            reached = set(self.refs.refs().values())
            if roots:
                reached |= self._manifests_run_by(roots)
            for digest in reached:
                keep_blobs.add(digest)
                try:
                    manifest = parse_manifest(self.blobs.read_bytes(digest))
                    diff_ids = config_diff_ids(self.blobs.read_bytes(manifest.config.digest))
                except Exception:
                    continue
                keep_blobs.add(manifest.config.digest)
                keep_blobs.update(d.digest for d in manifest.layers)
                keep_snaps.update(d[7:] for d in diff_ids)
            freed = removed_blobs = removed_snaps = 0
            gone = set()
            for blob in self.blobs.all():
                if blob not in keep_blobs:
                    freed += self.blobs.delete(blob)
                    removed_blobs += 1
                    gone.add(blob)
            for snap in self.snapshots.all():
                if snap[7:] not in keep_snaps:
                    freed += self.snapshots.delete(snap)
                    removed_snaps += 1
            self.snapshots.clear_temps()
            self.blobs.clear_ingest()
            if gone:
                self.refs.forget_sources(gone)
            from stackd.images.build.cache import BuildCache

            BuildCache(self).forget_missing()
        return PruneReport(blobs_removed=removed_blobs, snapshots_removed=removed_snaps,
                           bytes_freed=freed)

    # -- making images locally ----------------------------------------------------------
    def add_layer_from_tar(self, tar_path: Path) -> tuple[Descriptor, str]:
        """Store an uncompressed tar as a gzip layer blob and unpack it; (descriptor, diff_id)."""
        with self.writing():
            ingest = self.blobs.ingest()
            diff = _HashingWriter(ingest)
            try:
                # zlib-ng's level 2 packs as small as zlib's level 1 in 70% of the time.
                with open(tar_path, "rb") as src, _GzipFile(
                        fileobj=diff, mode="wb", compresslevel=2, mtime=0) as gz:
                    while chunk := src.read(CHUNK):
                        diff.hash_uncompressed(chunk)
                        gz.write(chunk)
            except BaseException:
                ingest.abort()
                raise
            size = ingest.size
            digest = ingest.commit("layer")
            diff_id = diff.diff_id
            if not self.snapshots.has(diff_id):
                tmp = self.snapshots.temp_dir()
                try:
                    with open(tar_path, "rb") as src:
                        unpack_layer(src, tmp)
                except BaseException:
                    remove_tree(tmp, ignore_errors=True)
                    raise
                self.snapshots.commit_dir(tmp, diff_id)
        return Descriptor(OCI_LAYER_GZIP, digest, size), diff_id

    def add_layer_from_dir(self, root: Path, exclude: frozenset[str] = frozenset()
                           ) -> tuple[Descriptor, str]:
        """A layer of the tree at `root` (overlayfs form: whiteouts as 0:0 devices)."""
        from stackd.images.layerdiff import write_layer_tar

        plain = self.blobs.ingest_dir / f"dir-{uuid.uuid4().hex}.tar"
        try:
            with open(plain, "wb") as out:
                write_layer_tar(str(root), out, exclude)
            return self.add_layer_from_tar(plain)
        finally:
            plain.unlink(missing_ok=True)

    def commit(self, config: ImageConfig, layers: builtins.list[tuple[Descriptor, str]],
               history: builtins.list[dict[str, Any]], names: Iterable[str] = (),
               created: str | None = None, raw_config: bytes | None = None) -> Image:
        """Write config and manifest for `layers` ((blob, diff_id), bottom first) and tag it."""
        with self.writing():
            body = raw_config or make_config(config, [d for _, d in layers], history, created)
            cfg = descriptor_of(body, OCI_CONFIG)
            self.blobs.put_bytes(body, cfg.digest, "image config")
            manifest = make_manifest(cfg, [b for b, _ in layers])
            digest = self.blobs.put_bytes(manifest, None, "manifest")
            for name in names:
                self.refs.set(str(parse(name)), digest)
        return self.image(digest)

    def import_rootfs(self, source: str | Path | BinaryIO, ref: str | None = None,
                      config: ImageConfig | None = None, shown: str | None = None) -> Image:
        """Like `docker import`: one layer from a root filesystem tar (gzip/zstd/plain),
        at a path or read once from a stream (`import -`: stdin), called `shown` in
        messages (default: the path)."""
        if isinstance(source, str):
            source = Path(source)
        from stackd.images.archive import regular_file

        name = shown or str(source)
        if isinstance(source, Path) and not regular_file(source):
            raise ArchiveError(f"{name} is not a file",
                               hint="give the path of a tar of a root filesystem")
        from stackd.images.compression import CorruptStreamError, open_decompressed
        from stackd.images.oci import now

        plain = self.root / "ingest" / f"import-{uuid.uuid4().hex}.tar"
        with self.writing():
            try:
                with contextlib.ExitStack() as stack:
                    raw = (stack.enter_context(open(source, "rb"))
                           if isinstance(source, Path) else source)
                    out = stack.enter_context(open(plain, "wb"))
                    try:
                        shutil.copyfileobj(open_decompressed(raw), out, CHUNK)
                    except CorruptStreamError as exc:
                        raise ArchiveError(f"{name}: {exc}", hint="the file is damaged "
                                           "or was not fully written; make it again") from exc
                layer = self.add_layer_from_tar(plain)
            finally:
                plain.unlink(missing_ok=True)
            history = [{"created": now(),
                        "created_by": f"stackd image import {os.path.basename(name)}"}]
            return self.commit(config or ImageConfig(), [layer], history,
                               names=[ref] if ref else [])

    # -- archives -----------------------------------------------------------------------
    def load(self, archive: str | Path | BinaryIO, shown: str | None = None
             ) -> builtins.list[Image]:
        """A `docker save` or OCI archive, at a path or read once from a stream."""
        from stackd.images.archive import load_archive

        return load_archive(self, Path(archive) if isinstance(archive, str) else archive,
                            shown)

    def save(self, refs: builtins.list[str], archive: str | Path | BinaryIO) -> None:
        """`docker save`: to a file, or streamed to `archive` (stdout)."""
        from stackd.images.archive import save_archive

        save_archive(self, refs, Path(archive) if isinstance(archive, str | Path) else archive)

    # -- build --------------------------------------------------------------------------
    async def build(self, context_dir: str | Path, dockerfile: str = "Dockerfile",
                    tag: str | builtins.list[str] | None = None,
                    build_args: dict[str, str] | None = None, target: str | None = None,
                    progress: Progress | None = None, no_cache: bool = False,
                    labels: dict[str, str] | None = None, pull: bool = False,
                    dockerfile_text: str | None = None,
                    secrets: dict[str, Path] | None = None,
                    network: RunNetwork | None = None,
                    network_mode: str | None = None,
                    extra_hosts: Sequence[str] = (), shm_size: int | None = None,
                    ulimits: Sequence[tuple[str, int, int]] = (),
                    contexts: dict[str, str] | None = None) -> Image:
        """Build a Dockerfile. `labels` are added to the result (compose `build.labels`);
        `pull` re-pulls FROM images even when present (compose `build.pull`);
        `dockerfile_text` is the Dockerfile itself (compose `build.dockerfile_inline`),
        read instead of `dockerfile`; `secrets` (id → host file) are what
        `RUN --mount=type=secret` mounts (build/secrets.py); `network` is what RUN steps
        are on (build/network.py; default `run_network`, which the daemon sets; with
        neither, loopback only) and `network_mode` ("default" or "none", compose's
        `build.network`) whether they are on it unless a RUN says otherwise;
        `extra_hosts` ("host=ip"), `shm_size` and `ulimits` ((name, soft, hard)) what
        Compose's build: says of each step's container; `contexts` the named ones
        (name → directory or docker-image://REF: compose's `additional_contexts`)."""
        from stackd.images.build.builder import Builder
        from stackd.images.build.network import StepOptions

        tags = [tag] if isinstance(tag, str) else builtins.list(tag or [])
        builder = Builder(self, Path(context_dir), dockerfile, build_args or {}, progress or silent,
                          no_cache=no_cache, labels=labels or {}, pull=pull,
                          dockerfile_text=dockerfile_text, secrets=secrets,
                          network=network or self.run_network,
                          network_mode=network_mode or "default",
                          step_options=StepOptions(tuple(extra_hosts), shm_size, tuple(ulimits)),
                          contexts=contexts)
        return await builder.build(target=target, tags=tags)


class _HashingWriter:
    """A write-only file object feeding an Ingest, hashing the uncompressed side too."""

    def __init__(self, ingest: Any) -> None:
        import hashlib

        self.ingest = ingest
        self._h = hashlib.sha256()

    def hash_uncompressed(self, data: bytes) -> None:
        self._h.update(data)

    def write(self, data: bytes) -> int:
        self.ingest.write(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    @property
    def diff_id(self) -> str:
        return "sha256:" + self._h.hexdigest()


__all__ = ["ImageStore", "PullPolicy"]
