"""A container's `devices`, resolved from the host's nodes once, when it is created.

The node made in the container's /dev and the devices-cgroup rule that allows it both
come from this one stat of the host path, so they cannot disagree.
"""

from __future__ import annotations

import os
import stat

from stackd.errors import HostError
from stackd.runtime.specview import replace

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from stackd.runtime.containerspec import BlkioLimit, ContainerSpec, Device

MAX_NODES = 1024  # a directory source (/dev/snd) expands; /dev itself would be absurd


def resolve_devices(spec: ContainerSpec) -> ContainerSpec:
    """`spec` with every device's type, numbers, mode and owner from the host node,
    and the numbers of every block device its I/O limits name."""
    spec = _resolve_blkio(spec)
    if not spec.devices or all(d.type is not None for d in spec.devices):
        return spec
    out: list[Device] = []
    for d in spec.devices:
        out.extend([d] if d.type is not None else _nodes(d))
        if len(out) > MAX_NODES:
            raise HostError(f"container {spec.name}: devices expand to more than "
                            f"{MAX_NODES} nodes", hint="name the device nodes one by one")
    resolved: ContainerSpec = replace(spec, devices=tuple(out))
    return resolved


def _nodes(d: Device) -> list[Device]:
    try:
        st = os.stat(d.source)  # a link (/dev/disk/by-id/…) names its node, as in Docker
    except OSError as exc:
        raise HostError(f"device {d.source}: {exc.strerror}",
                        hint="check the host path under devices:") from None
    if stat.S_ISDIR(st.st_mode):
        found: list[Device] = []
        for top, _dirs, files in os.walk(d.source):
            for name in sorted(files):
                path = os.path.join(top, name)
                try:
                    sub = os.stat(path, follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISCHR(sub.st_mode) or stat.S_ISBLK(sub.st_mode):
                    rel = os.path.relpath(path, d.source)
                    found.append(_node(d, sub, path, os.path.join(d.target, rel)))
                if len(found) > MAX_NODES:
                    return found
        return found
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise HostError(f"device {d.source} is not a device node",
                        hint="devices: takes character or block devices (or a directory "
                        "of them); mount other files with volumes:")
    return [_node(d, st, d.source, d.target)]


def _node(d: Device, st: os.stat_result, source: str, target: str) -> Device:
    node: Device = replace(
        d, source=source, target=target, type="c" if stat.S_ISCHR(st.st_mode) else "b",
        major=os.major(st.st_rdev), minor=os.minor(st.st_rdev),
        mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid)
    return node


def _resolve_blkio(spec: ContainerSpec) -> ContainerSpec:
    limits = spec.resources.blkio_devices
    if all(b.major is not None for b in limits):
        return spec
    resources = replace(spec.resources, blkio_devices=tuple(_block(b) for b in limits))
    resolved: ContainerSpec = replace(spec, resources=resources)
    return resolved


def _block(b: BlkioLimit) -> BlkioLimit:
    if b.major is not None:
        return b
    key = "weight_device" if b.limit == "weight" else f"device_{b.limit}"
    try:
        st = os.stat(b.path)
    except OSError as exc:
        raise HostError(f"blkio_config.{key}: {b.path}: {exc.strerror}",
                        hint="name a block device of this host (/dev/sda)") from None
    if not stat.S_ISBLK(st.st_mode):
        raise HostError(f"blkio_config.{key}: {b.path} is not a block device",
                        hint="name a block device of this host (/dev/sda)")
    resolved: BlkioLimit = replace(b, major=os.major(st.st_rdev), minor=os.minor(st.st_rdev))
    return resolved
