"""Read-only all the way down.

A bind with MS_REC brings the source's submounts along, and a bind remount with
MS_RDONLY changes only the top one: `/:/host:ro` left /host/proc and
/host/sys/fs/cgroup/* writable (a container wrote the host's kernel.core_pattern and
moved itself into the host's root cgroup). mount_setattr(2) with AT_RECURSIVE (Linux
5.12) sets MOUNT_ATTR_RDONLY on the whole tree at once, as runc's `rro` option does.
Before 5.12, each mount at or below the top is remounted on its own.
"""

from __future__ import annotations

import errno
import os
import re

from stackd.runtime import syscalls as sc

# A bind remount sets exactly the flags it is given: keep the ones each mount has.
_KEPT_FLAGS = {
    "nosuid": sc.MS_NOSUID, "nodev": sc.MS_NODEV, "noexec": sc.MS_NOEXEC,
    "noatime": sc.MS_NOATIME, "nodiratime": sc.MS_NODIRATIME, "relatime": sc.MS_RELATIME,
}
_OCTAL = re.compile(r"\\([0-7]{3})")


def make_readonly(fd: int) -> None:
    """Make the mount whose root `fd` (O_PATH) is, and every mount below it, read-only."""
    try:
        sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, sc.MOUNT_ATTR_RDONLY)
        return
    except OSError as e:
        if e.errno not in (errno.ENOSYS, errno.EPERM):  # EPERM: a seccomp filter
            raise
    remount_each_readonly(os.readlink(f"/proc/self/fd/{fd}"))


def remount_each_readonly(top: str) -> None:
    """The fallback: one bind remount per mount at or below `top` (a path of this
    process's root). Only the mount on top at each point is reachable by path; one
    hidden under it is out of the container's sight anyway."""
    with open("/proc/self/mountinfo") as f:
        below = mounts_at_or_below(f.read(), top)
    for point, flags in below:
        sc.mount(None, point, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | flags)


def mounts_at_or_below(mountinfo: str, top: str) -> list[tuple[str, int]]:
    """(mount point, flags to keep) of each mount in `mountinfo` at or below `top`."""
    top = top.rstrip("/") or "/"
    prefix = top if top == "/" else top + "/"
    out = []
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) < 6:
            continue
        point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
        if point != top and not point.startswith(prefix):
            continue
        flags = 0
        for opt in fields[5].split(","):
            flags |= _KEPT_FLAGS.get(opt, 0)
        out.append((point, flags))
    return out
