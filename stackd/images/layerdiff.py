"""Turn a dir in overlayfs form (a container upper dir, a staged COPY) into an OCI layer tar.

The reverse of `unpack`: a 0:0 character device becomes `.wh.name`, a directory with
`trusted.overlay.opaque=y` gets a `.wh..wh..opq` entry. Entries are written in sorted
order with numeric owners only, so the same tree always gives the same tar.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from typing import BinaryIO

from stackd.errors import HostError
from stackd.images.unpack import OPAQUE, OPAQUE_XATTR, WHITEOUT_PREFIX

_SKIP_XATTR_PREFIXES = ("trusted.overlay.", "security.selinux")


def write_layer_tar(root: str, out: BinaryIO, exclude: frozenset[str] = frozenset()) -> None:
    """Write the tree under `root` as an uncompressed PAX tar to `out`.

    `exclude`: relative paths left out with everything under them (mount points a
    container's runtime made, say).
    """
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        inodes: dict[tuple[int, int], str] = {}
        # Depth first in name order, as a recursion would go, without a frame per
        # level: a container's layer may nest thousands of directories deep.
        pending = _entries(root, "")
        try:
            while pending:
                path, arc, is_dir = pending.pop()
                if arc in exclude:
                    continue
                _add(tar, path, arc, inodes)
                if is_dir:
                    pending += _entries(path, arc + "/")
        except OSError as err:
            if err.errno == errno.ENAMETOOLONG:
                raise HostError(f"a path in the layer is longer than the kernel takes "
                                f"({len(err.filename or '')} bytes): its directories nest "
                                "too deeply to be read by name",
                                hint="remove or move up that tree first") from None
            raise


def _entries(dirpath: str, rel: str) -> list[tuple[str, str, bool]]:
    """(host path, name in the tar, a directory) of what `dirpath` holds, the first
    in name order last."""
    with os.scandir(dirpath) as it:
        found = sorted(it, key=lambda e: e.name, reverse=True)
    return [(e.path, f"{rel}{e.name}", e.is_dir(follow_symlinks=False)) for e in found]


def _add(tar: tarfile.TarFile, path: str, arc: str, inodes: dict[tuple[int, int], str]) -> None:
    st = os.lstat(path)
    mode = st.st_mode
    if stat.S_ISCHR(mode) and st.st_rdev == 0:
        head, _, base = arc.rpartition("/")
        ti = tarfile.TarInfo((head + "/" if head else "") + WHITEOUT_PREFIX + base)
        ti.mtime = int(st.st_mtime)
        tar.addfile(ti)
        return
    ti = tarfile.TarInfo(arc)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.mode = stat.S_IMODE(mode)
    ti.mtime = int(st.st_mtime)
    ti.uname = ti.gname = ""
    pax = {"SCHILY.xattr." + xname: os.getxattr(path, xname, follow_symlinks=False).decode(
        "utf-8", "surrogateescape") for xname in _xattrs(path)}
    if pax:
        ti.pax_headers = pax
    key = (st.st_dev, st.st_ino)
    if stat.S_ISREG(mode) and st.st_nlink > 1 and key in inodes:
        ti.type = tarfile.LNKTYPE
        ti.linkname = inodes[key]
        tar.addfile(ti)
        return
    if stat.S_ISREG(mode):
        inodes.setdefault(key, arc)
        ti.type = tarfile.REGTYPE
        ti.size = st.st_size
        with open(path, "rb") as f:
            tar.addfile(ti, f)
        return
    if stat.S_ISDIR(mode):
        ti.type = tarfile.DIRTYPE
        tar.addfile(ti)
        if _is_opaque(path):
            wh = tarfile.TarInfo(f"{arc}/{OPAQUE}")
            wh.mtime = ti.mtime
            tar.addfile(wh)
        return
    if stat.S_ISLNK(mode):
        ti.type = tarfile.SYMTYPE
        ti.linkname = os.readlink(path)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        ti.type = tarfile.FIFOTYPE
    else:
        return  # sockets do not belong in images
    tar.addfile(ti)


def _xattrs(path: str) -> list[str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []
    return sorted(n for n in names if not n.startswith(_SKIP_XATTR_PREFIXES))


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False
