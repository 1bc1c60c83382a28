"""The errors the security layer raises: a user's bad option, or the kernel saying no."""

from __future__ import annotations

from stackd.errors import HostError, SpecError


class SecurityOptionError(SpecError):
    """A capability, sysctl or seccomp option in a ContainerSpec is wrong.

    Raised in the parent before anything is forked, so the user sees it at create time.
    """


class SecurityApplyError(HostError):
    """The kernel refused to apply a planned security setting in the container's process."""
