"""A container's device rules on cgroup v2: an eBPF program of type CGROUP_DEVICE.

cgroup v2 has no devices controller: the kernel asks the programs attached to a
process's cgroup (and its parents') whether a device node may be made (mknod), read
or written, and allows everything when there is none. Without one, root in a
container — whose default capabilities include MKNOD, as Docker's — could make
/dev/sda's node and read the host's disk. So each container's cgroup gets a program
compiled from the same allow rules v1 writes to devices.allow (settings.device_rules),
as runc does; it is attached for the cgroup's life (BPF_PROG_ATTACH, not a link), so
it holds whatever happens to the process that attached it.

The program's context is `struct bpf_cgroup_dev_ctx {u32 access_type; u32 major;
u32 minor;}`, access_type holding the device type in its low 16 bits (1 block,
2 char) and the access asked for in its high ones (1 mknod, 2 read, 4 write). It
returns 1 to allow, 0 to deny.
"""

from __future__ import annotations

from stackd.errors import HostError, SpecError
from stackd.runtime import ebpf
from stackd.runtime.ebpf import R0, R1, R2, R3, R4, R5

_TYPES = {"b": 1, "c": 2}
_ACCESS = {"m": 1, "r": 2, "w": 4}


def _parse(rule: str) -> tuple[str, int | None, int | None, int]:
    """`c 1:3 rwm` → (kind, major, minor, access mask); None is `*`."""
    try:
        kind, numbers, access = rule.split()
        major, minor = numbers.split(":")
        mask = 0
        for letter in access:
            mask |= _ACCESS[letter]
        if kind not in ("a", *_TYPES) or not mask:
            raise ValueError(rule)
        return (kind, None if major == "*" else int(major),
                None if minor == "*" else int(minor), mask)
    except (KeyError, ValueError):
        raise SpecError(f"device rule {rule!r} is not `TYPE MAJOR:MINOR ACCESS`",
                        hint="e.g. `c 188:* rwm`: TYPE a, b or c; * for any number; "
                             "ACCESS of r, w, m") from None


def program(rules: list[str]) -> ebpf.Program:
    """The filter for these allow rules, in order; whatever none allows is denied."""
    p = ebpf.Program()
    p.load32(R2, R1, 0)
    p.and_imm(R2, 0xFFFF)  # the device's type
    p.load32(R3, R1, 0)
    p.rsh_imm(R3, 16)  # the access asked for
    p.load32(R4, R1, 4)  # major
    p.load32(R5, R1, 8)  # minor
    for i, rule in enumerate(rules):
        kind, major, minor, mask = _parse(rule)
        nxt = f"rule{i + 1}"
        if kind != "a":
            p.jump_if(R2, "!=", _TYPES[kind], nxt)
        p.mov(R1, R3)  # the context's pointer is not needed any more
        p.and_imm(R1, ~mask & 0xFFFF)
        p.jump_if(R1, "!=", 0, nxt)  # asked for more than the rule allows
        if major is not None:
            p.jump_if(R4, "!=", major, nxt)
        if minor is not None:
            p.jump_if(R5, "!=", minor, nxt)
        p.mov_imm(R0, 1)
        p.exit()
        p.label(nxt)
    p.mov_imm(R0, 0)
    p.exit()
    return p


def attach(cgroup_dir: str, rules: list[str]) -> None:
    """Load the filter for `rules` and attach it to the cgroup for the cgroup's life."""
    import os

    try:
        fd = ebpf.load(program(rules), prog_type=ebpf.PROG_CGROUP_DEVICE,
                       attach_type=ebpf.ATTACH_CGROUP_DEVICE, name="stackd_devices")
        try:
            ebpf.attach_cgroup(fd, cgroup_dir, ebpf.ATTACH_CGROUP_DEVICE)
        finally:
            os.close(fd)
    except OSError as err:
        raise HostError(f"cannot limit the container's device access at {cgroup_dir}: "
                        f"{err.strerror or err}",
                        hint="cgroup v2 needs an eBPF device program (CONFIG_CGROUP_BPF); "
                             "without one no container is started") from None
