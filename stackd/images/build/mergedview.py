"""Reading an image's file tree through its layer dirs (top-most first) as overlayfs would.

A 0:0 character device hides the name in lower layers; a directory marked opaque
hides its lower namesakes' contents. Used by COPY --from and --chown name lookups; no
mount needed.
"""

from __future__ import annotations

import os
import stat

from stackd.images.models import in_image
from stackd.images.unpack import OPAQUE_XATTR


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _parts(path: str) -> list[str]:
    """`path`'s names inside the image, `..` stopping at its root (lexically, which is
    exact here: no symlink on the way is followed)."""
    return [p for p in in_image(path).split("/") if p]


def lookup(layers: tuple[str, ...], path: str) -> str | None:
    """The host path that provides `path` (no symlink in it followed), or None."""
    parts = _parts(path)
    for layer in layers:
        cur = layer
        blocked = False
        for i, part in enumerate(parts):
            cur = os.path.join(cur, part)
            try:
                st = os.lstat(cur)
            except FileNotFoundError:
                break
            if _is_whiteout(st):
                return None
            last = i == len(parts) - 1
            if last:
                return cur
            if not stat.S_ISDIR(st.st_mode):
                return None  # a non-dir here hides lower layers' subtrees
            if _opaque(cur):
                blocked = True
        else:
            if not parts:
                return layer
        if blocked:
            # An opaque ancestor in this layer hides everything below it in lower layers.
            return None
    return None


def listdir(layers: tuple[str, ...], path: str) -> dict[str, str]:
    """name → providing host path for the merged directory `path`."""
    found: dict[str, str] = {}
    hidden: set[str] = set()
    parts = _parts(path)
    for layer in layers:
        d = os.path.join(layer, *parts)
        try:
            st = os.lstat(d)
        except FileNotFoundError:
            continue
        if _is_whiteout(st) or not stat.S_ISDIR(st.st_mode):
            break
        for entry in os.scandir(d):
            if entry.name in found or entry.name in hidden:
                continue
            est = entry.stat(follow_symlinks=False)
            if _is_whiteout(est):
                hidden.add(entry.name)
            else:
                found[entry.name] = entry.path
        if _opaque(d):
            break
    return found


def read_text(layers: tuple[str, ...], path: str) -> str | None:
    host = lookup(layers, path)
    if host is None or not os.path.isfile(host) or os.path.islink(host):
        return None
    with open(host, errors="replace") as f:
        return f.read()
