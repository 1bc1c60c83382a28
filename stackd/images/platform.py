"""This host's platform, derived once from the kernel's machine name, in this one place.

The image store pulls this platform from an index (unless a service asks for another
variant) and records it in the images it builds.
"""

from __future__ import annotations

import functools
import os

from stackd.scheduler.platform import Platform, parse_platform, platform_of_machine

__all__ = ["Platform", "host_platform", "parse_platform", "platform_of_machine"]


@functools.cache
def host_platform() -> Platform:
    """The platform of this host's kernel (`uname -m`), computed once."""
    return platform_of_machine(os.uname().machine)
