"""The container runtime: namespaces, rootfs, cgroups, process lifecycle, logs, exec.

Import `Runtime` from here; see docs/runtime.md for how it is built.
"""

from stackd.runtime.model import ContainerState, ExitStatus, LogRecord, Stats
from stackd.runtime.runtime import Runtime

__all__ = ["ContainerState", "ExitStatus", "LogRecord", "Runtime", "Stats"]
