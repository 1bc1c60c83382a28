"""File locks (flock) that let several processes share one store.

Adding content takes the store lock shared; prune and remove take it exclusive, so a
collection never runs under a pull that has written blobs but not yet its reference.
A per-key lock makes two pulls of the same layer unpack it once.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stackd.filemodes import private_dir


@contextmanager
def flocked(path: Path, *, shared: bool = False) -> Iterator[None]:
    private_dir(path.parent, parents=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
