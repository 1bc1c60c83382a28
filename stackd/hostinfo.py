"""This machine's capacity as a scheduler Node: CPUs, memory, pids and hostname.

Read from /proc and os, so it lives outside the pure scheduler package. It is what a
single-host stackd places slots onto; a cluster agent would report the same numbers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from stackd.errors import HostError
from stackd.scheduler.nodes import Node

PROC = Path("/proc")


def local_node(labels: Mapping[str, str] | None = None, *, proc: Path = PROC) -> Node:
    """This host: usable CPUs (its affinity mask), MemTotal, pid_max, name and arch."""
    uname = os.uname()
    return Node(
        name=uname.nodename,
        cpus=float(len(os.sched_getaffinity(0))),
        memory=memory_total(proc),
        pids=pid_max(proc),
        labels=MappingProxyType(dict(labels or {})),
        os="linux",
        arch=uname.machine,
    )


def memory_total(proc: Path = PROC) -> int:
    """MemTotal from /proc/meminfo, in bytes."""
    path = proc / "meminfo"
    try:
        text = path.read_text()
    except OSError as exc:
        raise HostError(f"cannot read {path}: {exc.strerror}",
                        hint="stackd needs /proc mounted") from exc
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            unit = 1024 if len(fields) > 2 and fields[2] == "kB" else 1
            return int(fields[1]) * unit
    raise HostError(f"{path} has no MemTotal line", hint="stackd needs a Linux /proc")


def pid_max(proc: Path = PROC) -> int:
    """The kernel's pid limit (/proc/sys/kernel/pid_max): how many processes can exist."""
    path = proc / "sys/kernel/pid_max"
    try:
        return int(path.read_text().strip())
    except OSError as exc:
        raise HostError(f"cannot read {path}: {exc.strerror}",
                        hint="stackd needs /proc mounted") from exc
    except ValueError as exc:
        raise HostError(f"{path} does not hold a number") from exc
