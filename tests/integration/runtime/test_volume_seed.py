"""Seeding a named volume from the image (stackd.runtime.volume_seed): owners, modes
and times kept, and links copied as links — never followed to what they name."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from stackd.runtime import inroot, volume_seed

pytestmark = pytest.mark.root  # chown to other users, mknod


def listing(top: Path) -> dict[str, tuple[int, int, int, int, bytes | str]]:
    out: dict[str, tuple[int, int, int, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in ["", *dirnames, *filenames]:
            p = Path(dirpath) / name if name else Path(dirpath)
            st = p.lstat()
            body: bytes | str = os.readlink(p) if stat.S_ISLNK(st.st_mode) else \
                p.read_bytes() if stat.S_ISREG(st.st_mode) else ""
            mtime = 0 if stat.S_ISLNK(st.st_mode) else st.st_mtime_ns
            out[str(p.relative_to(top))] = (st.st_mode, st.st_uid, st.st_gid, mtime, body)
    return out


def test_seed_copies_the_tree_with_its_metadata_and_links_as_links(tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("host secret\n")
    src = tmp_path / "image-dir"
    (src / "conf.d").mkdir(parents=True)
    (src / "conf.d" / "a.conf").write_text("a\n")
    os.chown(src / "conf.d", 1000, 1000)
    os.chmod(src / "conf.d", 0o750)
    (src / "tool").write_bytes(b"\x7fELF")
    os.chown(src / "tool", 0, 50)
    os.chmod(src / "tool", 0o4755)  # after the chown, which clears set-uid
    (src / "to-host").symlink_to(host)
    (src / "to-secret").symlink_to(host / "secret")
    (src / "up").symlink_to("../../..")
    os.mkfifo(src / "fifo", 0o640)
    os.utime(src / "conf.d" / "a.conf", ns=(1, 1_000_000_000))
    os.chmod(src, 0o711)
    volume = tmp_path / "volume"
    volume.mkdir()
    before_host = listing(host)

    fd = inroot.open_root(src)
    try:
        volume_seed.seed(fd, volume)
    finally:
        os.close(fd)

    assert listing(volume) == listing(src)
    assert stat.S_IMODE(os.stat(volume / "tool").st_mode) == 0o4755
    assert os.readlink(volume / "to-host") == str(host)
    assert listing(host) == before_host


def test_an_image_directory_nested_past_the_recursion_limit_seeds_the_volume(
        tmp_path: Path) -> None:
    """The copy recursed per level: a tree ~1,000 deep failed the container's start."""
    from support.deeptree import nest

    from stackd.trees import remove_tree

    depth = 1100
    src, volume = tmp_path / "image-dir", tmp_path / "volume"
    src.mkdir()
    volume.mkdir()
    nest(src, depth, name="d", leaf=b"deep")
    root = inroot.open_root(src)
    try:
        volume_seed.seed(root, volume)
        assert (volume / "/".join(["d"] * depth) / "leaf").read_bytes() == b"deep"
    finally:
        os.close(root)
        for d in (src, volume):  # pytest's own removal of tmp_path recurses
            remove_tree(d, ignore_errors=True)
