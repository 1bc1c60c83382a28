"""`stackd watch`'s look at the host: what is under the watched paths now, and what
changed between two looks. Polling, not inotify: it needs no watch descriptor per
directory (a big tree exhausts them) and sees a change made while it was busy; a
look at a few thousand files takes milliseconds. Symlinks are recorded as links,
never followed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable

# path → (kind, size, mtime_ns); a directory's own entry is ("d", 0, 0): only what is
# in it counts as a change.
Snapshot = dict[str, tuple[str, int, int]]


def look(paths: Iterable[str], skip: Callable[[str], bool]) -> Snapshot:
    """Everything under `paths` (each a file or a directory), but for what `skip`
    says (a skipped directory is not walked)."""
    out: Snapshot = {}
    for top in paths:
        _look(os.path.normpath(top), skip, out)
    return out


def _look(top: str, skip: Callable[[str], bool], out: Snapshot) -> None:
    pending = [top]  # without a frame per level: a tree may nest past the recursion limit
    while pending:
        path = pending.pop()
        try:
            st = os.lstat(path)
        except OSError:
            continue  # gone, or not ours to read: not there
        if stat.S_ISDIR(st.st_mode):
            out[path] = ("d", 0, 0)
            try:
                names = os.listdir(path)
            except OSError:
                continue
            pending += [child for child in (os.path.join(path, n) for n in names)
                        if not skip(child)]
        else:
            kind = "l" if stat.S_ISLNK(st.st_mode) else "f"
            out[path] = (kind, st.st_size, st.st_mtime_ns)


def changes(before: Snapshot, after: Snapshot) -> dict[str, bool]:
    """Path → whether it exists now, for each file or link made, changed or gone, and
    each directory gone (once: not also what was in it)."""
    out: dict[str, bool] = {}
    for path, sig in after.items():
        if sig[0] != "d" and before.get(path) != sig:
            out[path] = True
    gone = sorted(p for p in before if p not in after)
    dropped: list[str] = []
    for path in gone:
        if any(path.startswith(d + "/") for d in dropped):
            continue
        out[path] = False
        if before[path][0] == "d":
            dropped.append(path)
    return out
