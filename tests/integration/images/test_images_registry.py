"""Push to and pull from a real docker-registry process."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.registry import RunningRegistry

from stackd.images import ImageStore


async def test_import_push_pull_into_empty_store_keeps_digests(
        store: ImageStore, empty_store: ImageStore, registry: RunningRegistry,
        busybox_tar: Path) -> None:
    ref = f"{registry.host}/test/busybox:1"
    img = store.import_rootfs(busybox_tar, ref)
    assert await store.push(ref) == img.digest

    pulled = await empty_store.pull(ref)
    assert (pulled.id, pulled.digest) == (img.id, img.digest)
    assert pulled.references == (ref,)
    top = Path(pulled.layer_dirs[0])
    assert (top / "bin/busybox").is_file()
    assert (top / "bin/sh").is_symlink()
    assert (top / "home/app").stat().st_uid == 1000


@pytest.mark.parametrize("policy", ["never"])
async def test_ensure_never_names_the_image_and_the_fix(store: ImageStore, policy: str) -> None:
    from stackd.errors import NotFoundError

    with pytest.raises(NotFoundError) as err:
        await store.ensure("nothere:1", pull_policy=policy)  # type: ignore[arg-type]
    assert "'nothere:1' is not in the store and pull_policy is never" in str(err.value)
    assert "stackd pull nothere:1" in str(err.value)
