"""Seeding an empty named volume from the image, as Docker does on first use.

The source is the image's directory at the mount point, given as a descriptor that
was resolved inside the container's root: everything below it is reached through
descriptors and names relative to them, opened without following symlinks, so an
image whose directory (or anything in it) is a link to the host copies the link,
never what the host holds there. Owners, modes and times are kept.

`plain`: the volume is a directory of the host others may reach (a volume that binds
one, not one under the 0700 state root), so what the image puts there must give no one
more than its files: set-user and set-group bits are dropped, and device nodes and
FIFOs are left out (an image's `sda` node, mode 0666, would be the host's disk).
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from collections.abc import Callable

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def seed(source_fd: int, volume: Path, *, plain: bool = False,
         alive: Callable[[], None] = lambda: None) -> None:
    """Copy what is in the directory `source_fd` (O_PATH is enough) into `volume`. A
    tree is walked with two descriptors per level, not a Python frame: an image may
    nest past the interpreter's recursion limit. `alive` is called at each entry: a
    large directory takes a while (the child says it works on)."""
    src = os.open(".", _DIR, dir_fd=source_fd)
    try:
        dst = os.open(volume, _DIR)
    except BaseException:
        os.close(src)
        raise
    levels = [_Level(src, dst, [], os.fstat(src))]
    try:
        levels[0].names = _names(src)
        while levels:
            level = levels[-1]
            if not level.names:
                levels.pop()
                try:
                    _copy_meta(level.st, level.dst, plain)  # last: its entries changed it
                finally:
                    os.close(level.src)
                    os.close(level.dst)
                continue
            alive()
            inner = _copy_entry(level.names.pop(), level.src, level.dst, plain)
            if inner is not None:
                levels.append(inner)
    finally:
        for level in levels:
            os.close(level.src)
            os.close(level.dst)


@dataclass
class _Level:
    src: int
    dst: int
    names: list[str]  # left to copy, the next one last
    st: os.stat_result


def _names(fd: int) -> list[str]:
    with os.scandir(fd) as entries:
        return sorted((e.name for e in entries), reverse=True)


def _copy_entry(name: str, src: int, dst: int, plain: bool) -> _Level | None:
    """Copy `name` from `src` to `dst`; a directory is made, and returned to be
    walked."""
    st = os.stat(name, dir_fd=src, follow_symlinks=False)
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        os.mkdir(name, 0o700, dir_fd=dst)
        s = os.open(name, _DIR, dir_fd=src)
        try:
            d = os.open(name, _DIR, dir_fd=dst)
        except BaseException:
            os.close(s)
            raise
        try:
            return _Level(s, d, _names(s), st)
        except BaseException:
            os.close(s)
            os.close(d)
            raise
    if stat.S_ISLNK(mode):
        os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst,
                 follow_symlinks=False)
    elif stat.S_ISREG(mode):
        _copy_file(name, src, dst, st, plain)
    elif plain:
        return None
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
        os.mknod(name, (mode & ~0o7777) | 0o600, st.st_rdev, dir_fd=dst)
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst)
        try:
            _copy_meta(st, fd)
        finally:
            os.close(fd)
    # Sockets are left out: a socket file means nothing without its listener.
    return None


def _copy_file(name: str, src: int, dst: int, st: os.stat_result, plain: bool) -> None:
    s = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
    try:
        d = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o600, dir_fd=dst)
        with open(s, "rb", closefd=False) as fin, open(d, "wb") as fout:
            shutil.copyfileobj(fin, fout)
            fout.flush()
            _copy_meta(st, d, plain)
    finally:
        os.close(s)


def _copy_meta(st: os.stat_result, fd: int, plain: bool = False) -> None:
    """Owner, then mode (a chown clears set-uid bits), then times; `fd` may be O_PATH."""
    path = f"/proc/self/fd/{fd}"  # the descriptor's own file: O_PATH allows no fchown
    os.chown(path, st.st_uid, st.st_gid)
    mode = stat.S_IMODE(st.st_mode)
    os.chmod(path, mode & ~(stat.S_ISUID | stat.S_ISGID) if plain else mode)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
