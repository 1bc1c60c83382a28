"""cgroups: one interface (`CgroupManager`), two implementations, chosen from what the host mounts.

- pure cgroup v2 (/sys/fs/cgroup is cgroup2): `CgroupV2`.
- v1, or hybrid (v1 controllers plus a cgroup2 mount, often /sys/fs/cgroup/unified):
  `CgroupV1`. crun refuses hybrid hosts; we use v1 for every controller there and
  leave the cgroup2 mount alone: joining it would buy nothing the pid namespace does
  not give, and each join can cost another RCU grace period at start.

Every container's cgroup is `stackd/<root id>/<container id>` in each hierarchy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from stackd.errors import HostError
from stackd.hostnames import CGROUP_PARENT, cgroup_relpath
from stackd.runtime.cgroups.base import CgroupManager, rmdir_if_empty
from stackd.runtime.cgroups.v1 import BLKIO, CONTROLLERS, FREEZER, CgroupV1
from stackd.runtime.cgroups.v2 import CgroupV2

__all__ = ["CgroupManager", "CgroupMounts", "CgroupV1", "CgroupV2", "host_mounts",
           "manager_for", "parse_mounts", "remove_root_parents"]


@dataclass(frozen=True)
class CgroupMounts:
    v1: dict[str, Path] = field(default_factory=dict)  # controller → mount point
    v2: Path | None = None

    def stackd_dirs(self) -> list[Path]:
        """The `stackd` parent in every hierarchy (where leaks would be)."""
        roots = set(self.v1.values())
        if self.v2 is not None:
            roots.add(self.v2)
        return sorted(r / CGROUP_PARENT for r in roots)


def parse_mounts(text: str) -> CgroupMounts:
    """Read /proc/self/mounts text. Pure."""
    v1: dict[str, Path] = {}
    v2: Path | None = None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        _, mountpoint, fstype, options = parts[:4]
        if fstype == "cgroup2" and v2 is None:
            v2 = Path(mountpoint)
        elif fstype == "cgroup":
            for opt in options.split(","):
                if opt in CONTROLLERS or opt in (FREEZER, BLKIO):
                    v1.setdefault(opt, Path(mountpoint))
    return CgroupMounts(v1=v1, v2=v2)


def host_mounts() -> CgroupMounts:
    with open("/proc/self/mounts") as f:
        return parse_mounts(f.read())


def remove_root_parents(root_id: str, mounts: CgroupMounts | None = None) -> None:
    """Remove `stackd/<root id>` from every hierarchy where it is empty. The monitor
    does this when it exits rather than after each container: re-making it for every
    container would cost a mkdir and rmdir per hierarchy each time."""
    mounts = mounts or host_mounts()
    for parent in mounts.stackd_dirs():
        rmdir_if_empty(parent / root_id)
        # The shared `stackd` parent goes too once no root uses it; a root creating
        # its cgroups at this moment re-makes it (see CgroupV1/V2.create).
        rmdir_if_empty(parent)


def manager_for(root_id: str, container_id: str,
                mounts: CgroupMounts | None = None) -> CgroupManager:
    mounts = mounts or host_mounts()
    relpath = cgroup_relpath(root_id, container_id)
    if mounts.v1:
        return CgroupV1(mounts.v1, relpath)
    if mounts.v2 is not None:
        return CgroupV2(mounts.v2, relpath)
    raise HostError("no cgroup filesystem is mounted",
                    hint="mount cgroup2 at /sys/fs/cgroup (or the v1 hierarchies)")
