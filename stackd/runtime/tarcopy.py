"""`stackd cp` with `-`, as `docker cp` takes it: a container's path as a tar stream on
stdout, and a tar stream from stdin unpacked into a directory of the container —
neither ever unpacked, gathered or spooled on the host's /tmp.

Out (`cp SVC:PATH -`): the tree is walked from the descriptors `inroot.resolve` gives
(each entry opened O_PATH|O_NOFOLLOW in its parent's) and each entry goes straight
into the tar: numeric owners as the container has them, links as their text, a file
linked more than once in the tree as tar's hard link, device nodes and fifos as
entries (sockets have no tar form). A database's data directory streams out at the
pace of the reader (`stackd cp db:/var/lib/postgresql/data - | gzip > backup.tgz`),
whatever /tmp holds.

In (`cp - SVC:DIR`): the stream is kept in an anonymous file of the state root
(O_TMPFILE: nothing is left behind, whatever happens) so that every member is checked
before any is written — a name that leads out of DIR, by `..` or through a link of
the tar's own, a hard link to outside, a device node: the whole tar is refused. Then
each member is made in the container, its path resolved inside the container's root
from DIR, as docker cp's chroot does: a link the container holds is followed, inside.
What exists at a member's name is replaced, unless both are directories. Modes are
kept; owners only with `owners` (`cp -a`), else root's, as docker cp leaves them.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import tarfile
import tempfile
from collections import deque
from typing import IO, BinaryIO

from stackd.errors import HostError, UsageError
from stackd.runtime.copy import copy_error, remove_entry, source
from stackd.runtime.inroot import mkdir_all, proc_path, resolve

MAX_LINK_HOPS = 40  # as the kernel's MAXSYMLINKS
_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


# ---- out: a container's path as a tar stream --------------------------------------


def tar_out(root_fd: int, path: str, out: BinaryIO, *, follow: bool = False) -> None:
    """`path` of the container as a tar stream on `out`, named by its last part."""
    found = source(root_fd, path, follow=follow)
    with found, tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        assert found.fd is not None
        top = os.dup(found.fd)
        try:
            _walk_out(tar, top, found.name or "root", path)
        except OSError as err:
            raise copy_error(err, f"{path} in the container") from None


def _walk_out(tar: tarfile.TarFile, top: int, top_name: str, path: str) -> None:
    """Every entry under `top` (an O_PATH descriptor, ours to close), parents first;
    the walk holds a descriptor per level, not a Python frame (a hostile tree may nest
    thousands deep)."""
    seen: dict[tuple[int, int], str] = {}  # (device, inode) → the first name of a file
    stack: list[tuple[int | None, deque[str], str]] = []  # (dir fd, names left, its name)
    pending: list[tuple[int, str]] = [(top, top_name)]
    try:
        while pending or stack:
            if pending:
                fd, name = pending.pop()
                try:
                    listing = _add(tar, fd, name, seen, path)
                except BaseException:
                    os.close(fd)
                    raise
                if listing is None:
                    os.close(fd)
                else:
                    stack.append((listing[0], deque(listing[1]), name))
                    os.close(fd)
                continue
            dir_fd, names, name = stack[-1]
            if not names:
                stack.pop()
                if dir_fd is not None:
                    os.close(dir_fd)
                continue
            entry = names.popleft()
            assert dir_fd is not None
            try:
                child = os.open(entry, _PATH, dir_fd=dir_fd)
            except FileNotFoundError:
                continue  # removed while we walked: a running container writes on
            pending.append((child, f"{name}/{entry}"))
    finally:
        for fd, _ in pending:
            os.close(fd)
        for dir_fd, _, _ in stack:
            if dir_fd is not None:
                os.close(dir_fd)


def _add(tar: tarfile.TarFile, fd: int, name: str, seen: dict[tuple[int, int], str],
         path: str) -> tuple[int, list[str]] | None:
    """Write the entry of `fd` (O_PATH, not followed); for a directory, a readable
    descriptor of it and its names, to walk next."""
    st = os.fstat(fd)
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""  # numeric: the container's users, not the host's names
    info.mtime = st.st_mtime
    if stat.S_ISREG(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in seen:
            info.type, info.linkname = tarfile.LNKTYPE, seen[key]
            tar.addfile(info)
            return None
        seen[key] = name
        src = os.open(proc_path(fd), os.O_RDONLY | os.O_CLOEXEC)
        with os.fdopen(src, "rb") as f:
            info.size = os.fstat(src).st_size
            try:
                tar.addfile(info, f)
            except OSError as err:
                if err.errno is None:  # tarfile's "unexpected end of data"
                    raise HostError(f"{path} in the container: {name} was cut shorter "
                                    "while it was copied", hint="copy it again once "
                                    "nothing writes to it; the tar written is incomplete"
                                    ) from None
                raise
        return None
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        readable = os.open(proc_path(fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return readable, sorted(os.listdir(readable))
        except BaseException:
            os.close(readable)
            raise
    if stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink("", dir_fd=fd)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    else:
        return None  # a socket: tar has no form for it
    tar.addfile(info)
    return None


# ---- in: a tar stream into a directory of the container ---------------------------


class _Refused(Exception):
    pass


def tar_in(root_fd: int, src: BinaryIO, path: str, *, spool_dir: str,
           owners: bool = False) -> None:
    """`cp - SVC:DIR`: the tar stream `src` unpacked into the directory `path` of the
    container. `spool_dir`: where the stream waits, unnamed, while it is checked (the
    state root: never the host's /tmp)."""
    try:
        found = resolve(root_fd, path, follow_last=True)
    except OSError:
        found = None
    is_dir = False
    if found is not None:
        with found:
            is_dir = found.fd is not None and stat.S_ISDIR(os.fstat(found.fd).st_mode)
    if not is_dir:
        raise UsageError(f"{path} is not a directory in the container",
                         hint="a tar from stdin (cp - SVC:DIR) is unpacked into a directory")
    with tempfile.TemporaryFile(dir=spool_dir) as spool:
        _spool(src, spool)
        try:
            with tarfile.open(fileobj=spool, mode="r:*") as tar:
                plan = check_members(tar.getmembers())
                _unpack(tar, plan, root_fd, path, owners)
        except _Refused as exc:
            raise UsageError(f"the tar on stdin is refused, and nothing of it copied: {exc}",
                             hint="its members must stay inside it: no `..` names, no "
                                  "paths through its own links leading out, no hard links "
                                  "to outside, no device nodes") from None
        except (tarfile.TarError, EOFError) as exc:
            raise UsageError(f"stdin is not a tar archive stackd can unpack: {exc}",
                             hint="give a tar stream, e.g. `tar -c DIR | stackd cp - "
                                  "SVC:/dest`") from None


def _spool(src: BinaryIO, spool: IO[bytes]) -> None:
    try:
        while chunk := src.read(_CHUNK):
            spool.write(chunk)
        spool.flush()
    except OSError as err:
        raise copy_error(err, "the tar from stdin") from None
    spool.seek(0)


def check_members(members: list[tarfile.TarInfo]) -> list[tuple[str, tarfile.TarInfo]]:
    """Each member with the path it lands at under DIR (the tar's own links in its
    directory part followed), or _Refused naming the first that would land outside,
    is a device node, or is a hard link to anything but a file made before it. Pure:
    the container is not looked at."""
    links: dict[str, str | None] = {}  # a link member's path → its target under DIR
    files: set[str] = set()  # what a hard link may name: a file made before it
    plan: list[tuple[str, tarfile.TarInfo]] = []
    for m in members:
        if m.ischr() or m.isblk():  # (isdev() is a fifo too)
            raise _Refused(f"{m.name}: a device node is not copied")
        where = _under(m.name.lstrip("/"), links)
        if where is None:
            raise _Refused(f"{m.name}: leads out of the directory it is unpacked into")
        if not where and not m.isdir():
            raise _Refused(f"{m.name}: would replace the directory it is unpacked into")
        if m.islnk():
            target = _under(m.linkname.lstrip("/"), links)
            if target is None or target not in files:
                raise _Refused(f"{m.name}: a hard link to {m.linkname}, which is not a "
                               "file of the archive before it")
            m = m.replace(linkname=target, deep=False)
        if m.issym():
            # Absolute: the container's root, outside what the tar may reach by itself.
            links[where] = (None if m.linkname.startswith("/")
                            else posixpath.join(posixpath.dirname(where), m.linkname))
        else:
            links.pop(where, None)
        if m.isdir() or m.issym():
            files.discard(where)
        else:
            files.add(where)
        plan.append((where, m))
    return plan


def _under(name: str, links: dict[str, str | None]) -> str | None:
    """`name` as a path under DIR with the tar's links in its directory part followed;
    "" for DIR itself, None if it leads above DIR."""
    todo = deque(c for c in name.split("/") if c not in ("", "."))
    done: list[str] = []
    hops = 0
    while todo:
        comp = todo.popleft()
        if comp == "..":
            if not done:
                return None
            done.pop()
            continue
        here = "/".join([*done, comp])
        if todo and here in links:
            target = links[here]
            hops += 1
            if target is None or hops > MAX_LINK_HOPS:
                return None
            todo.extendleft(reversed([c for c in target.split("/") if c not in ("", ".")]))
            done = []
            continue
        done.append(comp)
    return "/".join(done)


def _unpack(tar: tarfile.TarFile, plan: list[tuple[str, tarfile.TarInfo]], root_fd: int,
            path: str, owners: bool) -> None:
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    for where, m in plan:
        if not where:
            continue  # DIR itself ("./"): it stays as it is
        inside = posixpath.join(path, where)
        parent, name = posixpath.split(inside)
        try:
            with mkdir_all(root_fd, parent) as place:
                assert place.fd is not None
                _make(tar, m, place.fd, name, root_fd, path, owners)
        except OSError as err:
            raise copy_error(err, f"{inside} in the container") from None
        if m.isdir():
            dirs.append((inside, m))
    # A directory's owner, mode and times last, deepest first: making its entries
    # changed its times, and its mode may not let them be made.
    for inside, m in reversed(dirs):
        try:
            with resolve(root_fd, inside, follow_last=False) as found:
                if found.fd is None or not stat.S_ISDIR(os.fstat(found.fd).st_mode):
                    continue
                where = proc_path(found.fd)
                if owners:
                    os.chown(where, m.uid, m.gid)
                os.chmod(where, m.mode)
                os.utime(where, (m.mtime, m.mtime))
        except OSError as err:
            raise copy_error(err, f"{inside} in the container") from None


def _make(tar: tarfile.TarFile, m: tarfile.TarInfo, dir_fd: int, name: str, root_fd: int,
          path: str, owners: bool) -> None:
    """Member `m` as `name` in the container directory `dir_fd`."""
    try:
        there: int | None = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        there = None
    if m.isdir():
        if there is not None and not stat.S_ISDIR(there):
            remove_entry(dir_fd, name)
            there = None
        if there is None:
            os.mkdir(name, 0o700, dir_fd=dir_fd)
        return
    if there is not None:
        remove_entry(dir_fd, name)  # replaced, never written through
    if m.issym():
        os.symlink(m.linkname, name, dir_fd=dir_fd)
        if owners:
            os.chown(name, m.uid, m.gid, dir_fd=dir_fd, follow_symlinks=False)
        os.utime(name, (m.mtime, m.mtime), dir_fd=dir_fd, follow_symlinks=False)
        return
    if m.islnk():
        with resolve(root_fd, posixpath.join(path, m.linkname), follow_last=False) as target:
            if target.fd is None or stat.S_ISDIR(os.fstat(target.fd).st_mode):
                raise OSError(errno.ENOENT, f"the file {m.linkname} it links to is not "
                                            "there", m.name)
            os.link(proc_path(target.fd), name, dst_dir_fd=dir_fd, follow_symlinks=True)
        return
    if m.isfifo():
        os.mkfifo(name, 0o600, dir_fd=dir_fd)
        fd = os.open(name, _PATH, dir_fd=dir_fd)
        try:
            _attributes(proc_path(fd), m, owners)
        finally:
            os.close(fd)
        return
    data = tar.extractfile(m)
    out = os.open(name, _NEW, 0o600, dir_fd=dir_fd)
    try:
        if data is not None:
            with data:
                while chunk := data.read(_CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(out, view):]
        _attributes(proc_path(out), m, owners)
    finally:
        os.close(out)


def _attributes(where: str, m: tarfile.TarInfo, owners: bool) -> None:
    if owners:  # before the mode: a chown clears set-id bits
        os.chown(where, m.uid, m.gid)
    os.chmod(where, m.mode)
    os.utime(where, (m.mtime, m.mtime))
