"""The container runtime: namespaces, rootfs, cgroups, process lifecycle, logs, exec.

Import `Runtime` from here; see docs/runtime.md for how it is built. Names load
lazily so the monitor process (`python -m stackd.runtime.monitor`) does not pay for
trio and the client side it never uses.
"""

from __future__ import annotations

# Not typing's: the keeper (`python -m stackd.runtime.keeper`) imports this package and
# nothing else, and typing alone is ~0.5 MiB of a process kept per state root.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from stackd.runtime.model import ContainerState, ExitStatus, LogRecord, Stats
    from stackd.runtime.runtime import Runtime

__all__ = ["ContainerState", "ExitStatus", "LogRecord", "Runtime", "Stats"]


def __getattr__(name: str) -> Any:
    if name == "Runtime":
        from stackd.runtime.runtime import Runtime

        return Runtime
    if name in __all__:
        from stackd.runtime import model

        return getattr(model, name)
    raise AttributeError(f"module 'stackd.runtime' has no attribute {name!r}")
