"""Layer unpacking on the real file system: overlay whiteouts, metadata, and hostile layers."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from support.busybox import busybox_available, make_busybox_rootfs
from support.hostpackages import require

from stackd.images.errors import DigestMismatchError, LayerRejectedError
from stackd.images.snapshots import SnapshotStore
from stackd.images.unpack import unpack_layer
from stackd.roots import Roots
from stackd.runtime import Runtime
from stackd.runtime.containerspec import ContainerSpec, ProcessSpec
from stackd.trees import remove_tree

pytestmark = pytest.mark.root  # device nodes, chown, trusted.* xattrs


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **kw: object
          ) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for ti, data in entries:
            tar.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


def listing(root: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = p.read_bytes() if p.is_file() else oct(
                p.lstat().st_mode)
    return out


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[SnapshotStore, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("keep me")
    return SnapshotStore(tmp_path / "store" / "snapshots", tmp_path / "store" / "locks"), outside


def unpack_bytes(snaps: SnapshotStore, data: bytes, tmp: Path) -> Path:
    blob = tmp / "layer.blob"
    blob.write_bytes(data)
    plain = data
    if data[:2] == b"\x1f\x8b":
        plain = gzip.decompress(data)
    elif data[:4] == b"\x28\xb5\x2f\xfd":
        plain = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return snaps.unpack(blob, "sha256:" + hashlib.sha256(plain).hexdigest())


def hostile_layers(outside: Path) -> dict[str, bytes]:
    abs_outside = str(outside)
    rel_up = "../../../outside"  # from store/snapshots/.tmp-x up to tmp_path/outside
    return {
        "dot-dot traversal": make_tar(entry("../../../outside/pwned", data=b"x")),
        "traversal hidden mid-path": make_tar(entry("a/b/../../../../outside/pwned", data=b"x")),
        "absolute name": make_tar(entry(f"{abs_outside}/pwned", data=b"x")),
        "relative symlink escape": make_tar(
            entry("evil", tarfile.SYMTYPE, linkname=rel_up),
            entry("evil/pwned", data=b"x")),
        "symlink chain escape": make_tar(
            entry("a", tarfile.SYMTYPE, linkname="b"),
            entry("b", tarfile.SYMTYPE, linkname="c/../.."),
            entry("c", tarfile.DIRTYPE),
            entry("a/pwned", data=b"x")),
        "dir swapped for symlink": make_tar(
            entry("d", tarfile.DIRTYPE),
            entry("d", tarfile.SYMTYPE, linkname="../.."),
            entry("d/pwned", data=b"x")),
        "hardlink to outside": make_tar(
            entry("link", tarfile.LNKTYPE, linkname="../../../outside/secret")),
        "hardlink absolute": make_tar(
            entry("link", tarfile.LNKTYPE, linkname=f"{abs_outside}/secret")),
        "hardlink through symlink": make_tar(
            entry("s", tarfile.SYMTYPE, linkname="../../.."),
            entry("link", tarfile.LNKTYPE, linkname="s/outside/secret")),
        "whiteout of ..": make_tar(entry("etc/.wh..."), ),
        "whiteout through symlink": make_tar(
            entry("evil", tarfile.SYMTYPE, linkname=rel_up),
            entry("evil/.wh.secret")),
        "opaque through symlink": make_tar(
            entry("evil", tarfile.SYMTYPE, linkname=rel_up),
            entry("evil/.wh..wh..opq")),
        "block device outside /dev": make_tar(
            entry("etc/sda", tarfile.BLKTYPE, devmajor=8, devminor=0)),
        "char device outside /dev": make_tar(
            entry("usr/mem", tarfile.CHRTYPE, devmajor=1, devminor=1)),
        "overlay redirect xattr": make_tar(
            entry("d", tarfile.DIRTYPE,
                  pax_headers={"SCHILY.xattr.trusted.overlay.redirect": "/etc"})),
        "parent is a file": make_tar(entry("f", data=b"x"), entry("f/pwned", data=b"x")),
        "not a tar at all": b"\x1f\x8b" + gzip.compress(b"garbage" * 100)[2:],
    }


# Why each hostile layer is refused: the reason the error must give, not any refusal.
REFUSALS = {
    "dot-dot traversal": "entry climbs out with '..'",
    "traversal hidden mid-path": "entry climbs out with '..'",
    "absolute name": "entry has an absolute name",
    "relative symlink escape": "through the symlink 'evil' -> '../../../outside' which points "
                               "outside the layer",
    "symlink chain escape": "through the symlink 'b' -> 'c/../..' which points outside the layer",
    "dir swapped for symlink": "through the symlink 'd' -> '../..' which points outside the layer",
    "hardlink to outside": "hard link target climbs out with '..'",
    "hardlink absolute": "hard link target has an absolute name",
    "hardlink through symlink": "through the symlink 's' -> '../../..' which points outside "
                                "the layer",
    "whiteout of ..": "whiteout names no plain child of its directory",
    "whiteout through symlink": "through the symlink 'evil' -> '../../../outside'",
    "opaque through symlink": "through the symlink 'evil' -> '../../../outside'",
    "block device outside /dev": "device node outside /dev",
    "char device outside /dev": "device node outside /dev",
    "overlay redirect xattr": "overlayfs-internal xattr trusted.overlay.redirect",
    "parent is a file": "its parent 'f' is not a directory",
    "not a tar at all": "layer is not a valid tar",
}
# Absolute names and links mean "in the image's root" to Docker, so an unpacker may
# also take these and re-root them inside the layer; refused or taken, they must write
# nothing outside the store.
# An absolute symlink used as a parent is followed inside the layer, re-rooted
# (test_absolute_symlink_as_a_parent_is_followed_inside_the_layer).
REROOTABLE = {"absolute name", "hardlink absolute"}


def everything_but(root: Path, skip: set[str]) -> dict[str, bytes | str]:
    """listing(root) without the top-level entries named in skip."""
    return {k: v for k, v in listing(root).items() if k.split("/")[0] not in skip}


async def test_hostile_layers_are_rejected_and_write_nothing_outside(
        sandbox: tuple[SnapshotStore, Path], tmp_path: Path, no_leaks: Roots) -> None:
    snaps, outside = sandbox
    # Ours to change: the store, the blobs, the container's roots and layers.
    ours = {"store", "blobs", "layers", no_leaks.state.name, no_leaks.run.name}
    before = everything_but(tmp_path, ours)
    assert "outside/secret" in before
    layers = hostile_layers(outside)
    assert set(layers) == set(REFUSALS)
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    escaped, taken = [], []
    for name, data in layers.items():
        try:
            snapshot = unpack_bytes(snaps, data, blobs)
        except LayerRejectedError as err:
            assert REFUSALS[name] in str(err), (name, str(err))
        else:
            assert name in REROOTABLE, f"{name}: unpacked without a refusal"
            taken.append(name)
            shutil.rmtree(snapshot)
        if everything_but(tmp_path, ours) != before:
            escaped.append(name)
        # Nothing half-unpacked stays behind, under its final name or as a temp dir.
        assert list(snaps.root.iterdir()) == [], name
    assert escaped == []
    print(f"re-rooted instead of refused: {taken}")

    # Such links in a running container's root: a program writing through them, as
    # root, reaches only the container's own files.
    links = tmp_path / "layers" / "links"
    links.mkdir(parents=True)
    (links / "abs").symlink_to(outside)
    (links / "abs-file").symlink_to(outside / "secret")
    # Enough '..' to climb from the layer dir to the host's /, then down to outside.
    (links / "rel").symlink_to("../" * len(links.parts) + str(outside).lstrip("/"))
    require(busybox_available(), "busybox-static")
    busybox = make_busybox_rootfs(tmp_path / "layers" / "busybox")
    os.chmod(tmp_path / "layers", 0o755)
    rt = Runtime(no_leaks)
    spec = ContainerSpec(id="links", name="links", layers=(str(links), str(busybox)),
                         process=ProcessSpec(args=("sh", "-c", "; ".join([
                             f"mkdir -p {outside}",
                             "echo pwned > /abs/pwned", "echo pwned > /abs-file",
                             "echo pwned > /rel/pwned", "cat /abs/pwned /abs-file"]))))
    await rt.create(spec)
    try:
        await rt.start(spec.id)
        code = (await rt.wait(spec.id)).code
        out = [r.line async for r in rt.logs(spec.id)]
    finally:
        await rt.delete(spec.id, force=True)
    assert everything_but(tmp_path, ours) == before
    assert (code, out) == (0, ["pwned", "pwned"])  # it wrote and read its own copies


def test_absolute_symlink_as_a_parent_is_followed_inside_the_layer(
        sandbox: tuple[SnapshotStore, Path], tmp_path: Path) -> None:
    """`lib3 -> /usr/lib3` then `lib3/foo` is how images are built; a link at the host
    (`evil -> <outside>`) is the same thing and lands under the layer's root too."""
    snaps, outside = sandbox
    before = listing(outside)
    snap = unpack_bytes(snaps, make_tar(
        entry("usr", tarfile.DIRTYPE),
        entry("usr/lib3", tarfile.DIRTYPE),
        entry("lib3", tarfile.SYMTYPE, linkname="/usr/lib3"),
        entry("lib3/foo", data=b"foo"),
        entry("evil", tarfile.SYMTYPE, linkname=str(outside)),
        entry("evil/pwned", data=b"x"),
        entry("up", tarfile.SYMTYPE, linkname="/../.."),
    ), tmp_path)
    assert (snap / "usr/lib3/foo").read_bytes() == b"foo"
    assert os.readlink(snap / "lib3") == "/usr/lib3"
    assert (snap / str(outside).lstrip("/") / "pwned").read_bytes() == b"x"
    assert listing(outside) == before


