"""Apply one OCI layer tar to an empty snapshot directory, safely, in overlayfs form.

Every entry's path is resolved component by component inside the snapshot without
trusting the file system: absolute names and `..` are refused outright, a parent that
is a symlink is followed inside the layer (an absolute target from the layer's root, as
the container will see it) and refused if it climbs above the root, hard links must
name something already inside, and whiteouts must name a plain child of their
directory. Any violation rejects the whole layer with `LayerRejectedError`; the caller
unpacks into a private temp dir and deletes it then, so nothing half-made is ever used
and nothing is written outside.

OCI whiteouts become what overlayfs reads: `.wh.name` → a 0:0 character device `name`,
`.wh..wh..opq` → the `trusted.overlay.opaque=y` xattr on the directory.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from stackd.images.compression import CHUNK, LayerStream
from stackd.images.errors import LayerRejectedError
from stackd.trees import remove_tree

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_MAX_SYMLINK_HOPS = 40
_IS_ROOT = os.geteuid() == 0


@dataclass(frozen=True, slots=True)
class UnpackResult:
    diff_id: str  # sha256 of the uncompressed tar
    size: int  # uncompressed bytes


def unpack_layer(src: BinaryIO, dest: Path, *, allow_devices_outside_dev: bool = False
                 ) -> UnpackResult:
    """Unpack the (possibly compressed) layer stream `src` into the existing dir `dest`."""
    stream = LayerStream(src)
    applier = _Applier(dest, allow_devices_outside_dev, stream)
    try:
        # Seekable mode over a forward-only stream: tarfile parses the headers (pax,
        # GNU long names, sparse maps) and the applier copies file data itself.
        with tarfile.TarFile(fileobj=stream, mode="r", errorlevel=2) as tar:  # type: ignore[arg-type]
            for member in tar:
                applier.apply(tar, member)
    except tarfile.TarError as exc:
        raise LayerRejectedError(f"layer is not a valid tar: {exc}") from exc
    except (OSError, EOFError) as exc:  # CorruptStreamError is one
        raise LayerRejectedError(f"layer could not be unpacked: {exc}",
                                 hint="the layer is corrupt; pull or load the image again"
                                 ) from exc
    stream.read_rest()
    applier.finish()
    return UnpackResult(stream.digest, stream.size)


def split_name(name: str, what: str = "entry") -> list[str]:
    """The components of a tar member name; refuses absolute names and `..`."""
    if name.startswith("/"):
        raise _reject(name, f"{what} has an absolute name")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _reject(name, f"{what} climbs out with '..'")
    if "\0" in name:
        raise _reject(name, f"{what} name holds a NUL byte")
    return parts


def _reject(name: str, why: str) -> LayerRejectedError:
    return LayerRejectedError(
        f"layer rejected: '{name}': {why}; nothing from this layer was used",
        hint="the image is malformed or malicious; rebuild it or use another image",
    )


class _Applier:
    def __init__(self, root: Path, allow_devices_outside_dev: bool, stream: LayerStream
                 ) -> None:
        self.root = str(root)
        self.stream = stream
        self.allow_devices = allow_devices_outside_dev
        self.dir_times: list[tuple[str, int]] = []
        # Directories already resolved (entry name's parts → real path): each entry
        # walked its whole path again by name, and a tree a few thousand deep took
        # minutes. Only a removal or a replacement can change what a name resolves
        # to (what is added only adds names), so those forget it all.
        self._resolved: dict[tuple[str, ...], str] = {}

    # -- path resolution inside the snapshot ------------------------------------------
    def resolve_dir(self, name: str, parts: list[str], *, create: bool) -> str:
        """Real path of the directory `parts` inside root; follows only in-root symlinks."""
        key = tuple(parts)
        known = self._resolved.get(key)
        if known is not None:
            return known
        todo = list(parts)
        done: list[str] = []
        hops = 0
        while todo:
            comp = todo.pop(0)
            path = os.path.join(self.root, *done, comp)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if not create:
                    raise _reject(name, f"its parent '{'/'.join([*done, comp])}' does not exist"
                                  ) from None
                os.mkdir(path, 0o755)
                done.append(comp)
                continue
            if stat.S_ISDIR(st.st_mode):
                done.append(comp)
            elif stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > _MAX_SYMLINK_HOPS:
                    raise _reject(name, "too many symlinks on the way")
                target = os.readlink(path)
                # An absolute target means the same path in the image (lib3 ->
                # /usr/lib3, then lib3/foo): it starts again from the layer's root.
                base = [] if target.startswith("/") else list(done)
                for t in target.split("/"):
                    if t in ("", "."):
                        continue
                    if t == "..":
                        if not base:
                            raise _reject(name, f"it is placed through the symlink "
                                                f"'{'/'.join([*done, comp])}' -> '{target}' "
                                                "which points outside the layer")
                        base.pop()
                    else:
                        base.append(t)
                # Re-resolve the symlink's target from the root: it may hold symlinks too.
                todo = base + todo
                done = []
            else:
                raise _reject(name, f"its parent '{'/'.join([*done, comp])}' is not a directory")
        real = os.path.join(self.root, *done)
        self._resolved[key] = real
        return real

    # -- one entry ----------------------------------------------------------------------
    def apply(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = split_name(m.name)
        if not parts:
            if m.isdir():  # "./" itself: the snapshot root's metadata
                self.set_meta(self.root, m)
            return
        base = parts[-1]
        parent = self.resolve_dir(m.name, parts[:-1], create=True)
        if base.startswith(WHITEOUT_PREFIX):
            self.whiteout(m.name, parent, base)
            return
        path = os.path.join(parent, base)
        if m.isdir():
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o700)
            else:
                if not stat.S_ISDIR(st.st_mode):
                    os.unlink(path)
                    self._resolved.clear()
                    os.mkdir(path, 0o700)
            self._resolved[tuple(parts)] = path  # made or found as a directory, just now
            self.set_meta(path, m)
            return
        self.clear(path)
        if m.isreg():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
            try:
                self.write_data(tar, m, fd)
            finally:
                os.close(fd)
        elif m.issym():
            os.symlink(m.linkname, path)
        elif m.islnk():
            lparts = split_name(m.linkname, "hard link target")
            if not lparts:
                raise _reject(m.name, "hard link to the layer root")
            lparent = self.resolve_dir(m.name, lparts[:-1], create=False)
            target = os.path.join(lparent, lparts[-1])
            try:
                tst = os.lstat(target)
            except FileNotFoundError:
                raise _reject(m.name, f"hard link target '{m.linkname}' is not in the layer"
                              ) from None
            if stat.S_ISDIR(tst.st_mode):
                raise _reject(m.name, "hard link to a directory")
            os.link(target, path, follow_symlinks=False)
            return  # a hard link shares its target's metadata
        elif m.ischr() or m.isblk():
            is_whiteout_form = m.ischr() and m.devmajor == 0 and m.devminor == 0
            if not (is_whiteout_form or parts[0] == "dev" or self.allow_devices):
                raise _reject(m.name, "device node outside /dev")
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(path, kind | 0o600, os.makedev(m.devmajor, m.devminor))
        elif m.isfifo():
            os.mkfifo(path, 0o600)
        else:
            raise _reject(m.name, f"unsupported tar entry type {m.type!r}")
        self.set_meta(path, m)

    def write_data(self, tar: tarfile.TarFile, m: tarfile.TarInfo, fd: int) -> None:
        if m.sparse is not None:  # rare: tarfile knows the holes
            data = tar.extractfile(m)
            assert data is not None
            with os.fdopen(os.dup(fd), "wb") as out:
                shutil.copyfileobj(data, out, CHUNK)
            return
        self.stream.seek(m.offset_data)
        if self.stream.copy_to(fd, m.size) != m.size:
            raise tarfile.ReadError("unexpected end of data")

    def clear(self, path: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        self._resolved.clear()
        if stat.S_ISDIR(st.st_mode):
            remove_tree(path)
        else:
            os.unlink(path)

    def whiteout(self, name: str, parent: str, base: str) -> None:
        if base == OPAQUE:
            os.setxattr(parent, OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk, …): meaningless here
        victim = base[len(WHITEOUT_PREFIX):]
        if victim in ("", ".", ".."):
            raise _reject(name, "whiteout names no plain child of its directory")
        path = os.path.join(parent, victim)
        self.clear(path)
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))

    def set_meta(self, path: str, m: tarfile.TarInfo) -> None:
        for key, value in m.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            xname = key[len("SCHILY.xattr."):]
            if xname.startswith("trusted.overlay."):
                raise _reject(m.name, f"it sets the overlayfs-internal xattr {xname}")
            raw = value.encode("utf-8", "surrogateescape")
            try:
                os.setxattr(path, xname, raw, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM, errno.EINVAL):
                    raise
        if _IS_ROOT:
            os.lchown(path, m.uid, m.gid)
        if not m.issym():
            # After chown, which clears setuid/setgid.
            os.chmod(path, m.mode & 0o7777)
        if m.isdir():
            self.dir_times.append((path, int(m.mtime)))
        else:
            os.utime(path, (int(m.mtime), int(m.mtime)), follow_symlinks=False)

    def finish(self) -> None:
        # Directory times last: creating children changed them.
        for path, mtime in reversed(self.dir_times):
            os.utime(path, (mtime, mtime), follow_symlinks=False)
