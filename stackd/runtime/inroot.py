"""Paths of a container, resolved inside its root filesystem.

The image decides what its paths are: `/etc` may be a symlink to `/srv/x`, or to a
directory of the host when read from the host's side. Before pivot_root the runtime
works from the host, so a path of the container must be resolved as the container
will see it: every symlink followed *inside* the root (an absolute target starts again
from the root, `..` never climbs above it), as openat2's RESOLVE_IN_ROOT does. The
answer is a descriptor, and every later step acts on it (mount onto
`/proc/self/fd/N`, `mkdirat`, `openat`), never on a path string resolved again.

`resolve` asks the kernel (openat2 with RESOLVE_IN_ROOT) for the directory part, and
otherwise walks one component at a time from descriptors it holds: each is opened with O_NOFOLLOW, a
symlink's text is read and spliced into what is left to walk, `..` pops back to the
descriptor of the parent it came through. The kernel never follows a link for it,
so nothing the image holds can take it out of the root; it also creates missing
directories on the way (for mount points), through the descriptor of their parent.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from dataclasses import dataclass, field

from stackd.runtime import syscalls as sc

MAX_SYMLINKS = 40  # the kernel's limit (MAXSYMLINKS)
_RESOLVE = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS
_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def proc_path(fd: int) -> str:
    """The name through which mount(2) and friends reach exactly `fd`'s file."""
    return f"/proc/self/fd/{fd}"


def open_root(path: str | os.PathLike[str]) -> int:
    return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


@dataclass
class Found:
    """The end of a resolved path: the directory it is in and its name there (both
    inside the root), and an O_PATH descriptor of it — None when it does not exist
    (yet). `name` is "" when the path resolved to the root itself."""

    parent: int
    name: str
    fd: int | None
    created: bool = False
    _closed: bool = field(default=False, repr=False)

    def reopen(self) -> int:
        """A new O_PATH descriptor of `name` in `parent`: after a mount onto `fd`, this
        is the mount's root (a lookup crosses it), while `fd` stays the covered file."""
        if not self.name:
            raise OSError(errno.EBUSY, "the root itself has no parent to look it up from")
        return os.open(self.name, _PATH, dir_fd=self.parent)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in {self.parent, self.fd}:
            if fd is not None:
                os.close(fd)

    def __enter__(self) -> Found:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve(root_fd: int, path: str, *, follow_last: bool = True,
            mkdir_mode: int | None = None, use_openat2: bool = True) -> Found:
    """`path` inside the root. Missing directories on the way are created with
    `mkdir_mode`, or raise FileNotFoundError when it is None; a missing last component
    is returned with fd None. A symlink as the last component is followed only with
    `follow_last`. ELOOP after MAX_SYMLINKS links, or at a /proc magic link.

    The kernel resolves the directory part when it can; the walk does the rest (a
    directory to create, a final symlink to follow, a kernel without openat2).
    `use_openat2=False` walks alone, as on such a kernel."""
    comps = _components(path)
    if use_openat2 and comps and comps[-1] != "..":
        found = _resolve_by_kernel(root_fd, comps, follow_last)
        if found is not None:
            return found
    return _walk(root_fd, path, follow_last, mkdir_mode)


def _resolve_by_kernel(root_fd: int, comps: list[str], follow_last: bool) -> Found | None:
    """openat2 for the directory, the last name by hand; None where the walk must go on."""
    try:
        parent = sc.openat2(root_fd, "/".join(comps[:-1]) or ".",
                            os.O_PATH | os.O_DIRECTORY, _RESOLVE)
    except OSError as e:
        # ENOSYS: before 5.6; EPERM: a seccomp filter; ENOENT: a directory to make;
        # EAGAIN: a rename raced a "..".
        if e.errno in (errno.ENOSYS, errno.EPERM, errno.ENOENT, errno.EAGAIN):
            return None
        raise
    name = comps[-1]
    try:
        fd = os.open(name, _PATH, dir_fd=parent)
    except FileNotFoundError:
        return Found(parent, name, None)
    except BaseException:
        os.close(parent)
        raise
    if follow_last and stat.S_ISLNK(os.fstat(fd).st_mode):
        os.close(fd)
        os.close(parent)
        return None
    return Found(parent, name, fd)


def _walk(root_fd: int, path: str, follow_last: bool, mkdir_mode: int | None) -> Found:
    todo = deque(_components(path))
    dirs = [os.dup(root_fd)]  # descriptors from the root down to where we are
    names = [""]
    hops = 0
    try:
        while todo:
            comp = todo.popleft()
            if comp == "..":
                if len(dirs) > 1:  # the root's parent is the root
                    os.close(dirs.pop())
                    names.pop()
                continue
            last = not todo
            here = dirs[-1]
            created = False
            try:
                fd = os.open(comp, _PATH, dir_fd=here)
            except FileNotFoundError:
                if last:
                    return Found(dirs.pop(), comp, None)
                if mkdir_mode is None:
                    raise
                os.mkdir(comp, mkdir_mode, dir_fd=here)
                fd = os.open(comp, _PATH, dir_fd=here)
                created = True
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode) and (follow_last or not last):
                hops += 1
                try:
                    target = _link_text(fd, path, hops)
                finally:
                    os.close(fd)
                if target.startswith("/"):
                    for d in dirs[1:]:
                        os.close(d)
                    del dirs[1:], names[1:]
                todo.extendleft(reversed(_components(target)))
                continue
            if last:
                return Found(dirs.pop(), comp, fd, created)
            if not stat.S_ISDIR(mode):
                os.close(fd)
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR),
                                         "/".join([*names, comp]) or "/")
            dirs.append(fd)
            names.append(comp)
        # The path ended at a directory we hold (the root, or after a `..`).
        end = dirs.pop()
        if not dirs:
            return Found(os.dup(end), "", end)
        return Found(dirs.pop(), names[-1], end)
    finally:
        for d in dirs:
            os.close(d)


def mkdir_all(root_fd: int, path: str, mode: int = 0o755) -> Found:
    """The directory `path` inside the root, made (with its parents) if missing."""
    found = resolve(root_fd, path, mkdir_mode=mode)
    try:
        if found.fd is None:
            os.mkdir(found.name, mode, dir_fd=found.parent)
            found.fd = os.open(found.name, _PATH, dir_fd=found.parent)
            found.created = True
        if not stat.S_ISDIR(os.fstat(found.fd).st_mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
    except BaseException:
        found.close()
        raise
    return found


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c not in ("", ".")]


def _link_text(fd: int, path: str, hops: int) -> str:
    if hops > MAX_SYMLINKS:
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
    if sc.fstatfs_type(fd) == sc.PROC_SUPER_MAGIC:
        # /proc/self/root, /proc/<pid>/cwd, fd/N: their text is not where they lead.
        # RESOLVE_NO_MAGICLINKS refuses them; so do we.
        raise OSError(errno.ELOOP, "a /proc magic link on the way", path)
    return os.readlink("", dir_fd=fd)
