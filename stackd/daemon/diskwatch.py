"""Whether the disks under the state root and the run dir have room left.

A full disk is a fault of the host, not of one stack: while it lasts the daemon says
so in `stackd daemon status` (Version.faults) and once as an `error` event with
attrs {"fault": "disk_full"}, and once more (a `heal` event) when there is room again.
Writes that fail meanwhile fail with DiskFullError and are retried by whoever made
them (the controller's backoff, the supervisor's restart backoff).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import trio

from stackd.daemon.models import Fault

CHECK_INTERVAL = 1.0
# Below this much room, or with no inode left, a disk counts as full: SQLite and the
# logs need a few pages for any write, so "1 KiB free" fails just as "0" does.
FULL_BELOW = 1024 * 1024

Emit = Callable[..., object]


def room(path: Path) -> tuple[int, int] | None:
    """(bytes, inodes) free under `path` for root; None if it
    cannot be looked at (gone)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    # Root may use the reserved blocks too (f_bfree, not f_bavail): stackd runs as root.
    inodes = st.f_ffree if st.f_files else 1  # some file systems have no inode count
    return st.f_bfree * st.f_frsize, inodes


def is_full(free: tuple[int, int] | None) -> bool:
    return free is not None and (free[0] < FULL_BELOW or free[1] == 0)


class DiskWatch:
    def __init__(self, paths: list[Path], emit: Emit) -> None:
        self.paths = list(dict.fromkeys(paths))
        self.emit = emit
        self._full: dict[Path, Fault] = {}

    def faults(self) -> list[Fault]:
        return [self._full[p] for p in self.paths if p in self._full]

    def look(self, rooms: dict[Path, tuple[int, int] | None]) -> None:
        """Update the faults from one look at each path's room; emit the changes."""
        for path in self.paths:
            free = rooms.get(path)
            if is_full(free) and path not in self._full:
                assert free is not None
                fault = Fault(kind="disk_full", path=str(path), since=time.time(),
                              message=f"no space left on the disk of {path} "
                              f"({free[0] // 1024} KiB, {free[1]} inodes free): writes fail "
                              "and are retried; free space there")
                self._full[path] = fault
                self.emit("error", message=fault.message, fault="disk_full", path=str(path))
            elif not is_full(free) and path in self._full:
                del self._full[path]
                self.emit("heal", message=f"there is room on the disk of {path} again",
                          fault="disk_full", path=str(path))

    async def run(self) -> None:
        while True:
            rooms = await trio.to_thread.run_sync(lambda: {p: room(p) for p in self.paths})
            self.look(rooms)
            await trio.sleep(CHECK_INTERVAL)
