"""The daemon's pid file, held under an exclusive lock for the daemon's whole life.

The lock, not the file's existence, says whether a daemon runs: a daemon killed with
SIGKILL leaves the file behind but the kernel drops its lock, so the next one starts
without any cleanup, and two daemons racing to start (two CLIs starting one on
demand at once) cannot both win.

It is a POSIX record lock (lockf), not flock: flock locks are shared with forked
children, so a helper the daemon forked (pyroute2 forks for namespace work) and that
outlived it would keep "the daemon" locked; record locks belong to one process only.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from stackd.errors import AlreadyExistsError


class PidFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise AlreadyExistsError(
                f"a stackd daemon already runs for this run dir (pid {read_pid(self.path)})",
                hint="`stackd daemon stop` stops it") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or 0) or None
    except (FileNotFoundError, ValueError):
        return None


def locked(path: Path) -> bool:
    """True while some process holds the pid file's lock (i.e. a daemon is alive)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
