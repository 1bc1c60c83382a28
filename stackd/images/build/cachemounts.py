"""The directories `RUN --mount=type=cache` keeps from one build to the next.

Each id has `build-mounts/<sha256 of the id>/` under the image store's root (0700): an
id is a word from a Dockerfile, never a path. In it, `data` is what RUN steps see
(made with the first mount's mode and owner), `lock` is what `sharing` takes:

- shared: a shared lock, so any number of steps use it at once;
- locked: an exclusive lock, waiting for every other user;
- private: an exclusive lock if free, else a new empty directory for this step alone,
  thrown away after it.

Locks are flock(2) on `lock`, so a build killed mid-step holds nothing afterwards.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from stackd.images.build.runmounts import CacheMount
from stackd.trees import remove_tree

POLL = 0.05


class CacheDirs:
    def __init__(self, images_root: Path) -> None:
        self.dir = images_root / "build-mounts"

    def _home(self, cache_id: str) -> Path:
        return self.dir / hashlib.sha256(cache_id.encode()).hexdigest()[:32]

    @asynccontextmanager
    async def use(self, mount: CacheMount) -> AsyncIterator[Path]:
        """The host directory to mount for `mount`, held as its `sharing` says until
        the block ends."""
        home = self._home(mount.id)
        fd = await trio.to_thread.run_sync(self._open, home, mount)
        throwaway: Path | None = None
        try:
            mode = fcntl.LOCK_SH if mount.sharing == "shared" else fcntl.LOCK_EX
            while not _try_lock(fd, mode):
                if mount.sharing == "private":
                    throwaway = Path(tempfile.mkdtemp(prefix=".private-", dir=self.dir))
                    _own(throwaway, mount)
                    break
                await trio.sleep(POLL)
            yield throwaway if throwaway is not None else home / "data"
        finally:
            os.close(fd)  # drops the lock
            if throwaway is not None:
                remove_tree(throwaway, ignore_errors=True)

    def _open(self, home: Path, mount: CacheMount) -> int:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        home.mkdir(mode=0o700, exist_ok=True)
        data = home / "data"
        if not data.is_dir() or data.is_symlink():
            tmp = Path(tempfile.mkdtemp(prefix=".data-", dir=home))
            _own(tmp, mount)
            try:
                os.rename(tmp, data)  # two first uses at once: one of them makes it
            except OSError:
                remove_tree(tmp, ignore_errors=True)
        return os.open(home / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                       0o600)

    def prune(self) -> int:
        """Remove every cache no step uses now; → how many."""
        removed = 0
        if not self.dir.is_dir():
            return 0
        for home in sorted(self.dir.iterdir()):
            if home.name.startswith(".private-"):
                continue  # a private step's own, removed when it ends
            try:
                fd = os.open(home / "lock", os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
            except FileNotFoundError:
                remove_tree(home, ignore_errors=True)
                removed += 1
                continue
            try:
                if _try_lock(fd, fcntl.LOCK_EX):
                    remove_tree(home, ignore_errors=True)  # a step opening it now makes it anew
                    removed += 1
            finally:
                os.close(fd)
        return removed


def _try_lock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _own(path: Path, mount: CacheMount) -> None:
    os.chown(path, mount.uid, mount.gid)
    os.chmod(path, mount.mode)
