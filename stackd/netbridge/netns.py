"""Network namespaces kept alive by a bind mount under the run dir.

A container joins its namespace by path (ContainerSpec.namespaces.net), so the
namespace — and with it its addresses — outlives the container's processes: a restart
finds the same network. Blocking functions; run them in a worker thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
from pathlib import Path

from stackd.errors import HostError, UnavailableError

MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def netns_dir(run: Path) -> Path:
    return run / "netns"


def netns_path(run: Path, container_id: str) -> Path:
    return netns_dir(run) / container_id


def is_netns(path: Path) -> bool:
    """A bind-mounted namespace, not just the empty file it is mounted on."""
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except FileNotFoundError:
        return False


def create(path: Path) -> None:
    if is_netns(path):
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
    path.touch(mode=0o644)
    # util-linux unshare makes the namespace and bind-mounts it in one step; doing it
    # in-process would move a (reused) worker thread into the new namespace.
    try:
        proc = subprocess.run(["unshare", f"--net={path}", "true"], capture_output=True,
                              text=True, timeout=30)
    except FileNotFoundError:
        raise UnavailableError("the unshare command is missing",
                               hint="install util-linux") from None
    if proc.returncode != 0:
        path.unlink(missing_ok=True)
        raise HostError(f"creating network namespace {path} failed: {proc.stderr.strip()}")


def remove(path: Path) -> None:
    if is_netns(path) and _libc.umount2(os.fsencode(path), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise HostError(f"unmounting network namespace {path} failed: {os.strerror(err)}")
    path.unlink(missing_ok=True)
