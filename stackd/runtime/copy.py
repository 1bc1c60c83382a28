"""`stackd cp`: files between the host and a container, through its root.

A running container's root is its PID 1's (`/proc/<pid>/root`: its mounts, volumes
included, as the container sees them); an exited one's is its own file system (image
layers and writable layer) mounted nowhere for the copy, with its volumes, binds and
/etc files bound where it had them (`docker cp` mounts them too). Every
path of the container is resolved inside that root by `inroot.resolve` (symlinks
followed as the container would, absolute ones from its root, `..` never above it)
and acted on through the descriptors that come back: a file is opened by
`/proc/self/fd/N` of its own O_PATH descriptor or created with O_NOFOLLOW in its
parent's, a directory is walked from its descriptor. The image and the running
container are hostile: a link `/etc -> /<host dir>` leads to that directory *inside*
the container, never to the host's.

Symlinks inside a copied tree are copied as links (their text), as `docker cp` does;
the host side is the user's own and is treated as ordinary paths, except that what is
written there from the container never follows a link that is already in place.

What is written is owned by root, as `docker cp` leaves it, unless `owners` (its
`-a`): then each file, directory and link keeps the numeric owner of its source.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from stackd.errors import ConflictError, HostError, NotFoundError, UsageError
from stackd.roots import Roots
from stackd.runtime import overlayfs
from stackd.runtime import syscalls as sc
from stackd.runtime.inroot import Found, open_root, proc_path, resolve
from stackd.runtime.layout import ContainerPaths
from stackd.runtime.model import ContainerState
from stackd.trees import remove_at

_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


def container_root(state: ContainerState, roots: Roots | None = None, *,
                   writable: bool = False) -> int:
    """A descriptor of the container's root. A running one's (or a created one's,
    whose first process has its root already) as its PID 1 sees it, volumes included.
    With `roots`, an exited one's too: its own file system — the image's layers and
    what it wrote, with its volumes — mounted nowhere (`syscalls.detached_mount`,
    gone when the descriptor is closed), read-only unless `writable`."""
    if state.pid and state.status in ("running", "created"):
        try:
            return open_root(f"/proc/{state.pid}/root")
        except OSError as err:
            if roots is None:
                raise ConflictError(f"cannot reach the root of container {state.name}: "
                                    f"{err.strerror}",
                                    hint="the container may have just exited") from None
    if roots is None or state.status in ("running", "created"):
        raise ConflictError(f"container {state.name} is not running",
                            hint="start it first (`stackd start`)")
    return _stopped_root(state, ContainerPaths(roots, state.id), writable=writable)


def _stopped_root(state: ContainerState, paths: ContainerPaths, *, writable: bool) -> int:
    # Its writable layer as one more layer read (nothing of it can change), or as the
    # upper one: what is copied in lands there, as its own writes do.
    lower = [str(p) for p in state.spec.layers]
    if not writable:
        lower.insert(0, str(paths.upper))
    try:
        root = (overlayfs.detached(lower, str(paths.upper), str(paths.work)) if writable
                else overlayfs.detached(lower, attr=sc.MOUNT_ATTR_RDONLY))
    except OSError as err:
        raise HostError(f"cannot mount the file system of container {state.name}: "
                        f"{err.strerror}", hint="see `stackd ps -a`; start it and copy "
                        "while it runs") from None
    try:
        _attach_mounts(root, state, paths, writable=writable)
    except BaseException:
        os.close(root)
        raise
    return root


def _attach_mounts(root: int, state: ContainerState, paths: ContainerPaths, *,
                   writable: bool) -> None:
    """An exited container's volumes, binds and given files (/etc/hosts, /etc/hostname,
    …) bound where it had them, in the order it had them, as `docker cp` sees them.
    Its tmpfs mounts died with it, and a place it never made (it was never started)
    is left out. Linux before 6.15 cannot mount onto a tree mounted nowhere: there
    the copy sees the container's own files only, as before."""
    # (target, source, subpath in the source, read-only, a file)
    places: list[tuple[str, str, str, bool, bool]] = [
        (m.target, m.source, m.subpath, m.readonly or not writable, False)
        for m in sorted(state.spec.mounts, key=lambda m: len(Path(m.target).parts))
        if m.type != "tmpfs"]
    places += [(target, str(paths.files / str(index)), "", not writable, True)
               for index, target in enumerate(sorted(state.spec.files))]
    for target, source, subpath, readonly, is_file in places:
        try:
            found = resolve(root, target, follow_last=not is_file)
        except OSError:
            continue
        with found:
            if found.fd is None or (is_file and stat.S_ISLNK(os.fstat(found.fd).st_mode)):
                continue  # never made: the container never started with it
            tree = _clone(source, subpath)
            if tree is None:
                continue
            try:
                if readonly:
                    sc.mount_setattr(tree, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE,
                                     sc.MOUNT_ATTR_RDONLY)
                assert found.fd is not None
                sc.move_mount(tree, found.fd)
            except OSError as err:
                if err.errno == errno.EINVAL:
                    return  # this kernel mounts onto attached trees only
                # Else a directory where the container had a file (or the reverse):
                # what is there stays as it is.
            finally:
                os.close(tree)


