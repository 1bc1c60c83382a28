"""Which live processes have a host directory mounted (a named volume, a bind mount):
what must never be removed from under them, whatever the records say.

Asked of the kernel, not of stackd's records (which may be unreadable or gone): one
process of every mount namespace on the host is looked at; a mount whose root is the
directory itself (same device and inode) means that namespace uses it.
"""

from __future__ import annotations

import os
from pathlib import Path

from stackd.hostnames import CGROUP_PARENT


def mount_users(path: Path) -> list[str]:
    """Who has `path` mounted: "container <id> (pid N)" for a stackd container (by its
    cgroup), "process N" for anything else; [] if nobody (or `path` does not exist)."""
    try:
        target = os.stat(path)
    except OSError:
        return []
    dev = f"{os.major(target.st_dev)}:{os.minor(target.st_dev)}"
    seen: set[int] = set()
    users = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            ns = os.stat(f"/proc/{pid}/ns/mnt").st_ino
        except OSError:
            continue  # gone, or a kernel thread
        if ns in seen:
            continue
        seen.add(ns)
        if _mounts(pid, dev, (target.st_dev, target.st_ino)):
            cid = _container_of(pid)
            users.append(f"container {cid} (pid {pid})" if cid else f"process {pid}")
    return sorted(users)


def _mounts(pid: int, dev: str, ident: tuple[int, int]) -> bool:
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        # Only mounts of the directory's own file system can be it; nothing else is
        # touched (a stat of a hung network mount would hang us).
        if len(fields) < 5 or fields[2] != dev:
            continue
        point = _unescape(fields[4])
        try:
            st = os.stat(f"/proc/{pid}/root{point}")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == ident:
            return True
    return False


def _container_of(pid: int) -> str | None:
    """The container id in the process's stackd cgroup path, if it has one."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                parts = line.rstrip("\n").split(":", 2)[-1].strip("/").split("/")
                if CGROUP_PARENT in parts:
                    rest = parts[parts.index(CGROUP_PARENT) + 1:]
                    if len(rest) >= 2:
                        return rest[1]
    except OSError:
        pass
    return None


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    return field.replace("\\040", " ").replace("\\011", "\t").replace(
        "\\012", "\n").replace("\\134", "\\")
