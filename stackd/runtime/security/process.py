"""The child side: apply a `SecurityPlan` to the container's process before execve.

Each step's order matters and is the one runc uses: bounding set while we still hold
CAP_SETPCAP, identity change, then the exact capability sets, no_new_privs, and the
seccomp filter last so it need not allow our own setup syscalls — unless no_new_privs
is off, where the kernel only lets a CAP_SYS_ADMIN holder install a filter, so it goes
first while we still hold it.
"""

from __future__ import annotations

import errno as errno_mod
import os

from stackd.runtime.security import kernel
from stackd.runtime.security.capabilities import CAPABILITY_NUMBERS, capability_mask
from stackd.runtime.security.errors import SecurityApplyError
from stackd.runtime.security.plan import SecurityPlan


def apply_sysctls(plan: SecurityPlan) -> None:
    """Write the plan's sysctls under /proc/sys; call with the container's /proc mounted
    and its namespaces entered, before /proc/sys is made read-only."""
    for sysctl in plan.sysctls:
        try:
            with open(sysctl.proc_path, "w") as f:
                f.write(sysctl.value)
        except OSError as err:
            reason = "no such sysctl on this kernel" if err.errno == errno_mod.ENOENT \
                else err.strerror
            raise SecurityApplyError(f"cannot set sysctl {sysctl.name}={sysctl.value}: "
                                     f"{reason}", hint="check the name and value") from None


def _load_filter(plan: SecurityPlan) -> None:
    assert plan.seccomp_bpf is not None
    try:
        kernel.load_seccomp(plan.seccomp_bpf)
    except OSError as err:
        raise SecurityApplyError(
            f"cannot load seccomp profile {plan.seccomp_source}: {err.strerror}",
            hint="a profile must allow what the container's setup needs after it loads "
            "(setgroups, setresuid, capset, prctl, execve) when no_new_privileges is "
            "off") from None


def finalize_process(plan: SecurityPlan, uid: int, gid: int, groups: list[int]) -> None:
    """Become uid/gid with `groups` and exactly the planned privileges; the last step
    before execve in the container's process (which must be single-threaded)."""
    applied = plan.capabilities.for_user(uid)
    try:
        early_filter = plan.seccomp_bpf is not None and not plan.no_new_privs
        if early_filter:
            _load_filter(plan)
        bounding = capability_mask(applied.bounding)
        for cap in range(plan.last_cap + 1):
            if not bounding & (1 << cap):
                try:
                    kernel.prctl(kernel.PR_CAPBSET_DROP, cap)
                except OSError as err:
                    if err.errno != errno_mod.EINVAL:  # a cap this kernel lacks
                        raise
        # No PR_SET_KEEPCAPS: a non-root uid keeps nothing (see CapabilitySets.for_user),
        # and setresuid clearing permitted/effective/ambient for it is what we want.
        os.setgroups(groups)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        _, held, _ = kernel.capget()
        # Caps the creator itself lacks (root here lacks CAP_SYS_RESOURCE) cannot be given.
        permitted = capability_mask(applied.permitted) & held
        effective = capability_mask(applied.effective) & permitted
        inheritable = capability_mask(applied.inheritable) & permitted
        kernel.capset(effective, permitted, inheritable)
        kernel.prctl(kernel.PR_CAP_AMBIENT, kernel.PR_CAP_AMBIENT_CLEAR_ALL)
        for name in sorted(applied.ambient):
            kernel.prctl(kernel.PR_CAP_AMBIENT, kernel.PR_CAP_AMBIENT_RAISE,
                         CAPABILITY_NUMBERS[name])
        if plan.no_new_privs:
            kernel.prctl(kernel.PR_SET_NO_NEW_PRIVS, 1)
    except OSError as err:
        raise SecurityApplyError(
            f"cannot drop to uid {uid} gid {gid} with the planned capabilities: {err}",
            hint="the container's user/group ids must be valid on this host") from None
    if plan.seccomp_bpf is not None and not early_filter:
        _load_filter(plan)