def _clone(source: str, subpath: str) -> int | None:
    """A detached copy of the mount a container had, None if its source is gone; a
    subpath is resolved inside the volume, as at start: what the container wrote there
    cannot lead out of it."""
    try:
        if not subpath:
            return sc.open_tree(source, sc.OPEN_TREE_CLONE | sc.AT_RECURSIVE)
        volume = open_root(source)
        try:
            found = resolve(volume, subpath)
        finally:
            os.close(volume)
        with found:
            if found.fd is None:
                return None
            return sc.open_tree(proc_path(found.fd), sc.OPEN_TREE_CLONE | sc.AT_RECURSIVE)
    except OSError:
        return None


def source(root_fd: int, path: str, *, follow: bool = False) -> Found:
    """The container's `path`, which a copy out of it reads: NotFoundError if missing."""
    try:
        found = resolve(root_fd, path, follow_last=follow)
    except (FileNotFoundError, NotADirectoryError):
        found = None
    except OSError as err:
        raise copy_error(err, f"{path} in the container") from None
    if found is None or found.fd is None:
        if found is not None:
            found.close()
        raise NotFoundError(f"no such file in the container: {path}",
                            hint="paths are the container's, e.g. svc:/etc/hostname")
    return found


def copy_out(root_fd: int, path: str, dest: str, *, follow: bool = False,
             owners: bool = False) -> str:
    """Copy `path` of the container to `dest` on the host (into it, if it is a
    directory); returns the host path written."""
    found = source(root_fd, path, follow=follow)
    with found:
        assert found.fd is not None
        name = found.name or "root"
        target = os.path.join(dest, name) if os.path.isdir(dest) else dest
        try:
            _out(found.fd, target, owners)
        except OSError as err:
            raise copy_error(err, target) from None
    return target


def _out(top: int, target: str, owners: bool = False) -> None:
    """Copy the file `top` (O_PATH, not followed) to the host path `target`. A tree is
    walked with a descriptor per level, not a Python frame: a hostile one may nest
    past the interpreter's recursion limit."""
    levels: list[_Level] = []  # the directories being copied, outermost first
    try:
        _out_one(top, target, owners, levels)
        while levels:
            level = levels[-1]
            if not level.names:
                levels.pop()
                os.close(level.src)
                # After its entries: making them changed its times, and its mode may
                # not let them be made.
                if owners:
                    os.chown(level.target, level.st.st_uid, level.st.st_gid,
                             follow_symlinks=False)
                os.chmod(level.target, stat.S_IMODE(level.st.st_mode))
                os.utime(level.target, ns=_times(level.st))
                continue
            entry = level.names.pop()
            child = os.open(entry, _PATH, dir_fd=level.src)
            try:
                _out_one(child, os.path.join(level.target, entry), owners, levels)
            finally:
                os.close(child)
    finally:
        for level in levels:
            os.close(level.src)


