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

`seed_once`: several containers created at once may mount one new volume (services
sharing it, replicas). The copy is made under an exclusive lock on the directory that
holds the volume's — not on the volume's own, which a container that mounts it could
lock and never let go of, holding up every container made on it after —, by the first
to take it; the others wait for it, then find the volume
filled and use it — before, they saw it half-copied, skipped the copy, and ran
without the files (a command missing from a `/bin` volume). A copy cut short (the
container's setup killed, an error) is marked on the directory (a `trusted.` extended
attribute, which only the host's root may set) and removed, by the copier itself or
by the next one, so a volume is never left half-seeded as if it were whole.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from stackd.trees import remove_at

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from collections.abc import Callable

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Set on a volume's directory while it is being seeded: found by the next seeder, it
# means a copy that did not finish.
SEEDING = "trusted.stackd.seeding"
_LOCK_POLL = 0.02  # seconds between tries for another seeder's lock


def seed_once(source_fd: int, volume: Path, *, plain: bool = False,
              alive: Callable[[], None] = lambda: None) -> bool:
    """Seed `volume` from `source_fd` unless it holds something already (see the
    module's text); whether this call copied."""
    vol = os.open(volume, _DIR)
    try:
        held = os.open(volume.parent, _DIR)
    except BaseException:
        os.close(vol)
        raise
    try:
        while True:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                alive()  # waiting on another container's copy, not stuck
                time.sleep(_LOCK_POLL)
        if _marked(vol):
            _empty(vol)  # a copy that was cut short: start over
        elif _holds_any(vol):
            return False
        marked = _mark(vol)
        try:
            seed(source_fd, vol, plain=plain, alive=alive)
        except BaseException:
            _empty(vol)  # should this fail, the mark stays for the next seeder
            if marked:
                os.removexattr(vol, SEEDING)
            raise
        if marked:
            os.removexattr(vol, SEEDING)
        return True
    finally:
        os.close(vol)
        os.close(held)  # and the lock with it


def _mark(vol: int) -> bool:
    """Mark the copy begun; False where the filesystem keeps no such attribute."""
    try:
        os.setxattr(vol, SEEDING, b"1")
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return False
        raise
    return True


def _marked(vol: int) -> bool:
    try:
        os.getxattr(vol, SEEDING)
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP):
            return False
        raise
    return True


def _holds_any(vol: int) -> bool:
    with os.scandir(vol) as entries:
        return next(entries, None) is not None


def _empty(vol: int) -> None:
    for name in os.listdir(vol):
        remove_at(vol, name)


def seed(source_fd: int, volume: Path | int, *, plain: bool = False,
         alive: Callable[[], None] = lambda: None) -> None:
    """Copy what is in the directory `source_fd` (O_PATH is enough) into `volume` (a
    path, or a descriptor of the directory). A
    tree is walked with two descriptors per level, not a Python frame: an image may
    nest past the interpreter's recursion limit. `alive` is called at each entry: a
    large directory takes a while (the child says it works on)."""
    src = os.open(".", _DIR, dir_fd=source_fd)
    try:
        dst = os.open(".", _DIR, dir_fd=volume) if isinstance(volume, int) else \
            os.open(volume, _DIR)
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
