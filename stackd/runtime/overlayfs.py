"""Mounting a container's layers as one overlay: how the layer list reaches the kernel.

mount(2) reads its options from one page (4 KiB): the colon-joined layer paths of an
image of ~40 layers (each `<root>/images/snapshots/<64 hex>`) did not fit, and the
kernel, reading a path cut short, answered ENOENT — such an image could not run. Past
a page, the layers are given one by one through the new mount API (fsconfig's
`lowerdir+`, Linux 6.8), each value at most 256 bytes, and the mount made detached is
moved onto its place. An overlay stacks at most 500 lower layers (the kernel's
OVL_MAX_STACK).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

from stackd.errors import HostError
from stackd.runtime import syscalls as sc

MAX_LAYERS = 500  # the kernel's OVL_MAX_STACK
_ONE_PAGE = 4096
_ONE_VALUE = 256  # fsconfig's bound on a string value


def mount(target: str, lower: Sequence[str], upper: str, work: str) -> None:
    """The overlay of `lower` (top-most first) with its writable `upper` on `target`."""
    data = f"lowerdir={':'.join(lower)},upperdir={upper},workdir={work}"
    if len(data) < _ONE_PAGE:
        sc.mount("overlay", target, "overlay", 0, data)
        return
    tree = detached(lower, upper, work)
    try:
        place = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            sc.move_mount(tree, place)
        finally:
            os.close(place)
    finally:
        os.close(tree)


def detached(lower: Sequence[str], upper: str | None = None, work: str | None = None,
             attr: int = 0) -> int:
    """The overlay mounted nowhere (a descriptor of its root): read-only without
    `upper`."""
    if len(lower) > MAX_LAYERS:
        raise HostError(f"an image of {len(lower)} layers cannot be mounted: overlayfs "
                        f"stacks at most {MAX_LAYERS}",
                        hint="rebuild the image with fewer layers (squash some steps)")
    joined = ":".join(lower)
    options = ([("lowerdir", joined)] if len(joined) < _ONE_VALUE
               else [("lowerdir+", layer) for layer in lower])
    if upper is not None and work is not None:
        options += [("upperdir", upper), ("workdir", work)]
    try:
        return sc.detached_mount("overlay", options, attr)
    except OSError as err:
        if err.errno in (errno.EINVAL, errno.ENOSYS) and len(joined) >= _ONE_VALUE:
            raise HostError(f"cannot mount the {len(lower)} layers of the image: "
                            f"{err.strerror} (their paths pass what mount(2) takes, and "
                            "giving them one by one needs Linux 6.8)",
                            hint="upgrade the kernel, or rebuild the image with fewer "
                                 "layers") from None
        raise
