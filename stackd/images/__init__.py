"""Images: content-addressed blob store, layer snapshots, registry client, load/save/import, build.

The public API (trio async where it touches the network or runs containers):

    store = ImageStore(roots)

    await store.ensure(ref, pull_policy="missing"|"always"|"never", progress=None) -> Image
        The image for `ref`, pulled per policy. Raises ImageNotFoundError (a
        NotFoundError) naming the image and the fix when it is missing and may not be pulled.
    await store.pull(ref, progress=None) -> Image
    await store.push(ref, dest=None, progress=None) -> str        manifest digest
    store.get(ref) -> Image            by name (normalised like Docker) or id prefix
    store.import_rootfs(tar_path, ref=None) -> Image                like `docker import`
    store.load(archive) -> list[Image]  docker save tarballs and OCI archives
    store.save(refs, archive) -> None   Docker 25 format: OCI layout + manifest.json
    store.tag(src, dst) -> None
    store.remove(ref) -> list[str]      untags; content is freed by prune
    store.prune(in_use=()) -> PruneReport
    store.list() -> list[ImageSummary]
    await store.build(context_dir, dockerfile="Dockerfile", tag=None, build_args={},
                      target=None, progress=None, no_cache=False, labels=None,
                      pull=False) -> Image

`Image.layer_dirs` are snapshot directories, top-most first: pass them as
`ContainerSpec.layers` (overlay lower dirs). They are read-only by contract.
Everything lives under `roots.state / "images"`; see `store.py` for the layout.
"""

from stackd.images.models import Healthcheck, Image, ImageConfig, ImageSummary, PruneReport
from stackd.images.progress import Progress, ProgressEvent
from stackd.images.store import ImageStore, PullPolicy

__all__ = [
    "Healthcheck",
    "Image",
    "ImageConfig",
    "ImageStore",
    "ImageSummary",
    "Progress",
    "ProgressEvent",
    "PruneReport",
    "PullPolicy",
]
