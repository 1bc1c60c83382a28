"""Directory chains nested past Python's recursion limit, as a hostile image or
container makes them (`mkdir a; cd a` in a loop), for the tests of every walk."""

from __future__ import annotations

import os
from pathlib import Path


def nest(top: Path, depth: int, *, name: str = "a", leaf: bytes | None = None) -> Path:
    """top/name/name/…/name, `depth` levels, made through descriptors (os.makedirs
    itself recurses); with `leaf`, a file `leaf` of those bytes at the bottom. The
    bottom directory's path (too long for some calls; for assertions)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            fd, above = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
            os.close(above)
        if leaf is not None:
            out = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            try:
                os.write(out, leaf)
            finally:
                os.close(out)
    finally:
        os.close(fd)
    return top.joinpath(*[name] * depth)
