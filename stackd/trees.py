"""Removing (and sizing) a directory tree that something hostile may have shaped.

What stackd removes was often written by a container or an image: a container's
writable layer, a volume, an unpacked layer, a build step's tree, a git checkout.
`shutil.rmtree` recurses once per level, so a tree nested ~1,000 deep (`mkdir a; cd a`
in a loop) raised RecursionError — not an OSError, so not even `ignore_errors` kept it
in: the runtime monitor, sweeping a deleted container's directories while idle, died
of it, and again each time it started.

`remove_tree` walks without recursing, holding a descriptor per level up to
`MAX_HELD` levels; a directory deeper than that is renamed up to the top of the tree
being removed and taken from there, so any depth is removed with a bounded number of
descriptors. Every name is opened relative to its parent's descriptor with
O_NOFOLLOW: a link is removed, never followed.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field

MAX_HELD = 64  # descriptors held at most by one removal: one per level walked
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class _Level:
    fd: int
    name: str  # in the level above (the tree's own name in its parent, for the top)
    names: list[str] = field(default_factory=list)  # entries left to remove
    listed_again: bool = False


def remove_tree(path: str | os.PathLike[str], ignore_errors: bool = False) -> int:
    """Remove `path` and everything under it, however deep; the bytes its files held.
    A missing path is no error with `ignore_errors`, as shutil.rmtree has it. With
    `ignore_errors`, what cannot be removed is left and the rest removed; without it,
    the first OSError is raised."""
    path = os.fspath(path)
    parent_dir, base = os.path.split(os.path.normpath(os.path.abspath(path)))
    try:
        parent = os.open(parent_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        if ignore_errors:
            return 0
        raise
    try:
        return _remove(parent, base, ignore_errors)
    finally:
        os.close(parent)


def remove_at(dir_fd: int, name: str, ignore_errors: bool = False) -> int:
    """`remove_tree` of `name` in the directory `dir_fd` (any descriptor of it, O_PATH
    too): what a path resolved inside a container's root gives."""
    return _remove(dir_fd, name, ignore_errors)


def _remove(parent: int, base: str, ignore_errors: bool) -> int:
    try:
        st = os.stat(base, dir_fd=parent, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(base, dir_fd=parent)
            return st.st_size
        top = _Level(os.open(base, _DIR, dir_fd=parent), base)
        top.names = os.listdir(top.fd)
    except OSError:
        if ignore_errors:
            return 0
        raise
    levels = [top]
    freed = 0
    try:
        while levels:
            level = levels[-1]
            if not level.names:
                _leave(levels, parent, ignore_errors)
                continue
            name = level.names.pop()
            try:
                sub = _enter_or_unlink(level.fd, name)
                if isinstance(sub, _Freed):
                    freed += sub.size
                    continue
                if len(levels) >= MAX_HELD:
                    # Deeper than we hold descriptors for: up to the top, taken later.
                    os.close(sub)
                    flat = f".stackd-deep-{os.urandom(8).hex()}"
                    os.rename(name, flat, src_dir_fd=level.fd, dst_dir_fd=top.fd)
                    top.names.append(flat)
                    continue
                levels.append(_Level(sub, name))
                levels[-1].names = os.listdir(sub)
            except OSError:
                if not ignore_errors:
                    raise
    finally:
        for level in levels:
            os.close(level.fd)
    return freed


@dataclass
class _Freed:
    size: int


def _enter_or_unlink(dir_fd: int, name: str) -> int | _Freed:
    """A descriptor of the directory `name`; or, once `name` (not a directory, or gone)
    is removed, what it held."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return _Freed(0)
    if not stat.S_ISDIR(st.st_mode):
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            return _Freed(0)
        return _Freed(st.st_size)
    return os.open(name, _DIR, dir_fd=dir_fd)


def _leave(levels: list[_Level], parent: int, ignore_errors: bool) -> None:
    """The innermost level is empty (as listed): remove it, or list it once more if
    something was made in it meanwhile."""
    level = levels[-1]
    above = levels[-2].fd if len(levels) > 1 else parent
    try:
        os.rmdir(level.name, dir_fd=above)
    except OSError as err:
        if err.errno == errno.ENOTEMPTY and not level.listed_again:
            level.listed_again = True
            try:
                level.names = os.listdir(level.fd)
                return
            except OSError:
                pass
        if err.errno != errno.ENOENT and not ignore_errors:
            raise
    levels.pop()
    os.close(level.fd)


SIZE_DEPTH = 256  # levels `tree_size` walks into; a deeper tree's size is a lower bound


def tree_size(path: str | os.PathLike[str]) -> int:
    """The bytes the regular files under `path` hold (a file with several links once),
    as `docker system df` counts them; 0 for a missing path. Walked without recursing
    or following a link, a descriptor per level, at most SIZE_DEPTH levels deep."""
    try:
        top = os.open(path, _DIR)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    seen: set[tuple[int, int]] = set()
    total = 0
    levels = [(top, os.listdir(top))]
    try:
        while levels:
            fd, names = levels[-1]
            if not names:
                os.close(levels.pop()[0])
                continue
            name = names.pop()
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode):
                    if st.st_nlink > 1:
                        if (st.st_dev, st.st_ino) in seen:
                            continue
                        seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
                elif stat.S_ISDIR(st.st_mode) and len(levels) < SIZE_DEPTH:
                    sub = os.open(name, _DIR, dir_fd=fd)
                    try:
                        levels.append((sub, os.listdir(sub)))
                    except BaseException:
                        os.close(sub)
                        raise
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                continue  # changed meanwhile: a size is a moment's
    finally:
        for fd, _ in levels:
            os.close(fd)
    return total
