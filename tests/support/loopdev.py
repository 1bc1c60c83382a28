"""A loop block device on a file of the test's own, for limits that need a real block
device (blkio_config); detached again however the test ends."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def loop_device(directory: Path, size: int = 4 * 1024 * 1024) -> Iterator[str]:
    backing = directory / "disk.img"
    backing.write_bytes(b"\0" * size)
    dev = subprocess.run(["losetup", "--find", "--show", str(backing)], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)