def test_a_directory_replaced_later_in_the_layer_is_resolved_again(
        sandbox: tuple[SnapshotStore, Path], tmp_path: Path) -> None:
    """The unpacker remembers the directories it resolved (a deep tree walked its whole
    path again per entry: minutes for a few thousand levels); a name replaced by a
    link, or a link replaced, must send what follows where the layer now says — and
    never through a link to the host."""
    snaps, outside = sandbox
    before = listing(outside)
    snap = unpack_bytes(snaps, make_tar(
        entry("a", tarfile.DIRTYPE),
        entry("a/first", data=b"1"),
        entry("b", tarfile.DIRTYPE),
        entry("a", tarfile.SYMTYPE, linkname="b"),  # the directory a becomes a link
        entry("a/second", data=b"2"),
        entry("c", tarfile.SYMTYPE, linkname="b"),
        entry("c/third", data=b"3"),
        entry("d", tarfile.DIRTYPE),
        entry("c", tarfile.SYMTYPE, linkname="/d"),  # the link c now leads elsewhere
        entry("c/fourth", data=b"4"),
        entry("b", tarfile.SYMTYPE, linkname=str(outside)),  # b: a link at the host's path
        entry("a/fifth", data=b"5"),
    ), tmp_path)
    assert os.readlink(snap / "a") == "b" and not (snap / "a" / "first").exists()
    assert (snap / "d" / "fourth").read_bytes() == b"4"
    assert (snap / str(outside).lstrip("/") / "fifth").read_bytes() == b"5"
    assert listing(outside) == before


