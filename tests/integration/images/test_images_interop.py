"""Interop with skopeo (Debian's) and with archives written by other tools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.registry import RunningRegistry, skopeo

from stackd.images import ImageStore
from stackd.images.errors import ArchiveError


async def test_image_pushed_by_stackd_is_readable_by_skopeo(
        store: ImageStore, registry: RunningRegistry, busybox_tar: Path, tmp_path: Path) -> None:
    ref = f"{registry.host}/interop/pushed:1"
    img = store.import_rootfs(busybox_tar, ref)
    await store.push(ref)
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}"))
    assert info["Digest"] == img.digest
    assert info["Os"] == "linux" and info["Architecture"] == "amd64"
    skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path / 'oci'}:x")
    index = json.loads((tmp_path / "oci" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == img.digest


async def test_oci_layout_copied_in_by_skopeo_is_pullable(
        store: ImageStore, empty_store: ImageStore, registry: RunningRegistry,
        busybox_tar: Path, tmp_path: Path) -> None:
    img = store.import_rootfs(busybox_tar, "local/source:1")
    store.save(["local/source:1"], tmp_path / "saved.tar")
    # skopeo re-reads our archive into an OCI layout, then pushes that layout itself.
    skopeo("copy", f"docker-archive:{tmp_path / 'saved.tar'}", f"oci:{tmp_path / 'layout'}:v1")
    ref = f"{registry.host}/interop/by-skopeo:v1"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'layout'}:v1", f"docker://{ref}")
    pulled = await empty_store.pull(ref)
    # skopeo rewrites the config and recompresses, but the layer content is the same.
    assert [Path(d).name for d in pulled.layer_dirs] == [Path(d).name for d in img.layer_dirs]

    # From a docker archive skopeo pushes Docker schema2 media types.
    v2s2 = f"{registry.host}/interop/v2s2:1"
    skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{tmp_path / 'saved.tar'}",
           f"docker://{v2s2}")
    pulled2 = await empty_store.pull(v2s2)
    manifest = json.loads(empty_store.blobs.read_bytes(pulled2.digest))
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert pulled2.layer_dirs == pulled.layer_dirs
    assert (Path(pulled.layer_dirs[0]) / "bin/busybox").is_file()


async def test_docker_archive_and_oci_archive_written_by_skopeo_load(
        store: ImageStore, empty_store: ImageStore, registry: RunningRegistry,
        busybox_tar: Path, tmp_path: Path) -> None:
    ref = f"{registry.host}/interop/archive:1"
    img = store.import_rootfs(busybox_tar, ref)
    await store.push(ref)
    skopeo("copy", "--src-tls-verify=false", f"docker://{ref}",
           f"docker-archive:{tmp_path / 'docker.tar'}:example.com/team/app:2")
    (loaded,) = empty_store.load(tmp_path / "docker.tar")
    assert loaded.id == img.id
    assert loaded.references == ("example.com/team/app:2",)
    assert (Path(loaded.layer_dirs[0]) / "bin/sh").is_symlink()

    skopeo("copy", "--src-tls-verify=false", f"docker://{ref}",
           f"oci-archive:{tmp_path / 'oci.tar'}:example.com/team/app:3")
    (from_oci,) = empty_store.load(tmp_path / "oci.tar")
    assert from_oci.digest == img.digest
    assert "example.com/team/app:3" in from_oci.references


def test_save_then_load_into_an_empty_store(store: ImageStore, empty_store: ImageStore,
                                            busybox_tar: Path, tmp_path: Path) -> None:
    img = store.import_rootfs(busybox_tar, "busybox:test")
    store.tag("busybox:test", "registry.example:5000/bb:2")
    store.save(["busybox:test", "registry.example:5000/bb:2"], tmp_path / "out.tar")
    images = empty_store.load(tmp_path / "out.tar")
    assert {i.id for i in images} == {img.id}
    assert set(images[-1].references) == {"docker.io/library/busybox:test",
                                          "registry.example:5000/bb:2"}
    # skopeo reads what we wrote, both as a docker archive and as an OCI archive.
    info = json.loads(skopeo("inspect", f"docker-archive:{tmp_path / 'out.tar'}"))
    assert info["Os"] == "linux"


def test_garbage_archive_is_a_clear_error(store: ImageStore, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar" * 100)
    with pytest.raises(ArchiveError) as err:
        store.load(bad)
    assert "not a readable image archive" in str(err.value)
