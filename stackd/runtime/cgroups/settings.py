"""Resource limits → cgroup file writes, for each cgroup version. Pure functions, but
for `weight_file`, which asks the kernel which I/O weight file it has.

The order of the returned writes matters and is the order to apply them in: v1's
memory.memsw limit may never be below the memory limit, and cfs_quota is only
meaningful once the period is set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from stackd.runtime.specview import device_rule

TYPE_CHECKING = False  # typing's, without importing typing: see specview
if TYPE_CHECKING:
    from stackd.runtime.containerspec import Device, Resources


# (controller, file, value)
Write = tuple[str, str, str]


def v1_writes(res: Resources) -> list[Write]:
    out: list[Write] = []
    if res.memory is not None:
        out.append(("memory", "memory.limit_in_bytes", str(res.memory)))
    if res.memory_swap is not None:
        out.append(("memory", "memory.memsw.limit_in_bytes", str(res.memory_swap)))
    if res.cpu_quota is not None:
        out.append(("cpu", "cpu.cfs_period_us", str(res.cpu_period)))
        out.append(("cpu", "cpu.cfs_quota_us", str(res.cpu_quota)))
    if res.cpu_shares is not None:
        out.append(("cpu", "cpu.shares", str(res.cpu_shares)))
    if res.pids_limit is not None:
        out.append(("pids", "pids.max", "max" if res.pids_limit <= 0 else str(res.pids_limit)))
    if res.cpuset_cpus is not None:
        out.append(("cpuset", "cpuset.cpus", res.cpuset_cpus))
    if res.cpuset_mems is not None:
        out.append(("cpuset", "cpuset.mems", res.cpuset_mems))
    if res.memory_swappiness is not None:
        out.append(("memory", "memory.swappiness", str(res.memory_swappiness)))
    if res.oom_kill_disable:
        out.append(("memory", "memory.oom_control", "1"))
    if res.blkio_weight is not None:
        out.append(("blkio", "blkio.weight", str(res.blkio_weight)))
    for b in res.blkio_devices:
        name = ("blkio.weight_device" if b.limit == "weight"
                else f"blkio.throttle.{b.limit}_device")
        out.append(("blkio", name, f"{b.major}:{b.minor} {b.value}"))
    return out


def v1_only(res: Resources) -> list[str]:
    """The compose keys of `res` that only cgroup v1 has a file for."""
    return ([*(["mem_swappiness"] if res.memory_swappiness is not None else []),
             *(["oom_kill_disable"] if res.oom_kill_disable else [])])


def shares_to_weight(shares: int) -> int:
    """v1 cpu.shares (2..262144) onto v2 cpu.weight (1..10000), linearly, as runc maps it."""
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def v2_writes(res: Resources) -> list[Write]:
    out: list[Write] = []
    if res.memory is not None:
        out.append(("memory", "memory.max", str(res.memory)))
    if res.memory_swap is not None:
        # v1 counts memory+swap together, v2 counts swap alone.
        swap = ("max" if res.memory_swap < 0
                else str(max(res.memory_swap - (res.memory or 0), 0)))
        out.append(("memory", "memory.swap.max", swap))
    if res.cpu_quota is not None:
        quota = "max" if res.cpu_quota <= 0 else str(res.cpu_quota)
        out.append(("cpu", "cpu.max", f"{quota} {res.cpu_period}"))
    if res.cpu_shares is not None:
        out.append(("cpu", "cpu.weight", str(shares_to_weight(res.cpu_shares))))
    if res.pids_limit is not None:
        out.append(("pids", "pids.max", "max" if res.pids_limit <= 0 else str(res.pids_limit)))
    if res.cpuset_cpus is not None:
        out.append(("cpuset", "cpuset.cpus", res.cpuset_cpus))
    if res.cpuset_mems is not None:
        out.append(("cpuset", "cpuset.mems", res.cpuset_mems))
    if res.blkio_weight is not None:
        out.append(("io", "io.bfq.weight", f"default {res.blkio_weight}"))
    for b in res.blkio_devices:
        if b.limit == "weight":
            out.append(("io", "io.bfq.weight", f"{b.major}:{b.minor} {b.value}"))
        else:
            out.append(("io", "io.max", f"{b.major}:{b.minor} {_IO_MAX[b.limit]}={b.value}"))
    return out


_IO_MAX = {"read_bps": "rbps", "write_bps": "wbps", "read_iops": "riops",
           "write_iops": "wiops"}


# A weight write's file, and where the kernel lacks it the one to try instead with
# the value it takes there. v1's blkio.weight went with CFQ in 5.0 (BFQ's has the
# same scale); v2's io.weight (io.cost, 1..10000) stands in for BFQ's as runc maps it.
def _same_weight(weight: int) -> int:
    return weight


def _io_cost_weight(weight: int) -> int:
    """blkio's 10..1000 onto io.weight's 1..10000, linearly, as runc maps it."""
    return 1 + (weight - 10) * 9999 // 990


_WEIGHT_FALLBACK = {
    "blkio.weight": ("blkio.bfq.weight", _same_weight),
    "blkio.weight_device": ("blkio.bfq.weight_device", _same_weight),
    "io.bfq.weight": ("io.weight", _io_cost_weight),
}


def weight_write(directory: str, name: str, value: str) -> tuple[str, str] | None:
    """(file, value) of `directory` to write an I/O weight to, None if this kernel has
    no I/O weight; any other write as it is."""
    if name not in _WEIGHT_FALLBACK or os.path.exists(os.path.join(directory, name)):
        return name, value
    other, scale = _WEIGHT_FALLBACK[name]
    if not os.path.exists(os.path.join(directory, other)):
        return None
    where, _, weight = value.rpartition(" ")
    return other, f"{where} {scale(int(weight))}".lstrip()


# Docker's default device allow-list for unprivileged containers (devices cgroup v1).
DEFAULT_DEVICE_RULES: tuple[str, ...] = (
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",    # null
    "c 1:5 rwm",    # zero
    "c 1:7 rwm",    # full
    "c 1:8 rwm",    # random
    "c 1:9 rwm",    # urandom
    "c 5:0 rwm",    # tty
    "c 5:1 rwm",    # console
    "c 5:2 rwm",    # ptmx
    "c 136:* rwm",  # pts
    "c 10:200 rwm",  # net/tun
)


ALLOW_ALL = "a *:* rwm"


def device_rules(privileged: bool, devices: Sequence[Device] = (),
                 extra: Sequence[str] = ()) -> list[str]:
    """What a container may do with device nodes, as allow rules in devices.allow's
    form (`TYPE MAJOR:MINOR ACCESS`); anything else is denied. One list for both
    versions: v1 writes it to the devices controller, v2 compiles it into the eBPF
    program the kernel asks instead (devicefilter.py). extra: the spec's own rules
    (device_cgroup_rules)."""
    if privileged:
        return [ALLOW_ALL]
    return [*DEFAULT_DEVICE_RULES, *(device_rule(d) for d in devices), *extra]


def v1_device_writes(privileged: bool, devices: Sequence[Device] = (),
                     extra: Sequence[str] = ()) -> list[Write]:
    """Deny all, then Docker's defaults and the container's own (resolved) devices."""
    rules = device_rules(privileged, devices, extra)
    deny: list[Write] = [] if rules == [ALLOW_ALL] else [("devices", "devices.deny", ALLOW_ALL)]
    return deny + [("devices", "devices.allow", rule) for rule in rules]
