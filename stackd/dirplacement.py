"""Where the filesystem puts new directories: each container's (and each image
layer's) directory in a block group of its own.

On ext4 without a journal, allocating an inode skips every free inode of the group
deleted in the last minute (five, while its inode table block is dirty), scanning
from the group's start each time (`find_inode_bit`, `recently_deleted`). ext4 puts a
subdirectory, and the files in it, in its parent's group; so after a `down` removed
a stack's containers, each inode of the next `up` scanned past all of theirs: the
monitor spent 13 ms of kernel time per container there, 70% of its CPU in an `up` of
50 (docs/performance.md). ext4's "top of directory hierarchies" flag on the parent
(`chattr +T`, FS_TOPDIR_FL) makes it spread the subdirectories over the groups, as it
does under / and /home. Elsewhere (a journalled ext4, xfs, tmpfs) the flag changes
nothing or is refused, and is then left alone: it is a hint, never needed.
"""

from __future__ import annotations

import fcntl
import os
import sys

_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000


def spread_subdirectories(path: str | os.PathLike[str]) -> bool:
    """Mark the directory `path` so the filesystem spreads its subdirectories; whether
    it is marked now."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buf)
        flags = int.from_bytes(buf[:4], sys.byteorder)
        if not flags & _FS_TOPDIR_FL:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS,
                        (flags | _FS_TOPDIR_FL).to_bytes(4, sys.byteorder) + bytes(4))
        return True
    except OSError:  # no such flags here (tmpfs, overlay, …): nothing to spread
        return False
    finally:
        os.close(fd)
