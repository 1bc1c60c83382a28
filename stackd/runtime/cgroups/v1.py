"""cgroup v1: one hierarchy per controller (memory, cpu, cpuacct, pids, cpuset, devices),
as these hosts mount them. The freezer is not joined at start (every hierarchy joined
costs an RCU grace period there): `freeze` (`stackd pause`) makes the container's
freezer cgroup then and moves its processes in.

On a hybrid host the v1 hierarchies carry the controllers and the cgroup2 mount is
not used.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from stackd.errors import HostError
from stackd.runtime.cgroups import base
from stackd.runtime.cgroups.settings import v1_device_writes, v1_writes, weight_write
from stackd.runtime.cgroups.v2 import CgroupV2
from stackd.runtime.model import Stats

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from stackd.runtime.containerspec import Device, Resources

CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "cpuset", "devices")
FREEZER = "freezer"
# Made and joined by every container, for `stats`' BLOCK I/O, but found again by its
# directory, as the freezer is: a container an older stackd made is not in it.
BLKIO = "blkio"
FREEZE_TIMEOUT = 5.0


class CgroupV1:
    def __init__(self, hierarchies: dict[str, Path], relpath: str,
                 unified: CgroupV2 | None = None) -> None:
        self.relpath = relpath
        self.unified = unified
        # controller → this container's directory in the hierarchy holding it
        self.dirs = {c: hierarchies[c] / relpath for c in CONTROLLERS if c in hierarchies}
        self.mounts = {c: hierarchies[c] for c in CONTROLLERS if c in hierarchies}
        self.freezer = hierarchies[FREEZER] / relpath if FREEZER in hierarchies else None
        self.blkio = hierarchies[BLKIO] / relpath if BLKIO in hierarchies else None

    def _unique_dirs(self) -> list[Path]:
        # cpu and cpuacct may share one mount; each directory once.
        dirs = set(self.dirs.values())
        if self.blkio is not None and self.blkio.is_dir():
            dirs.add(self.blkio)
        return sorted(dirs)

    def paths(self) -> list[Path]:
        frozen = [self.freezer] if self.freezer is not None and self.freezer.is_dir() else []
        return self._unique_dirs() + frozen + (self.unified.paths() if self.unified else [])

    def create(self) -> None:
        base.retry_if_parent_vanishes(self._create)

    def _create(self) -> None:
        for controller, leaf in self.dirs.items():
            mount = self.mounts[controller]
            current = mount
            for part in Path(self.relpath).parts:
                parent, current = current, current / part
                if not current.is_dir():
                    current.mkdir(exist_ok=True)
                if controller == "cpuset":
                    # A cpuset cgroup with empty cpus/mems refuses tasks: inherit the parent's.
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        if not base.read(current / f).strip():
                            base.write(current / f, base.read(parent / f).strip())
            assert current == leaf
        if self.blkio is not None:
            # Its joining costs a start nothing measurable: the child joins its own
            # cgroups, in parallel with the monitor's next create (docs/runtime.md).
            self.blkio.mkdir(parents=True, exist_ok=True)
        if self.unified:
            self.unified.create()

    def apply(self, resources: Resources, *, privileged: bool = False,
              devices: Sequence[Device] = (), rules: Sequence[str] = ()) -> None:
        for controller, name, value in (v1_writes(resources)
                                        + v1_device_writes(privileged, devices, rules)):
            directory = self._blkio_dir() if controller == BLKIO else self.dirs.get(controller)
            if directory is None:
                raise HostError(
                    f"cannot apply {name}={value}: the {controller} cgroup controller is not "
                    "mounted on this host",
                    hint=f"mount the cgroup v1 {controller} hierarchy or drop that limit",
                )
            target = weight_write(str(directory), name, value)
            if target is None:
                raise HostError(
                    "blkio_config: this host's kernel has no block I/O weight (neither "
                    "blkio.weight nor the BFQ scheduler's blkio.bfq.weight)",
                    hint="remove weight and weight_device from blkio_config, or switch the "
                         "disks to the bfq I/O scheduler; the bps and iops limits work")
            base.write(directory / target[0], target[1])

    def _blkio_dir(self) -> Path | None:
        blkio = self.blkio
        if blkio is not None and not blkio.is_dir():
            base.retry_if_parent_vanishes(lambda: blkio.mkdir(parents=True, exist_ok=True))
        return blkio

    def procs_files(self) -> list[str]:
        files = [str(d / "cgroup.procs") for d in self._unique_dirs()]
        if self.unified:
            files += self.unified.procs_files()
        return files

    def join(self, pid: int) -> None:
        for f in self.procs_files():
            base.write(Path(f), str(pid))

    def pids(self) -> list[int]:
        d = self.dirs.get("pids") or self.dirs.get("memory") or self._unique_dirs()[0]
        return base.read_procs(d / "cgroup.procs")

    def stats(self) -> Stats:
        mem = self.dirs.get("memory")
        memory, limit = 0, None
        if mem is not None:
            usage = base.read_int(mem / "memory.usage_in_bytes")
            inactive = base.read_keyed(mem / "memory.stat").get("total_inactive_file", 0)
            memory = max(usage - inactive, 0)
            # No limit reads as the largest page-aligned number the kernel keeps.
            limit = base.read_int(mem / "memory.limit_in_bytes", default=0)
            limit = limit if 0 < limit < 2**62 else None
        cpu_dir = self.dirs.get("cpuacct")
        cpu_ns = base.read_int(cpu_dir / "cpuacct.usage") if cpu_dir else 0
        pids_dir = self.dirs.get("pids")
        pids = (base.read_int(pids_dir / "pids.current") if pids_dir
                else len(self.pids()))
        block_read, block_write = (
            base.read_io_bytes(self.blkio / "blkio.throttle.io_service_bytes_recursive")
            if self.blkio is not None else (0, 0))
        return Stats(memory_bytes=memory, cpu_ns=cpu_ns, pids=pids, memory_limit=limit,
                     block_read=block_read, block_write=block_write)

    def oom_kills(self) -> int:
        mem = self.dirs.get("memory")
        if mem is None:
            return 0
        return base.read_keyed(mem / "memory.oom_control").get("oom_kill", 0)

    def freeze(self, frozen: bool) -> None:
        """Freeze (or thaw) every process of the container. Its processes are moved into
        its freezer cgroup first, again until none is left out: one may fork meanwhile."""
        if self.freezer is None:
            raise HostError("the freezer cgroup controller is not mounted on this host",
                            hint="mount the cgroup v1 freezer hierarchy")
        if not frozen:
            if self.freezer.is_dir():
                base.write(self.freezer / "freezer.state", "THAWED")
            return
        self.freezer.mkdir(parents=True, exist_ok=True)
        procs = self.freezer / "cgroup.procs"
        deadline = time.monotonic() + FREEZE_TIMEOUT
        while True:
            inside = set(base.read_procs(procs))
            for pid in (p for p in self.pids() if p not in inside):
                try:
                    base.write(procs, str(pid))
                except HostError:
                    pass  # it exited meanwhile
            base.write(self.freezer / "freezer.state", "FROZEN")
            while base.read(self.freezer / "freezer.state").strip() != "FROZEN":
                if time.monotonic() > deadline:
                    base.write(self.freezer / "freezer.state", "THAWED")
                    raise HostError("the container's processes did not freeze in time",
                                    hint="retry; a process in uninterruptible sleep delays it")
                time.sleep(0.005)
            if set(self.pids()) <= set(base.read_procs(procs)):
                return
            base.write(self.freezer / "freezer.state", "THAWED")  # one slipped out: again

    def frozen(self) -> bool:
        return (self.freezer is not None and self.freezer.is_dir()
                and base.is_frozen(self.freezer))

    def kill_all(self) -> None:
        if self.unified:
            self.unified.kill_all()
        if self.frozen():
            # v1's freezer: a frozen task takes its SIGKILL only once thawed.
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.freeze(False)
        for d in self._unique_dirs():
            base.kill_procs(d / "cgroup.procs")

    def destroy(self) -> None:
        for d in self._unique_dirs():
            base.rmdir_retrying(d)
        if self.freezer is not None and self.freezer.is_dir():
            base.rmdir_retrying(self.freezer)
        if self.unified:
            self.unified.destroy()