def test_a_layer_nested_thousands_deep_unpacks(
        sandbox: tuple[SnapshotStore, Path], tmp_path: Path) -> None:
    """Each entry's directory is known from the entry before it: a chain 1,500 deep
    unpacks (~1 min before), and is removed with its snapshot."""
    snaps, _ = sandbox
    names = ["/".join(["d"] * (i + 1)) for i in range(1500)]
    snap = unpack_bytes(snaps, make_tar(*(entry(n, tarfile.DIRTYPE) for n in names),
                                        entry(names[-1] + "/leaf", data=b"deep")), tmp_path)
    try:
        assert (snap / names[-1] / "leaf").read_bytes() == b"deep"
        assert snaps.delete("sha256:" + snap.name) == 4
        assert not snap.exists()
    finally:  # pytest's own removal of tmp_path recurses
        remove_tree(snaps.root, ignore_errors=True)


def test_error_names_the_entry_and_the_reason(sandbox: tuple[SnapshotStore, Path],
                                              tmp_path: Path) -> None:
    snaps, outside = sandbox
    with pytest.raises(LayerRejectedError) as err:
        unpack_bytes(snaps, hostile_layers(outside)["relative symlink escape"], tmp_path)
    assert str(err.value).startswith(
        "layer rejected: 'evil/pwned': it is placed through the symlink 'evil' -> "
        "'../../../outside' which points outside the layer")


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "none": lambda b: b,
    "gzip": gzip.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
}


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_metadata_whiteouts_and_links_become_overlay_form(
        sandbox: tuple[SnapshotStore, Path], tmp_path: Path, compression: str) -> None:
    snaps, _ = sandbox
    data = make_tar(
        entry("bin", tarfile.DIRTYPE),
        entry("bin/tool", data=b"#!/bin/sh\n", mode=0o4755, uid=0, gid=0, mtime=1234567),
        entry("bin/tool2", tarfile.LNKTYPE, linkname="bin/tool"),
        entry("bin/sh", tarfile.SYMTYPE, linkname="tool"),
        entry("home", tarfile.DIRTYPE),
        entry("home/app", tarfile.DIRTYPE, uid=1000, gid=1000, mode=0o750),
        entry("etc", tarfile.DIRTYPE),
        entry("etc/.wh.removed"),
        entry("var", tarfile.DIRTYPE),
        entry("var/cache", tarfile.DIRTYPE),
        entry("var/cache/.wh..wh..opq"),
        entry("dev", tarfile.DIRTYPE),
        entry("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
        entry("run", tarfile.DIRTYPE),
        entry("run/fifo", tarfile.FIFOTYPE),
        entry("link-dir", tarfile.SYMTYPE, linkname="home"),
        entry("link-dir/via-link", data=b"inside"),
        entry("caps", data=b"c", pax_headers={"SCHILY.xattr.user.note": "hello"}),
    )
    snap = unpack_bytes(snaps, COMPRESSORS[compression](data), tmp_path)
    tool = (snap / "bin/tool").stat()
    assert stat.S_IMODE(tool.st_mode) == 0o4755 and tool.st_mtime == 1234567
    assert (snap / "bin/tool2").stat().st_ino == tool.st_ino
    assert os.readlink(snap / "bin/sh") == "tool"
    app = (snap / "home/app").stat()
    assert (app.st_uid, app.st_gid, stat.S_IMODE(app.st_mode)) == (1000, 1000, 0o750)
    wh = (snap / "etc/removed").lstat()
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert os.getxattr(snap / "var/cache", "trusted.overlay.opaque") == b"y"
    assert not list((snap / "var/cache").iterdir())
    null = (snap / "dev/null").lstat()
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_ISFIFO((snap / "run/fifo").lstat().st_mode)
    assert (snap / "home/via-link").read_bytes() == b"inside"
    assert os.getxattr(snap / "caps", "user.note") == b"hello"


def test_layer_whose_content_differs_from_its_diff_id_is_not_used(
        sandbox: tuple[SnapshotStore, Path], tmp_path: Path) -> None:
    snaps, _ = sandbox
    blob = tmp_path / "blob"
    blob.write_bytes(make_tar(entry("a", data=b"1")))
    with pytest.raises(DigestMismatchError):
        snaps.unpack(blob, "sha256:" + "0" * 64)
    assert list(snaps.root.iterdir()) == []


def test_unpack_and_diff_round_trip(tmp_path: Path) -> None:
    from stackd.images.layerdiff import write_layer_tar

    src = make_tar(
        entry("d", tarfile.DIRTYPE), entry("d/f", data=b"x", mode=0o2755),
        entry("d/.wh.gone"), entry("o", tarfile.DIRTYPE), entry("o/.wh..wh..opq"),
        entry("d/h", tarfile.LNKTYPE, linkname="d/f"))
    first = tmp_path / "first"
    first.mkdir()
    unpack_layer(io.BytesIO(src), first)
    out = io.BytesIO()
    write_layer_tar(str(first), out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = tar.getnames()
    assert names == ["d", "d/f", "d/.wh.gone", "d/h", "o", "o/.wh..wh..opq"]
    second = tmp_path / "second"
    second.mkdir()
    unpack_layer(io.BytesIO(out.getvalue()), second)
    assert listing(first) == listing(second)


def _gzip_members(data: bytes) -> bytes:
    """The tar as three concatenated gzip members, then zero padding (as some tools write)."""
    third = len(data) // 3
    return (gzip.compress(data[:third]) + gzip.compress(data[third:2 * third])
            + gzip.compress(data[2 * third:]) + b"\0" * 1024)


@pytest.mark.parametrize("shape", ["plain", "gzip", "gzip-members", "zstd-frames"])
def test_file_data_is_exact_whatever_the_stream_shape(
        sandbox: tuple[SnapshotStore, Path], tmp_path: Path, shape: str) -> None:
    """File data is copied straight from the decompressor's chunks: contents that span
    chunks and gzip members, a 9 MiB file that inflates 4 MiB at a time, long names,
    and an empty file all come out byte for byte."""
    snaps, _ = sandbox
    noise = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(40_000))
    files = {
        "big/zeros": b"\0" * (9 << 20),  # one gzip chunk in, several out
        "big/noise": noise,  # 1.25 MB, not a multiple of 512
        "d/" + "n" * 150 + "/long": b"pax path",
        "empty": b"",
        "odd": b"x" * 511,
    }
    data = make_tar(entry("big", tarfile.DIRTYPE), entry("d", tarfile.DIRTYPE),
                    entry("d/" + "n" * 150, tarfile.DIRTYPE),
                    *(entry(name, data=body) for name, body in files.items()))
    third = len(data) // 3
    blob = {
        "plain": data,
        "gzip": gzip.compress(data),
        "gzip-members": _gzip_members(data),
        "zstd-frames": b"".join(zstandard.ZstdCompressor().compress(data[i:i + third])
                                for i in range(0, len(data), third)),
    }[shape]
    (tmp_path / "layer.blob").write_bytes(blob)
    snap = snaps.unpack(tmp_path / "layer.blob", "sha256:" + hashlib.sha256(data).hexdigest())
    for name, body in files.items():
        assert (snap / name).read_bytes() == body, name


def test_truncated_layer_is_rejected_and_leaves_nothing(
        sandbox: tuple[SnapshotStore, Path], tmp_path: Path) -> None:
    """A layer cut off inside a file's data (a broken download, a short blob) is an
    error naming the layer as corrupt, never a short file in a used snapshot."""
    snaps, _ = sandbox
    data = make_tar(entry("a", data=b"1" * 4096), entry("b", data=b"2" * (1 << 20)))
    for cut in (data[:700], data[:4096 + 1024 + 100_000]):
        with pytest.raises(LayerRejectedError, match=r"unexpected end of data|corrupt"):
            unpack_bytes(snaps, gzip.compress(cut), tmp_path)
        assert list(snaps.root.iterdir()) == []


@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_sparse_files_come_out_whole(sandbox: tuple[SnapshotStore, Path], tmp_path: Path,
                                     fmt: str) -> None:
    """GNU tar's sparse members (type S, and pax's sparse maps) go through tarfile's own
    reader, not the straight copy; the member after one must still land intact."""
    import subprocess

    snaps, _ = sandbox
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.write(b"head")
        f.seek(5 << 20)
        f.write(b"middle")
        f.seek(12 << 20)
        f.write(b"tail")
    (src / "after").write_bytes(b"after")
    subprocess.run(["tar", "-C", str(src), "--sparse", f"--format={fmt}", "-cf",
                    str(tmp_path / "sparse.tar"), "sparse", "after"], check=True)
    data = (tmp_path / "sparse.tar").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getmember("sparse").sparse is not None  # really a sparse member
    snap = unpack_bytes(snaps, gzip.compress(data), tmp_path)
    assert (snap / "sparse").read_bytes() == (src / "sparse").read_bytes()
    assert (snap / "after").read_bytes() == b"after"
