"""Container and layer directories are spread over the filesystem (stackd.dirplacement).

On this host's journal-less ext4, an inode allocation skips every inode of its block
group freed in the last minute, and ext4 keeps a subdirectory in its parent's group:
after a `down`, each inode of the next `up` scanned past all the containers just
removed — 13 ms of kernel time per container in the monitor, most of an `up` of 50
(docs/performance.md). The parents of each container's and each layer's directory now
carry ext4's "top of directory hierarchies" flag, so their subdirectories go to groups
of their own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stackd.dirplacement import spread_subdirectories
from stackd.roots import Roots

_FS_TOPDIR_FL = 0x00020000


def _flags(path: Path) -> int | None:
    import fcntl

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, 0x80086601, buf)  # FS_IOC_GETFLAGS
        return int.from_bytes(buf[:4], "little")
    except OSError:
        return None
    finally:
        os.close(fd)


def _inode_span(parent: Path, count: int = 16) -> int:
    inodes = []
    for i in range(count):
        (parent / str(i)).mkdir()
        inodes.append((parent / str(i)).stat().st_ino)
    return max(inodes) - min(inodes)


def test_a_marked_directorys_subdirectories_are_spread(tmp_path: Path) -> None:
    plain, marked = tmp_path / "plain", tmp_path / "marked"
    plain.mkdir()
    marked.mkdir()
    if not spread_subdirectories(marked):
        pytest.skip(f"the filesystem of {tmp_path} has no directory placement flags")
    assert spread_subdirectories(marked)  # again: already marked, still true
    flags = _flags(marked)
    assert flags is not None and flags & _FS_TOPDIR_FL
    # ext4 keeps a plain directory's subdirectories beside each other (one group);
    # a marked one's it places over the whole filesystem.
    near, spread = _inode_span(plain), _inode_span(marked)
    assert spread > 100 * max(near, 1), (near, spread)


def test_where_there_are_no_such_flags_it_is_left_alone(tmp_path: Path) -> None:
    assert spread_subdirectories(tmp_path / "missing") is False
    assert spread_subdirectories("/proc") is False  # no flags at all: refused, quietly
    (tmp_path / "file").write_text("")
    assert spread_subdirectories(tmp_path / "file") is False


@pytest.mark.root
async def test_the_container_and_layer_directories_are_marked(rt, make_spec, roots: Roots,
                                                              tmp_path: Path) -> None:
    if _flags(tmp_path) is None:
        pytest.skip(f"the filesystem of {tmp_path} has no directory placement flags")
    await rt.create(make_spec("spread-1", "true"))
    from stackd.images import ImageStore

    store = ImageStore(roots)
    for base in (roots.state / "containers", roots.run / "containers", store.snapshots.root):
        flags = _flags(base)
        assert flags is not None and flags & _FS_TOPDIR_FL, base
