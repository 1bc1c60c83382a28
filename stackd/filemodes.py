"""Who may read what stackd keeps: its own files are root's only, whatever the umask.

The state and run roots are 0700, so nothing below them is reachable by another local
user; below them, what stackd keeps for itself (records, specs with environments,
logs, blobs, locks) is 0600 in 0700 directories too, so a root opened by mistake
does not open everything. Only what a container sees through a mount keeps the mode
the container needs (its image layers, its upper dir, volume data, configs and
secrets at the mode the stack asks for).

Modes are set explicitly (mkdir/open, then chmod), never left to the umask of
whoever started the process: the CLI may start the daemon, the daemon the monitor.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path, *, parents: bool = False) -> Path:
    """Make `path` (and, with parents, missing ancestors with the usual modes) a
    directory; it ends 0700 even when it existed wider."""
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, PRIVATE_DIR)
    except FileExistsError:
        pass
    os.chmod(path, PRIVATE_DIR)
    return path


def open_private(path: Path | str, flags: int) -> int:
    """os.open creating the file 0600 (and tightening an existing one)."""
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_private(path: Path, data: bytes, *, mode: int = PRIVATE_FILE) -> None:
    """Write a whole file created with `mode` (not wider, whatever the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode & 0o600)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def tighten(directory: Path) -> None:
    """Close `directory` (0700) and what lies directly in it: directories 0700, files
    and sockets 0600. For a root an older stackd made 0711/0755 with 0644 files.
    Mount points (a network namespace's file) are left alone: their mode is the
    mounted object's."""
    os.chmod(directory, PRIVATE_DIR)
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return
    parent_dev = os.stat(directory).st_dev
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if st.st_dev != parent_dev or stat.S_ISLNK(st.st_mode):
            continue
        want = PRIVATE_DIR if stat.S_ISDIR(st.st_mode) else PRIVATE_FILE
        if stat.S_IMODE(st.st_mode) & ~want:
            os.chmod(entry.path, stat.S_IMODE(st.st_mode) & want)
