"""Container confinement: capabilities, seccomp, sysctls, no_new_privs.

`prepare(spec)` runs in the parent before fork and decides everything (raising
SecurityOptionError for bad input); in the forked child, `apply_sysctls(plan)` runs
once /proc is mounted inside, and `finalize_process(plan, uid, gid, groups)` is the
last thing before execve. See docs/security.md.
"""

from stackd.runtime.security.capabilities import (
    DOCKER_DEFAULT_CAPABILITIES,
    CapabilitySets,
    ProcessCapabilities,
    compute_capabilities,
)
from stackd.runtime.security.errors import SecurityApplyError, SecurityOptionError
from stackd.runtime.security.plan import SecurityPlan, prepare
from stackd.runtime.security.process import apply_sysctls, finalize_process
from stackd.runtime.security.sysctls import Sysctl, validate_sysctls

__all__ = [
    "DOCKER_DEFAULT_CAPABILITIES",
    "CapabilitySets",
    "ProcessCapabilities",
    "SecurityApplyError",
    "SecurityOptionError",
    "SecurityPlan",
    "Sysctl",
    "apply_sysctls",
    "compute_capabilities",
    "finalize_process",
    "prepare",
    "validate_sysctls",
]