@dataclass
class _Level:
    src: int  # the container's directory, readable
    names: list[str]  # its entries left to copy, the next one last
    target: str
    st: os.stat_result


def _out_one(fd: int, target: str, owners: bool, levels: list[_Level]) -> None:
    """Copy `fd` to `target`; a directory is made, and its entries left to the walk."""
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode):
        src = os.open(proc_path(fd), os.O_RDONLY | os.O_CLOEXEC)
        try:
            out = os.open(target, _NEW, stat.S_IMODE(st.st_mode))
            try:
                _pump(src, out)
                if owners:  # before the mode: a chown clears set-id bits
                    os.fchown(out, st.st_uid, st.st_gid)
                os.fchmod(out, stat.S_IMODE(st.st_mode))
                os.utime(out, ns=_times(st))
            finally:
                os.close(out)
        finally:
            os.close(src)
    elif stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(FileExistsError):
            os.mkdir(target, 0o700)
        if os.path.islink(target) or not os.path.isdir(target):
            raise OSError(errno.ENOTDIR, "exists and is not a directory", target)
        src = os.open(proc_path(fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            names = sorted(os.listdir(src), reverse=True)
        except BaseException:
            os.close(src)
            raise
        levels.append(_Level(src, names, target, st))
    elif stat.S_ISLNK(st.st_mode):
        text = os.readlink("", dir_fd=fd)
        with contextlib.suppress(FileNotFoundError):
            if os.path.islink(target):
                os.unlink(target)
        os.symlink(text, target)
        if owners:
            os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)
        os.utime(target, ns=_times(st), follow_symlinks=False)
    # devices, fifos, sockets: not copied (neither does docker cp without a tar)


def copy_in(root_fd: int, src: str, path: str, *, owners: bool = False) -> str:
    """Copy the host's `src` to `path` in the container (into it, if that is a
    directory there); returns the container path written."""
    if not os.path.lexists(src):
        raise NotFoundError(f"no such file on the host: {src}", hint="check the path")
    try:
        found = resolve(root_fd, path, follow_last=True)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFoundError(f"the directory of {path} does not exist in the container",
                            hint="create it first, e.g. with `stackd exec SVC mkdir -p`") from None
    except OSError as err:
        raise copy_error(err, f"{path} in the container") from None
    with found:
        into_dir = found.fd is not None and stat.S_ISDIR(os.fstat(found.fd).st_mode)
        try:
            if into_dir:
                assert found.fd is not None
                base = os.path.basename(os.path.normpath(src))
                _in(src, found.fd, base, owners)
                return os.path.join(path, base)
            _in(src, found.parent, found.name, owners)
        except OSError as err:
            raise copy_error(err, f"{path} in the container") from None
    return path


def sync_in(root_fd: int, src: str, path: str) -> None:
    """`stackd watch`'s sync: the host's `src` written at exactly `path` in the
    container — its missing directories made (0755), a directory merged into what is
    there, a file or link replacing one. Resolved inside the root as `copy_in` is."""
    if not os.path.lexists(src):
        raise NotFoundError(f"no such file on the host: {src}", hint="check the path")
    try:
        with resolve(root_fd, path, follow_last=False, mkdir_mode=0o755) as found:
            if not found.name:
                raise UsageError("cannot sync over the container's root", hint="name a "
                                 "path in it as the watch rule's target")
            if found.fd is not None:
                there = os.fstat(found.fd).st_mode
                if stat.S_ISLNK(there) or (stat.S_ISDIR(there) != (
                        os.path.isdir(src) and not os.path.islink(src))):
                    remove_entry(found.parent, found.name)  # replaced, never written through
            _in(src, found.parent, found.name)
    except OSError as err:
        raise copy_error(err, f"{path} in the container") from None


def remove_in(root_fd: int, path: str) -> bool:
    """`stackd watch`'s sync of a deletion: `path` in the container removed, a
    directory with all it holds; a link is removed, never followed. Whether there was
    anything to remove."""
    try:
        with resolve(root_fd, path, follow_last=False) as found:
            if found.fd is None or not found.name:
                return False
            remove_entry(found.parent, found.name)
            return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as err:
        raise copy_error(err, f"{path} in the container") from None


def remove_entry(dir_fd: int, name: str) -> None:
    """`name` in the directory `dir_fd` removed, a directory with all it holds (any
    depth); a link is removed, never followed."""
    remove_at(dir_fd, name)


def _in(src: str, dir_fd: int, name: str, owners: bool = False) -> None:
    """Copy the host path `src` to `name` in the container directory `dir_fd`; a tree
    with a descriptor per level, not a Python frame."""
    if not name:
        raise UsageError("cannot copy over the container's root", hint="name a path in it")
    levels: list[_InLevel] = []  # the directories being copied, outermost first
    try:
        _in_one(src, dir_fd, name, owners, levels)
        while levels:
            level = levels[-1]
            if not level.names:
                levels.pop()
                try:
                    where = proc_path(level.fd)
                    if owners:
                        os.chown(where, level.st.st_uid, level.st.st_gid)
                    os.chmod(where, stat.S_IMODE(level.st.st_mode))
                    os.utime(where, ns=_times(level.st))
                finally:
                    os.close(level.fd)
                continue
            entry = level.names.pop()
            _in_one(os.path.join(level.src, entry), level.fd, entry, owners, levels)
    finally:
        for level in levels:
            os.close(level.fd)


@dataclass
class _InLevel:
    src: str  # the host's directory
    fd: int  # its copy in the container (O_PATH)
    names: list[str]  # its entries left to copy, the next one last
    st: os.stat_result


def _in_one(src: str, dir_fd: int, name: str, owners: bool, levels: list[_InLevel]) -> None:
    """Copy `src` to `name` in `dir_fd`; a directory is made, its entries left to the
    walk."""
    st = os.lstat(src)
    if stat.S_ISLNK(st.st_mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)  # a link, not what it points at
        os.symlink(os.readlink(src), name, dir_fd=dir_fd)
        if owners:
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dir_fd, follow_symlinks=False)
        os.utime(name, ns=_times(st), dir_fd=dir_fd, follow_symlinks=False)
    elif stat.S_ISREG(st.st_mode):
        with open(src, "rb") as f:
            out = os.open(name, _NEW, stat.S_IMODE(st.st_mode), dir_fd=dir_fd)
            try:
                _pump(f.fileno(), out)
                if owners:  # before the mode: a chown clears set-id bits
                    os.fchown(out, st.st_uid, st.st_gid)
                os.fchmod(out, stat.S_IMODE(st.st_mode))
                os.utime(out, ns=_times(st))
            finally:
                os.close(out)
    elif stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=dir_fd)
        sub = os.open(name, _PATH | os.O_DIRECTORY, dir_fd=dir_fd)
        try:
            names = sorted(os.listdir(src), reverse=True)
        except BaseException:
            os.close(sub)
            raise
        levels.append(_InLevel(src, sub, names, st))


def _times(st: os.stat_result) -> tuple[int, int]:
    """A copy keeps its source's times, as `docker cp` does (after its contents: a
    directory's change with every entry made in it)."""
    return st.st_atime_ns, st.st_mtime_ns


def _pump(src: int, dst: int) -> None:
    while chunk := os.read(src, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view):]


def copy_error(err: OSError, where: str) -> HostError:
    if err.errno == errno.ELOOP:
        return HostError(f"{where}: too many symlinks, or a link that is not allowed "
                         "(a /proc magic link, or a link where a file is written)",
                         hint="copy the path the link leads to")
    if err.errno == errno.EMFILE:  # a descriptor per level of the tree
        return HostError(f"{where} nests too deeply to copy with this process's limit "
                         "of open files", hint="raise it (`ulimit -n`), or copy a deeper "
                                               "directory of it")
    if err.errno == errno.EROFS:
        return HostError(f"cannot copy {where}: it is on a read-only mount",
                         hint="a volume or bind mounted :ro, or a read-only root "
                              "(read_only: true), is not written by cp")
    return HostError(f"cannot copy {where}: {err.strerror}", hint="check the path and the space")
