"""The store's own promises: crash leftovers are never used, prune, ensure's pull policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.registry import RunningRegistry

from stackd.errors import NotFoundError
from stackd.images import ImageStore
from stackd.images.errors import RegistryError


def test_crash_leftovers_are_never_used_and_prune_removes_them(
        store: ImageStore, busybox_tar: Path) -> None:
    img = store.import_rootfs(busybox_tar, "bb:1")
    # What a process killed mid-pull leaves: a partial ingest and a partial unpack.
    (store.blobs.ingest_dir / "0123.part").write_bytes(b"half a blob")
    half = store.root / "snapshots" / ".tmp-deadbeef"
    (half / "bin").mkdir(parents=True)
    # …and a blob renamed into place by hand whose bytes do not match its name.
    bogus = "sha256:" + "ab" * 32
    store.blobs.path(bogus).write_bytes(b"not what the name says")

    assert [s.id for s in store.list()] == [img.id]
    assert store.get("bb:1").layer_dirs == img.layer_dirs
    assert str(half) not in img.layer_dirs
    assert bogus not in {i.digest for i in store.list()}

    report = store.prune()
    assert report.blobs_removed == 1  # the bogus one; the image's blobs stay
    assert not half.exists() and list(store.blobs.ingest_dir.iterdir()) == []
    assert store.get("bb:1").id == img.id


def test_prune_frees_untagged_content_but_keeps_layers_in_use(
        store: ImageStore, busybox_tar: Path) -> None:
    from stackd.images.models import ImageConfig

    a = store.import_rootfs(busybox_tar, "a:1")
    b = store.import_rootfs(busybox_tar, "b:1", config=ImageConfig(cmd=("true",)))
    assert a.layer_dirs == b.layer_dirs  # one snapshot shared
    assert store.remove("a:1") == ["docker.io/library/a:1"]
    report = store.prune()
    assert (report.blobs_removed, report.snapshots_removed) == (2, 0)  # a's config + manifest
    assert os.path.isdir(b.layer_dirs[0])

    store.remove(b.id[7:19])
    # A container still runs on it: kept whole, though no name reaches it, so the
    # container can be started again from it (it was 3 blobs freed, its layer kept).
    report = store.prune(in_use=[b.layer_dirs])
    assert (report.blobs_removed, report.snapshots_removed) == (0, 0)
    assert store.image(b.digest).layer_dirs == b.layer_dirs
    report = store.prune()
    assert report.snapshots_removed == 1 and report.bytes_freed > 1_000_000  # busybox
    assert not os.path.exists(b.layer_dirs[0])
    with pytest.raises(NotFoundError):
        store.get("b:1")


async def test_ensure_pulls_only_when_the_policy_says(
        store: ImageStore, empty_store: ImageStore, registry: RunningRegistry,
        busybox_tar: Path) -> None:
    ref = f"{registry.host}/ensure/bb:1"
    img = store.import_rootfs(busybox_tar, ref)
    await store.push(ref)
    with pytest.raises(NotFoundError):
        await empty_store.ensure(ref, pull_policy="never")
    assert (await empty_store.ensure(ref)).digest == img.digest  # "missing": pulls
    registry.stop()
    assert (await empty_store.ensure(ref)).digest == img.digest  # present: no network needed
    with pytest.raises(RegistryError) as err:
        await empty_store.ensure(ref, pull_policy="always")
    # Which image: a stack's pull of several on a host with no way out named none.
    assert f"{ref}: registry {registry.host} could not be reached: " in str(err.value)
    # In words, not Python's: was "…: ConnectError('all attempts … failed')".
    assert "Error(" not in str(err.value) and "[Errno" not in str(err.value)
