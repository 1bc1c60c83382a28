"""cgroup v2: one hierarchy; controllers are enabled down the tree via subtree_control."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from stackd.errors import HostError
from stackd.runtime.cgroups import base
from stackd.runtime.cgroups.settings import (
    ALLOW_ALL,
    device_rules,
    v1_only,
    v2_writes,
    weight_write,
)
from stackd.runtime.model import Stats

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from stackd.runtime.containerspec import Device, Resources


class CgroupV2:
    def __init__(self, mount: Path, relpath: str) -> None:
        self.mount = mount
        self.relpath = relpath
        self.dir = mount / relpath

    def paths(self) -> list[Path]:
        return [self.dir]

    def available_controllers(self) -> set[str]:
        try:
            return set(base.read(self.mount / "cgroup.controllers").split())
        except OSError:
            return set()

    def create(self) -> None:
        base.retry_if_parent_vanishes(lambda: self.dir.mkdir(parents=True, exist_ok=True))

    def _enable(self, controller: str) -> None:
        """Turn a controller on in subtree_control from the mount down to our parent."""
        current = self.mount
        for part in Path(self.relpath).parts:
            enabled = base.read(current / "cgroup.subtree_control").split()
            if controller not in enabled:
                base.write(current / "cgroup.subtree_control", f"+{controller}")
            current = current / part

    def apply(self, resources: Resources, *, privileged: bool = False,
              devices: Sequence[Device] = (), rules: Sequence[str] = ()) -> None:
        only_v1 = v1_only(resources)
        if only_v1:
            raise HostError(f"{', '.join(only_v1)}: cgroup v2 has no such setting, and this "
                            "host's cgroups are v2",
                            hint=f"remove {' and '.join(only_v1)} from the service")
        writes = v2_writes(resources)
        available = self.available_controllers()
        for controller in sorted({c for c, _, _ in writes}):
            if controller not in available:
                raise HostError(
                    f"cannot apply a {controller} limit: the {controller} controller is not "
                    f"available in the cgroup2 hierarchy at {self.mount}",
                    hint="on a hybrid host it is bound to cgroup v1; use the v1 manager",
                )
            self._enable(controller)
        for _, name, value in writes:
            target = weight_write(str(self.dir), name, value)
            if target is None:
                raise HostError(
                    "blkio_config: this host's kernel has no block I/O weight (neither the "
                    "BFQ scheduler's io.bfq.weight nor io.cost's io.weight)",
                    hint="remove weight and weight_device from blkio_config; the bps and "
                         "iops limits work")
            base.write(self.dir / target[0], target[1])
        allowed = device_rules(privileged, devices, rules)
        if allowed != [ALLOW_ALL]:
            # No devices controller on v2: the kernel asks an eBPF program instead, and
            # allows everything without one (mknod and open /dev/sda as root).
            from stackd.runtime.cgroups import devicefilter

            devicefilter.attach(str(self.dir), allowed)

    def procs_files(self) -> list[str]:
        return [str(self.dir / "cgroup.procs")]

    def join(self, pid: int) -> None:
        base.write(self.dir / "cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        return base.read_procs(self.dir / "cgroup.procs")

    def stats(self) -> Stats:
        memory = base.read_int(self.dir / "memory.current")
        if memory:
            inactive = base.read_keyed(self.dir / "memory.stat").get("inactive_file", 0)
            memory = max(memory - inactive, 0)
        cpu_ns = base.read_keyed(self.dir / "cpu.stat").get("usage_usec", 0) * 1000
        pids = base.read_int(self.dir / "pids.current", default=-1)
        if pids < 0:
            pids = len(self.pids())
        limit = base.read_int(self.dir / "memory.max", default=0)  # "max": none
        block_read, block_write = base.read_io_bytes(self.dir / "io.stat")
        return Stats(memory_bytes=memory, cpu_ns=cpu_ns, pids=pids,
                     memory_limit=limit if limit > 0 else None,
                     block_read=block_read, block_write=block_write)

    def oom_kills(self) -> int:
        return base.read_keyed(self.dir / "memory.events").get("oom_kill", 0)

    def freeze(self, frozen: bool) -> None:
        base.write(self.dir / "cgroup.freeze", "1" if frozen else "0")

    def frozen(self) -> bool:
        return base.is_frozen(self.dir)

    def kill_all(self) -> None:
        kill = self.dir / "cgroup.kill"
        if kill.exists():
            base.write(kill, "1")
        else:  # kernels before 5.14
            base.kill_procs(self.dir / "cgroup.procs")

    def destroy(self) -> None:
        if not self.dir.exists():
            return
        for child in sorted(self.dir.iterdir()):
            if child.is_dir():
                raise HostError(f"cgroup {self.dir} has a child {child.name} stackd did not make",
                                hint="remove it by hand")
        base.rmdir_retrying(self.dir)
